"""Device mesh from config, logical-axis rules, and placement of state and batches.

The model names every parameter axis logically ("vocab", "embed", "heads", "kv", "mlp",
"layers"); `config.sharding_rules` maps those names, and "batch", to mesh axes ("data", "fsdp",
"tensor"). Data parallel, fully-sharded data parallel and tensor parallel are all just rules.
"""

import math
from collections.abc import Sequence

import jax
import numpy as np
import optax
from absl import logging
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from ml_collections import ConfigDict

from bert_jax.data.batches import check_batch_size
from bert_jax.errors import UserError

MESH_AXES = ("data", "fsdp", "tensor")


def mesh_shape(config: ConfigDict, num_devices: int) -> tuple[int, ...]:
    """Sizes of (data, fsdp, tensor); one of them may be -1 to take the remaining devices."""
    sizes = [config.mesh[axis] for axis in MESH_AXES]
    described = ", ".join(f"mesh.{a}={s}" for a, s in zip(MESH_AXES, sizes, strict=True))
    if sizes.count(-1) > 1 or any(s == 0 or s < -1 for s in sizes):
        raise UserError(f"{described} is not a mesh; give positive sizes, at most one of them -1.")
    known = math.prod(s for s in sizes if s != -1)
    if -1 in sizes:
        if num_devices % known:
            raise UserError(
                f"{described} cannot be filled from {num_devices} devices; "
                f"make the fixed sizes divide {num_devices}."
            )
        sizes[sizes.index(-1)] = num_devices // known
    if math.prod(sizes) != num_devices:
        raise UserError(
            f"{described} needs {math.prod(sizes)} devices but {num_devices} are present; "
            "make the sizes multiply to the device count or set one to -1."
        )
    return tuple(sizes)


def make_mesh(config: ConfigDict) -> Mesh:
    shape = mesh_shape(config, jax.device_count())
    devices = np.asarray(jax.devices()).reshape(shape)
    return Mesh(devices, MESH_AXES)


def _rules(config: ConfigDict) -> dict[str, tuple[str, ...]]:
    rules = {}
    for name, axes in config.sharding_rules:
        axes = () if axes is None else (axes,) if isinstance(axes, str) else tuple(axes)
        unknown = [a for a in axes if a not in MESH_AXES]
        if unknown:
            raise UserError(
                f"sharding_rules maps {name!r} to unknown mesh axes {unknown}; "
                f"use {', '.join(MESH_AXES)}."
            )
        rules[name] = axes
    return rules


def spec_for(
    names: Sequence[str | None], shape: Sequence[int], mesh: Mesh, rules: dict
) -> PartitionSpec:
    """Mesh axes for an array whose dimensions carry logical `names`.

    A dimension the mesh axes do not divide, or whose axes an earlier dimension already took,
    stays replicated: correct everywhere, just less sharded.
    """
    used, spec = set(), []
    for name, size in zip(names, shape, strict=True):
        axes = tuple(a for a in rules.get(name, ()) if a not in used and mesh.shape[a] > 1)
        if axes and size % math.prod(mesh.shape[a] for a in axes) == 0:
            used.update(axes)
            spec.append(axes[0] if len(axes) == 1 else axes)
        else:
            spec.append(None)
    return PartitionSpec(*spec)


def param_shardings(logical_specs, abstract_params, mesh: Mesh, config: ConfigDict):
    """NamedShardings for the params from the model's logical axis names."""
    rules = _rules(config)
    return jax.tree.map(
        lambda names, x: NamedSharding(mesh, spec_for(tuple(names), x.shape, mesh, rules)),
        logical_specs,
        abstract_params,
    )


def state_shardings(param_sharding, abstract_state, tx: optax.GradientTransformation, mesh):
    """Shardings of the whole train state: optimizer moments follow their parameters."""
    replicated_ = replicated(mesh)
    opt_sharding = optax.tree_map_params(
        tx,
        lambda _, sharding: sharding,
        abstract_state["opt_state"],
        param_sharding,
        transform_non_params=lambda _: replicated_,
    )
    return {"micro_step": replicated_, "params": param_sharding, "opt_state": opt_sharding}


def log_shardings(param_sharding) -> None:
    flat = jax.tree_util.tree_flatten_with_path(param_sharding)[0]
    for path, sharding in flat:
        logging.info(
            "  %-60s %s", jax.tree_util.keystr(path, simple=True, separator="/"), sharding.spec
        )


def batch_sharding(mesh: Mesh, config: ConfigDict) -> NamedSharding:
    axes = tuple(a for a in _rules(config).get("batch", ()) if mesh.shape[a] > 1)
    return NamedSharding(mesh, PartitionSpec(axes or None))


def batch_shards(mesh: Mesh, config: ConfigDict) -> int:
    """Into how many pieces the batch is split (devices along the other axes share a piece)."""
    spec = batch_sharding(mesh, config).spec[0]
    axes = () if spec is None else (spec,) if isinstance(spec, str) else spec
    return math.prod(mesh.shape[a] for a in axes)


def check_batch_split(batch_size: int, mesh: Mesh, config: ConfigDict, key: str) -> None:
    """The batch must split evenly over its mesh axes and over the processes feeding it."""
    shards = batch_shards(mesh, config)
    over = (
        f"{shards} batch shards of {jax.device_count()} devices and {jax.process_count()} processes"
    )
    check_batch_size(key, batch_size, math.lcm(shards, jax.process_count()), over=over)


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def put_batch(local_batch: dict[str, np.ndarray], sharding: NamedSharding) -> dict[str, jax.Array]:
    """Global arrays from this process's rows of the batch."""
    return {
        key: jax.make_array_from_process_local_data(sharding, value)
        for key, value in local_batch.items()
    }
