"""The one task registry: a run config's `task`, or a checkpoint's task kind, -> the module that
trains it and predicts with it.

Every task module provides `build(config, workdir) -> Task` (training),
`model(bert, info)` (the model builder, from the architecture and the task's JSON `info`, which
every checkpoint stores) and `predict(predictor, lines, batch_size)` (decoding model outputs back
to records; absent where a kind has nothing to predict), so training and prediction can
never disagree about a task. The prediction modes "embeddings" and "fill-mask" are kinds of
their own with `model` and `predict` only: they read any weights' encoder (and MLM head). A kind
holding several tasks (multitask) also provides `select(info, params, name)`: the info and
params of one of them, which then predicts as its own. Fine-tuning kinds' `build` also take a
`fallback_tokenizer`, used when the config names neither `data.tokenizer` nor `init_from`
(distillation gives the teacher's).
"""

import importlib
from types import ModuleType

from ml_collections import ConfigDict

from bert_jax.data.glue import CUSTOM, GLUE
from bert_jax.errors import UserError
from bert_jax.tasks.base import Task

# Task kind -> its module (imported on first use: each pulls in its own data code).
MODULES = {
    "pretraining": "bert_jax.tasks.pretraining",
    "classification": "bert_jax.tasks.classification",
    "ner": "bert_jax.tasks.token_classification",
    "squad": "bert_jax.tasks.question_answering",
    "embeddings": "bert_jax.tasks.embeddings",
    "fill-mask": "bert_jax.tasks.fill_mask",
    "distillation": "bert_jax.tasks.distillation",
    "multitask": "bert_jax.tasks.multitask",
}
PREDICTION_MODES = ("embeddings", "fill-mask")
"""Kinds that predict with any weights and train nothing."""
MULTITASK = "multitask"  # the `task` of a multi-task config (configs/finetune_multitask.py)


def kind_of(config: ConfigDict) -> str:
    """The task kind a run config trains: pretraining when it has no `task` key, distillation
    when it names a `teacher`."""
    if "task" not in config:
        return "pretraining"
    if "teacher" in config:
        return "distillation"
    if config.task == MULTITASK:
        return MULTITASK
    return task_kind(config.task)


def task_kind(task: str) -> str:
    """The kind of one fine-tuning task name (a GLUE task, classification, regression, ner or
    squad)."""
    if task in GLUE or task in CUSTOM:
        return "classification"
    if task in ("ner", "squad"):
        return task
    raise UserError(
        f"task={task!r} is unknown; choose one of {', '.join([*GLUE, *CUSTOM])}, ner or squad."
    )


def task_module(kind: str) -> ModuleType:
    """The module of a task kind, e.g. from a checkpoint's `info["kind"]`."""
    if kind not in MODULES:
        raise UserError(
            f"the checkpoint's task kind {kind!r} is unknown to this version of bert_jax; "
            "predict with the version that trained it."
        )
    return importlib.import_module(MODULES[kind])


def build_task(config: ConfigDict, workdir: str) -> Task:
    """The Task the loop runs."""
    return task_module(kind_of(config)).build(config, workdir)


def select_task(info: dict, params: dict, name: str | None) -> tuple[dict, dict]:
    """The `info` and params of the one task `name` of a checkpoint (predict --task): a kind
    holding several tasks provides `select`; a single-task checkpoint is itself."""
    module = task_module(info["kind"])
    if hasattr(module, "select"):
        return module.select(info, params, name)
    if name is not None:
        raise UserError(
            f"--task={name} selects a task of a multi-task run, but this checkpoint trained one "
            f"{info['kind']} task; leave --task out."
        )
    return info, params
