"""A training workdir of this project as a source of weights: its newest checkpoint.

A checkpoint holds the train state {step, params, opt_state} and the run's config and tokenizer,
from which the model config is rebuilt exactly as the run built it.
"""

import json
import os

import jax
import numpy as np
import orbax.checkpoint as ocp
from ml_collections import ConfigDict

from bert_jax.convert.pretrained import Pretrained
from bert_jax.data.any_tokenizer import tokenizer_from_meta
from bert_jax.errors import UserError
from bert_jax.model import BertConfig
from bert_jax.model.config import from_run_config

CHECKPOINTS_DIR = "checkpoints"


def is_workdir(directory: str) -> bool:
    """Whether `directory` looks like a training workdir."""
    return os.path.isdir(os.path.join(directory, CHECKPOINTS_DIR))


def load_workdir(directory: str, which: str = CHECKPOINTS_DIR) -> Pretrained:
    """The params of the workdir's newest checkpoint (or of `which="best"`), with the run's model
    config and tokenizer."""
    meta, params = read_checkpoint(newest_step_dir(directory, which))
    return Pretrained(checkpoint_model_config(meta, params), params, tokenizer_from_meta(meta))


def newest_step_dir(directory: str, which: str = CHECKPOINTS_DIR) -> str:
    root = os.path.join(directory, which)
    names = os.listdir(root) if os.path.isdir(root) else []
    steps = sorted(int(name) for name in names if name.isdigit())
    if not steps:
        raise UserError(f"{root} holds no checkpoint; train first or point at another workdir.")
    return os.path.abspath(os.path.join(root, str(steps[-1])))


def read_checkpoint(step_dir: str) -> tuple[dict, dict]:
    """(meta, params as NumPy arrays) of one checkpoint step directory."""
    meta = ocp.Checkpointer(ocp.JsonCheckpointHandler()).restore(os.path.join(step_dir, "meta"))
    state = ocp.StandardCheckpointer().restore(os.path.join(step_dir, "state"))
    return meta, jax.tree.map(np.asarray, state["params"])


def checkpoint_model_config(meta: dict, params: dict) -> BertConfig:
    """The architecture a checkpoint was trained with, as its run built it."""
    if "model" in meta:
        return BertConfig(**json.loads(meta["model"]))
    vocab_size = params["bert"]["embeddings"]["word"]["embedding"].shape[0]
    try:
        return from_run_config(ConfigDict(json.loads(meta["config"])), vocab_size)
    except (AttributeError, KeyError) as error:
        raise UserError(
            f"The checkpoint's run config lacks {error}; it was written by another version of "
            "bert_jax."
        ) from None
