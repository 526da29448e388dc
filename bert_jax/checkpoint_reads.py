"""Reading the weights of a workdir or a weights directory (predict, convert, init_from, the
distillation teacher): the params alone, as NumPy arrays, whatever mesh wrote them. A checkpoint
that does not read is skipped for the one before it and left where it is: a reader never changes
a workdir another run may be training in."""

import contextlib
import json
import logging as py_logging
import os

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from ml_collections import ConfigDict

from bert_jax import orbax_errors
from bert_jax.errors import UserError
from bert_jax.model import BertConfig
from bert_jax.model.config import from_run_config
from bert_jax.workdir import CHECKPOINTS_DIR, PARAMS_DIR, absolute, checkpoint_steps


def newest_step_dir(workdir: str, which: str = CHECKPOINTS_DIR) -> str:
    """The newest checkpoint directory of `which` (`checkpoints` or `best`)."""
    return _step_dirs(workdir, which)[0]


def _step_dirs(workdir: str, which: str) -> list[str]:
    """The checkpoint directories of `which`, newest first; at least one."""
    root = os.path.join(workdir, which)
    steps = checkpoint_steps(root)
    if not steps:
        raise UserError(f"{root} holds no checkpoint; train first or point at another workdir.")
    return [absolute(os.path.join(root, str(step))) for step in reversed(steps)]


def read_meta(step_dir: str) -> dict:
    """The run metadata of one checkpoint directory."""
    return ocp.Checkpointer(ocp.JsonCheckpointHandler()).restore(os.path.join(step_dir, "meta"))


def latest_meta(workdir: str) -> dict | None:
    """The metadata of the workdir's newest readable checkpoint, None before the first one."""
    for step in reversed(checkpoint_steps(os.path.join(workdir, CHECKPOINTS_DIR))):
        try:
            return read_meta(os.path.join(workdir, CHECKPOINTS_DIR, str(step)))
        except Exception as error:  # noqa: BLE001 - an unreadable newest: fall back to older
            logging.warning(
                "Checkpoint at step %d has no readable meta, skipped: %s",
                step,
                orbax_errors.reason(error),
            )
    return None


def read_newest_checkpoint(workdir: str, which: str = CHECKPOINTS_DIR) -> tuple[dict, dict]:
    """(meta, params as NumPy arrays) of the newest checkpoint of `which` that reads.

    A damaged one is skipped with a warning, and left where it is: a reader never changes a
    workdir another run may be training in."""
    step_dirs = _step_dirs(workdir, which)
    for step_dir in step_dirs:
        try:
            return read_checkpoint(step_dir)
        except Exception as error:  # noqa: BLE001 - any failure means "try an older one"
            reason = orbax_errors.reason(error)
            logging.warning("Checkpoint %s does not read, skipped: %s", step_dir, reason)
    raise UserError(
        f"no checkpoint in {os.path.join(workdir, which)} could be read (the newest, "
        f"{step_dirs[0]}: {reason}); point at another workdir or checkpoint."
    )


def _no_missing_step_metadata_notice(record: py_logging.LogRecord) -> bool:
    return not str(record.msg).startswith("Metadata file does not exist")


@contextlib.contextmanager
def _item_read():
    """Orbax looks for the step's metadata file inside the item directory it is asked to read
    (`<step>/state`); the file is one level up, so its 'does not exist' warning says nothing."""
    logger = logging.get_absl_logger()
    logger.addFilter(_no_missing_step_metadata_notice)
    try:
        yield
    finally:
        logger.removeFilter(_no_missing_step_metadata_notice)


def _read_numpy_params(path: str, subtree: str | None) -> dict:
    """The params (of the train state at `path`, or the params tree itself) as NumPy arrays.

    Only the params are read, never the optimizer state, and as host arrays, so a checkpoint
    written on any mesh reads on any number of devices."""
    orbax_errors.quiet_late_callbacks()
    checkpointer = ocp.PyTreeCheckpointer()
    with _item_read():
        metadata = checkpointer.metadata(path).item_metadata
        tree = metadata[subtree] if subtree else metadata
        as_numpy = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)
        if subtree:
            args = ocp.args.PyTreeRestore(
                item={subtree: tree}, restore_args={subtree: as_numpy}, partial_restore=True
            )
            return checkpointer.restore(path, args=args)[subtree]
        args = ocp.args.PyTreeRestore(item=tree, restore_args=as_numpy)
        return checkpointer.restore(path, args=args)


def read_checkpoint(step_dir: str) -> tuple[dict, dict]:
    """(meta, params as NumPy arrays) of one checkpoint directory."""
    return read_meta(step_dir), _read_numpy_params(os.path.join(step_dir, "state"), "params")


def model_config_of(meta: dict, params: dict) -> BertConfig:
    """The architecture a checkpoint was trained with, as its run built it."""
    if "model" in meta:
        return BertConfig(**json.loads(meta["model"]))
    vocab_size = params["bert"]["embeddings"]["word"]["embedding"].shape[0]
    try:
        return from_run_config(ConfigDict(json.loads(meta["config"])), vocab_size)
    except (AttributeError, KeyError) as error:
        raise UserError(
            f"The checkpoint's run config lacks {error}; it was written by another version of "
            "bert_jax."
        ) from None


# A weights directory's params (convert's format).


def save_params(directory: str, params: dict) -> None:
    """Writes `params` (a nested dict of arrays) as `directory/params`."""
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(absolute(os.path.join(directory, PARAMS_DIR)), params)
    checkpointer.wait_until_finished()


def has_params(directory: str) -> bool:
    """Whether `directory` holds a params tree written by `save_params`."""
    return os.path.isdir(os.path.join(directory, PARAMS_DIR))


def load_params(directory: str) -> dict:
    """The params written by `save_params`, as NumPy arrays."""
    return _read_numpy_params(absolute(os.path.join(directory, PARAMS_DIR)), None)
