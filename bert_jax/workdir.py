"""The one owner of a workdir's layout: its paths, config.json and DONE.

    WORKDIR/checkpoints/<step>/{state,progress,meta}   the newest `max_checkpoints_to_keep`
    WORKDIR/checkpoints/<step>.damaged/                a checkpoint that failed to restore, kept
    WORKDIR/best/<step>/{state,progress,meta}          the best by `best_metric`
    WORKDIR/config.json                                the run's whole config (the latest run's)
    WORKDIR/run.lock                                   the live run's holder record (run_lock.py)
    WORKDIR/DONE                                       the run finished: its last step is saved
    WEIGHTS_DIR/params/                                a params dict alone (convert's directories)

checkpoints.py saves and restores a run's checkpoints; checkpoint_reads.py reads their weights.
"""

import json
import os

import jax
from etils import epath
from ml_collections import ConfigDict

from bert_jax.run_lock import RUN_LOCK  # noqa: F401 - part of the layout above

CHECKPOINTS_DIR = "checkpoints"
BEST_DIR = "best"
PARAMS_DIR = "params"
DONE_FILE = "DONE"
DAMAGED_SUFFIX = ".damaged"
ITEMS = ("state", "progress", "meta")
CONFIG_FILE = "config.json"


def remove_unstarted(workdir: str) -> None:
    """Removes a workdir this run created and then refused to train in (a setting found bad
    after the corpus was prepared into it): it holds no config.json and no checkpoint, so
    nothing in it is the user's."""
    root = epath.Path(workdir)
    if jax.process_index() != 0 or not root.exists():
        return
    if (root / CONFIG_FILE).exists() or (root / CHECKPOINTS_DIR).exists():
        return
    root.rmtree()


def write_config(workdir: str, config: ConfigDict) -> None:
    """The run's config as `WORKDIR/config.json`, for a person to read (process 0 only); the
    checkpoints keep their own copy, so this is never read back."""
    if jax.process_index() == 0:
        epath.Path(workdir, CONFIG_FILE).write_text(config.to_json(indent=2) + "\n")


def absolute(path: str) -> str:
    """Orbax wants absolute paths; a remote one (gs://...) already is."""
    return path if "://" in path else os.path.abspath(path)


def checkpoint_steps(root: str) -> list[int]:
    """The finalised checkpoint steps under `root`, oldest first (temporary saves have suffixes)."""
    root = epath.Path(root)  # local or remote (gs://...)
    names = [child.name for child in root.iterdir()] if root.is_dir() else []
    return sorted(int(name) for name in names if name.isdigit())


# Whether a run finished, for scripts (SLURM requeue, sweeps): WORKDIR/DONE.


def mark_done(workdir: str, step: int) -> None:
    """Records that the run's last step is trained and its checkpoint committed (process 0)."""
    if jax.process_index() == 0:
        record = {"step": step, "checkpoint": os.path.join(CHECKPOINTS_DIR, str(step))}
        epath.Path(workdir, DONE_FILE).write_text(json.dumps(record) + "\n")


def clear_done(workdir: str) -> None:
    """Removes DONE when a run continues past it (e.g. with a larger num_train_steps)."""
    done = epath.Path(workdir, DONE_FILE)
    if jax.process_index() == 0 and done.exists():
        done.unlink()


def is_workdir(directory: str) -> bool:
    """Whether `directory` looks like a training workdir."""
    return epath.Path(directory, CHECKPOINTS_DIR).is_dir()
