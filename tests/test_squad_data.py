"""SQuAD data: the readers, the windowed features, and decoding logits back to the exact answer
text with both tokenizers (logits peaked at the training targets must give the gold answers)."""

import json
import random
import re
import string
import unicodedata

import numpy as np
import pytest

from bert_jax.data import squad
from bert_jax.data.offsets import token_spans
from bert_jax.data.squad import QAExample, best_answers, make_features, nbest
from bert_jax.data.tokenizer import SPECIAL_TOKENS, Tokenizer
from bert_jax.data.wordpiece import WordPiece
from bert_jax.errors import UserError

# (context, answers) with accents, punctuation, runs of spaces, and answers at the very start
# and the very end of the context. "€" is in neither vocabulary's letters ([UNK] in WordPiece).
PASSAGES = [
    (
        "Café Ñandú opened in 1998, near the old harbour; its keeper was Zoë Müller",
        ["Café Ñandú", "1998", "old harbour", "Zoë Müller"],
    ),
    (
        "The  river   Thames flows   through London (England), about 346 km long!",
        ["The", "river   Thames", "London (England)", "346 km", "long!"],
    ),
    (
        "It cost $4.5 million — roughly €4 million — in 2019, said the naïve façade's owner.",
        ["$4.5 million", "€4 million", "2019", "naïve façade's owner"],
    ),
]
QUESTIONS = ["What is it?", "Who opened the old café near London?", "When, and how much?"]
LONG_CONTEXT = (
    "The harbour opened in 1998 and the river flows through London. " * 6
    + "Its keeper was Zoë Müller, who said the café cost $4.5 million."
)


def qa(id_: str, question: str, context: str, *answers: str) -> QAExample:
    """An example whose answer starts are found in the context."""
    starts = tuple(context.index(answer) for answer in answers)
    return QAExample(id_, question, context, answers, starts)


def passage_examples() -> list[QAExample]:
    examples = []
    for p, (context, answers) in enumerate(PASSAGES):
        for a, answer in enumerate(answers):
            examples.append(qa(f"p{p}a{a}", QUESTIONS[(p + a) % 3], context, answer))
    return examples


def all_texts() -> list[str]:
    return [context for context, _ in PASSAGES] + QUESTIONS + [LONG_CONTEXT]


@pytest.fixture(scope="module")
def wordpiece() -> WordPiece:
    """Whole words for most of the text, a few words as ## pieces, and single letters, digits
    and punctuation so any other word is spelled out; no "€"."""
    folded = unicodedata.normalize("NFD", " ".join(all_texts()).lower())
    folded = "".join(c for c in folded if unicodedata.category(c) != "Mn")
    words = set(re.findall(r"[a-z0-9]{2,}", folded)) - {"harbour", "opened", "thames", "muller"}
    letters = string.ascii_lowercase + string.digits
    vocab = [
        *SPECIAL_TOKENS,
        *sorted(words),
        "harb",
        "##our",
        "open",
        "##ed",
        *letters,
        *("##" + c for c in letters),
        *string.punctuation,
        "—",
    ]
    return WordPiece(vocab, do_lower_case=True)


@pytest.fixture(scope="module")
def sentencepiece() -> Tokenizer:
    """A ~300-piece BPE model trained on shuffled words of the test text.

    Punctuation stands apart from words in the training sentences, so no piece joins them (a
    piece "1998," could not give the answer "1998" back).
    """
    words = re.findall(r"\w+|[^\w\s]", " ".join(all_texts()))
    rng = random.Random(0)
    sentences = [" ".join(rng.sample(words, 10)) for _ in range(400)]
    return Tokenizer.train([sentences], vocab_size=300)


@pytest.fixture(params=["wordpiece", "sentencepiece"])
def tokenizer(request):
    return request.getfixturevalue(request.param)


def peaked_logits(features: squad.QAFeatures) -> tuple[np.ndarray, np.ndarray]:
    """Logits of a perfect model: 10 at each feature's target start and end, 0 elsewhere."""
    start = np.zeros(features.input_ids.shape, np.float32)
    end = np.zeros(features.input_ids.shape, np.float32)
    rows = np.arange(len(features))
    start[rows, features.start_positions] = 10.0
    end[rows, features.end_positions] = 10.0
    return start, end


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
    examples = squad.read_examples(write_json(tmp_path / "train-v1.1.json", V1))
    context = "Café Ñandú opened in 1998."
    assert examples == [
        QAExample("a1", "When?", context, ("1998", "in 1998"), (21, 18)),
        QAExample("a2", "What?", context, ("Café Ñandú",), (0,)),
        QAExample("b1", "Which river?", "The Thames flows.", ("Thames",), (4,)),
    ]


def test_read_squad_v2_impossible_has_no_answers(tmp_path):
    examples = squad.read_squad_json(write_json(tmp_path / "dev-v2.0.json", V2))
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
    assert squad.read_examples(str(path)) == [
        QAExample("h1", "Where?", "Zoë lives in  São Paulo.", ("São Paulo",), (14,)),
        QAExample("h2", "Why?", "No reason.", (), ()),
    ]


def test_bad_answer_start_names_the_example(tmp_path):
    bad = json.loads(json.dumps(V1))
    bad["data"][1]["paragraphs"][0]["qas"][0]["answers"][0]["answer_start"] = 5
    with pytest.raises(UserError, match="'b1'.*answer_start=5"):
        squad.read_squad_json(write_json(tmp_path / "bad.json", bad))
    line = {"id": "x9", "question": "q", "context": "abc", "answers": {"text": ["c"]}}
    line["answers"]["answer_start"] = [0]
    (tmp_path / "bad.jsonl").write_text(json.dumps(line), encoding="utf-8")
    with pytest.raises(UserError, match="'x9'"):
        squad.read_jsonl(str(tmp_path / "bad.jsonl"))


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
        squad.read_examples(str(tmp_path / name))


def test_duplicate_ids_are_rejected(tmp_path):
    dup = json.loads(json.dumps(V1))
    dup["data"][1]["paragraphs"][0]["qas"][0]["id"] = "a1"
    with pytest.raises(UserError, match="'a1' appears more than once"):
        squad.read_squad_json(write_json(tmp_path / "dup.json", dup))


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
    assert squad.example_from_tfds(v1) == expected
    assert squad.example_from_tfds(tfds_v2_example(False)) == expected
    impossible = squad.example_from_tfds(tfds_v2_example(True))
    assert (impossible.answers, impossible.answer_starts) == ((), ())
    wrong = tfds_v2_example(False)
    wrong["answers"]["answer_start"][0] = 12
    with pytest.raises(UserError, match="'56de'"):
        squad.example_from_tfds(wrong)


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
        examples = squad.read_examples("tfds:squad/v2.0", split="validation")
    context = "Zoë lives in São Paulo."
    assert examples == [
        QAExample("56de", "Where?", context, ("São Paulo",), (13,)),
        QAExample("56df", "Where?", context, (), ()),
    ]


# Features -----------------------------------------------------------------------------------


def test_feature_layout(wordpiece):
    """[CLS] question [SEP] window [SEP] [PAD]..., the question cut to max_query_length."""
    question = "which river flows through london and who kept the harbour"
    long, short = qa("l", question, LONG_CONTEXT, "The"), qa("s", "Why?", PASSAGES[1][0], "The")
    features = make_features(
        wordpiece,
        [long, short],
        max_seq_length=40,
        doc_stride=8,
        max_query_length=5,
        is_training=True,
    )
    assert features.input_ids.shape == (len(features), 40)
    assert features.token_char_spans.shape == (len(features), 40, 2)
    assert list(features.example_index) == [0] * (len(features) - 1) + [1]
    for name in ("input_ids", "token_type_ids", "attention_mask", "start_positions"):
        assert getattr(features, name).dtype == np.int32
    assert features.max_context.dtype == bool

    # A full first window of the long context.
    ids = wordpiece.encode(question)[:5]
    assert len(wordpiece.encode(question)) > 5
    context = token_spans(wordpiece, LONG_CONTEXT)
    room = 40 - 5 - 3
    assert list(features.input_ids[0]) == [
        wordpiece.cls_id,
        *ids,
        wordpiece.sep_id,
        *(t.id for t in context[:room]),
        wordpiece.sep_id,
    ]
    assert list(features.token_type_ids[0]) == [0] * 7 + [1] * (room + 1)
    assert features.attention_mask[0].all()
    spans = features.token_char_spans[0]
    assert (spans[:7] == -1).all() and (spans[-1] == -1).all()
    assert [tuple(s) for s in spans[7:-1]] == [(t.start, t.end) for t in context[:room]]

    # The short context in one padded window.
    ids = wordpiece.encode("Why?")
    context = token_spans(wordpiece, PASSAGES[1][0])
    used = 1 + len(ids) + 1 + len(context) + 1
    assert used < 40
    assert list(features.input_ids[-1]) == [
        wordpiece.cls_id,
        *ids,
        wordpiece.sep_id,
        *(t.id for t in context),
        wordpiece.sep_id,
        *[wordpiece.pad_id] * (40 - used),
    ]
    expected_types = [0] * (len(ids) + 2) + [1] * (len(context) + 1) + [0] * (40 - used)
    assert list(features.token_type_ids[-1]) == expected_types
    assert list(features.attention_mask[-1]) == [1] * used + [0] * (40 - used)
    assert (features.token_char_spans[-1, used - 1 :] == -1).all()
    assert features.max_context[-1].sum() == len(context)
    assert features.start_positions[-1] == len(ids) + 2  # "The" opens the context


def test_windows_advance_by_doc_stride_and_count_each_token_once(tokenizer):
    example = qa("w1", "Who kept the harbour?", LONG_CONTEXT, "Zoë Müller")
    stride = 8
    features = make_features(
        tokenizer,
        [example],
        max_seq_length=32,
        doc_stride=stride,
        max_query_length=8,
        is_training=False,
    )
    context = token_spans(tokenizer, LONG_CONTEXT)
    windows = [spans[spans[:, 0] >= 0] for spans in features.token_char_spans]
    assert len(windows) >= 4
    for previous, following in zip(windows, windows[1:], strict=False):
        assert (following[0] == previous[stride]).all()
    assert (windows[-1][-1] == (context[-1].start, context[-1].end)).all()
    counted = features.token_char_spans[features.max_context]
    assert sorted(map(tuple, counted)) == sorted((t.start, t.end) for t in context)
    assert not (features.start_positions.any() or features.end_positions.any())


def bert_is_max_context(windows: list[tuple[int, int]], current: int, position: int) -> bool:
    """`_check_is_max_context` of google-research/bert's run_squad.py, windows (start, length)."""
    best_score, best_index = None, None
    for index, (start, length) in enumerate(windows):
        end = start + length - 1
        if position < start or position > end:
            continue
        score = min(position - start, end - position) + 0.01 * length
        if best_score is None or score > best_score:
            best_score, best_index = score, index
    return current == best_index


@pytest.mark.parametrize("doc_stride", [4, 5, 7])  # 4: ties, broken by window length and order
def test_max_context_matches_bert(wordpiece, doc_stride):
    example = qa("m", "Who kept the harbour?", LONG_CONTEXT, "Zoë Müller")
    features = make_features(
        wordpiece,
        [example],
        max_seq_length=30,
        doc_stride=doc_stride,
        max_query_length=8,
        is_training=False,
    )
    context = [(t.start, t.end) for t in token_spans(wordpiece, LONG_CONTEXT)]
    windows = []
    for spans in features.token_char_spans:
        inside = [tuple(s) for s in spans if s[0] >= 0]
        windows.append((context.index(inside[0]), len(inside)))
    for row, (start, length) in enumerate(windows):
        offset = int(np.flatnonzero(features.token_char_spans[row, :, 0] >= 0)[0])
        expected = [bert_is_max_context(windows, row, start + i) for i in range(length)]
        assert list(features.max_context[row, offset : offset + length]) == expected


def test_bad_lengths_are_user_errors(wordpiece):
    example = qa("e", "q", "some text", "text")
    with pytest.raises(UserError, match="max_seq_length=20"):
        make_features(
            wordpiece,
            [example],
            max_seq_length=20,
            max_query_length=17,
            doc_stride=1,
            is_training=True,
        )
    with pytest.raises(UserError, match="doc_stride=10"):
        make_features(
            wordpiece,
            [example],
            max_seq_length=20,
            max_query_length=8,
            doc_stride=10,
            is_training=True,
        )


# Decoding -----------------------------------------------------------------------------------


def test_round_trip_gives_the_exact_answers(tokenizer):
    examples = passage_examples()
    features = make_features(
        tokenizer,
        examples,
        max_seq_length=64,
        doc_stride=16,
        max_query_length=12,
        is_training=True,
    )
    assert (features.start_positions > 0).sum() >= len(examples)
    predicted = best_answers(examples, features, *peaked_logits(features))
    assert predicted == {example.id: example.answers[0] for example in examples}


def test_answer_in_a_later_window_round_trips(tokenizer):
    example = qa("long", "Who kept the harbour?", LONG_CONTEXT, "Zoë Müller")
    other = qa("start", "What opened?", LONG_CONTEXT, "The harbour")
    features = make_features(
        tokenizer,
        [other, example],
        max_seq_length=32,
        doc_stride=8,
        max_query_length=8,
        is_training=True,
    )
    rows = np.flatnonzero(features.example_index == 1)
    assert len(rows) >= 4
    answered = rows[features.start_positions[rows] > 0]
    assert len(answered) and answered.min() > rows[0]  # not in the example's first window
    first_window = features.token_char_spans[rows[0]]
    assert first_window[:, 1].max() <= example.answer_starts[0]
    predicted = best_answers([other, example], features, *peaked_logits(features))
    assert predicted == {"long": "Zoë Müller", "start": "The harbour"}


def test_version_2_no_answer_decodes_to_empty(tokenizer):
    context, answers = PASSAGES[0]
    examples = [
        qa("yes", "When did it open?", context, answers[1]),
        QAExample("no", "When did it close?", context, (), ()),
        QAExample("no-long", "Who sold it?", LONG_CONTEXT, (), ()),
    ]
    features = make_features(
        tokenizer,
        examples,
        max_seq_length=32,
        doc_stride=8,
        max_query_length=8,
        is_training=True,
    )
    no_answer_rows = features.example_index > 0
    assert not features.start_positions[no_answer_rows].any()
    logits = peaked_logits(features)
    predicted = best_answers(examples, features, *logits, version_2=True)
    assert predicted == {"yes": "1998", "no": "", "no-long": ""}
    # A threshold above the null margin (20 - 0) answers anyway; v1 never answers "".
    forced = best_answers(examples, features, *logits, version_2=True, null_score_diff_threshold=25)
    assert forced["no"] != "" and forced["yes"] == "1998"
    assert best_answers(examples, features, *logits)["no"] != ""


def test_decoding_rules(wordpiece):
    """Spans must lie in the context, end after they start and fit max_answer_length."""
    example = qa("r", "Where does the river flow?", PASSAGES[1][0], "London (England)")
    features = make_features(
        wordpiece,
        [example],
        max_seq_length=64,
        doc_stride=16,
        max_query_length=12,
        is_training=True,
    )
    start, end = peaked_logits(features)
    length = int(features.end_positions[0] - features.start_positions[0] + 1)
    assert length == 4  # london ( england )
    assert best_answers([example], features, start, end, max_answer_length=3)["r"] != (
        "London (England)"
    )
    start[0, 1:3] = end[0, 1:3] = 100.0  # question tokens never count
    start[0, -1] = 100.0  # nor does padding
    assert best_answers([example], features, start, end)["r"] == "London (England)"
    reversed_start, reversed_end = end.copy(), start.copy()
    answer = best_answers([example], features, reversed_start, reversed_end)["r"]
    assert answer != "London (England)"  # start after end is never a candidate
    with pytest.raises(ValueError, match="do not match"):
        best_answers([example], features, start[:, :10], end)


def test_a_start_outside_its_max_context_window_is_ignored(wordpiece):
    example = qa("x", "Who kept the harbour?", LONG_CONTEXT, "Zoë Müller")
    features = make_features(
        wordpiece,
        [example],
        max_seq_length=32,
        doc_stride=8,
        max_query_length=8,
        is_training=True,
    )
    start, end = peaked_logits(features)
    in_context = features.token_char_spans[:, :, 0] >= 0
    row, position = np.argwhere(in_context & ~features.max_context)[0]
    start[row, position] = 100.0
    ranked = nbest([example], features, start, end)["x"]
    assert ranked[0].text == "Zoë Müller" and ranked[0].start_logit == 10.0
    features.max_context[row, position] = True
    assert nbest([example], features, start, end)["x"][0].start_logit == 100.0


def test_nbest_ranks_with_probabilities(sentencepiece):
    context, answers = PASSAGES[2]
    examples = [qa("n", "How much?", context, answers[0])]
    features = make_features(
        sentencepiece,
        examples,
        max_seq_length=64,
        doc_stride=16,
        max_query_length=12,
        is_training=True,
    )
    start, end = peaked_logits(features)
    for version_2 in (False, True):
        ranked = nbest(examples, features, start, end, n_best_size=5, version_2=version_2)["n"]
        assert ranked[0].text == "$4.5 million"
        assert ranked[0].start_logit == ranked[0].end_logit == 10.0
        probabilities = [c.probability for c in ranked]
        assert probabilities == sorted(probabilities, reverse=True)
        assert sum(probabilities) == pytest.approx(1.0)
        assert len({c.text for c in ranked}) == len(ranked)
        assert ("" in {c.text for c in ranked}) == version_2
        assert len(ranked) <= 5 + version_2
