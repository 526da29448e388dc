"""The train state {micro_step, params, opt_state}: its model, shapes, shardings and creation.

The state is created directly in its shards (a jitted init with output shardings), never whole
on one device, and the same abstract state with shardings is the restore target of checkpoints,
so a checkpoint written on one mesh loads on another.
"""

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging
from flax import nnx, traverse_util
from jax.sharding import Mesh
from ml_collections import ConfigDict

from bert_jax import sharding
from bert_jax.errors import UserError
from bert_jax.model import BertConfig


@dataclasses.dataclass(frozen=True)
class StateSpec:
    """Everything about the train state except its values."""

    graphdef: nnx.GraphDef
    model_config: BertConfig
    abstract: Any  # ShapeDtypeStructs carrying their target shardings
    shardings: Any
    init: Any  # () -> state, jitted, created in its shards


def state_spec(
    config: ConfigDict,
    bert: BertConfig,
    build_model: Callable[[nnx.Rngs], nnx.Module],
    tx: optax.GradientTransformation,
    mesh: Mesh,
) -> StateSpec:
    """`build_model(rngs)` makes the task's model of architecture `bert`."""

    def build() -> nnx.Module:
        return build_model(nnx.Rngs(config.seed))

    def init() -> dict:
        params = nnx.to_pure_dict(nnx.state(build(), nnx.Param))
        return {
            "micro_step": jnp.zeros((), jnp.int32),
            "params": params,
            "opt_state": tx.init(params),
        }

    abstract_model = nnx.eval_shape(build)
    graphdef, abstract_params = nnx.split(abstract_model, nnx.Param)
    logical = nnx.to_pure_dict(nnx.get_partition_spec(abstract_params))
    abstract_state = jax.eval_shape(init)
    param_sharding = sharding.param_shardings(logical, abstract_state["params"], mesh, config)
    shardings = sharding.state_shardings(param_sharding, abstract_state, tx, mesh)
    abstract = jax.tree.map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), abstract_state, shardings
    )
    if mesh.size > 1:
        logging.info("Parameter shardings over mesh %s:", dict(mesh.shape))
        sharding.log_shardings(param_sharding)
    return StateSpec(graphdef, bert, abstract, shardings, jax.jit(init, out_shardings=shardings))


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
