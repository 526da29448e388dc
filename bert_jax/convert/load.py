"""Weights from any source this project reads, by what the directory holds: a training workdir
(its newest checkpoint), a weights directory of this project, Hugging Face or Google BERT."""

import json
import os

from bert_jax.checkpoint_reads import model_config_of, read_newest_checkpoint
from bert_jax.convert.hf import load_hf
from bert_jax.convert.pretrained import Pretrained, is_pretrained_dir, load_pretrained
from bert_jax.convert.tf import load_tf
from bert_jax.data.any_tokenizer import tokenizer_from_meta
from bert_jax.errors import UserError
from bert_jax.workdir import CHECKPOINTS_DIR, is_workdir


def load_workdir(directory: str, which: str = CHECKPOINTS_DIR) -> Pretrained:
    """The params of a training workdir's newest readable checkpoint (or of `which="best"`),
    with the run's model config, tokenizer and (fine-tuned) task."""
    meta, params = read_newest_checkpoint(directory, which)
    task = json.loads(meta.get("task", "{}")) or None
    if task is not None and task.get("kind") == "pretraining":
        task = None
    return Pretrained(model_config_of(meta, params), params, tokenizer_from_meta(meta), task)


def load_weights(
    path: str, *, do_lower_case: bool | None = None, role: str = "init_from"
) -> Pretrained:
    """A training workdir (its newest checkpoint), a pretrained weights directory of this
    project, a Hugging Face BERT directory or a Google BERT TF checkpoint directory; `role`
    names the setting that gave `path` in errors."""
    name = f"{role}={path!r}" if role == "init_from" else f"{role} {path!r}"
    if not os.path.isdir(path):
        raise UserError(
            f"{name} is not a directory; give a workdir of this project, a "
            "Hugging Face BERT directory or a Google BERT checkpoint directory."
        )
    if is_workdir(path):
        return load_workdir(path)
    if is_pretrained_dir(path):
        return load_pretrained(path)
    if os.path.exists(os.path.join(path, "config.json")):
        return load_hf(path)
    if os.path.exists(os.path.join(path, "bert_config.json")):
        return load_tf(path, do_lower_case=True if do_lower_case is None else do_lower_case)
    raise UserError(
        f"{name} holds no checkpoints/, params/, config.json or bert_config.json; "
        "point it at a workdir, a converted weights directory, or a Hugging Face or Google "
        "BERT directory."
    )
