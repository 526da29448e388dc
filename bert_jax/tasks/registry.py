"""The one task registry: a run config's `task`, or a checkpoint's task kind, -> the module that
trains it and predicts with it.

Every task module provides `build(config, workdir) -> Task` (training),
`model(bert, info)` (the model builder, from the architecture and the task's JSON `info`, which
every checkpoint stores) and `predict(predictor, lines, batch_size)` (decoding model outputs back
to records; absent where a kind has nothing to predict), so training and prediction can
never disagree about a task.
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
}


def kind_of(config: ConfigDict) -> str:
    """The task kind a run config trains: pretraining when it has no `task` key."""
    if "task" not in config:
        return "pretraining"
    if config.task in GLUE or config.task in CUSTOM:
        return "classification"
    if config.task in ("ner", "squad"):
        return config.task
    raise UserError(
        f"task={config.task!r} is unknown; choose one of {', '.join([*GLUE, *CUSTOM])}, "
        "ner or squad."
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
