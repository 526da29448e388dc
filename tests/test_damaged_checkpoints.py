"""A damaged newest checkpoint: training skips it for the one before and moves it aside, so the
same step can be saved again; readers (predict, convert, init_from) fall back without changing
the workdir."""

import json
import logging
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bert_jax.checkpoint_reads import read_newest_checkpoint
from bert_jax.checkpoints import Checkpoints
from bert_jax.errors import UserError
from bert_jax.workdir import CHECKPOINTS_DIR

CONFIG = json.dumps({"model": {"hidden_size": 4}, "sentence_task": "nsp", "optimizer": {}})


def state_at(step: int) -> dict:
    params = {"w": jnp.full((64, 64), float(step)), "b": jnp.full((4,), float(step))}
    return {"micro_step": jnp.int32(step), "params": params, "opt_state": {"mu": params}}


def abstract_state():
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), state_at(0))


def open_checkpoints(workdir: str) -> Checkpoints:
    return Checkpoints(workdir, max_to_keep=3, best_metric="eval/loss", best_mode="min")


@pytest.fixture
def workdir(tmp_path) -> str:
    """Checkpoints of steps 1, 2, 3."""
    checkpoints = open_checkpoints(str(tmp_path))
    for step in (1, 2, 3):
        checkpoints.save(step, state_at(step), {"data": {"step": step}}, {"config": CONFIG})
    checkpoints.wait()
    checkpoints.close()
    return str(tmp_path)


def largest_file(directory: str) -> str:
    files = [os.path.join(root, name) for root, _, names in os.walk(directory) for name in names]
    return max(files, key=os.path.getsize)


def truncate(step_dir: str) -> str:
    path = largest_file(os.path.join(step_dir, "state"))
    os.truncate(path, os.path.getsize(path) // 2)
    return path


def overwrite(step_dir: str) -> str:
    path = largest_file(os.path.join(step_dir, "state"))
    with open(path, "r+b") as file:
        file.write(b"\xff" * os.path.getsize(path))
    return path


def remove_item(step_dir: str) -> str:
    path = os.path.join(step_dir, "progress")
    for name in os.listdir(path):
        os.remove(os.path.join(path, name))
    os.rmdir(path)
    return path


@pytest.mark.parametrize("damage", [truncate, overwrite, remove_item])
def test_training_moves_the_damaged_newest_aside_and_saves_that_step_again(workdir, damage, caplog):
    root = os.path.join(workdir, CHECKPOINTS_DIR)
    damaged_file = damage(os.path.join(root, "3"))
    checkpoints = open_checkpoints(workdir)
    with caplog.at_level("WARNING"):
        step, state, progress, _ = checkpoints.restore_latest(abstract_state(), CONFIG)
    assert (step, progress) == (2, {"data": {"step": 2}})
    np.testing.assert_array_equal(state["params"]["w"], np.full((64, 64), 2.0))
    assert "Checkpoint at step 3 is damaged (" in caplog.text
    assert f"moved it to {os.path.join(root, '3.damaged')}; continuing from step 2" in caplog.text
    # Kept, never deleted; no longer a step for Orbax; the step can be written again.
    moved = damaged_file.replace(os.path.join(root, "3"), os.path.join(root, "3.damaged"))
    assert os.path.exists(moved) or damage is remove_item
    assert sorted(checkpoints.latest.all_steps()) == [1, 2]
    checkpoints.save(3, state_at(3), {"data": {"step": 3}}, {"config": CONFIG})
    checkpoints.wait()
    assert checkpoints.restore_latest(abstract_state(), CONFIG)[0] == 3
    checkpoints.close()


def test_readers_fall_back_to_the_older_checkpoint_and_leave_the_workdir_alone(
    workdir, capfd, caplog
):
    root = os.path.join(workdir, CHECKPOINTS_DIR)
    truncate(os.path.join(root, "3"))
    before = sorted(os.listdir(root))
    with caplog.at_level("WARNING"):
        _, params = read_newest_checkpoint(workdir)
    np.testing.assert_array_equal(params["w"], np.full((64, 64), 2.0))
    assert f"Checkpoint {os.path.join(root, '3')} does not read, skipped:" in caplog.text
    assert sorted(os.listdir(root)) == before
    assert "Traceback" not in capfd.readouterr().err


def test_reading_a_sound_checkpoint_warns_of_nothing(workdir, caplog):
    with caplog.at_level("WARNING"):
        _, params = read_newest_checkpoint(workdir)
    np.testing.assert_array_equal(params["w"], np.full((64, 64), 3.0))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


def test_nothing_restores_is_one_sentence_and_moves_nothing(workdir):
    root = os.path.join(workdir, CHECKPOINTS_DIR)
    for step in ("1", "2", "3"):
        truncate(os.path.join(root, step))
    with pytest.raises(UserError, match=r"no checkpoint in .* could be restored \(newest, step 3:"):
        open_checkpoints(workdir).restore_latest(abstract_state(), CONFIG)
    assert sorted(os.listdir(root)) == ["1", "2", "3"]  # a systematic failure renames nothing
    with pytest.raises(UserError, match="could be read"):
        read_newest_checkpoint(workdir)
