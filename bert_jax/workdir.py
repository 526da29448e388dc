"""The one owner of a workdir's layout, and the only module that calls Orbax.

    WORKDIR/checkpoints/<step>/{state,progress,meta}   the newest `max_checkpoints_to_keep`
    WORKDIR/checkpoints/<step>.damaged/                a checkpoint that failed to restore, kept
    WORKDIR/best/<step>/{state,progress,meta}          the best by `best_metric`
    WORKDIR/config.json                                the run's whole config (the latest run's)
    WORKDIR/run.lock                                   the live run's holder record (run_lock.py)
    WORKDIR/DONE                                       the run finished: its last step is saved
    WEIGHTS_DIR/params/                                a params dict alone (convert's directories)

A checkpoint holds everything needed to continue a run: the train state (params, optimizer
state, micro-batch count), the loop's progress (data position, pending metric sums) and the run's
metadata (config, model architecture, tokenizer, what `predict` needs). "Latest" and "best" are
separate managers, so a worse eval never deletes the newest. Readers that need only the weights
(predict, convert, init_from) read the params alone, as NumPy arrays, whatever mesh wrote them.
A checkpoint that does not read is skipped for the one before it; training also moves it aside.
"""

import contextlib
import dataclasses
import gc
import json
import os
import re
import sys
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from etils import epath
from ml_collections import ConfigDict

from bert_jax.data.any_tokenizer import tokenizer_to_meta
from bert_jax.errors import UserError
from bert_jax.model import BertConfig
from bert_jax.model.config import from_run_config
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


def _absolute(path: str) -> str:
    """Orbax wants absolute paths; a remote one (gs://...) already is."""
    return path if "://" in path else os.path.abspath(path)


def _manager(directory: str, name: str, **options) -> ocp.CheckpointManager:
    # cleanup_tmp_directories: a save killed half-way leaves only a temporary directory, which is
    # removed here and never mistaken for a checkpoint. The barrier prefix keeps the two managers'
    # cross-process barriers apart when both save the same step.
    options = ocp.CheckpointManagerOptions(
        cleanup_tmp_directories=True,
        create=True,
        multiprocessing_options=ocp.options.MultiprocessingOptions(barrier_sync_key_prefix=name),
        **options,
    )
    return ocp.CheckpointManager(_absolute(directory), options=options, item_names=ITEMS)


def encode_meta(
    config_json: str, tokenizer, model_config, task_info: dict, data_fingerprint: str | None = None
) -> dict[str, str]:
    """Run metadata stored with every checkpoint, so a checkpoint alone can be used elsewhere:
    the run config, the tokenizer, the model architecture, what the task's `predict` needs, and
    the checksum of the prepared data it trained on."""
    fingerprint = {} if data_fingerprint is None else {"data_fingerprint": data_fingerprint}
    return {
        "config": config_json,
        "model": json.dumps(dataclasses.asdict(model_config)),
        "task": json.dumps(task_info),
        **tokenizer_to_meta(tokenizer),
        **fingerprint,
    }


def check_same_data(meta: dict | None, data_fingerprint: str | None, workdir: str) -> None:
    """Refuses to resume a run on prepared data other than the data its checkpoints saw."""
    saved = (meta or {}).get("data_fingerprint")
    if saved is not None and data_fingerprint is not None and saved != data_fingerprint:
        raise UserError(
            f"{workdir} was trained on other prepared data (manifest checksum {saved[:12]}..., "
            f"now {data_fingerprint[:12]}...); resume with the data it started with or choose a "
            "new --workdir."
        )


class Checkpoints:
    """`workdir/checkpoints` keeps the newest `max_to_keep`; `workdir/best` keeps the best one."""

    def __init__(self, workdir: str, *, max_to_keep: int, best_metric: str, best_mode: str):
        self.best_metric = best_metric
        self.latest = _manager(
            os.path.join(workdir, CHECKPOINTS_DIR), "latest", max_to_keep=max_to_keep
        )
        self.best = _manager(
            os.path.join(workdir, BEST_DIR),
            "best",
            max_to_keep=1,
            best_fn=lambda metrics: metrics[best_metric],
            best_mode=best_mode,
            keep_checkpoints_without_metrics=False,
        )
        self._pending: dict[int, int] = {}  # id(manager) -> the step of its save in flight

    @staticmethod
    def _args(state, progress: dict, meta: dict) -> ocp.args.Composite:
        return ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            progress=ocp.args.JsonSave(progress),
            meta=ocp.args.JsonSave(meta),
        )

    def save(self, step: int, state, progress: dict, meta: dict) -> None:
        """Starts an asynchronous save of the newest state (finished by `wait`)."""
        self._finish(self.latest)
        with self._writing(self.latest, step):
            self.latest.save(step, args=self._args(state, progress, meta), force=True)
        self._pending[id(self.latest)] = step

    def save_best(self, step: int, state, progress: dict, meta: dict, metrics: dict) -> None:
        """Offers the state as best; Orbax keeps it only if `best_metric` improved."""
        if self.best_metric not in metrics:
            raise UserError(
                f"best_metric={self.best_metric!r} is not among the eval metrics "
                f"{sorted(metrics)}; set best_metric to one of them."
            )
        if step in self.best.all_steps():
            return  # a run resumed from before a damaged checkpoint evaluates this step again
        self._finish(self.best)
        with self._writing(self.best, step):
            self.best.save(step, args=self._args(state, progress, meta), metrics=dict(metrics))
        self._pending[id(self.best)] = step

    def check(self) -> None:
        """Raises at once (one sentence) if a save in flight has already failed, so a run on a
        full disk stops at the next step instead of training on without checkpoints."""
        for manager in (self.latest, self.best):
            step = self._pending.get(id(manager))
            if step is not None:
                with self._writing(manager, step):
                    manager.check_for_errors()

    def _finish(self, manager: ocp.CheckpointManager) -> None:
        """Waits for the manager's save in flight; its failure names its own step."""
        step = self._pending.pop(id(manager), None)
        if step is not None:
            with self._writing(manager, step):
                manager.wait_until_finished()

    @contextlib.contextmanager
    def _writing(self, manager: ocp.CheckpointManager, step: int):
        """Turns a failed write (disk full, read-only, permissions) into one sentence. Orbax
        writes into a temporary directory and renames it when complete, so the newest
        committed checkpoint stays intact (the temporary one is removed at the next start)."""
        try:
            yield
        except UserError:
            raise
        except Exception as error:  # noqa: BLE001 - Orbax and TensorStore raise many types
            committed = [s for s in _steps(str(self.latest.directory)) if s != step]
            kept = (
                f"the checkpoint of step {committed[-1]} is intact"
                if committed
                else "there is no earlier checkpoint"
            )
            raise UserError(
                f"Saving the checkpoint of step {step} to {manager.directory} failed "
                f"({_reason(error)}); {kept}; free space or make the workdir writable, then "
                "rerun the same command to continue."
            ) from None

    def latest_step(self) -> int | None:
        return self.latest.latest_step()

    def reached_preemption(self, step: int) -> bool:
        """True on every host once any host of a multi-host job has been told it is preempted."""
        return self.latest.reached_preemption(step)

    def restore_latest(
        self, abstract_state, config_json: str
    ) -> tuple[int, Any, dict, dict] | None:
        """(step, state, progress, meta) of the newest checkpoint that restores, None if none.

        A checkpoint written with a config of another shape is refused with the keys that differ.
        One that fails to read (a truncated or overwritten file, a missing item) is skipped for
        an older one, and once an older one restores, the damaged ones are moved aside to
        `<step>.damaged` (never deleted), so this run can save those steps again.
        """
        _quiet_late_callbacks()
        steps = sorted(self.latest.all_steps(), reverse=True)
        damaged: list[tuple[int, str]] = []
        for step in steps:
            only_meta = ocp.args.Composite(meta=ocp.args.JsonRestore())
            try:
                meta = self.latest.restore(step, args=only_meta).meta
                differing = _shape_differences(json.loads(meta["config"]), config_json)
            except Exception as error:  # noqa: BLE001 - any failure means "try an older one"
                meta, differing, reason = None, [], _reason(error)
            if differing:
                raise UserError(
                    f"{self.latest.directory} holds checkpoints of another model "
                    f"({'; '.join(differing[:3])}); resume with the config they were written "
                    "with or choose a new --workdir."
                )
            restored = None
            if meta is not None:
                try:
                    restored = self.latest.restore(
                        step,
                        args=ocp.args.Composite(
                            state=ocp.args.StandardRestore(abstract_state),
                            progress=ocp.args.JsonRestore(),
                        ),
                    )
                except Exception as error:  # noqa: BLE001
                    reason = _reason(error)
            # Orbax leaves the failed read's futures unretrieved; collected now, asyncio's report
            # of them meets the console's filter instead of printing a traceback at exit.
            gc.collect()
            if _on_every_process(restored is not None):
                self._move_aside(damaged, step)
                return step, restored.state, restored.progress, meta
            logging.warning("Checkpoint at step %d does not restore, skipped: %s", step, reason)
            damaged.append((step, reason))
        if steps:
            raise UserError(
                f"no checkpoint in {self.latest.directory} could be restored (newest, step "
                f"{steps[0]}: {damaged[0][1]}); move them away or choose a new --workdir."
            )
        return None

    def _move_aside(self, damaged: list[tuple[int, str]], restored_step: int) -> None:
        """Renames each damaged step directory to `<step>.damaged` (process 0 only), so
        Orbax no longer lists it and a later save of that step succeeds."""
        if not damaged:
            return
        root = epath.Path(self.latest.directory)
        if jax.process_index() == 0:
            for step, reason in damaged:
                target = _move_aside(root / str(step))
                logging.warning(
                    "Checkpoint at step %d is damaged (%s): moved it to %s; continuing from "
                    "step %d.", step, reason, target, restored_step,
                )  # fmt: skip
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices("bert_jax:damaged_checkpoints_moved")
        self.latest.reload()

    def wait(self) -> None:
        """Blocks until every started save is committed."""
        self._finish(self.latest)
        self._finish(self.best)

    def close(self) -> None:
        for manager in (self.latest, self.best):
            try:
                manager.close()
            except Exception as error:  # noqa: BLE001 - a failed save was already reported
                logging.warning("Closing %s: %s", manager.directory, _reason(error))


def _reason(error: BaseException) -> str:
    """The root cause of an Orbax/TensorStore error, short enough for one sentence: the
    operating system's words where there are some (TensorStore appends the errno)."""
    while error.__cause__ is not None:
        error = error.__cause__
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    text = str(error)
    if code := re.search(r"os_error_code='?(\d+)", text):
        return os.strerror(int(code.group(1)))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    text = lines[0] if lines else type(error).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _on_every_process(ok: bool) -> bool:
    """Whether `ok` holds on every process (all must take the same branch of a restore)."""
    if jax.process_count() == 1:
        return ok
    from jax.experimental import multihost_utils

    return bool(np.all(multihost_utils.process_allgather(np.asarray(ok, np.int32))))


def _move_aside(path: epath.Path) -> epath.Path:
    """`path` renamed to `<name>.damaged` (or `.damaged-2`, ...); a remote one is copied."""
    target = path.parent / (path.name + DAMAGED_SUFFIX)
    count = 1
    while target.exists():
        count += 1
        target = path.parent / f"{path.name}{DAMAGED_SUFFIX}-{count}"
    if "://" not in str(path):
        os.rename(path, target)
        return target
    for source in path.rglob("*"):  # object stores have no directory rename
        if source.is_file():
            destination = target / source.relative_to(path)
            destination.parent.mkdir(parents=True, exist_ok=True)
            source.copy(destination)
    path.rmtree()
    return target


def _shape_differences(saved_config: dict, config_json: str) -> list[str]:
    """Settings that shape the train state (model, sentence task, optimizer) and changed."""
    saved, current = _flatten(saved_config), _flatten(json.loads(config_json))
    keys = [k for k in sorted(saved) if k.startswith(("model.", "sentence_task"))]
    keys += ["optimizer.name", "optimizer.grad_accum_steps"]
    return [
        f"{key}={saved.get(key)!r} there, {current.get(key)!r} here"
        for key in keys
        if saved.get(key) != current.get(key)
    ]


def _flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat |= _flatten(value, f"{prefix}{key}.")
        else:
            flat[prefix + key] = value
    return flat


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


# Reading a workdir for its weights (predict, convert, init_from).


def is_workdir(directory: str) -> bool:
    """Whether `directory` looks like a training workdir."""
    return epath.Path(directory, CHECKPOINTS_DIR).is_dir()


def _steps(root: str) -> list[int]:
    """The finalised checkpoint steps under `root`, oldest first (temporary saves have suffixes)."""
    root = epath.Path(root)  # local or remote (gs://...)
    names = [child.name for child in root.iterdir()] if root.is_dir() else []
    return sorted(int(name) for name in names if name.isdigit())


def newest_step_dir(workdir: str, which: str = CHECKPOINTS_DIR) -> str:
    """The newest checkpoint directory of `which` (`checkpoints` or `best`)."""
    return _step_dirs(workdir, which)[0]


def _step_dirs(workdir: str, which: str) -> list[str]:
    """The checkpoint directories of `which`, newest first; at least one."""
    root = os.path.join(workdir, which)
    steps = _steps(root)
    if not steps:
        raise UserError(f"{root} holds no checkpoint; train first or point at another workdir.")
    return [_absolute(os.path.join(root, str(step))) for step in reversed(steps)]


def read_meta(step_dir: str) -> dict:
    """The run metadata of one checkpoint directory."""
    return ocp.Checkpointer(ocp.JsonCheckpointHandler()).restore(os.path.join(step_dir, "meta"))


def latest_meta(workdir: str) -> dict | None:
    """The metadata of the workdir's newest readable checkpoint, None before the first one."""
    for step in reversed(_steps(os.path.join(workdir, CHECKPOINTS_DIR))):
        try:
            return read_meta(os.path.join(workdir, CHECKPOINTS_DIR, str(step)))
        except Exception as error:  # noqa: BLE001 - an unreadable newest: fall back to older
            logging.warning(
                "Checkpoint at step %d has no readable meta, skipped: %s", step, _reason(error)
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
            reason = _reason(error)
            logging.warning("Checkpoint %s does not read, skipped: %s", step_dir, reason)
    raise UserError(
        f"no checkpoint in {os.path.join(workdir, which)} could be read (the newest, "
        f"{step_dirs[0]}: {reason}); point at another workdir or checkpoint."
    )


def _read_numpy_params(path: str, subtree: str | None) -> dict:
    """The params (of the train state at `path`, or the params tree itself) as NumPy arrays.

    Only the params are read, never the optimizer state, and as host arrays, so a checkpoint
    written on any mesh reads on any number of devices."""
    _quiet_late_callbacks()
    checkpointer = ocp.PyTreeCheckpointer()
    metadata = checkpointer.metadata(path).item_metadata
    tree = metadata[subtree] if subtree else metadata
    as_numpy = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)
    if subtree:
        args = ocp.args.PyTreeRestore(
            item={subtree: tree}, restore_args={subtree: as_numpy}, partial_restore=True
        )
        return checkpointer.restore(path, args=args)[subtree]
    return checkpointer.restore(path, args=ocp.args.PyTreeRestore(item=tree, restore_args=as_numpy))


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
    checkpointer.save(_absolute(os.path.join(directory, PARAMS_DIR)), params)
    checkpointer.wait_until_finished()


def has_params(directory: str) -> bool:
    """Whether `directory` holds a params tree written by `save_params`."""
    return os.path.isdir(os.path.join(directory, PARAMS_DIR))


def load_params(directory: str) -> dict:
    """The params written by `save_params`, as NumPy arrays."""
    return _read_numpy_params(_absolute(os.path.join(directory, PARAMS_DIR)), None)


def _quiet_late_callbacks() -> None:
    """A failed read leaves TensorStore callbacks aimed at Orbax's closed event loop; Python
    reports each as an 'unraisable' traceback. They carry no information beyond the error
    already raised, so they are dropped (every other unraisable report still goes through)."""
    previous = sys.unraisablehook
    if getattr(previous, "_bert_jax", False):
        return

    def hook(report):
        value = report.exc_value
        if isinstance(value, RuntimeError) and str(value) == "Event loop is closed":
            return
        previous(report)

    hook._bert_jax = True
    sys.unraisablehook = hook
