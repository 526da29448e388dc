"""The train state {step, params, opt_state}: its model, shapes and shardings, and its creation.

The state is created directly in its shards (a jitted init with output shardings), never whole
on one device, and the same abstract state with shardings is the restore target of checkpoints,
so a checkpoint written on one mesh loads on another.
"""

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from absl import logging
from flax import nnx
from jax.sharding import Mesh
from ml_collections import ConfigDict

from bert_jax import sharding
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
        return {"step": jnp.zeros((), jnp.int32), "params": params, "opt_state": tx.init(params)}

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
