"""launch/local_multiprocess.sh, a real two-process run with it, and every launcher executable."""

import os
import signal
import sys

import pytest

from conftest import CONFIG, REPO, TINY, free_port, read_scalars
from launch_tools import LAUNCH, launch

# --- launch/local_multiprocess.sh ---------------------------------------------------------------


def test_local_multiprocess_dry_run_prints_one_command_per_process():
    result = launch(
        "local_multiprocess.sh", "--dry-run", "--devices-per-process=4", "--port", "1234",
        "--log-dir=out", "2", "--config=configs/pretrain.py", "--workdir=runs/two",
        env={"PYTHON": "python3", "XLA_FLAGS": "", "JAX_PLATFORMS": ""},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "XLA_FLAGS=--xla_force_host_platform_device_count=4 JAX_PLATFORMS=cpu python3 -m "
        "bert_jax.main --config=configs/pretrain.py --workdir=runs/two "
        f"--coordinator_address=localhost:1234 --num_processes=2 --process_id={i} "
        f"> out/process-{i}.log 2>&1 &"
        for i in range(2)
    ] + ["wait"]


def stopped_now(pid: int) -> bool:
    """Kills a process of this test that should no longer exist; True if it did exist."""
    try:
        os.kill(pid, signal.SIGKILL)
        return True
    except ProcessLookupError:
        return False


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "missing N, the number of processes"),
        (["0"], "N must be a positive number of processes, not '0'"),
        (["--devices-per-process=x", "2"], "--devices-per-process must be positive, not 'x'"),
        (["--bogus", "2"], "unknown option '--bogus' before N"),
    ],
)
def test_local_multiprocess_usage_errors(args, message):
    result = launch("local_multiprocess.sh", *args)
    assert result.returncode == 2
    assert result.stderr.startswith(f"local_multiprocess.sh: error: {message}")


def test_local_multiprocess_stops_the_others_when_one_fails(tmp_path):
    """A process that fails leaves the others waiting for it: the script must end them."""
    python, waiting = tmp_path / "python", tmp_path / "waiting"
    python.write_text(
        "#!/bin/bash\n"
        'case " $* " in *" --process_id=1 "*) echo "process 1 breaks" >&2; exit 3 ;; esac\n'
        f"echo $$ >> {waiting}\n"
        "exec sleep 600\n"
    )
    python.chmod(0o755)
    try:
        result = launch(
            "local_multiprocess.sh", f"--log-dir={tmp_path}/logs", "--port=1", "3", "--workdir=x",
            env={"PYTHON": str(python)}, timeout=60,
        )  # fmt: skip
    finally:
        pids = [int(pid) for pid in waiting.read_text().split()]
        alive = [pid for pid in pids if stopped_now(pid)]
    assert len(pids) == 2 and alive == []
    assert result.returncode == 1
    assert "process 1 failed with status 3" in result.stderr
    assert "process 1 breaks" in result.stderr  # the end of its log
    assert "1 of 3 processes failed" in result.stderr


@pytest.mark.slow
def test_local_multiprocess_trains_two_processes_of_two_devices(tmp_path):
    workdir, logs = tmp_path / "run", tmp_path / "logs"
    settings = TINY | {
        "num_train_steps": 8,
        "eval_every_steps": 8,
        "checkpoint_every_steps": 4,
        "histogram_every_steps": 1000,
    }
    flags = [f"--config.{key}={value}" for key, value in settings.items()]
    port = free_port()
    result = launch(
        "local_multiprocess.sh", "--devices-per-process=2", f"--port={port}",
        f"--log-dir={logs}", "2", f"--config={CONFIG}", f"--workdir={workdir}", *flags,
        env={"PYTHON": sys.executable}, cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + (logs / "process-0.log").read_text()[-3000:]
    assert sorted(os.listdir(workdir / "checkpoints")) == ["4", "8"]
    for i in range(2):
        log = (logs / f"process-{i}.log").read_text()
        assert (
            "Steps 1..8 (from the start), batches of 8 × 32 tokens, on 4 devices (data 4) "
            "in 2 processes." in log
        )
    assert list(read_scalars(str(workdir))["eval/mlm_loss"]) == [8]
    assert "all 2 processes finished" in result.stdout


@pytest.mark.parametrize(
    "name", ["tpu_vm.sh", "slurm_submit.sh", "slurm.sbatch", "local_multiprocess.sh"]
)
def test_launch_scripts_are_executable(name):
    assert os.access(os.path.join(LAUNCH, name), os.X_OK)
