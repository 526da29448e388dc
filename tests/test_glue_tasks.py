"""GLUE and custom table tasks: layouts from the config, TFDS examples into rows, and every
GLUE task's TFDS features and labels checked against the real builders."""

import numpy as np
import pytest

from bert_jax.data import glue
from bert_jax.errors import UserError
from configs import finetune_glue
from glue_cases import config, tokenizer

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
