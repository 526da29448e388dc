"""The one task registry: a run config's `task`, or a checkpoint's task kind, -> the module that
trains it and predicts with it.

Every task module provides `build(config, workdir, saved_tokenizer) -> Task` (training),
`model(bert, info)` (the model builder, from the architecture and the task's JSON `info`, which
every checkpoint stores) and `predict(predictor, lines, batch_size)` (decoding model outputs back
to records; absent where a kind has nothing to predict), so training and prediction can
never disagree about a task. A kind holding several tasks (multitask) also provides
`select(info, params, name)`: the info and params of one of them, which then predicts as its own.
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
    "distillation": "bert_jax.tasks.distillation",
    "multitask": "bert_jax.tasks.multitask",
}
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


def build_task(config: ConfigDict, workdir: str, saved_tokenizer=None) -> Task:
    """The Task the loop runs; `saved_tokenizer` is the one a resumed run's checkpoints hold
    (fine-tuning uses it when the config names no tokenizer and no `init_from`)."""
    return task_module(kind_of(config)).build(config, workdir, saved_tokenizer)


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
