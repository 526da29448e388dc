"""Multi-process start-up: `jax.distributed.initialize` before any other JAX call, only when the
job really spans several processes: explicit flags, or a cluster that JAX's own detection finds
(SLURM job steps, Open MPI, Cloud TPU VM pods and GKE TPU slices, Kubernetes jobs) with more than
one process. A single process never initializes, so it needs no coordinator."""

import os
import warnings

import jax
from absl import logging

from bert_jax.errors import UserError


def detected_cluster() -> type | None:
    """The cluster environment `jax.distributed.initialize()` would read, found the way it finds
    it: the first of JAX's cluster types (opt-in ones such as mpi4py aside) that is present."""
    from jax._src import clusters  # JAX's detection itself; it has no public name

    for env in clusters.ClusterEnv._cluster_types:
        if env.opt_in_only_method:
            continue
        try:
            with warnings.catch_warnings():  # e.g. "Kubernetes found but its package is missing"
                warnings.simplefilter("ignore")
                if env.is_env_present():
                    return env
        except Exception as error:  # noqa: BLE001 - e.g. a TPU VM whose metadata server is away
            logging.info("Not %s: checking for it failed (%s).", env.__name__, error)
    return None


def cluster_process_count(env: type) -> int:
    """How many processes the detected cluster runs this job with."""
    try:
        return int(env.get_process_count())
    except Exception as error:  # noqa: BLE001 - any failure: the environment is not what it seems
        raise UserError(
            f"the {env.__name__} environment is detected but its process count cannot be read "
            f"({error}); pass --num_processes=1 to run one process, or --coordinator_address, "
            "--num_processes and --process_id."
        ) from None


def initialize(coordinator_address: str | None, num_processes: int | None,
               process_id: int | None) -> None:  # fmt: skip
    """Joins the job's other processes; a single-process run does nothing."""
    coordinator_address = coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS")
    if coordinator_address is None:
        if num_processes == 1:
            return  # one process asked for: nothing to detect
        cluster = detected_cluster()
        count = 1 if cluster is None else cluster_process_count(cluster)
        if count <= 1:
            return
        logging.info("Detected %s: a job of %d processes.", cluster.__name__, count)
    _join(coordinator_address, num_processes, process_id)


def _join(coordinator_address: str | None, num_processes: int | None,
          process_id: int | None) -> None:  # fmt: skip
    # CPU processes exchange collectives over gloo; accelerators ignore this setting.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    # Unset arguments come from the cluster environment (SLURM, TPU, ...), as JAX detects it.
    jax.distributed.initialize(coordinator_address, num_processes, process_id)
    logging.info(
        "Process %d of %d; %d local of %d devices.",
        jax.process_index(), jax.process_count(), jax.local_device_count(), jax.device_count(),
    )  # fmt: skip
