"""config.task -> the Task the loop runs: pretraining when the config has no `task` key."""

from ml_collections import ConfigDict

from bert_jax.data.glue import CUSTOM, GLUE
from bert_jax.errors import UserError
from bert_jax.tasks.base import Task


def build_task(config: ConfigDict, workdir: str) -> Task:
    if "task" not in config:
        from bert_jax.tasks import pretraining

        return pretraining.build(config, workdir)
    if config.task in GLUE or config.task in CUSTOM:
        from bert_jax.tasks import classification

        return classification.build(config, workdir)
    if config.task == "ner":
        from bert_jax.tasks import token_classification

        return token_classification.build(config, workdir)
    if config.task == "squad":
        from bert_jax.tasks import question_answering

        return question_answering.build(config, workdir)
    raise UserError(
        f"task={config.task!r} is unknown; choose one of {', '.join([*GLUE, *CUSTOM])}, "
        "ner or squad."
    )
