"""Shared helpers: run the entry point as a user would, and read what it left in the workdir."""

import glob
import importlib.util
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from bert_jax.events import read_scalars  # noqa: F401 - shared with the tests

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(REPO, "configs", "pretrain.py")
# BERT's settings, which the tests were written against; the quick start's are pinned in
# test_pretrain_configs.py and run by test_notebooks.py.
STANDARD = CONFIG + ":standard"
SST2 = os.path.join(os.path.dirname(REPO), "shared", "data", "sst2")
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

# A run small enough for a test: seconds per process on 2 CPU cores.
TINY = {
    "num_train_steps": 16,
    "warmup_steps": 2,
    "batch_size": 8,
    "log_every_steps": 2,
    "eval_every_steps": 4,
    "checkpoint_every_steps": 4,
    "histogram_every_steps": 8,
    "model.hidden_size": 32,
    "model.num_heads": 2,
    "model.intermediate_size": 64,
    "data.vocab_size": 300,
    "data.max_seq_length": 32,
    "data.eval_batch_size": 8,
    "data.max_eval_batches": 2,
    "data.dupe_factor": 1,
}

# The tiny encoder of the fine-tuning runs (the tiny preset's 2 layers at TINY's width).
TINY_FINETUNE = {
    "model.preset": "tiny",
    "model.hidden_size": 32,
    "model.num_heads": 2,
    "model.intermediate_size": 64,
    "data.max_seq_length": 32,
}

# Throughput depends on the clock; every other logged figure of a resumed run must match exactly.
TIMING_TAGS = {
    "train/tokens_per_sec", "train/tokens_per_sec_per_device", "train/mfu",
    "train/examples_per_sec",
}  # fmt: skip

# The one tiny encoder of the unit tests: BertConfig fields, overridden per test where it matters.
TINY_BERT = dict(
    vocab_size=97,
    hidden_size=32,
    num_layers=2,
    num_heads=4,
    intermediate_size=64,
    max_position_embeddings=32,
)
_HF_NAMES = {"num_layers": "num_hidden_layers", "num_heads": "num_attention_heads"}


def tiny_bert(**overrides):
    """The tiny encoder as a BertConfig."""
    from bert_jax.model import BertConfig

    return BertConfig(**(TINY_BERT | overrides))


def tiny_hf_config(**overrides) -> dict:
    """The tiny encoder as `transformers.BertConfig` keyword arguments (overrides by our names)."""
    return {_HF_NAMES.get(key, key): value for key, value in (TINY_BERT | overrides).items()}


def randomised(model, seed: int):
    """A torch `model` in eval mode with every weight random, LayerNorms and biases included."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            centre = 1.0 if name.endswith("LayerNorm.weight") else 0.0
            param.copy_(centre + 0.1 * torch.randn(param.shape, generator=generator))
    return model.eval()


def shrink_run_model(model_section) -> None:
    """A run config's `model` section set to the tiny encoder's width (its preset's depth)."""
    model_section.hidden_size, model_section.num_heads = 32, 2
    model_section.intermediate_size = 64


def main_command(workdir: str, config: str = STANDARD, **overrides) -> list[str]:
    settings = TINY | overrides
    flags = [f"--config.{key}={value}" for key, value in settings.items()]
    command = [sys.executable, "-m", "bert_jax.main", f"--config={config}", f"--workdir={workdir}"]
    return command + flags


def load_pretrain_config(**overrides):
    """configs/pretrain.py's config with `overrides` ({"data.corpus": ...}), as commands make it."""
    spec = importlib.util.spec_from_file_location("pretrain_config", CONFIG)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config("standard")
    for key, value in overrides.items():
        section, _, name = key.rpartition(".")
        (config[section] if section else config)[name] = value
    return config


def run_main(
    workdir: str, env: dict | None = None, config: str = STANDARD, **overrides
) -> subprocess.CompletedProcess:
    return subprocess.run(
        main_command(workdir, config, **overrides),
        cwd=REPO,
        env=os.environ | (env or {}),
        capture_output=True,
        text=True,
        timeout=600,
    )


def free_port() -> int:
    """A localhost port free now, for a coordinator of several local processes."""
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def wait_for_line(path: str, marker: str, process: subprocess.Popen) -> None:
    """Waits until the log file at `path` contains `marker`; fails if `process` ends first."""
    while process.poll() is None:
        with open(path) as f:
            if marker in f.read():
                return
        time.sleep(0.2)
    raise AssertionError(f"the process ended before logging {marker!r}")


def write_vocab(path, words) -> str:
    """A WordPiece vocab.txt of BERT's special tokens and these words (for `data.tokenizer`)."""
    path.write_text("\n".join(SPECIALS + sorted(set(words))) + "\n")
    return str(path)


def event_tags(workdir: str) -> dict[str, set[str]]:
    """plugin name -> tags written, across all event files in the workdir."""
    import tensorflow as tf

    tags: dict[str, set[str]] = {}
    for path in glob.glob(os.path.join(workdir, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                plugin = value.metadata.plugin_data.plugin_name
                tags.setdefault(plugin, set()).add(value.tag)
    return tags


def final_params(workdir: str) -> dict[str, np.ndarray]:
    """Flattened parameters of the newest checkpoint, as NumPy arrays (any mesh wrote it)."""
    import jax

    from bert_jax.checkpoint_reads import newest_step_dir, read_checkpoint

    _, params = read_checkpoint(newest_step_dir(workdir))
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    return {jax.tree_util.keystr(path): np.asarray(value) for path, value in flat}


def snapshot(directory: str) -> dict[str, bytes]:
    """Every file under `directory` with its bytes: to prove a failed run changed nothing."""
    files = {}
    for root, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                files[os.path.relpath(path, directory)] = f.read()
    return files


@pytest.fixture
def tiny_corpus(tmp_path) -> str:
    """A small corpus file in the original BERT format, built from the default corpus."""
    from bert_jax.data.corpus import default_corpus

    path = tmp_path / "corpus.txt"
    docs = default_corpus()[:40]
    path.write_text("\n\n".join("\n".join(doc) for doc in docs) + "\n")
    return str(path)
