"""Fine-tuning end to end: GLUE SST-2, NER and SQuAD through `bert_jax.main` and `bert_jax.predict`,
and starting weights from Hugging Face and from a pretraining workdir."""

import collections
import json
import os
import random
import subprocess
import sys

import numpy as np
import pytest
from ml_collections import ConfigDict

from conftest import REPO, SST2, read_scalars, run_main, tiny_hf_config, write_vocab


def finetune(config: str, workdir: str, **overrides) -> subprocess.CompletedProcess:
    flags = [f"--config.{key}={value}" for key, value in overrides.items()]
    command = [sys.executable, "-m", "bert_jax.main", f"--config=configs/{config}.py"]
    return subprocess.run(
        [*command, f"--workdir={workdir}", *flags],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )


def predict(workdir: str, lines: list[str], *flags: str) -> list[dict]:
    result = subprocess.run(
        [sys.executable, "-m", "bert_jax.predict", f"--workdir={workdir}", *flags],
        cwd=REPO,
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return [json.loads(line) for line in result.stdout.splitlines()]


def read_tsv(path: str) -> list[tuple[str, str]]:
    with open(path) as file:
        return [tuple(line.rstrip("\n").split("\t")) for line in file][1:]


TINY_MODEL = {"model.preset": "tiny", "log_every_steps": 25, "eval_every_steps": 1000}


@pytest.mark.slow
def test_sst2_beats_the_majority_class_and_predict_agrees_with_eval(tmp_path):
    train = read_tsv(os.path.join(SST2, "train.tsv"))
    counts = collections.Counter(w for sentence, _ in train for w in sentence.split())
    vocab = write_vocab(tmp_path / "vocab.txt", [w for w, _ in counts.most_common(3000)])
    workdir = str(tmp_path / "sst2")
    result = finetune(
        "finetune_glue",
        workdir,
        **TINY_MODEL,
        **{
            "data.tokenizer": vocab,
            "data.train": os.path.join(SST2, "train.tsv"),
            "data.validation": os.path.join(SST2, "dev.tsv"),
            "data.max_train_examples": 4000,
            "data.max_seq_length": 64,
            "num_epochs": 1,
            "learning_rate": 1e-3,
        },
    )
    assert result.returncode == 0, result.stderr[-3000:]

    dev = read_tsv(os.path.join(SST2, "dev.tsv"))
    labels = np.array([int(label) for _, label in dev])
    majority = max(labels.mean(), 1 - labels.mean())
    scalars = read_scalars(workdir)
    final_step = max(scalars["eval/accuracy"])
    assert final_step == 125  # 4000 examples / 32 per batch, one epoch
    accuracy = scalars["eval/accuracy"][final_step]
    print(f"SST-2 dev accuracy {accuracy:.4f} vs majority {majority:.4f}")
    assert accuracy > majority + 0.05
    for tag in ("eval/f1", "eval/matthews_corr", "eval/roc_auc", "train/accuracy"):
        assert tag in scalars
    assert scalars["train/learning_rate"][25] > scalars["train/learning_rate"][125]

    # The command-line predictor reads dev.tsv (header and label column included) and agrees
    # with the loop's own evaluation of the same checkpoint.
    with open(os.path.join(SST2, "dev.tsv")) as file:
        lines = file.read().splitlines()
    records = predict(workdir, lines, "--checkpoint=latest")
    assert len(records) == len(dev)
    predicted = np.array([int(record["label"]) for record in records])
    assert abs((predicted == labels).mean() - accuracy) <= 1 / len(dev)
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-5 for r in records)


def tagged_sentences(count: int, seed: int) -> list[tuple[list[str], list[str]]]:
    """Sentences with people and places among filler words: learnable in a few dozen steps."""
    rng = random.Random(seed)
    people = ["alice smith", "bob jones", "carol", "dave brown", "erin"]
    places = ["paris", "new york", "berlin", "tokyo"]
    fillers = "the a visited met saw in yesterday with and today went to".split()
    sentences = []
    for _ in range(count):
        words, tags = [], []
        for _ in range(rng.randint(4, 9)):
            draw = rng.random()
            if draw < 0.35:
                kind, names = ("PER", people) if draw < 0.2 else ("LOC", places)
                name = rng.choice(names).split()
                words += name
                tags += [f"B-{kind}"] + [f"I-{kind}"] * (len(name) - 1)
            else:
                words.append(rng.choice(fillers))
                tags.append("O")
        sentences.append((words, tags))
    return sentences


def write_conll(path, sentences) -> str:
    lines = ["-DOCSTART- -X- -X- O", ""]
    for words, tags in sentences:
        lines += [f"{word} NN O {tag}" for word, tag in zip(words, tags, strict=True)] + [""]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.mark.slow
def test_ner_learns_entities_and_predict_returns_them(tmp_path):
    train, dev = tagged_sentences(600, seed=0), tagged_sentences(100, seed=1)
    words = [w for sentence, _ in train for w in sentence]
    workdir = str(tmp_path / "ner")
    result = finetune(
        "finetune_ner",
        workdir,
        **TINY_MODEL,
        **{
            "data.tokenizer": write_vocab(tmp_path / "vocab.txt", words),
            "data.train": write_conll(tmp_path / "train.txt", train),
            "data.validation": write_conll(tmp_path / "dev.txt", dev),
            "data.max_seq_length": 32,
            "num_epochs": 3,
            "learning_rate": 1e-3,
        },
    )
    assert result.returncode == 0, result.stderr[-3000:]
    scalars = read_scalars(workdir)
    assert scalars["eval/f1"][max(scalars["eval/f1"])] >= 0.9

    records = predict(
        workdir, ["alice smith visited paris", json.dumps({"tokens": ["erin", "met", "bob"]})]
    )
    assert records[0]["entities"] == [
        {"type": "PER", "start": 0, "end": 2, "text": "alice smith"},
        {"type": "LOC", "start": 3, "end": 4, "text": "paris"},
    ]
    assert records[1]["tags"] == ["B-PER", "O", "B-PER"]


COUNTRIES = ["france", "spain", "peru", "chile", "kenya", "nepal", "japan", "egypt", "italy"]
CITIES = ["paris", "madrid", "lima", "santiago", "nairobi", "kathmandu", "tokyo", "cairo", "rome"]
FILLER = ["it is a large country .", "many people live there .", "the weather is mild ."]


def qa_record(rng: random.Random, number: int) -> dict:
    country, city = rng.choice(COUNTRIES), rng.choice(CITIES)
    fact = f"the capital of {country} is {city} ."
    parts = rng.sample(FILLER, 2)
    parts.insert(rng.randint(0, 2), fact)
    context = " ".join(parts)
    start = context.index(fact) + len(fact) - len(city) - 2
    return {
        "id": f"q{number}",
        "question": f"what is the capital of {country} ?",
        "context": context,
        "answers": {"text": [city], "answer_start": [start]},
    }


@pytest.mark.slow
def test_squad_learns_spans_and_predict_returns_answer_text(tmp_path):
    rng = random.Random(0)
    paths = {}
    for split, count in (("train", 800), ("dev", 100)):
        records = [qa_record(rng, f"{split}{i}") for i in range(count)]
        paths[split] = tmp_path / f"{split}.jsonl"
        paths[split].write_text("".join(json.dumps(r) + "\n" for r in records))
    words = " ".join(COUNTRIES + CITIES + FILLER + ["the capital of is what ?"]).split()
    workdir = str(tmp_path / "squad")
    result = finetune(
        "finetune_squad",
        workdir,
        **TINY_MODEL,
        **{
            "data.tokenizer": write_vocab(tmp_path / "vocab.txt", words),
            "data.train": str(paths["train"]),
            "data.validation": str(paths["dev"]),
            "data.max_seq_length": 64,
            "data.doc_stride": 16,  # contexts of ~25 tokens span two windows
            "data.max_query_length": 16,
            "num_epochs": 4,
            "learning_rate": 1e-3,
        },
    )
    assert result.returncode == 0, result.stderr[-3000:]
    scalars = read_scalars(workdir)
    final = max(scalars["eval/f1"])
    assert scalars["eval/f1"][final] >= 0.9 and scalars["eval/exact_match"][final] >= 0.9

    question = {
        "id": "new",
        "question": "what is the capital of peru ?",
        "context": "many people live there . the capital of peru is lima . it is a large country .",
    }
    [record] = predict(workdir, [json.dumps(question)])
    assert record["id"] == "new" and record["answer"] == "lima"
    assert 0 < record["probability"] <= 1


def hf_bert_dir(directory) -> str:
    import torch
    import transformers

    torch.manual_seed(0)
    config = transformers.BertConfig(
        **tiny_hf_config(vocab_size=40, num_heads=2, max_position_embeddings=64)
    )
    transformers.BertForPreTraining(config).save_pretrained(directory)
    write_vocab(directory / "vocab.txt", [f"w{i}" for i in range(35)])
    return str(directory)


def test_init_from_hf_takes_the_encoder_and_initialises_the_head(tmp_path, caplog):
    import jax
    from flax import traverse_util

    from bert_jax.model.task_models import BertForSequenceClassification
    from bert_jax.optim import build_optimizer
    from bert_jax.sharding import make_mesh
    from bert_jax.tasks.starting_point import starting_point
    from bert_jax.train_state import load_matching_params, state_spec
    from configs import finetune_glue

    config = finetune_glue.get_config()
    config.init_from = hf_bert_dir(tmp_path / "hf")
    config.data.max_seq_length = 32
    config.num_train_steps, config.warmup_steps = 10, 1
    start = starting_point(config)
    assert start.tokenizer.vocab_size == 40 and start.model_config.hidden_size == 32

    bert = start.model_config
    tx, _ = build_optimizer(config)
    spec = state_spec(
        config,
        bert,
        lambda rngs: BertForSequenceClassification(bert, 2, rngs=rngs),
        tx,
        make_mesh(config),
    )
    fresh = spec.init()["params"]
    with caplog.at_level("INFO", logger="absl"):  # whatever verbosity an earlier test left
        loaded = load_matching_params(fresh, start.pretrained.params, config.init_from)

    flat_loaded = traverse_util.flatten_dict(jax.device_get(loaded), sep="/")
    flat_fresh = traverse_util.flatten_dict(jax.device_get(fresh), sep="/")
    flat_source = traverse_util.flatten_dict(start.pretrained.params, sep="/")
    for path, value in flat_loaded.items():
        expected = flat_source[path] if path.startswith("bert/") else flat_fresh[path]
        np.testing.assert_array_equal(value, expected, err_msg=path)
    assert {p for p in flat_loaded if not p.startswith("bert/")} == {
        "classifier/kernel",
        "classifier/bias",
    }
    message = caplog.text
    assert f"Loaded {len(flat_loaded) - 2} of {len(flat_loaded)} parameter tensors" in message
    assert "newly initialised: classifier/bias, classifier/kernel" in message
    assert "not used: mlm/" in message and "sentence/classifier" in message


@pytest.mark.slow
def test_fine_tune_from_a_pretraining_workdir_with_its_sentencepiece_tokenizer(tmp_path):
    pretrained = str(tmp_path / "pretrain")
    result = run_main(pretrained)
    assert result.returncode == 0, result.stderr[-3000:]
    workdir = str(tmp_path / "sst2")
    result = finetune(
        "finetune_glue",
        workdir,
        **{
            "init_from": pretrained,
            "data.train": os.path.join(SST2, "train.tsv"),
            "data.validation": os.path.join(SST2, "dev.tsv"),
            "data.max_train_examples": 160,
            "data.max_seq_length": 32,
            "batch_size": 16,
            "num_epochs": 1,
        },
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"parameter tensors from {pretrained}; newly initialised: classifier" in result.stderr
    assert "not used: mlm/" in result.stderr
    accuracy = read_scalars(workdir)["eval/accuracy"]
    assert sorted(accuracy) == [10]  # one epoch of 160 examples / 16, evaluated at its end
    assert 0.0 <= accuracy[10] <= 1.0
    # The fine-tuned run tokenized with, and saved, the pretraining run's SentencePiece model.
    from bert_jax.checkpoint_reads import newest_step_dir, read_meta

    tuned, pre = read_meta(newest_step_dir(workdir)), read_meta(newest_step_dir(pretrained))
    assert "wordpiece" not in tuned and tuned["tokenizer"] == pre["tokenizer"]
    [record] = predict(workdir, ["a gorgeous , witty , seductive movie ."])
    assert record["label"] in ("0", "1")
    refused = subprocess.run(
        [sys.executable, "-m", "bert_jax.predict", f"--workdir={pretrained}", "--input=/dev/null"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 1
    assert (
        refused.stderr.strip()
        .splitlines()[-1]
        .startswith(f"error: {pretrained} is a pretraining run; predict needs")
    )


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"data.train": None}, "Set data.train and data.validation"),
        ({"init_from": "/nonexistent/weights"}, "init_from='/nonexistent/weights' is not a"),
        ({"task": "sst3"}, "task='sst3' is unknown"),
    ],
)
def test_bad_fine_tuning_settings_fail_in_one_line_and_write_nothing(tmp_path, overrides, message):
    settings = {
        "data.train": os.path.join(SST2, "dev.tsv"),
        "data.validation": os.path.join(SST2, "dev.tsv"),
        "data.tokenizer": write_vocab(tmp_path / "vocab.txt", ["movie"]),
    } | overrides
    workdir = tmp_path / "run"
    flags = {key: value for key, value in settings.items() if value is not None}
    result = finetune("finetune_glue", str(workdir), **flags)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last, last
    assert not workdir.exists()


def test_predict_refuses_a_workdir_without_checkpoints(tmp_path):
    from bert_jax.errors import UserError
    from bert_jax.inference import Predictor

    (tmp_path / "checkpoints").mkdir()
    with pytest.raises(UserError, match="holds no checkpoint"):
        Predictor.from_workdir(str(tmp_path), "latest")


def test_unset_schedule_comes_from_epochs_and_the_main_metric():
    from bert_jax.config_checks import resolve_derived
    from configs import finetune_glue

    config = finetune_glue.get_config()
    config.num_epochs, config.warmup_fraction = 2.5, 0.1
    resolved = resolve_derived(config, batches_per_epoch=40, main_metric="matthews_corr")
    assert (resolved.num_train_steps, resolved.warmup_steps) == (100, 10)
    assert resolved.best_metric == "eval/matthews_corr"
    config.num_train_steps, config.warmup_steps, config.best_metric = 7, 0, "eval/f1"
    assert resolve_derived(config, 40, "accuracy").to_dict() == ConfigDict(config).to_dict()
