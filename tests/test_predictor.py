"""Prediction for any weights: length buckets give the unbucketed results in input order;
embeddings and fill-mask match transformers on the same weights; bad input lines are named by
number after the predictions before them."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import transformers

from bert_jax import inference
from bert_jax.data.sentencepiece import SPECIAL_TOKENS
from bert_jax.data.wordpiece import WordPiece
from bert_jax.errors import UserError
from bert_jax.inference import Predictor
from conftest import REPO, randomised, tiny_hf_config

WORDS = (
    "the a movie film was is good bad great awful plot actor ##s ##ing very not paris city".split()
)
VOCAB = [*SPECIAL_TOKENS, *"abcdefghijklmnopqrstuvwxyz.,!?'", *WORDS]
POSITIONS = 160  # more than one bucket, and more than the model's 128


def write_hf(directory, model: torch.nn.Module) -> str:
    model.save_pretrained(directory)
    WordPiece(VOCAB, do_lower_case=True).save_vocab(os.path.join(directory, "vocab.txt"))
    return str(directory)


def config(**extras) -> transformers.BertConfig:
    hf = tiny_hf_config(vocab_size=len(VOCAB), max_position_embeddings=POSITIONS)
    return transformers.BertConfig(**hf, **extras)


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory) -> tuple[str, torch.nn.Module]:
    torch.manual_seed(0)
    labels = {"id2label": {0: "neg", 1: "pos"}, "label2id": {"neg": 0, "pos": 1}}
    model = randomised(transformers.BertForSequenceClassification(config(**labels)), seed=3)
    return write_hf(tmp_path_factory.mktemp("cls"), model), model


@pytest.fixture(scope="module")
def pretraining_dir(tmp_path_factory) -> tuple[str, torch.nn.Module]:
    torch.manual_seed(0)
    model = randomised(transformers.BertForPreTraining(config()), seed=4)
    return write_hf(tmp_path_factory.mktemp("pre"), model), model


@pytest.fixture(scope="module")
def classifier(classifier_dir) -> Predictor:
    return Predictor.from_weights(classifier_dir[0])


def sentences(count: int, seed: int = 0, longest: int = 138) -> list[str]:
    """Texts of very mixed lengths (from 1 word to `longest`), in random order."""
    rng = np.random.default_rng(seed)
    lengths = rng.choice([n for n in (1, 3, 10, 25, 40, 70, 100, 138) if n <= longest], count)
    plain = [word for word in WORDS if not word.startswith("##")]
    return [" ".join(rng.choice(plain, n)) for n in lengths]


def hf_probabilities(model, tokenizer: WordPiece, text: str) -> np.ndarray:
    """One text alone, unpadded, through transformers."""
    ids = torch.tensor([tokenizer.encode_pair(text, max_length=128)["input_ids"]])
    with torch.no_grad():
        return torch.softmax(model(input_ids=ids).logits, -1)[0].numpy()


def test_buckets_keep_input_order_and_the_unbucketed_results(
    classifier_dir, classifier, monkeypatch
):
    model, predictor = classifier_dir[1], classifier
    assert predictor.info["max_seq_length"] == 128
    lines = sentences(28)

    calls = []
    forward = predictor._forward

    def counted(params, inputs):
        calls.append(inputs[0].shape)
        return forward(params, inputs)

    monkeypatch.setattr(predictor, "_forward", counted)
    bucketed = predictor.predict_lines(lines, batch_size=8)
    bucketed_calls, calls[:] = list(calls), []
    buckets = {*inference.BUCKETS, 128}
    monkeypatch.setattr(inference, "BUCKETS", ())
    unbucketed = predictor.predict_lines(lines, batch_size=8)

    used = {shape[1] for shape in bucketed_calls}
    assert len(used) >= 3 and used <= buckets  # several buckets
    assert {shape[0] for shape in bucketed_calls} == {8}  # a fixed batch: one shape per bucket
    assert len(bucketed_calls) <= len(lines) // 8 + len(used)  # one part-filled batch a bucket
    assert {shape[1] for shape in calls} == {128}
    for line, ours, plain in zip(lines, bucketed, unbucketed, strict=True):
        theirs = hf_probabilities(model, predictor.tokenizer, line)
        got = [ours["probabilities"][label] for label in ("neg", "pos")]
        np.testing.assert_allclose(got, theirs, atol=1e-5)  # this line's own result: in order
        assert ours["label"] == plain["label"]
        np.testing.assert_allclose(
            list(ours["probabilities"].values()), list(plain["probabilities"].values()), atol=1e-5
        )


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_embeddings_match_sentence_transformers_pooling_over_transformers(pretraining_dir, pooling):
    directory, model = pretraining_dir
    predictor = Predictor.from_weights(directory, task="embeddings", pooling=pooling)
    lines = sentences(12, seed=1, longest=40)

    vectors = np.asarray([r["embedding"] for r in predictor.predict_lines(lines, batch_size=4)])

    tokenizer = transformers.AutoTokenizer.from_pretrained(directory)
    batch = tokenizer(lines, padding=True, return_tensors="pt")
    with torch.no_grad():
        tokens = model.bert(**batch).last_hidden_state
    if pooling == "mean":  # sentence_transformers.models.Pooling, pooling_mode_mean_tokens
        mask = batch["attention_mask"].unsqueeze(-1).float()
        expected = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    else:
        expected = tokens[:, 0]
    np.testing.assert_allclose(vectors, expected.numpy(), atol=1e-5)


def test_fill_mask_matches_the_transformers_pipeline(pretraining_dir):
    directory, _ = pretraining_dir
    predictor = Predictor.from_weights(directory, task="fill-mask", top_k=4)
    lines = ["the movie was [MASK] .", "[MASK] film is not [MASK] , very [MASK] ."]

    records = predictor.predict_lines(lines, batch_size=4)

    pipeline = transformers.pipeline(
        "fill-mask",
        model=transformers.BertForMaskedLM.from_pretrained(directory),
        tokenizer=transformers.AutoTokenizer.from_pretrained(directory),
        top_k=4,
    )
    for line, record in zip(lines, records, strict=True):
        theirs = pipeline(line)
        theirs = [theirs] if isinstance(theirs[0], dict) else theirs  # one list per [MASK]
        assert len(record["masks"]) == len(theirs) == line.count("[MASK]")
        for ours_top, their_top in zip(record["masks"], theirs, strict=True):
            assert [t["token"] for t in ours_top] == [t["token"] for t in their_top]
            np.testing.assert_allclose(
                [t["score"] for t in ours_top], [t["score"] for t in their_top], atol=1e-5
            )


def streamed(predictor: Predictor, lines: list[str]) -> tuple[list[dict], str | None]:
    records, error = [], None
    try:
        for record in predictor.stream(enumerate(lines, 1), batch_size=4, source="in.txt"):
            records.append(record)
    except UserError as failure:
        error = str(failure)
    return records, error


@pytest.mark.parametrize(
    "bad_line, message",
    [
        ('{"sentence": "no text key"}', "line 3 of in.txt has no 'text' field"),
        ("[1, 2]", "line 3 of in.txt holds a JSON list, not an object"),
    ],
)
def test_a_bad_line_is_named_after_the_records_before_it(classifier, bad_line, message):
    predictor = classifier
    lines = ['{"text": "good movie"}', '{"text": "bad plot"}', bad_line, '{"text": "great"}']
    records, error = streamed(predictor, lines)
    assert error.startswith(message) and "\n" not in error
    assert len(records) == 2


def test_text_beyond_the_models_positions_and_an_empty_input_are_refused(pretraining_dir):
    predictor = Predictor.from_weights(pretraining_dir[0], task="embeddings")
    records, error = streamed(predictor, ["good movie", "the " * (POSITIONS - 1)])
    assert len(records) == 1
    assert error.startswith(f"line 2 of in.txt has {POSITIONS + 1} tokens with [CLS] and [SEP]")
    assert streamed(predictor, [])[1].startswith("in.txt holds no input lines")
    fill = Predictor.from_weights(pretraining_dir[0], task="fill-mask")
    assert streamed(fill, ["no mask here"])[1].startswith("line 1 of in.txt has no [MASK]")


def test_predict_command_on_a_malformed_line_keeps_valid_json_lines(classifier_dir, tmp_path):
    (tmp_path / "in.txt").write_text('{"text": "good movie"}\n\n{"text": "bad plot"}\n{oops\n')
    out = tmp_path / "out.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "bert_jax.predict", f"--workdir={classifier_dir[0]}",
         f"--input={tmp_path / 'in.txt'}", f"--output={out}"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: line 4 of {tmp_path / 'in.txt'} is not valid JSON"), last
    assert len([json.loads(line) for line in out.read_text().splitlines()]) == 2
