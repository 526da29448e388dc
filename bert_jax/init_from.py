"""Starting weights for a new run (`config.init_from`): read from any source, copied by name.

Parameters whose path and shape match are taken from the source; the rest (a new task head, a
pooler a BertModel lacked) keep their fresh initialisation, and the log names both groups.
"""

import os

import jax
import numpy as np
from absl import logging
from flax import traverse_util

from bert_jax.convert import Pretrained, load_hf, load_pretrained, load_tf
from bert_jax.convert.pretrained import is_pretrained_dir
from bert_jax.convert.workdir import is_workdir, load_workdir
from bert_jax.errors import UserError


def load_weights(path: str, *, do_lower_case: bool | None = None) -> Pretrained:
    """A training workdir (its newest checkpoint), a pretrained weights directory of this
    project, a Hugging Face BERT directory or a Google BERT TF checkpoint directory."""
    if not os.path.isdir(path):
        raise UserError(
            f"init_from={path!r} is not a directory; give a workdir of this project, a "
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
        f"init_from={path!r} holds no checkpoints/, params/, config.json or bert_config.json; "
        "point it at a workdir, a converted weights directory, or a Hugging Face or Google "
        "BERT directory."
    )


def _groups(paths) -> str:
    """Paths shortened to their first two parts, for a one-line log."""
    return ", ".join(sorted({"/".join(path.split("/")[:2]) for path in paths})) or "none"


def load_matching_params(params: dict, source: dict, origin: str) -> dict:
    """`params` (sharded arrays) with every leaf of the same path and shape taken from `source`."""
    target = traverse_util.flatten_dict(params, sep="/")
    given = traverse_util.flatten_dict(source, sep="/")
    loaded, fresh = {}, []
    for path, current in target.items():
        value = given.get(path)
        if value is None or tuple(value.shape) != tuple(current.shape):
            fresh.append(path)
            continue
        value = np.asarray(value, dtype=current.dtype)
        # Every process holds the whole value and hands each device its slice.
        loaded[path] = jax.make_array_from_callback(
            current.shape, current.sharding, lambda index, value=value: value[index]
        )
    if not loaded:
        raise UserError(
            f"init_from={origin!r} shares no parameter with this model; check that it is a BERT "
            "checkpoint."
        )
    unused = [path for path in given if path not in loaded]
    logging.info(
        "Loaded %d of %d parameter tensors from %s; newly initialised: %s; not used: %s.",
        len(loaded), len(target), origin, _groups(fresh), _groups(unused),
    )  # fmt: skip
    return traverse_util.unflatten_dict(target | loaded, sep="/")
