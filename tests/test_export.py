"""The serving export: a TensorFlow SavedModel, loaded with TensorFlow alone, returns what
predict returns for the same inputs (classification and NER), and carries its tokenizer."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tokenizers

from bert_jax.data.encoding import encode_pair
from bert_jax.export import ASSETS_DIR, export_saved_model
from bert_jax.inference import Predictor
from conftest import REPO
from test_hf_tasks import LABELS, fine_tuned_workdir

SENTENCES = ["the cafe", "big bigger café résumé the naive straße", "中文", "the " * 20]


def serve(saved_model: str, tokenizer, texts: list[str]) -> tuple[dict, dict]:
    """The SavedModel's outputs for `texts`, tokenized with the exported tokenizer.json."""
    exported = tokenizers.Tokenizer.from_file(
        os.path.join(saved_model, ASSETS_DIR, "tokenizer.json")
    )
    encoded = [encode_pair(tokenizer, text, max_length=32, pad=True) for text in texts]
    for text, row in zip(texts, encoded, strict=True):
        ids = exported.encode(text).ids  # a client's own tokenization gives the same ids
        assert ids == [i for i, m in zip(row["input_ids"], row["attention_mask"], strict=True) if m]
    arrays = {key: np.asarray([e[key] for e in encoded], np.int32) for key in encoded[0]}
    signature = tf.saved_model.load(saved_model).signatures["serving_default"]
    outputs = signature(**{key: tf.constant(value) for key, value in arrays.items()})
    return {key: value.numpy() for key, value in outputs.items()}, arrays


@pytest.mark.slow
def test_classifier_saved_model_returns_what_predict_returns(tmp_path):
    info = {"kind": "classification", "labels": LABELS, "text_a": "sentence", "text_b": None,
            "max_seq_length": 32}  # fmt: skip
    fine_tuned_workdir(str(tmp_path / "run"), info)
    result = subprocess.run(
        [sys.executable, "-m", "bert_jax.export", f"--workdir={tmp_path / 'run'}",
         f"--output={tmp_path / 'model'}", "--checkpoint=latest"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    predictor = Predictor.from_workdir(str(tmp_path / "run"), "latest")
    with open(tmp_path / "model" / ASSETS_DIR / "task.json") as file:
        assert json.load(file) == info

    outputs, _ = serve(str(tmp_path / "model"), predictor.tokenizer, SENTENCES)

    records = predictor.predict_lines(SENTENCES)
    assert [label.decode() for label in outputs["label"]] == [r["label"] for r in records]
    expected = [[r["probabilities"][label] for label in LABELS] for r in records]
    np.testing.assert_allclose(outputs["probabilities"], expected, atol=1e-5)
    np.testing.assert_allclose(outputs["probability"], [r["probability"] for r in records], 1e-5)


def test_ner_saved_model_tags_the_words_as_predict_does(tmp_path):
    info = {"kind": "ner", "labels": LABELS, "max_seq_length": 32}
    fine_tuned_workdir(str(tmp_path / "run"), info)
    predictor = Predictor.from_workdir(str(tmp_path / "run"), "latest")
    export_saved_model(predictor, str(tmp_path / "model"))

    outputs, arrays = serve(str(tmp_path / "model"), predictor.tokenizer, SENTENCES)

    records = predictor.predict_lines(SENTENCES)
    for text, tags, record in zip(SENTENCES, outputs["tags"], records, strict=True):
        starts, position = [], 1  # each word's first token, after [CLS]
        for word in text.split():
            starts.append(position)
            position += len(predictor.tokenizer.encode(word))
        assert [tags[s].decode() for s in starts] == record["tags"], text
    with pytest.raises(Exception, match="not empty"):
        export_saved_model(predictor, str(tmp_path / "model"))  # never over an existing export
