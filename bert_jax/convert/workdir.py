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

from bert_jax.checkpoint import decode_tokenizer
from bert_jax.convert.pretrained import Pretrained
from bert_jax.data.tokenizer import Tokenizer
from bert_jax.errors import UserError
from bert_jax.train_state import model_config

CHECKPOINTS_DIR = "checkpoints"


def is_workdir(directory: str) -> bool:
    """Whether `directory` looks like a training workdir."""
    return os.path.isdir(os.path.join(directory, CHECKPOINTS_DIR))


def load_workdir(directory: str) -> Pretrained:
    """The params of the workdir's newest checkpoint, with the run's model config and tokenizer."""
    root = os.path.join(directory, CHECKPOINTS_DIR)
    steps = sorted(int(name) for name in os.listdir(root) if name.isdigit())
    if not steps:
        raise UserError(f"{root} holds no checkpoint; train first or point at another workdir.")
    step_dir = os.path.abspath(os.path.join(root, str(steps[-1])))
    meta = ocp.Checkpointer(ocp.JsonCheckpointHandler()).restore(os.path.join(step_dir, "meta"))
    state = ocp.StandardCheckpointer().restore(os.path.join(step_dir, "state"))
    params = jax.tree.map(np.asarray, state["params"])
    vocab_size = params["bert"]["embeddings"]["word"]["embedding"].shape[0]
    try:
        config = model_config(ConfigDict(json.loads(meta["config"])), vocab_size)
    except (AttributeError, KeyError) as error:
        raise UserError(
            f"The run config in {step_dir}/meta lacks {error}; it was written by another "
            "version of bert_jax."
        ) from None
    return Pretrained(config, params, Tokenizer.from_bytes(decode_tokenizer(meta)))
