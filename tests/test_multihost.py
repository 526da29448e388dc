"""Two local processes x 4 CPU devices, joined by jax.distributed on localhost, behave as one."""

import os
import signal
import socket
import subprocess
import time

import numpy as np
import pytest

from conftest import REPO, final_params, main_command, run_main

pytestmark = pytest.mark.slow
RUN = {
    "num_train_steps": 20,
    "batch_size": 16,
    "data.eval_batch_size": 16,
    "checkpoint_every_steps": 10,
    "eval_every_steps": 10,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def start_pair(workdir: str, logs: list[str]) -> list[subprocess.Popen]:
    """Both processes of a 2 x 4-device job, each logging to its own file."""
    port, env = free_port(), os.environ | {"XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    return [
        subprocess.Popen(
            main_command(workdir, **RUN)
            + [f"--coordinator_address=localhost:{port}", "--num_processes=2", f"--process_id={i}"],
            cwd=REPO,
            env=env,
            stderr=open(logs[i], "w"),
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        for i in range(2)
    ]


def wait_for_line(path: str, marker: str, process: subprocess.Popen) -> None:
    while process.poll() is None:
        with open(path) as f:
            if marker in f.read():
                return
        time.sleep(0.2)
    raise AssertionError(f"the process ended before logging {marker!r}")


def test_two_processes_train_resume_and_match_one_process(tmp_path):
    reference = str(tmp_path / "one_process")
    result = run_main(
        reference, env={"XLA_FLAGS": "--xla_force_host_platform_device_count=8"}, **RUN
    )
    assert result.returncode == 0, result.stderr[-3000:]

    workdir = str(tmp_path / "two_processes")
    logs = [str(tmp_path / f"process{i}.log") for i in range(2)]
    first = start_pair(workdir, logs)
    wait_for_line(logs[0], "step 14/20 ", first[0])  # past the checkpoint at step 10
    for process in first:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    steps = [int(s) for s in os.listdir(os.path.join(workdir, "checkpoints")) if s.isdigit()]
    assert max(steps) == 10, steps

    second = start_pair(workdir, logs)
    codes = [process.wait(timeout=600) for process in second]
    texts = [open(log).read() for log in logs]
    assert codes == [0, 0], texts[0][-3000:] + texts[1][-3000:]
    assert all("Resuming from the checkpoint at step 10" in text for text in texts)
    assert all("(2 processes)" in text for text in texts)

    expected, got = final_params(reference), final_params(workdir)
    assert expected.keys() == got.keys()
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-5, atol=1e-6, err_msg=name)
