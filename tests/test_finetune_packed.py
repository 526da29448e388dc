"""Fine-tuning on packed rows (`data.pack_sequences`, the GLUE default): an SST-2 slice learns,
steps and epochs count examples as unpacked, each step's examples fill far fewer rows, a stopped
run resumes bitwise exactly, and tasks that cannot pack refuse in one line."""

import collections
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, TIMING_TAGS, final_params, read_scalars

SST2 = os.path.join(os.path.dirname(REPO), "shared", "data", "sst2")
BATCH = 32  # examples per step, packed or not


def settings(vocab: str) -> dict:
    return {
        "model.preset": "tiny",
        "log_every_steps": 25,
        "eval_every_steps": 1000,
        "data.tokenizer": vocab,
        "data.train": os.path.join(SST2, "train.tsv"),
        "data.validation": os.path.join(SST2, "dev.tsv"),
        "data.max_train_examples": 8000,
        "data.max_seq_length": 64,
        "data.pack_sequences": True,
        "batch_size": BATCH,
        "num_epochs": 1,
        "learning_rate": 1e-3,
        "checkpoint_every_steps": 50,
    }


def finetune_command(config: str, workdir: str, overrides: dict) -> list[str]:
    flags = [f"--config.{key}={value}" for key, value in overrides.items()]
    command = [sys.executable, "-m", "bert_jax.main", f"--config=configs/{config}.py"]
    return [*command, f"--workdir={workdir}", *flags]


def finetune(config: str, workdir: str, **overrides) -> subprocess.CompletedProcess:
    command = finetune_command(config, workdir, overrides)
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900)


def read_tsv(path: str) -> list[tuple[str, str]]:
    with open(path) as file:
        return [tuple(line.rstrip("\n").split("\t")) for line in file][1:]


@pytest.fixture(scope="module")
def vocab(tmp_path_factory) -> str:
    train = read_tsv(os.path.join(SST2, "train.tsv"))
    counts = collections.Counter(w for sentence, _ in train for w in sentence.split())
    words = sorted(w for w, _ in counts.most_common(3000))
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    path.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    return str(path)


@pytest.fixture(scope="module")
def packed_run(tmp_path_factory, vocab) -> str:
    """The uninterrupted packed run's workdir."""
    workdir = str(tmp_path_factory.mktemp("packed") / "sst2")
    result = finetune("finetune_glue", workdir, **settings(vocab))
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


@pytest.mark.slow
def test_packed_sst2_slice_learns_and_counts_steps_in_examples(packed_run):
    workdir = packed_run
    scalars = read_scalars(workdir)
    final_step = max(scalars["eval/accuracy"])
    assert final_step == 8000 // BATCH  # one epoch of 32 examples a step, as unpacked

    # SST-2 phrases are short: each step's 32 examples filled far fewer 64-token rows.
    assert max(scalars["train/rows_per_step"].values()) <= BATCH / 2
    assert min(scalars["train/examples_per_sec"].values()) > 0
    # Throughput counts the positions computed (the packed rows), not 32 x 64 per step.
    for step, rows in scalars["train/rows_per_step"].items():
        per_example = (
            scalars["train/tokens_per_sec"][step] / scalars["train/examples_per_sec"][step]
        )
        assert per_example <= rows * 64 / BATCH * (1 + 1e-6) < 64 / 2
        assert 0 < scalars["train/mfu"][step] < 1
    losses = [scalars["train/loss"][step] for step in sorted(scalars["train/loss"])]
    assert losses[-1] < losses[0] - 0.1

    labels = np.array([int(label) for _, label in read_tsv(os.path.join(SST2, "dev.tsv"))])
    majority = max(labels.mean(), 1 - labels.mean())
    accuracy = scalars["eval/accuracy"][final_step]
    print(f"packed SST-2 dev accuracy {accuracy:.4f} vs majority {majority:.4f}")
    assert accuracy > majority + 0.1


@pytest.mark.slow
def test_stopped_packed_run_resumes_bitwise_exactly(packed_run, vocab, tmp_path):
    reference = packed_run
    workdir = str(tmp_path / "stopped")
    command = finetune_command("finetune_glue", workdir, settings(vocab))
    process = subprocess.Popen(
        command, cwd=REPO, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    steps = 8000 // BATCH
    for line in process.stderr:
        if f"step 75/{steps} " in line:
            process.send_signal(signal.SIGTERM)  # saves at the next step and exits
            break
    process.stderr.read()
    assert process.wait(timeout=300) == 0
    stopped_at = max(
        int(s) for s in os.listdir(os.path.join(workdir, "checkpoints")) if s.isdigit()
    )
    assert 75 <= stopped_at < steps

    result = finetune("finetune_glue", workdir, **settings(vocab))
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Resuming from the checkpoint at step {stopped_at}" in result.stderr
    expected, resumed = final_params(reference), final_params(workdir)
    assert expected.keys() == resumed.keys()
    for name in expected:
        assert np.array_equal(expected[name], resumed[name]), name
    expected_scalars, resumed_scalars = read_scalars(reference), read_scalars(workdir)
    assert expected_scalars.keys() == resumed_scalars.keys()
    for tag in expected_scalars.keys() - TIMING_TAGS:
        assert expected_scalars[tag] == resumed_scalars[tag], tag


@pytest.mark.parametrize("config", ["finetune_ner", "finetune_squad"])
def test_packing_is_refused_where_the_task_cannot_use_it(tmp_path, config):
    workdir = tmp_path / "run"
    result = finetune(
        config,
        str(workdir),
        **{
            "data.train": str(tmp_path / "train.txt"),
            "data.validation": str(tmp_path / "dev.txt"),
            "data.pack_sequences": True,
        },
    )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: data.pack_sequences works only for sentence classification")
    assert not workdir.exists()
