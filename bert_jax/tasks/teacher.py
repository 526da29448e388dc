"""A distillation teacher: a fine-tuned task model read from disk and placed, frozen, in shards.

The teacher is any checkpoint `predict` could use: a fine-tuning workdir of this project (its
best checkpoint, else its newest), or a directory `convert.load.load_weights` reads that carries
a task head and its task info. Its model comes from the task registry's `model(bert, info)`,
exactly as training built it, and its parameters are sharded by the run's logical-axis rules.
"""

import dataclasses
import os

import jax
import numpy as np
from flax import nnx, traverse_util
from jax.sharding import Mesh
from ml_collections import ConfigDict

from bert_jax import sharding
from bert_jax.convert.load import load_weights, load_workdir
from bert_jax.data.any_tokenizer import AnyTokenizer
from bert_jax.errors import UserError
from bert_jax.model import BertConfig
from bert_jax.tasks.registry import task_module
from bert_jax.workdir import BEST_DIR, CHECKPOINTS_DIR, is_workdir


@dataclasses.dataclass(frozen=True)
class Teacher:
    """A fine-tuned model as read from disk: what it was trained for, its architecture,
    tokenizer and parameters (NumPy, nested as the task model's)."""

    info: dict  # the task info its checkpoint stores (kind, labels, ...)
    model_config: BertConfig
    tokenizer: AnyTokenizer
    params: dict
    origin: str


def load_teacher(path: str) -> Teacher:
    """The teacher at `path` (config key `teacher`)."""
    if not path or not os.path.isdir(path):
        raise UserError(
            f"teacher={path!r} is not a directory; give a workdir of this project fine-tuned "
            "on the same task (e.g. with configs/finetune_glue.py)."
        )
    if is_workdir(path):
        # The best checkpoint, the newest if no evaluation kept one (a damaged one is skipped).
        best = os.path.join(path, BEST_DIR)
        has_best = os.path.isdir(best) and any(name.isdigit() for name in os.listdir(best))
        weights = load_workdir(path, BEST_DIR if has_best else CHECKPOINTS_DIR)
        origin = os.path.join(path, BEST_DIR if has_best else CHECKPOINTS_DIR)
    else:
        weights, origin = load_weights(path), path
    # A fine-tuned workdir, or a Hugging Face task model (BertForSequenceClassification, ...)
    # converted with its head, brings its task info; plain BERT weights have no head to learn from.
    info = weights.task
    if not info:
        raise UserError(
            f"teacher={path!r} holds BERT weights without a fine-tuned task head; fine-tune "
            "them first and give that workdir as the teacher."
        )
    return Teacher(dict(info), weights.config, weights.tokenizer, weights.params, origin)


def teacher_model(teacher: Teacher, dtype: str):
    """The teacher's model builder, computing in the run's `dtype`, with no remat (it never
    runs a backward pass)."""
    bert = dataclasses.replace(teacher.model_config, dtype=dtype, remat=False)
    return bert, task_module(teacher.info["kind"]).model(bert, teacher.info)


def place_params(
    teacher: Teacher, build_model, mesh: Mesh, config: ConfigDict
) -> tuple[nnx.GraphDef, dict]:
    """(graphdef, params as global arrays sharded by the run's rules); every parameter of the
    teacher's model must be present with its shape."""
    abstract = nnx.eval_shape(lambda: build_model(nnx.Rngs(0)))
    graphdef, abstract_params = nnx.split(abstract, nnx.Param)
    logical = nnx.to_pure_dict(nnx.get_partition_spec(abstract_params))
    shapes = nnx.to_pure_dict(abstract_params)
    shardings = traverse_util.flatten_dict(
        sharding.param_shardings(logical, shapes, mesh, config), sep="/"
    )
    given = traverse_util.flatten_dict(teacher.params, sep="/")
    placed = {}
    for path, shape in traverse_util.flatten_dict(shapes, sep="/").items():
        value = given.get(path)
        if value is None or tuple(value.shape) != tuple(shape.shape):
            found = "missing" if value is None else f"of shape {tuple(value.shape)}"
            raise UserError(
                f"teacher {teacher.origin}: parameter {path} is {found}, its model needs "
                f"{tuple(shape.shape)}; give a checkpoint of a complete fine-tuned model."
            )
        value = np.asarray(value, dtype=shape.dtype)
        placed[path] = jax.make_array_from_callback(
            value.shape, shardings[path], lambda index, value=value: value[index]
        )
    return graphdef, traverse_util.unflatten_dict(placed, sep="/")
