"""The only module that speaks Orbax: latest-N and best-by-metric checkpoints, and restore.

A checkpoint holds everything needed to continue a run: the train state (params, optimizer state,
step), the loop's progress (data position, pending metric sums) and the run's metadata (config and
tokenizer). "Latest" and "best" are separate managers, so a worse eval never deletes the newest.
"""

import dataclasses
import json
import os
from typing import Any

import orbax.checkpoint as ocp
from absl import logging

from bert_jax.data.any_tokenizer import tokenizer_to_meta
from bert_jax.errors import UserError

ITEMS = ("state", "progress", "meta")


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
    # Orbax wants absolute paths; a remote one (gs://...) already is.
    directory = directory if "://" in directory else os.path.abspath(directory)
    return ocp.CheckpointManager(directory, options=options, item_names=ITEMS)


def encode_meta(config_json: str, tokenizer, model_config, task_info: dict) -> dict[str, str]:
    """Run metadata stored with every checkpoint, so a checkpoint alone can be used elsewhere:
    the run config, the tokenizer, the model architecture and what the task's `predict` needs."""
    return {
        "config": config_json,
        "model": json.dumps(dataclasses.asdict(model_config)),
        "task": json.dumps(task_info),
        **tokenizer_to_meta(tokenizer),
    }


class Checkpoints:
    """`workdir/checkpoints` keeps the newest `max_to_keep`; `workdir/best` keeps the best one."""

    def __init__(self, workdir: str, *, max_to_keep: int, best_metric: str, best_mode: str):
        self.best_metric = best_metric
        self.latest = _manager(
            os.path.join(workdir, "checkpoints"), "latest", max_to_keep=max_to_keep
        )
        self.best = _manager(
            os.path.join(workdir, "best"),
            "best",
            max_to_keep=1,
            best_fn=lambda metrics: metrics[best_metric],
            best_mode=best_mode,
            keep_checkpoints_without_metrics=False,
        )

    @staticmethod
    def _args(state, progress: dict, meta: dict) -> ocp.args.Composite:
        return ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            progress=ocp.args.JsonSave(progress),
            meta=ocp.args.JsonSave(meta),
        )

    def save(self, step: int, state, progress: dict, meta: dict) -> None:
        """Starts an asynchronous save of the newest state (finished by `wait`)."""
        self.latest.save(step, args=self._args(state, progress, meta), force=True)

    def save_best(self, step: int, state, progress: dict, meta: dict, metrics: dict) -> None:
        """Offers the state as best; Orbax keeps it only if `best_metric` improved."""
        if self.best_metric not in metrics:
            raise UserError(
                f"best_metric={self.best_metric!r} is not among the eval metrics "
                f"{sorted(metrics)}; set best_metric to one of them."
            )
        self.best.save(step, args=self._args(state, progress, meta), metrics=dict(metrics))

    def latest_step(self) -> int | None:
        return self.latest.latest_step()

    def reached_preemption(self, step: int) -> bool:
        """True on every host once any host of a multi-host job has been told it is preempted."""
        return self.latest.reached_preemption(step)

    def restore_latest(
        self, abstract_state, config_json: str
    ) -> tuple[int, Any, dict, dict] | None:
        """(step, state, progress, meta) of the newest checkpoint that restores, None if none.

        A checkpoint written with a config of another shape is refused with the keys that differ;
        one that fails to read is skipped for an older one (Orbax finalises a step atomically,
        so this is a last line of defence against damaged storage).
        """
        steps = sorted(self.latest.all_steps(), reverse=True)
        for step in steps:
            try:
                only_meta = ocp.args.Composite(meta=ocp.args.JsonRestore())
                meta = self.latest.restore(step, args=only_meta)
                differing = _shape_differences(json.loads(meta.meta["config"]), config_json)
                if not differing:
                    restored = self.latest.restore(
                        step,
                        args=ocp.args.Composite(
                            state=ocp.args.StandardRestore(abstract_state),
                            progress=ocp.args.JsonRestore(),
                        ),
                    )
                    return step, restored.state, restored.progress, meta.meta
            except Exception as error:  # noqa: BLE001 - any failure means "try an older one"
                logging.warning("Checkpoint at step %d does not restore, skipped: %s", step, error)
                continue
            raise UserError(
                f"{self.latest.directory} holds checkpoints of another model "
                f"({'; '.join(differing[:3])}); resume with the config they were written with or "
                "choose a new --workdir."
            )
        if steps:
            raise UserError(
                f"no checkpoint in {self.latest.directory} could be restored (see the warnings "
                "above); move them away or choose a new --workdir."
            )
        return None

    def wait(self) -> None:
        self.latest.wait_until_finished()
        self.best.wait_until_finished()

    def close(self) -> None:
        self.latest.close()
        self.best.close()


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
