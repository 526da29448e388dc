"""Multi-process start-up: `jax.distributed.initialize` before any other JAX call, only when the
job really spans several processes (explicit flags, SLURM, or a multi-host TPU slice)."""

import os

import jax
from absl import logging


def spans_several_processes() -> bool:
    """What the environment says: SLURM with several tasks, or a TPU slice with several hosts."""
    slurm_tasks = int(os.environ.get("SLURM_NTASKS", "1"))
    tpu_hosts = [h for h in os.environ.get("TPU_WORKER_HOSTNAMES", "").split(",") if h]
    return slurm_tasks > 1 or len(tpu_hosts) > 1


def initialize(coordinator_address: str | None, num_processes: int | None,
               process_id: int | None) -> None:  # fmt: skip
    """Joins the job's other processes; a single-process run does nothing."""
    explicit = coordinator_address is not None
    if not explicit and not spans_several_processes():
        return
    # CPU processes exchange collectives over gloo; accelerators ignore this setting.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if explicit:
        jax.distributed.initialize(coordinator_address, num_processes, process_id)
    else:
        jax.distributed.initialize()  # the cluster environment (SLURM, TPU) supplies the rest
    logging.info(
        "Process %d of %d; %d local of %d devices.",
        jax.process_index(), jax.process_count(), jax.local_device_count(), jax.device_count(),
    )  # fmt: skip
