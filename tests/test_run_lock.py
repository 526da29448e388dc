"""One run per workdir: the lock refuses a live holder by name and takes over a dead one's."""

import json
import os
import socket
import subprocess
import sys

import pytest

from bert_jax.errors import UserError
from bert_jax.run_lock import RunLock, hold

HOLD_IN_CHILD = """
import sys, time
from bert_jax.run_lock import RunLock
lock = RunLock(sys.argv[1]); lock.acquire(); print("held", flush=True)
time.sleep(float(sys.argv[2]))
if sys.argv[3] == "release":
    lock.release()
"""


def child(workdir: str, seconds: float, release: bool) -> subprocess.Popen:
    """A process that takes the lock, says so, waits, and exits (releasing it, or not)."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD_IN_CHILD, workdir, str(seconds), "release" if release else ""],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout.readline() == "held\n"
    return process


def test_a_live_holder_is_refused_by_name_and_a_released_lock_is_free(tmp_path):
    holder = child(str(tmp_path), 60, release=True)
    try:
        with pytest.raises(UserError) as refused:
            RunLock(str(tmp_path)).acquire()
        message = str(refused.value)
        assert f"process {holder.pid} on host {socket.gethostname()}, started " in message
        assert str(tmp_path / "run.lock") in message and "--workdir" in message
    finally:
        holder.kill()
        holder.wait()
    # Killed without releasing: the kernel dropped its lock, so the next run takes it over.
    lock = RunLock(str(tmp_path))
    lock.acquire()
    record = json.loads((tmp_path / "run.lock").read_text())
    assert (record["host"], record["pid"]) == (socket.gethostname(), os.getpid())
    lock.release()
    assert not (tmp_path / "run.lock").exists()  # a clean exit leaves no lock behind


def test_a_dead_holders_lock_is_taken_over_with_a_warning(tmp_path, caplog):
    finished = child(str(tmp_path), 0, release=False)
    finished.wait()
    assert (tmp_path / "run.lock").exists()  # left behind, as after SIGKILL
    with caplog.at_level("WARNING"):
        lock = RunLock(str(tmp_path))
        lock.acquire()
    assert f"from the run of process {finished.pid} on host" in caplog.text
    assert f"(process {finished.pid} is gone)" in caplog.text
    lock.release()


def test_lease_refuses_a_fresh_holder_takes_a_stale_one_and_the_old_holder_notices(tmp_path):
    now = [1000.0]
    options = dict(lease=True, lease_seconds=60, settle_seconds=0, clock=lambda: now[0])
    first = RunLock(str(tmp_path), heartbeat_seconds=3600, **options)
    first.acquire()
    now[0] += 50
    with pytest.raises(UserError, match="is in use by the run of process"):
        RunLock(str(tmp_path), **options).acquire()
    first.renew()  # the heartbeat: the lease is fresh again for 60 s
    now[0] += 50
    with pytest.raises(UserError, match="is in use"):
        RunLock(str(tmp_path), **options).acquire()
    now[0] += 61  # no heartbeat for 61 s: the holder is gone
    second = RunLock(str(tmp_path), heartbeat_seconds=3600, **options)
    second.acquire()
    first.renew()
    assert first.lost is not None and first.lost.token == second.holder.token
    first.release()  # the old holder must not remove the new holder's lease
    assert json.loads((tmp_path / "run.lock").read_text())["token"] == second.holder.token
    second.release()
    assert not (tmp_path / "run.lock").exists()


def test_hold_removes_a_workdir_it_created_when_nothing_was_written(tmp_path):
    workdir = tmp_path / "new"
    with pytest.raises(UserError, match="data.corpus"):
        with hold(str(workdir)):
            assert (workdir / "run.lock").exists()
            raise UserError("data.corpus is empty")
    assert not workdir.exists()
    with hold(str(workdir)):
        (workdir / "events").write_text("")
    assert sorted(os.listdir(workdir)) == ["events"]
