"""GLUE and custom table data: task layouts from the config, reading TSV/CSV/JSONL files and TFDS
examples into rows, and encoding rows into fixed-length arrays with label ids or scores."""

import json

import numpy as np
import pytest

from bert_jax.data import glue
from bert_jax.data.tokenizer import SPECIAL_TOKENS
from bert_jax.data.wordpiece import WordPiece
from bert_jax.errors import UserError
from configs import finetune_glue

WORDS = ["the", "cat", "sat", "on", "mat", "a", "dog", "ran", ",", ".", '"', "it", "is", "good"]
IDS = {piece: index for index, piece in enumerate([*SPECIAL_TOKENS, *WORDS])}
PAD, UNK, CLS, SEP = (IDS[token] for token in SPECIAL_TOKENS[:4])


def tokenizer() -> WordPiece:
    return WordPiece([*SPECIAL_TOKENS, *WORDS], do_lower_case=True)


def config(task: str, **data):
    """configs/finetune_glue.py's config for `task`, with `data.KEY=VALUE` overrides."""
    c = finetune_glue.get_config()
    c.task = task
    for key, value in data.items():
        c.data[key] = value
    return c


def write(tmp_path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def read(path: str, task: glue.TableTask) -> list[glue.Row]:
    return glue.read_rows(path, task, split="train", data_dir=None)


# --- table_task ---------------------------------------------------------------------------------

# task: text_a, text_b, label, labels, main_metric, header, tfds_text
EXPECTED_GLUE = {
    "cola": ("3", None, "1", ("0", "1"), "matthews_corr", False, ("sentence", None)),
    "sst2": ("sentence", None, "label", ("0", "1"), "accuracy", True, ("sentence", None)),
    "mrpc": (
        "#1 String",
        "#2 String",
        "Quality",
        ("0", "1"),
        "f1",
        True,
        ("sentence1", "sentence2"),
    ),
    "qqp": (
        "question1",
        "question2",
        "is_duplicate",
        ("0", "1"),
        "f1",
        True,
        ("question1", "question2"),
    ),
    "stsb": ("sentence1", "sentence2", "score", None, "pearson", True, ("sentence1", "sentence2")),
    "mnli": (
        "sentence1",
        "sentence2",
        "gold_label",
        ("entailment", "neutral", "contradiction"),
        "accuracy",
        True,
        ("premise", "hypothesis"),
    ),
    "qnli": (
        "question",
        "sentence",
        "label",
        ("entailment", "not_entailment"),
        "accuracy",
        True,
        ("question", "sentence"),
    ),
    "rte": (
        "sentence1",
        "sentence2",
        "label",
        ("entailment", "not_entailment"),
        "accuracy",
        True,
        ("sentence1", "sentence2"),
    ),
    "wnli": (
        "sentence1",
        "sentence2",
        "label",
        ("0", "1"),
        "accuracy",
        True,
        ("sentence1", "sentence2"),
    ),
}


@pytest.mark.parametrize("name", sorted(EXPECTED_GLUE))
def test_glue_task_defaults(name):
    task = glue.table_task(config(name))
    assert (
        task.text_a,
        task.text_b,
        task.label,
        task.labels,
        task.main_metric,
        task.header,
        task.tfds_text,
    ) == EXPECTED_GLUE[name]


def test_every_glue_task_is_covered():
    assert set(glue.GLUE) == set(EXPECTED_GLUE)


def test_config_overrides_columns_labels_and_header():
    task = glue.table_task(
        config(
            "sst2", text_a="review", text_b="title", label="stars", labels=(1, 2, 3), header=False
        )
    )
    assert task.text_a == "review"
    assert task.text_b == "title"
    assert task.label == "stars"
    assert task.labels == ("1", "2", "3")  # in the given order, as text
    assert task.header is False
    # What the config does not set stays the task's.
    assert task.main_metric == "accuracy"
    assert task.tfds_text == ("sentence", None)


def test_config_can_turn_the_header_on_for_cola():
    assert glue.table_task(config("cola")).header is False
    assert glue.table_task(config("cola", header=True)).header is True
    assert glue.table_task(config("cola", text_a="sentence")).text_a == "sentence"
    assert glue.table_task(config("cola", text_a="sentence")).label == "1"


def test_unknown_task_names_the_choices():
    with pytest.raises(UserError) as error:
        glue.table_task(config("imdb"))
    message = str(error.value)
    assert "'imdb'" in message
    for name in [*EXPECTED_GLUE, "classification", "regression"]:
        assert name in message


def test_classification_takes_sorted_labels_from_the_train_rows():
    task = glue.table_task(config("classification"))
    assert (task.text_a, task.text_b, task.label) == ("sentence", None, "label")
    assert task.labels == ()
    assert task.main_metric == "accuracy"
    rows = [("x", None, "pos"), ("y", None, "neg"), ("z", None, "neutral"), ("w", None, "pos")]
    assert glue.label_names(task, rows) == ("neg", "neutral", "pos")


def test_classification_with_configured_labels_keeps_their_order():
    task = glue.table_task(config("classification", labels=("pos", "neg")))
    rows = [("x", None, "neg"), ("y", None, "pos")]
    assert glue.label_names(task, rows) == ("pos", "neg")


def test_regression_has_no_labels():
    task = glue.table_task(config("regression"))
    assert task.labels is None
    assert task.main_metric == "pearson"
    assert glue.label_names(task, [("x", None, "0.5")]) is None


def test_glue_labels_do_not_come_from_the_rows():
    task = glue.table_task(config("mnli"))
    rows = [("x", "y", "neutral")]
    assert glue.label_names(task, rows) == ("entailment", "neutral", "contradiction")


# --- read_rows ----------------------------------------------------------------------------------


def test_glue_tsv_with_header_keeps_unbalanced_quotes_verbatim(tmp_path):
    path = write(
        tmp_path,
        "train.tsv",
        'sentence\tlabel\nit is "good\t1\n"the cat sat\t0\na dog ran "fast" , on\t1\n',
    )
    assert read(path, glue.table_task(config("sst2"))) == [
        ('it is "good', None, "1"),
        ('"the cat sat', None, "0"),
        ('a dog ran "fast" , on', None, "1"),
    ]


def test_glue_pair_tsv_picks_named_columns(tmp_path):
    path = write(
        tmp_path,
        "dev_matched.tsv",
        "index\tgenre\tsentence1\tsentence2\tlabel1\tgold_label\n"
        '0\tfiction\tthe "cat sat\ta dog ran\tneutral\tneutral\n'
        "1\tslate\tit is good\tit is\tentailment\tcontradiction\n",
    )
    assert read(path, glue.table_task(config("mnli"))) == [
        ('the "cat sat', "a dog ran", "neutral"),
        ("it is good", "it is", "contradiction"),
    ]


def test_csv_with_quoted_commas(tmp_path):
    path = write(
        tmp_path,
        "train.csv",
        'label,sentence\npos,"the cat, the dog"\nneg,"say ""hi"", dog"\npos,plain\n',
    )
    assert read(path, glue.table_task(config("classification"))) == [
        ("the cat, the dog", None, "pos"),
        ('say "hi", dog', None, "neg"),
        ("plain", None, "pos"),
    ]


def test_jsonl_rows_turn_values_into_text(tmp_path):
    records = [
        {"premise": "the cat sat", "hypothesis": "a cat", "y": 1, "extra": [1]},
        {"premise": 'it "is', "hypothesis": "good", "y": 0},
    ]
    path = write(tmp_path, "train.jsonl", "".join(json.dumps(r) + "\n" for r in records) + "\n")
    task = glue.table_task(
        config("classification", text_a="premise", text_b="hypothesis", label="y")
    )
    assert read(path, task) == [("the cat sat", "a cat", "1"), ('it "is', "good", "0")]


def test_jsonl_regression_scores(tmp_path):
    path = write(tmp_path, "dev.jsonl", '{"sentence": "a", "label": 3.25}\n')
    assert read(path, glue.table_task(config("regression"))) == [("a", None, "3.25")]


def test_headerless_cola_tsv_uses_column_indices(tmp_path):
    path = write(
        tmp_path,
        "in_domain_train.tsv",
        "gj04\t1\t\tOur friends won't buy this analysis, let alone the next one.\n"
        "gj04\t0\t*\tOne more \"pseudo generalization and I'm giving up.\n",
    )
    assert read(path, glue.table_task(config("cola"))) == [
        ("Our friends won't buy this analysis, let alone the next one.", None, "1"),
        ("One more \"pseudo generalization and I'm giving up.", None, "0"),
    ]


def test_missing_column_names_file_line_and_column(tmp_path):
    path = write(tmp_path, "train.tsv", "sentence\tlabel\nthe cat\t1\nthe dog\n")
    with pytest.raises(UserError) as error:
        read(path, glue.table_task(config("sst2")))
    message = str(error.value)
    assert path in message
    assert "line 3" in message
    assert "'label'" in message


def test_missing_column_of_a_misnamed_config(tmp_path):
    path = write(tmp_path, "train.tsv", "text\tlabel\nthe cat\t1\n")
    with pytest.raises(UserError) as error:
        read(path, glue.table_task(config("sst2")))
    assert f"{path} line 2 has no column 'sentence'" in str(error.value)


def test_missing_column_in_headerless_file(tmp_path):
    path = write(tmp_path, "train.tsv", "gj04\t1\t\tthe cat sat\ngj04\t0\n")
    with pytest.raises(UserError) as error:
        read(path, glue.table_task(config("cola")))
    assert f"{path} line 2 has no column '3'" in str(error.value)


def test_missing_column_in_jsonl(tmp_path):
    path = write(tmp_path, "train.jsonl", '{"sentence": "a", "label": 1}\n{"sentence": "b"}\n')
    with pytest.raises(UserError) as error:
        read(path, glue.table_task(config("sst2")))
    assert f"{path} line 2 has no column 'label'" in str(error.value)


def test_missing_file(tmp_path):
    path = str(tmp_path / "absent.tsv")
    with pytest.raises(UserError) as error:
        read(path, glue.table_task(config("sst2")))
    assert path in str(error.value)
    assert "does not exist" in str(error.value)


# Bugs found in bert_jax/data/glue.py: each test states the behaviour the code should have.


def test_mrpc_tsv_with_byte_order_mark(tmp_path):
    path = write(
        tmp_path,
        "train.tsv",
        "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t702876\t702977\tthe cat\ta cat\n",
    )
    assert read(path, glue.table_task(config("mrpc"))) == [("the cat", "a cat", "1")]


def test_empty_file_with_header_is_a_user_error(tmp_path):
    path = write(tmp_path, "train.tsv", "")
    with pytest.raises(UserError):
        read(path, glue.table_task(config("sst2")))


def test_invalid_jsonl_line_is_a_user_error(tmp_path):
    path = write(tmp_path, "train.jsonl", '{"sentence": "a", "label": 1}\nnot json\n')
    with pytest.raises(UserError, match="line 2"):
        read(path, glue.table_task(config("sst2")))


def test_jsonl_error_line_counts_blank_lines(tmp_path):
    path = write(tmp_path, "train.jsonl", '{"sentence": "a", "label": 1}\n\n{"sentence": "b"}\n')
    with pytest.raises(UserError) as error:
        read(path, glue.table_task(config("sst2")))
    assert "line 3" in str(error.value)


# --- tfds_row -----------------------------------------------------------------------------------


def test_tfds_single_sentence_example():
    example = {"sentence": "it is café".encode(), "label": np.int64(1), "idx": np.int32(7)}
    assert glue.tfds_row(example, glue.table_task(config("sst2"))) == ("it is café", None, "1")


@pytest.mark.parametrize(
    ("name", "label", "expected"),
    [("mnli", 0, "entailment"), ("mnli", 1, "neutral"), ("mnli", 2, "contradiction")],
)
def test_tfds_mnli_label_names(name, label, expected):
    example = {"premise": b"the cat sat", "hypothesis": b"a cat", "label": np.int64(label)}
    row = glue.tfds_row(example, glue.table_task(config(name)))
    assert row == ("the cat sat", "a cat", expected)


def test_tfds_pair_examples_use_the_glue_feature_names():
    qnli = {"question": b"who sat", "sentence": b"the cat sat", "label": np.int64(1)}
    assert glue.tfds_row(qnli, glue.table_task(config("qnli"))) == (
        "who sat",
        "the cat sat",
        "not_entailment",
    )
    qqp = {"question1": b"a", "question2": b"b", "label": np.int64(0)}
    assert glue.tfds_row(qqp, glue.table_task(config("qqp"))) == ("a", "b", "0")


def test_tfds_stsb_float_label():
    example = {"sentence1": b"a cat", "sentence2": b"a dog", "label": np.float32(3.8)}
    text_a, text_b, label = glue.tfds_row(example, glue.table_task(config("stsb")))
    assert (text_a, text_b) == ("a cat", "a dog")
    assert float(label) == float(np.float32(3.8))
    arrays = glue.encode_rows(
        [(text_a, text_b, label)], tokenizer(), None, max_seq_length=8, source="tfds"
    )
    assert arrays["labels"].tolist() == [np.float32(3.8)]


def test_tfds_unlabelled_example_is_rejected():
    example = {"sentence": b"a", "label": np.int64(-1)}
    with pytest.raises(UserError):
        glue.tfds_row(example, glue.table_task(config("sst2")))


# --- encode_rows --------------------------------------------------------------------------------


def test_encode_single_sentences():
    rows = [
        ("The cat sat.", None, "1"),
        ("a dog", None, "0"),
        ("the cat sat on a mat", None, "1"),
        ("the cat sat on a mat, a dog ran", None, "0"),
    ]
    arrays = glue.encode_rows(rows, tokenizer(), ("0", "1"), max_seq_length=8, source="train.tsv")
    assert sorted(arrays) == ["attention_mask", "input_ids", "labels", "token_type_ids"]
    for key in ("input_ids", "token_type_ids", "attention_mask"):
        assert arrays[key].dtype == np.int32
        assert arrays[key].shape == (4, 8)
    the, cat, sat, on, a, mat, dog = (
        IDS[w] for w in ["the", "cat", "sat", "on", "a", "mat", "dog"]
    )
    assert arrays["input_ids"].tolist() == [
        [CLS, the, cat, sat, IDS["."], SEP, PAD, PAD],
        [CLS, a, dog, SEP, PAD, PAD, PAD, PAD],
        [CLS, the, cat, sat, on, a, mat, SEP],  # exactly max_seq_length
        [CLS, the, cat, sat, on, a, mat, SEP],  # truncated to it
    ]
    assert arrays["attention_mask"].tolist() == [
        [1, 1, 1, 1, 1, 1, 0, 0],
        [1, 1, 1, 1, 0, 0, 0, 0],
        [1, 1, 1, 1, 1, 1, 1, 1],
        [1, 1, 1, 1, 1, 1, 1, 1],
    ]
    assert arrays["token_type_ids"].tolist() == [[0] * 8] * 4
    assert arrays["labels"].dtype == np.int32
    assert arrays["labels"].tolist() == [1, 0, 1, 0]


def test_encode_label_ids_follow_the_order_of_labels():
    rows = [("a", None, "contradiction"), ("a", None, "entailment"), ("a", None, "neutral")]
    labels = ("entailment", "neutral", "contradiction")
    arrays = glue.encode_rows(rows, tokenizer(), labels, max_seq_length=4, source="x")
    assert arrays["labels"].tolist() == [2, 0, 1]
    reordered = glue.encode_rows(rows, tokenizer(), labels[::-1], max_seq_length=4, source="x")
    assert reordered["labels"].tolist() == [0, 2, 1]


def test_encode_regression_scores():
    rows = [("a", "b", "3.8"), ("a", "b", "0"), ("a", "b", "5.000"), ("a", "b", "-1.5")]
    arrays = glue.encode_rows(rows, tokenizer(), None, max_seq_length=6, source="x")
    assert arrays["labels"].dtype == np.float32
    np.testing.assert_array_equal(arrays["labels"], np.float32([3.8, 0.0, 5.0, -1.5]))


def test_encode_unknown_label_is_a_user_error():
    rows = [("a", None, "0"), ("a", None, "2")]
    with pytest.raises(UserError) as error:
        glue.encode_rows(rows, tokenizer(), ("0", "1"), max_seq_length=4, source="dev.tsv")
    message = str(error.value)
    assert "dev.tsv" in message
    assert "'2'" in message
    assert "['0', '1']" in message


def test_encode_non_numeric_score_is_a_user_error():
    rows = [("a", "b", "4.5"), ("a", "b", "high")]
    with pytest.raises(UserError) as error:
        glue.encode_rows(rows, tokenizer(), None, max_seq_length=6, source="train.tsv")
    message = str(error.value)
    assert "train.tsv" in message
    assert "'high'" in message


def test_encode_pairs_mark_the_second_segment():
    rows = [("the cat", "a dog ran", "entailment"), ("it", "is", "not_entailment")]
    labels = ("entailment", "not_entailment")
    arrays = glue.encode_rows(rows, tokenizer(), labels, max_seq_length=10, source="x")
    the, cat, a, dog, ran, it, is_ = (IDS[w] for w in ["the", "cat", "a", "dog", "ran", "it", "is"])
    assert arrays["input_ids"].tolist() == [
        [CLS, the, cat, SEP, a, dog, ran, SEP, PAD, PAD],
        [CLS, it, SEP, is_, SEP, PAD, PAD, PAD, PAD, PAD],
    ]
    assert arrays["token_type_ids"].tolist() == [
        [0, 0, 0, 0, 1, 1, 1, 1, 0, 0],
        [0, 0, 0, 1, 1, 0, 0, 0, 0, 0],
    ]
    assert arrays["attention_mask"].tolist() == [
        [1, 1, 1, 1, 1, 1, 1, 1, 0, 0],
        [1, 1, 1, 1, 1, 0, 0, 0, 0, 0],
    ]
    assert arrays["labels"].tolist() == [0, 1]


def test_unknown_words_become_unk():
    arrays = glue.encode_rows(
        [("the zebra", None, "0")], tokenizer(), ("0",), max_seq_length=5, source="x"
    )
    assert arrays["input_ids"].tolist() == [[CLS, IDS["the"], UNK, SEP, PAD]]


def test_read_and_encode_a_classification_file(tmp_path):
    path = write(tmp_path, "train.csv", "sentence,label\nthe cat,pos\na dog,neg\nit,pos\n")
    task = glue.table_task(config("classification"))
    rows = read(path, task)
    labels = glue.label_names(task, rows)
    arrays = glue.encode_rows(rows, tokenizer(), labels, max_seq_length=5, source=path)
    assert labels == ("neg", "pos")
    assert arrays["labels"].tolist() == [1, 0, 1]
    assert arrays["input_ids"].tolist() == [
        [CLS, IDS["the"], IDS["cat"], SEP, PAD],
        [CLS, IDS["a"], IDS["dog"], SEP, PAD],
        [CLS, IDS["it"], SEP, PAD, PAD],
    ]


@pytest.mark.parametrize("task", sorted(glue.GLUE))
def test_tfds_glue_reads_through_the_real_builder(task):
    """The feature names of every GLUE task's TFDS config, checked against the real builder
    (with TFDS's mock data: no download)."""
    import tensorflow_datasets as tfds

    config = finetune_glue.get_config()
    config.task = task
    layout = glue.table_task(config)
    with tfds.testing.mock_data(num_examples=3):
        rows = glue.read_rows(f"tfds:glue/{task}", layout, split="train", data_dir=None)
    assert len(rows) == 3
    if layout.labels is not None:  # TFDS label i must mean our label i
        names = tfds.builder(f"glue/{task}").info.features["label"].names
        assert len(names) == len(layout.labels)
        if not layout.labels[0].isdigit():
            assert tuple(names) == layout.labels
    for text_a, text_b, label in rows:
        assert isinstance(text_a, str) and (text_b is None) == (layout.text_b is None)
        if layout.labels is None:
            float(label)
        else:
            assert label in layout.labels
