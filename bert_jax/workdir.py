"""The one owner of a workdir's layout, and the only module that calls Orbax.

    WORKDIR/checkpoints/<step>/{state,progress,meta}   the newest `max_checkpoints_to_keep`
    WORKDIR/best/<step>/{state,progress,meta}          the best by `best_metric`
    WEIGHTS_DIR/params/                                a params dict alone (convert's directories)

A checkpoint holds everything needed to continue a run: the train state (params, optimizer
state, micro-batch count), the loop's progress (data position, pending metric sums) and the run's
metadata (config, model architecture, tokenizer, what `predict` needs). "Latest" and "best" are
separate managers, so a worse eval never deletes the newest. Readers that need only the weights
(predict, convert, init_from) read the params alone, as NumPy arrays, whatever mesh wrote them.
"""

import dataclasses
import json
import os
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

CHECKPOINTS_DIR = "checkpoints"
BEST_DIR = "best"
PARAMS_DIR = "params"
ITEMS = ("state", "progress", "meta")


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
    root = os.path.join(workdir, which)
    steps = _steps(root)
    if not steps:
        raise UserError(f"{root} holds no checkpoint; train first or point at another workdir.")
    return _absolute(os.path.join(root, str(steps[-1])))


def read_meta(step_dir: str) -> dict:
    """The run metadata of one checkpoint directory."""
    return ocp.Checkpointer(ocp.JsonCheckpointHandler()).restore(os.path.join(step_dir, "meta"))


def latest_meta(workdir: str) -> dict | None:
    """The metadata of the workdir's newest readable checkpoint, None before the first one."""
    for step in reversed(_steps(os.path.join(workdir, CHECKPOINTS_DIR))):
        try:
            return read_meta(os.path.join(workdir, CHECKPOINTS_DIR, str(step)))
        except Exception as error:  # noqa: BLE001 - an unreadable newest: fall back to older
            logging.warning("Checkpoint at step %d has no readable meta, skipped: %s", step, error)
    return None


def _read_numpy_params(path: str, subtree: str | None) -> dict:
    """The params (of the train state at `path`, or the params tree itself) as NumPy arrays.

    Only the params are read, never the optimizer state, and as host arrays, so a checkpoint
    written on any mesh reads on any number of devices."""
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
