"""A run stopped at any moment and rerun ends exactly like an uninterrupted one (bitwise on CPU):
after SIGKILL, after SIGTERM, with its newest checkpoint damaged, with a second run started on
the same workdir, after the disk filled up during a save, and when the rerun streams its input
with another number of worker processes."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time

import numpy as np
import pytest

from conftest import (
    REPO,
    TIMING_TAGS,
    final_params,
    main_command,
    read_scalars,
    run_main,
    wait_for_line,
)

pytestmark = pytest.mark.slow
STEPS = 160  # long enough that the interrupted run is still busy when the signal arrives
SETTINGS = dict(num_train_steps=STEPS, checkpoint_every_steps=20, eval_every_steps=40)
# Throughput depends on the clock; every other logged figure must match exactly.


@pytest.fixture(scope="module")
def reference(tmp_path_factory, corpus_file):
    workdir = str(tmp_path_factory.mktemp("reference"))
    result = run_main(workdir, **SETTINGS, **{"data.corpus": corpus_file})
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory):
    from bert_jax.data.corpus import default_corpus

    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text("\n\n".join("\n".join(doc) for doc in default_corpus()[:40]) + "\n")
    return str(path)


def interrupt_at_log_line(workdir: str, corpus: str, sig: int, step: int) -> int:
    """Starts a run, sends `sig` once it has logged `step`, returns its exit code."""
    process = subprocess.Popen(
        main_command(workdir, **SETTINGS, **{"data.corpus": corpus}),
        cwd=REPO,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    marker = f"step {step}/{STEPS} "
    for line in process.stderr:
        if marker in line:
            process.send_signal(sig)
            break
    process.stderr.read()
    return process.wait(timeout=300)


def assert_same_run(reference: str, resumed: str) -> None:
    ref_params, new_params = final_params(reference), final_params(resumed)
    assert ref_params.keys() == new_params.keys()
    for name in ref_params:
        assert np.array_equal(ref_params[name], new_params[name]), name
    ref_scalars, new_scalars = read_scalars(reference), read_scalars(resumed)
    assert ref_scalars.keys() == new_scalars.keys()
    for tag in ref_scalars.keys() - TIMING_TAGS:
        assert ref_scalars[tag] == new_scalars[tag], tag
    assert sorted(ref_scalars["train/loss"]) == list(range(2, STEPS + 1, 2))


def test_sigkill_then_rerun_matches_uninterrupted_run(reference, corpus_file, tmp_path):
    workdir = str(tmp_path / "killed")
    assert interrupt_at_log_line(workdir, corpus_file, signal.SIGKILL, step=50) == -signal.SIGKILL
    checkpoints = os.path.join(workdir, "checkpoints")
    assert max(int(s) for s in os.listdir(checkpoints) if s.isdigit()) < STEPS
    # A save killed half-way leaves a temporary directory: it must be ignored and cleaned up.
    newest = max(int(s) for s in os.listdir(checkpoints) if s.isdigit())
    half_written = os.path.join(checkpoints, f"{newest + 20}.orbax-checkpoint-tmp-1234567")
    shutil.copytree(os.path.join(checkpoints, str(newest)), half_written)
    for root, _, files in os.walk(half_written):
        for name in files:
            open(os.path.join(root, name), "wb").close()  # truncated to nothing

    # Resumed with the batches read and masked in this process instead of a worker.
    result = run_main(workdir, **SETTINGS, **{"data.corpus": corpus_file, "data.num_workers": 0})
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Resuming from the checkpoint at step {newest}" in result.stderr
    assert "Preparing" not in result.stderr  # the corpus was prepared once, by the first run
    # SIGKILL left its lock behind; the kernel released it, so the rerun takes it over.
    assert "which ended without releasing it (process" in result.stderr
    assert not os.path.exists(half_written)
    assert_same_run(reference, workdir)


def test_two_runs_at_once_only_one_trains_it_stops_on_sigterm_and_the_rerun_matches(
    reference, corpus_file, tmp_path
):
    workdir = str(tmp_path / "terminated")
    command = main_command(workdir, **SETTINGS, **{"data.corpus": corpus_file})
    logs = [str(tmp_path / f"run{i}.log") for i in range(2)]
    runs = [
        subprocess.Popen(command, cwd=REPO, stderr=open(log, "w"), stdout=subprocess.DEVNULL)
        for log in logs
    ]
    deadline = time.monotonic() + 300
    while all(run.poll() is None for run in runs) and time.monotonic() < deadline:
        time.sleep(0.2)
    [loser] = [i for i, run in enumerate(runs) if run.poll() is not None]
    winner, winner_log = runs[1 - loser], logs[1 - loser]
    text = open(logs[loser]).read()
    assert runs[loser].returncode == 1, text[-3000:]
    message = text.strip().splitlines()[-1]
    assert message.startswith(f"error: {workdir} is in use by the run of process {winner.pid} "
                              f"on host {socket.gethostname()}, started "), message  # fmt: skip
    assert "Steps 0.." not in text and "Traceback" not in text  # it never trained

    wait_for_line(winner_log, "step 30/160 ", winner)
    winner.send_signal(signal.SIGTERM)
    assert winner.wait(timeout=300) == 0, open(winner_log).read()[-3000:]
    checkpoints = os.path.join(workdir, "checkpoints")
    saved = max(int(s) for s in os.listdir(checkpoints) if s.isdigit())
    assert 30 <= saved < STEPS  # saved where it stopped, not at the last periodic checkpoint (20)
    assert not os.path.exists(os.path.join(workdir, "run.lock"))  # a clean exit unlocks
    assert not os.path.exists(os.path.join(workdir, "DONE"))  # what tells "stopped" apart

    # Resumed with two worker processes instead of one.
    result = run_main(workdir, **SETTINGS, **{"data.corpus": corpus_file, "data.num_workers": 2})
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Resuming from the checkpoint at step {saved}" in result.stderr
    assert json.loads(open(os.path.join(workdir, "DONE")).read())["step"] == STEPS
    assert_same_run(reference, workdir)


def test_sigterm_with_a_long_logging_window_stops_within_a_few_steps(corpus_file, tmp_path):
    """The host stays at most two steps ahead of the device, so a stop never waits for a long
    queue of dispatched steps. Counted in steps (not seconds): from the newest step the device
    had finished when the signal came to the step saved."""
    workdir = str(tmp_path / "window")
    log = str(tmp_path / "run.log")
    settings = dict(
        num_train_steps=400, log_every_steps=1000, eval_every_steps=10,
        checkpoint_every_steps=1000, histogram_every_steps=1000, batch_size=16,
    )  # fmt: skip
    # A model wide enough that the device, not the host, sets the pace.
    wider = {"model.hidden_size": 128, "model.intermediate_size": 512, "data.corpus": corpus_file}
    process = subprocess.Popen(
        main_command(workdir, **settings, **wider),
        cwd=REPO, stderr=open(log, "w"), stdout=subprocess.DEVNULL,
    )  # fmt: skip
    wait_for_line(log, "eval at step 10:", process)
    time.sleep(2)  # not a measurement: time for the host to run ahead, if it could
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=300) == 0, open(log).read()[-3000:]
    text = open(log).read()
    [heard] = re.findall(r"SIGTERM received after the device finished step (\d+)", text)
    [stopped] = re.findall(r"Stopped at step (\d+);", text)
    assert int(heard) >= 10, text[-3000:]
    assert int(stopped) - int(heard) <= 4, (heard, stopped)
    steps = [int(s) for s in os.listdir(os.path.join(workdir, "checkpoints")) if s.isdigit()]
    assert steps == [int(stopped)]


def data_files(directory: str) -> list[str]:
    """The files of a checkpoint item that hold array data (OCDBT's d/ directories)."""
    files = [os.path.join(root, name) for root, _, names in os.walk(directory) for name in names]
    return sorted(f for f in files if os.sep + "d" + os.sep in f and os.path.getsize(f) > 1)


def test_damaged_newest_checkpoint_is_moved_aside_and_the_run_still_ends_exactly(
    reference, corpus_file, tmp_path, capfd
):
    from bert_jax.checkpoint_reads import read_checkpoint
    from bert_jax.convert.load import load_weights

    workdir = str(tmp_path / "damaged")
    shutil.copytree(reference, workdir)
    os.remove(os.path.join(workdir, "DONE"))
    newest = os.path.join(workdir, "checkpoints", str(STEPS))
    # Every data file of the state cut in half: the params are damaged whichever file holds them.
    state_files = data_files(os.path.join(newest, "state"))
    for path in state_files:
        os.truncate(path, os.path.getsize(path) // 2)
    damaged = state_files[0]

    # init_from of such a workdir reads the one before, without a traceback.
    capfd.readouterr()
    weights = load_weights(workdir)
    _, older = read_checkpoint(os.path.join(reference, "checkpoints", str(STEPS - 20)))
    np.testing.assert_array_equal(
        weights.params["bert"]["embeddings"]["word"]["embedding"],
        older["bert"]["embeddings"]["word"]["embedding"],
    )
    assert "Traceback" not in capfd.readouterr().err

    reruns = [run_main(workdir, **SETTINGS, **{"data.corpus": corpus_file}) for _ in range(2)]
    for result, resumed in zip(reruns, (STEPS - 20, STEPS), strict=True):
        assert result.returncode == 0, result.stderr[-3000:]
        assert "Traceback" not in result.stderr
        assert f"Resuming from the checkpoint at step {resumed}." in result.stderr
    moved = os.path.join(workdir, "checkpoints", f"{STEPS}.damaged")
    assert f"Checkpoint at step {STEPS} is damaged (" in reruns[0].stderr
    assert f"moved it to {moved}; continuing from step {STEPS - 20}" in reruns[0].stderr
    assert "is damaged" not in reruns[1].stderr and "moved it to" not in reruns[1].stderr
    assert os.path.exists(damaged.replace(newest, moved))  # kept, never deleted
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == [
        str(STEPS - 40), str(STEPS - 20), str(STEPS), f"{STEPS}.damaged"
    ]  # fmt: skip
    assert_same_run(reference, workdir)


def test_rerun_of_a_finished_run_changes_nothing(reference, corpus_file):
    before = final_params(reference)
    result = run_main(reference, **SETTINGS, **{"data.corpus": corpus_file})
    assert result.returncode == 0, result.stderr[-3000:]
    after = final_params(reference)
    assert all(np.array_equal(before[k], after[k]) for k in before)


@pytest.fixture
def small_disk(tmp_path):
    """A 24 MiB tmpfs of its own (needs root, as on this project's CI machine)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.decode().strip()}); run as root")
    yield str(mount)
    subprocess.run(["umount", "-l", str(mount)], check=True)


def test_disk_full_during_a_save_stops_in_one_sentence_and_a_rerun_with_space_continues(
    reference, corpus_file, small_disk
):
    workdir = os.path.join(small_disk, "run")
    # The reference's checkpoints up to step 120 (with their best): as if stopped there.
    shutil.copytree(reference, workdir, ignore=shutil.ignore_patterns("events.*", "DONE"))
    for step in ("140", "160"):
        shutil.rmtree(os.path.join(workdir, "checkpoints", step))
    # Leave 500 kB: enough for the lock and 20 steps of event files, not for a checkpoint
    # (~850 kB, most of it the tokenizer and the state).
    ballast = os.path.join(small_disk, "ballast")
    with open(ballast, "wb") as file:
        file.write(b"\0" * (shutil.disk_usage(small_disk).free - 500_000))

    full = run_main(workdir, **SETTINGS, **{"data.corpus": corpus_file})
    assert full.returncode == 1, full.stderr[-3000:]
    assert "Traceback" not in full.stderr, full.stderr[-3000:]
    message = full.stderr.strip().splitlines()[-1]
    assert re.fullmatch(
        r"error: Saving the checkpoint of step 140 to \S+ failed \(.*\); the checkpoint of "
        r"step 120 is intact; free space or make the workdir writable, then rerun the same "
        r"command to continue\.",
        message,
    ), full.stderr[-3000:]
    assert "space" in message.split("failed (")[1].lower(), message
    checkpoints = os.path.join(workdir, "checkpoints")
    assert sorted(s for s in os.listdir(checkpoints) if s.isdigit()) == ["120"]

    os.remove(ballast)
    result = run_main(workdir, **SETTINGS, **{"data.corpus": corpus_file})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Resuming from the checkpoint at step 120." in result.stderr
    assert sorted(os.listdir(checkpoints)) == ["120", "140", "160"]  # the half-save is gone
    ref_params, new_params = final_params(reference), final_params(workdir)
    assert all(np.array_equal(ref_params[k], new_params[k]) for k in ref_params)


def test_read_only_workdir_is_one_sentence_before_anything_runs(corpus_file, small_disk):
    subprocess.run(["mount", "-o", "remount,ro", small_disk], check=True)
    workdir = os.path.join(small_disk, "run")
    result = run_main(workdir, **{"data.corpus": corpus_file})
    assert result.returncode == 1, result.stderr[-3000:]
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: --workdir={workdir} cannot be written (Read-only file system); choose a "
        "writable directory or free space."
    )
