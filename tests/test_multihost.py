"""Two local processes x 4 CPU devices, joined by jax.distributed on localhost, behave as one,
and stop together when only one of them is told to stop."""

import json
import os
import re
import signal
import subprocess

import numpy as np
import pytest

from conftest import REPO, final_params, free_port, main_command, run_main, wait_for_line

pytestmark = pytest.mark.slow
RUN = {
    "num_train_steps": 20,
    "batch_size": 16,
    "data.eval_batch_size": 16,
    "checkpoint_every_steps": 10,
    "eval_every_steps": 10,
}


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


@pytest.fixture(scope="module")
def pair_reference(tmp_path_factory) -> str:
    """An uninterrupted run of the two processes."""
    workdir = str(tmp_path_factory.mktemp("pair_reference"))
    logs = [os.path.join(workdir + "_log", f"process{i}.log") for i in range(2)]
    os.makedirs(os.path.dirname(logs[0]))
    codes = [process.wait(timeout=600) for process in start_pair(workdir, logs)]
    assert codes == [0, 0], "".join(open(log).read()[-3000:] for log in logs)
    return workdir


def assert_bitwise_equal(expected: dict, got: dict) -> None:
    assert expected.keys() == got.keys()
    for name in expected:
        assert np.array_equal(expected[name], got[name]), name


def test_two_processes_train_resume_and_match_one_process(tmp_path, pair_reference):
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
    assert all(" in 2 processes." in text for text in texts)

    expected, got = final_params(reference), final_params(workdir)
    assert expected.keys() == got.keys()
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-5, atol=1e-6, err_msg=name)
    assert_bitwise_equal(final_params(pair_reference), got)


def test_sigterm_to_one_process_stops_both_at_the_same_step_and_rerun_is_exact(
    tmp_path, pair_reference
):
    workdir = str(tmp_path / "two_processes")
    logs = [str(tmp_path / f"process{i}.log") for i in range(2)]
    first = start_pair(workdir, logs)
    wait_for_line(logs[1], "step 2/20 ", first[1])
    first[1].send_signal(signal.SIGTERM)  # process 1 only: process 0 is never told
    codes = [process.wait(timeout=300) for process in first]
    texts = [open(log).read() for log in logs]
    assert codes == [0, 0], texts[0][-3000:] + texts[1][-3000:]
    stops = [re.findall(r"Stopped at step (\d+);", text) for text in texts]
    assert stops[0] == stops[1] and len(stops[0]) == 1, stops
    stopped = int(stops[0][0])
    # Process 1 heard the signal after the device finished some step; the vote that all
    # processes read reaches them within a few steps of that.
    [heard] = re.findall(r"SIGTERM received after the device finished step (\d+)", texts[1])
    assert "SIGTERM received" not in texts[0]
    assert 0 <= stopped - int(heard) <= 6 and stopped < 20, (heard, stopped)
    steps = [int(s) for s in os.listdir(os.path.join(workdir, "checkpoints")) if s.isdigit()]
    assert max(steps) == stopped
    assert not os.path.exists(os.path.join(workdir, "DONE"))

    second = start_pair(workdir, logs)
    codes = [process.wait(timeout=600) for process in second]
    texts = [open(log).read() for log in logs]
    assert codes == [0, 0], texts[0][-3000:] + texts[1][-3000:]
    assert all(f"Resuming from the checkpoint at step {stopped}" in text for text in texts)
    assert json.loads(open(os.path.join(workdir, "DONE")).read())["step"] == 20
    assert_bitwise_equal(final_params(pair_reference), final_params(workdir))
