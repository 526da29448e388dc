"""bert_jax.distributed: which environments make a run join a multi-process job, found by JAX's own
cluster detection (environment variables set by hand, no real cluster; the join itself recorded)."""

import pytest

from bert_jax import distributed
from bert_jax.errors import UserError

# Everything JAX's cluster types look at; cleared before each case.
CLUSTER_VARIABLES = [
    "SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_LOCALID",
    "SLURM_STEP_NUM_NODES", "OMPI_MCA_orte_hnp_uri", "OMPI_COMM_WORLD_SIZE",
    "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", "TPU_WORKER_HOSTNAMES",
    "TPU_PROCESS_ADDRESSES", "TPU_WORKER_ID", "TPU_SKIP_MDS_QUERY", "MEGASCALE_NUM_SLICES",
    "KUBERNETES_SERVICE_HOST", "JAX_COORDINATOR_ADDRESS",
]  # fmt: skip


def slurm_step(tasks: int) -> dict[str, str]:
    """What srun sets in each task of a job step."""
    return {"SLURM_JOB_ID": "4242", "SLURM_STEP_NODELIST": "node[001-002]",
            "SLURM_NTASKS": str(tasks), "SLURM_PROCID": "0", "SLURM_LOCALID": "0"}  # fmt: skip


@pytest.fixture
def joined(monkeypatch) -> list[tuple]:
    """A clean environment; the arguments of every join are recorded instead of joining."""
    for name in CLUSTER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    calls = []
    monkeypatch.setattr(distributed, "_join", lambda *args: calls.append(args))
    return calls


@pytest.fixture
def cloud_tpu_vm(monkeypatch):
    """As if on a Cloud TPU VM: what jax's start-up sets when it finds TPU chips."""
    from jax._src.clusters import cloud_tpu_cluster

    monkeypatch.setattr(cloud_tpu_cluster, "running_in_cloud_tpu_vm", True)
    return cloud_tpu_cluster


@pytest.mark.parametrize(
    "environment, cluster",
    [
        (slurm_step(4), "SlurmCluster"),
        ({"OMPI_MCA_orte_hnp_uri": "1531576320.0;tcp://10.0.0.1:34911",
          "OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_RANK": "1"}, "OmpiCluster"),
    ],
)  # fmt: skip
def test_a_multi_process_cluster_job_joins_with_what_jax_reads_itself(
    joined, monkeypatch, environment, cluster
):
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert distributed.detected_cluster().__name__ == cluster
    distributed.initialize(None, None, None)
    assert joined == [(None, None, None)]  # jax.distributed.initialize() fills in the rest


@pytest.mark.parametrize(
    "environment",
    [
        {},  # a laptop, a single-host VM
        slurm_step(1),  # srun -n1, or salloc's single task
        # SLURM's batch shell itself (no job step): the old SLURM_NTASKS > 1 test joined here and
        # waited for processes that never come.
        {"SLURM_JOB_ID": "4242", "SLURM_NTASKS": "8"},
        {"TPU_WORKER_HOSTNAMES": "t0,t1"},  # TPU variables, but not on a TPU VM
    ],
)
def test_a_single_process_never_joins(joined, monkeypatch, environment):
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    distributed.initialize(None, None, None)
    assert joined == []


def test_a_gke_tpu_slice_joins_only_with_several_hosts(joined, monkeypatch, cloud_tpu_vm):
    monkeypatch.setenv("TPU_SKIP_MDS_QUERY", "1")  # no metadata server: the GKE variables decide
    monkeypatch.setenv("MEGASCALE_NUM_SLICES", "1")
    monkeypatch.setenv("TPU_WORKER_HOSTNAMES", "t0")
    monkeypatch.setenv("TPU_WORKER_ID", "0")
    distributed.initialize(None, None, None)
    assert joined == []
    monkeypatch.setenv("TPU_WORKER_HOSTNAMES", "t0,t1,t2,t3")
    assert distributed.detected_cluster().__name__ == "GkeTpuCluster"
    distributed.initialize(None, None, None)
    assert joined == [(None, None, None)]


@pytest.mark.parametrize("workers, joins", [("w0", False), ("w0,w1", True)])
def test_a_cloud_tpu_vm_pod_is_found_from_its_metadata(
    joined, monkeypatch, cloud_tpu_vm, workers, joins
):
    metadata = {"agent-worker-number": "0", "worker-network-endpoints": workers, "tpu-env": ""}
    queried = []

    def get_metadata(key):
        queried.append(key)
        return metadata[key], 200

    monkeypatch.setattr(cloud_tpu_vm, "get_metadata", get_metadata)
    distributed.initialize(None, None, None)
    assert "agent-worker-number" in queried  # found the way jax finds a TPU VM pod
    assert joined == ([(None, None, None)] if joins else [])


def test_a_tpu_vm_whose_metadata_cannot_be_read_runs_as_one_process(
    joined, monkeypatch, cloud_tpu_vm
):
    def unreachable(key):
        raise ConnectionError(f"metadata {key}: no route to host")

    monkeypatch.setattr(cloud_tpu_vm, "get_metadata", unreachable)
    assert distributed.detected_cluster() is None
    distributed.initialize(None, None, None)
    assert joined == []


def test_explicit_flags_join_and_one_process_skips_detection(joined, monkeypatch):
    distributed.initialize("localhost:1234", 2, 1)
    assert joined == [("localhost:1234", 2, 1)]
    for name, value in slurm_step(4).items():
        monkeypatch.setenv(name, value)
    distributed.initialize(None, 1, None)  # --num_processes=1 inside a 4-task step
    assert joined == [("localhost:1234", 2, 1)]
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "head:99")
    distributed.initialize(None, 2, 0)
    assert joined[-1] == ("head:99", 2, 0)


def test_a_cluster_whose_size_cannot_be_read_is_refused_in_one_sentence(joined, monkeypatch):
    for name, value in slurm_step(4).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SLURM_NTASKS", "many")
    with pytest.raises(UserError, match=r"^the SlurmCluster environment is detected but its "
                       r"process count cannot be read .*pass --num_processes=1"):  # fmt: skip
        distributed.initialize(None, None, None)
    assert joined == []
