"""SQuAD readers: official JSON v1.1/v2.0, JSON lines, TFDS; answers checked against contexts."""

import json

import numpy as np
import pytest

from bert_jax.data import squad_examples
from bert_jax.data.squad_examples import QAExample
from bert_jax.errors import UserError

# Readers ------------------------------------------------------------------------------------

V1 = {
    "version": "1.1",
    "data": [
        {
            "title": "Cafés",
            "paragraphs": [
                {
                    "context": "Café Ñandú opened in 1998.",
                    "qas": [
                        {
                            "id": "a1",
                            "question": "When?",
                            "answers": [
                                {"text": "1998", "answer_start": 21},
                                {"text": "in 1998", "answer_start": 18},
                            ],
                        },
                        {
                            "id": "a2",
                            "question": "What?",
                            "answers": [{"text": "Café Ñandú", "answer_start": 0}],
                        },
                    ],
                }
            ],
        },
        {
            "title": "Rivers",
            "paragraphs": [
                {
                    "context": "The Thames flows.",
                    "qas": [
                        {
                            "id": "b1",
                            "question": "Which river?",
                            "answers": [{"text": "Thames", "answer_start": 4}],
                        }
                    ],
                }
            ],
        },
    ],
}

V2 = {
    "version": "v2.0",
    "data": [
        {
            "title": "Cafés",
            "paragraphs": [
                {
                    "context": "Café Ñandú opened in 1998.",
                    "qas": [
                        {
                            "id": "c1",
                            "question": "When did it close?",
                            "answers": [],
                            "plausible_answers": [{"text": "1998", "answer_start": 21}],
                            "is_impossible": True,
                        },
                        {
                            "id": "c2",
                            "question": "When did it open?",
                            "answers": [{"text": "1998", "answer_start": 21}],
                            "is_impossible": False,
                        },
                    ],
                }
            ],
        }
    ],
}


def write_json(path, data) -> str:
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return str(path)


def test_read_squad_v1(tmp_path):
    examples = squad_examples.read_examples(write_json(tmp_path / "train-v1.1.json", V1))
    context = "Café Ñandú opened in 1998."
    assert examples == [
        QAExample("a1", "When?", context, ("1998", "in 1998"), (21, 18)),
        QAExample("a2", "What?", context, ("Café Ñandú",), (0,)),
        QAExample("b1", "Which river?", "The Thames flows.", ("Thames",), (4,)),
    ]


def test_read_squad_v2_impossible_has_no_answers(tmp_path):
    examples = squad_examples.read_squad_json(write_json(tmp_path / "dev-v2.0.json", V2))
    assert [(e.id, e.answers, e.answer_starts) for e in examples] == [
        ("c1", (), ()),
        ("c2", ("1998",), (21,)),
    ]


def test_read_jsonl_hugging_face_layout(tmp_path):
    rows = [
        {
            "id": "h1",
            "title": "t",
            "question": "Where?",
            "context": "Zoë lives in  São Paulo.",
            "answers": {"text": ["São Paulo"], "answer_start": [14]},
        },
        {
            "id": "h2",
            "question": "Why?",
            "context": "No reason.",
            "answers": {"text": [], "answer_start": []},
        },
    ]
    path = tmp_path / "dev.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    assert squad_examples.read_examples(str(path)) == [
        QAExample("h1", "Where?", "Zoë lives in  São Paulo.", ("São Paulo",), (14,)),
        QAExample("h2", "Why?", "No reason.", (), ()),
    ]


def test_bad_answer_start_names_the_example(tmp_path):
    bad = json.loads(json.dumps(V1))
    bad["data"][1]["paragraphs"][0]["qas"][0]["answers"][0]["answer_start"] = 5
    with pytest.raises(UserError, match="'b1'.*answer_start=5"):
        squad_examples.read_squad_json(write_json(tmp_path / "bad.json", bad))
    line = {"id": "x9", "question": "q", "context": "abc", "answers": {"text": ["c"]}}
    line["answers"]["answer_start"] = [0]
    (tmp_path / "bad.jsonl").write_text(json.dumps(line), encoding="utf-8")
    with pytest.raises(UserError, match="'x9'"):
        squad_examples.read_jsonl(str(tmp_path / "bad.jsonl"))


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("layout.json", json.dumps({"data": [{"paragraphs": [{"qas": []}]}]}), "SQuAD JSON"),
        ("broken.json", "{not json", "cannot be read as JSON"),
        ("line.jsonl", '{"id": "z", "question": "q"}\n', "line 1"),
        ("data.csv", "", "not 'tfds:NAME'"),
        ("empty.jsonl", "\n", "holds no questions"),
    ],
)
def test_malformed_sources_are_user_errors(tmp_path, name, content, message):
    (tmp_path / name).write_text(content, encoding="utf-8")
    with pytest.raises(UserError, match=message):
        squad_examples.read_examples(str(tmp_path / name))


def test_duplicate_ids_are_rejected(tmp_path):
    dup = json.loads(json.dumps(V1))
    dup["data"][1]["paragraphs"][0]["qas"][0]["id"] = "a1"
    with pytest.raises(UserError, match="'a1' appears more than once"):
        squad_examples.read_squad_json(write_json(tmp_path / "dup.json", dup))


def tfds_v2_example(is_impossible: bool) -> dict:
    """Shaped as `tfds.as_numpy` yields squad/v2.0: bytes strings, answers as arrays."""
    answers = [] if is_impossible else [b"S\xc3\xa3o Paulo"]
    return {
        "id": b"56de",
        "title": b"Cities",
        "context": "Zoë lives in São Paulo.".encode(),
        "question": b"Where?",
        "answers": {
            "text": np.array(answers, dtype=object),
            "answer_start": np.array([13] * len(answers), np.int32),
        },
        "plausible_answers": {
            "text": np.array([b"Paulo"], dtype=object),
            "answer_start": np.array([17], np.int32),
        },
        "is_impossible": np.bool_(is_impossible),
    }


def test_example_from_tfds():
    v1 = tfds_v2_example(False)
    del v1["plausible_answers"], v1["is_impossible"]
    expected = QAExample("56de", "Where?", "Zoë lives in São Paulo.", ("São Paulo",), (13,))
    assert squad_examples.example_from_tfds(v1) == expected
    assert squad_examples.example_from_tfds(tfds_v2_example(False)) == expected
    impossible = squad_examples.example_from_tfds(tfds_v2_example(True))
    assert (impossible.answers, impossible.answer_starts) == ((), ())
    wrong = tfds_v2_example(False)
    wrong["answers"]["answer_start"][0] = 12
    with pytest.raises(UserError, match="'56de'"):
        squad_examples.example_from_tfds(wrong)


def test_read_examples_from_tfds_mock():
    """`tfds:squad/v2.0` through the real TFDS builder, its data replaced by two examples."""
    tf = pytest.importorskip("tensorflow")
    tfds = pytest.importorskip("tensorflow_datasets")

    def as_dataset(self, *args, **kwargs):
        rows = [tfds_v2_example(False), tfds_v2_example(True)]
        rows[1]["id"] = b"56df"
        return tf.data.Dataset.from_generator(
            lambda: iter(rows),
            output_types=self.info.features.dtype,
            output_shapes=self.info.features.shape,
        )

    with tfds.testing.mock_data(as_dataset_fn=as_dataset):
        examples = squad_examples.read_examples("tfds:squad/v2.0", split="validation")
    context = "Zoë lives in São Paulo."
    assert examples == [
        QAExample("56de", "Where?", context, ("São Paulo",), (13,)),
        QAExample("56df", "Where?", context, (), ()),
    ]
