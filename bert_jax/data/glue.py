"""Sentence(-pair) classification and regression data: GLUE's tasks by name, or any table.

Rows come from TSV/CSV/JSONL files (columns named in the config, or given by index for files
without a header) or from TFDS (`tfds:glue/sst2`), and are encoded into fixed-length arrays.
"""

import csv
import dataclasses
import io

import numpy as np
import tensorflow as tf
from ml_collections import ConfigDict

from bert_jax.data import sources
from bert_jax.data.encoding import encode_pair
from bert_jax.errors import UserError


@dataclasses.dataclass(frozen=True)
class TableTask:
    """Where a task's texts and label live, and what the labels mean."""

    text_a: str  # column name, or its index as digits when the file has no header
    text_b: str | None
    label: str
    labels: tuple[str, ...] | None  # None: regression (a float score)
    main_metric: str
    tfds_text: tuple[str, str | None]  # the TFDS glue config's feature names
    header: bool = True


GLUE = {
    "cola": TableTask("3", None, "1", ("0", "1"), "matthews_corr", ("sentence", None), False),
    "sst2": TableTask("sentence", None, "label", ("0", "1"), "accuracy", ("sentence", None)),
    "mrpc": TableTask(
        "#1 String", "#2 String", "Quality", ("0", "1"), "f1", ("sentence1", "sentence2")
    ),
    "qqp": TableTask(
        "question1", "question2", "is_duplicate", ("0", "1"), "f1", ("question1", "question2")
    ),
    "stsb": TableTask(
        "sentence1", "sentence2", "score", None, "pearson", ("sentence1", "sentence2")
    ),
    "mnli": TableTask(
        "sentence1",
        "sentence2",
        "gold_label",
        ("entailment", "neutral", "contradiction"),
        "accuracy",
        ("premise", "hypothesis"),
    ),
    "qnli": TableTask(
        "question",
        "sentence",
        "label",
        ("entailment", "not_entailment"),
        "accuracy",
        ("question", "sentence"),
    ),
    "rte": TableTask(
        "sentence1",
        "sentence2",
        "label",
        ("entailment", "not_entailment"),
        "accuracy",
        ("sentence1", "sentence2"),
    ),
    "wnli": TableTask(
        "sentence1", "sentence2", "label", ("0", "1"), "accuracy", ("sentence1", "sentence2")
    ),
}
CUSTOM = ("classification", "regression")


def table_task(config: ConfigDict) -> TableTask:
    """The GLUE task's layout, with the config's column and label settings on top."""
    data = config.data
    if config.task in GLUE:
        task = GLUE[config.task]
    elif config.task in CUSTOM:
        task = TableTask("sentence", None, "label", None, "accuracy", ("sentence", None))
        task = dataclasses.replace(
            task,
            labels=None if config.task == "regression" else (),
            main_metric="pearson" if config.task == "regression" else "accuracy",
        )
    else:
        raise UserError(
            f"task={config.task!r} is unknown; choose one of {', '.join([*GLUE, *CUSTOM])}."
        )
    overrides = {
        key: data[key]
        for key in ("text_a", "text_b", "label", "header")
        if data.get(key) is not None
    }
    if data.get("labels"):
        overrides["labels"] = tuple(str(label) for label in data.labels)
    return dataclasses.replace(task, **overrides)


Row = tuple[str, str | None, str]  # text_a, text_b, label as text


def read_rows(source: str, task: TableTask, *, split: str, data_dir: str | None) -> list[Row]:
    """Rows of a TSV/CSV/JSONL file or a TFDS dataset (`tfds:NAME`)."""
    if source.startswith("tfds:"):
        return _tfds_rows(source[len("tfds:") :], task, split, data_dir)
    if not tf.io.gfile.exists(source):
        raise UserError(f"{source} does not exist; check data.train and data.validation.")
    if source.endswith((".jsonl", ".json")):
        return [_row(record, task, source, n) for n, record in sources.json_lines(source)]
    with tf.io.gfile.GFile(source, "rb") as file:
        # utf-8-sig: GLUE's MRPC files start with a byte-order mark.
        text = file.read().decode("utf-8-sig")
    # GLUE's TSVs hold unbalanced quotes: read them as plain tab-separated text.
    lines = io.StringIO(text)
    reader = (
        csv.reader(lines)
        if source.endswith(".csv")
        else csv.reader(lines, delimiter="\t", quoting=csv.QUOTE_NONE)
    )
    numbered = [(reader.line_num, fields) for fields in reader]
    if task.header:
        if not numbered:
            raise UserError(f"{source} is empty; it needs a header line and rows.")
        names = numbered.pop(0)[1]
        records = [(number, dict(zip(names, fields, strict=False))) for number, fields in numbered]
    else:
        records = [
            (number, {str(i): value for i, value in enumerate(fields)})
            for number, fields in numbered
        ]
    return [_row(record, task, source, number) for number, record in records]


def _row(record: dict, task: TableTask, source: str, line: int) -> Row:
    columns = [task.text_a, task.label] + ([task.text_b] if task.text_b else [])
    absent = [column for column in columns if column not in record]
    if absent:
        raise UserError(
            f"{source} line {line} has no column {absent[0]!r} (it has {sorted(record)}); set "
            "data.text_a, data.text_b and data.label to its column names."
        )
    text_b = str(record[task.text_b]) if task.text_b else None
    return str(record[task.text_a]), text_b, str(record[task.label])


def _tfds_rows(name: str, task: TableTask, split: str, data_dir: str | None) -> list[Row]:
    import tensorflow_datasets as tfds

    dataset, _ = sources.load_tfds(name, split=split, data_dir=data_dir)
    return [tfds_row(example, task) for example in tfds.as_numpy(dataset)]


def tfds_row(example: dict, task: TableTask) -> Row:
    """A TFDS glue example (bytes texts, int or float label) as a row."""
    a_key, b_key = task.tfds_text
    text_a = example[a_key].decode("utf-8")
    text_b = example[b_key].decode("utf-8") if b_key else None
    label = example["label"]
    if task.labels is None:
        return text_a, text_b, str(float(label))
    if not 0 <= int(label) < len(task.labels):
        raise UserError(
            f"a TFDS example has the label {int(label)}, outside the task's labels "
            f"{list(task.labels)} (test splits are unlabelled: use a labelled split)."
        )
    return text_a, text_b, task.labels[int(label)]


def label_names(task: TableTask, rows: list[Row]) -> tuple[str, ...] | None:
    """The task's labels, or for a custom classification the sorted labels of the train rows."""
    if task.labels is None or task.labels:
        return task.labels
    return tuple(sorted({label for _, _, label in rows}))


def encode_rows(
    rows: list[Row], tokenizer, labels: tuple[str, ...] | None, max_seq_length: int, source: str
) -> dict[str, np.ndarray]:
    """Padded [N, max_seq_length] input arrays and `labels` [N] (int ids, or float scores)."""
    columns: dict[str, list] = {"input_ids": [], "token_type_ids": [], "attention_mask": []}
    targets = []
    index = {label: i for i, label in enumerate(labels or ())}
    for text_a, text_b, label in rows:
        if labels is None:
            try:
                targets.append(float(label))
            except ValueError:
                raise UserError(
                    f"{source} has the non-numeric score {label!r}; a regression task needs "
                    "numbers in the label column."
                ) from None
        elif label not in index:
            raise UserError(
                f"{source} has the label {label!r}, not one of {list(labels)}; set data.labels "
                "to every label the data uses."
            )
        else:
            targets.append(index[label])
        encoded = encode_pair(tokenizer, text_a, text_b, max_length=max_seq_length, pad=True)
        for key, values in encoded.items():
            columns[key].append(values)
    arrays = {key: np.asarray(values, np.int32) for key, values in columns.items()}
    arrays["labels"] = np.asarray(targets, np.float32 if labels is None else np.int32)
    return arrays
