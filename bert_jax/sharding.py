"""Device mesh and data placement. For now: pure data parallelism over every device.

The batch is split along the mesh's `data` axis and the train state is replicated. Each process
hands over only its own rows; the global batch is assembled with
`jax.make_array_from_process_local_data`.
"""

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from bert_jax.errors import UserError


def make_mesh() -> Mesh:
    return Mesh(np.asarray(jax.devices()), ("data",))


def check_batch_size(batch_size: int, mesh: Mesh, key: str = "batch_size") -> None:
    devices = mesh.devices.size
    if batch_size <= 0 or batch_size % devices:
        raise UserError(
            f"{key}={batch_size} cannot be split over {devices} devices; "
            f"set it to a positive multiple of {devices}."
        )


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec("data"))


def put_batch(local_batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """Global arrays from this process's rows of the batch."""
    sharding = batch_sharding(mesh)
    return {
        key: jax.make_array_from_process_local_data(sharding, value)
        for key, value in local_batch.items()
    }
