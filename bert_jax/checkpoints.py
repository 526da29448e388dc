"""Saving and restoring a run's checkpoints with Orbax: `WORKDIR/checkpoints` (the newest) and
`WORKDIR/best` (the best by `best_metric`), as workdir.py lays them out.

A checkpoint holds everything needed to continue a run: the train state (params, optimizer
state, micro-batch count), the loop's progress (data position, pending metric sums) and the run's
metadata (config, model architecture, tokenizer, what `predict` needs). "Latest" and "best" are
separate managers, so a worse eval never deletes the newest. A checkpoint that does not restore
is skipped for the one before it and moved aside to `<step>.damaged`.
"""

import contextlib
import dataclasses
import gc
import json
import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from etils import epath
from flax import traverse_util

from bert_jax import orbax_errors
from bert_jax.data.any_tokenizer import tokenizer_to_meta
from bert_jax.errors import UserError
from bert_jax.workdir import (
    BEST_DIR,
    CHECKPOINTS_DIR,
    DAMAGED_SUFFIX,
    ITEMS,
    absolute,
    checkpoint_steps,
)


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
    return ocp.CheckpointManager(absolute(directory), options=options, item_names=ITEMS)


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
            orbax_errors.quiet_abandoned_writes()
            committed = [s for s in checkpoint_steps(str(self.latest.directory)) if s != step]
            kept = (
                f"the checkpoint of step {committed[-1]} is intact"
                if committed
                else "there is no earlier checkpoint"
            )
            raise UserError(
                f"Saving the checkpoint of step {step} to {manager.directory} failed "
                f"({orbax_errors.reason(error)}); {kept}; free space or make the workdir "
                "writable, then rerun the same command to continue."
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
        orbax_errors.quiet_late_callbacks()
        steps = sorted(self.latest.all_steps(), reverse=True)
        damaged: list[tuple[int, str]] = []
        for step in steps:
            only_meta = ocp.args.Composite(meta=ocp.args.JsonRestore())
            try:
                meta = self.latest.restore(step, args=only_meta).meta
                differing = _shape_differences(json.loads(meta["config"]), config_json)
            except Exception as error:  # noqa: BLE001 - any failure means "try an older one"
                meta, differing, reason = None, [], orbax_errors.reason(error)
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
                    reason = orbax_errors.reason(error)
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
                logging.warning("Closing %s: %s", manager.directory, orbax_errors.reason(error))


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
    saved = traverse_util.flatten_dict(saved_config, sep=".")
    current = traverse_util.flatten_dict(json.loads(config_json), sep=".")
    keys = [k for k in sorted(saved) if k.startswith(("model.", "sentence_task"))]
    keys += ["optimizer.name", "optimizer.grad_accum_steps"]
    return [
        f"{key}={saved.get(key)!r} there, {current.get(key)!r} here"
        for key in keys
        if saved.get(key) != current.get(key)
    ]
