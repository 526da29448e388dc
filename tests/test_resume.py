"""A run stopped at any moment and rerun ends exactly like an uninterrupted one (bitwise on CPU),
also when the rerun streams its input with another number of worker processes."""

import os
import shutil
import signal
import subprocess

import numpy as np
import pytest

from conftest import REPO, final_params, main_command, read_scalars, run_main

pytestmark = pytest.mark.slow
STEPS = 160  # long enough that the interrupted run is still busy when the signal arrives
SETTINGS = dict(num_train_steps=STEPS, checkpoint_every_steps=20, eval_every_steps=40)
# Throughput depends on the clock; every other logged figure must match exactly.
TIMING_TAGS = {"train/tokens_per_sec", "train/tokens_per_sec_per_device", "train/mfu"}


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
    assert not os.path.exists(half_written)
    assert_same_run(reference, workdir)


def test_sigterm_saves_exits_cleanly_and_rerun_matches(reference, corpus_file, tmp_path):
    workdir = str(tmp_path / "terminated")
    assert interrupt_at_log_line(workdir, corpus_file, signal.SIGTERM, step=30) == 0
    checkpoints = os.path.join(workdir, "checkpoints")
    saved = max(int(s) for s in os.listdir(checkpoints) if s.isdigit())
    assert 30 <= saved < STEPS  # saved where it stopped, not at the last periodic checkpoint (20)

    # Resumed with two worker processes instead of one.
    result = run_main(workdir, **SETTINGS, **{"data.corpus": corpus_file, "data.num_workers": 2})
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Resuming from the checkpoint at step {saved}" in result.stderr
    assert_same_run(reference, workdir)


def test_rerun_of_a_finished_run_changes_nothing(reference, corpus_file):
    before = final_params(reference)
    result = run_main(reference, **SETTINGS, **{"data.corpus": corpus_file})
    assert result.returncode == 0, result.stderr[-3000:]
    after = final_params(reference)
    assert all(np.array_equal(before[k], after[k]) for k in before)
