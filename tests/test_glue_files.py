"""GLUE and custom table files: reading TSV/CSV/JSONL into rows, and encoding rows into
fixed-length arrays with label ids or scores."""

import json

import numpy as np
import pytest

from bert_jax.data import glue
from bert_jax.data.sentencepiece import SPECIAL_TOKENS
from bert_jax.errors import UserError
from glue_cases import WORDS, config, tokenizer

IDS = {piece: index for index, piece in enumerate([*SPECIAL_TOKENS, *WORDS])}
PAD, UNK, CLS, SEP = (IDS[token] for token in SPECIAL_TOKENS[:4])


def write(tmp_path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def read(path: str, task: glue.TableTask) -> list[glue.Row]:
    return glue.read_rows(path, task, split="train", data_dir=None)


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
