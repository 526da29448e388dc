"""Multi-task fine-tuning (MT-DNN): one encoder, one head per task, steps sampled over tasks.

Each task of `config.tasks` is built exactly as its own fine-tuning run would build it (its data,
loss, eval and prediction), from a config that is the run's with that task's `task` and `data`;
the model shares one encoder between the tasks' models. A step trains one task, drawn by size,
temperature or fixed weights (data/task_mixture.py); eval metrics are `<task>/<metric>` and
`average`, the mean of every task's main metric (what picks `best/` unless configured).
"""

import jax.numpy as jnp
import numpy as np
from ml_collections import ConfigDict

from bert_jax.data.task_mixture import TaskMixture, mark, task_key, task_of, task_probabilities
from bert_jax.errors import UserError
from bert_jax.model import BertConfig
from bert_jax.model.multitask import MultiTaskModel, task_params
from bert_jax.tasks.base import Task
from bert_jax.tasks.registry import task_kind, task_module


def task_config(config: ConfigDict, name: str) -> ConfigDict:
    """The single-task run config of task `name`: the run's settings with the task's `task`,
    and its `data` section over the shared one (a task's unset key keeps the shared value)."""
    section = config.tasks[name]
    values = config.to_dict()
    del values["tasks"]
    data = dict(values["data"])
    for key, value in section.data.to_dict().items():
        if value is not None or key not in data:
            data[key] = value
    values |= {"task": section.task, "data": data}
    return ConfigDict(values)


def model(bert: BertConfig, info: dict):
    """The model builder: every task's model (from its own info) over one shared encoder."""
    builders = {
        name: task_module(sub["kind"]).model(bert, sub) for name, sub in info["tasks"].items()
    }
    return lambda rngs: MultiTaskModel(builders, rngs=rngs)


def select(info: dict, params: dict, name: str | None) -> tuple[dict, dict]:
    """(info, params) of task `name`'s model alone, for predict --task=NAME."""
    names = list(info["tasks"])
    if name not in info["tasks"]:
        given = "no --task" if name is None else f"--task={name}"
        raise UserError(
            f"this multi-task checkpoint has the tasks {', '.join(names)}; {given} given, pass "
            "--task=one of them."
        )
    return info["tasks"][name], task_params(params, name)


def _sums_summary(sums: dict, num_steps: int, names: list[str]) -> dict:
    """Per-step means, and per task its loss per example, accuracy and share of the steps."""
    out = {key: sums[key] / num_steps for key in ("loss", "grad_norm", "param_norm")}
    correct = count = 0.0
    for name in names:
        steps = sums.get(f"{name}/steps", 0.0)
        out[f"{name}/share"] = steps / num_steps
        if not steps:
            continue
        examples = max(sums[f"{name}/count"], 1.0)
        out[f"{name}/loss"] = sums[f"{name}/loss_sum"] / examples
        if f"{name}/correct" in sums:
            out[f"{name}/accuracy"] = sums[f"{name}/correct"] / examples
            correct, count = correct + sums[f"{name}/correct"], count + sums[f"{name}/count"]
    if count:
        out["accuracy"] = correct / count
    return out


def build(config: ConfigDict, workdir: str, fallback_tokenizer=None) -> Task:
    names = list(config.tasks)
    if not names:
        raise UserError(
            "tasks is empty; name the tasks in the config argument, e.g. "
            "--config=configs/finetune_multitask.py:sst2,ner."
        )
    tasks = {}
    for name in names:
        sub_config = task_config(config, name)
        if not sub_config.data.train or not sub_config.data.validation:
            raise UserError(
                f"Set tasks.{name}.data.train and tasks.{name}.data.validation to task {name}'s "
                "training and validation data (files, or tfds:NAME)."
            )
        tasks[name] = task_module(task_kind(sub_config.task)).build(
            sub_config, workdir, fallback_tokenizer
        )
    first = tasks[names[0]]
    probabilities = task_probabilities(
        {name: task.train.batches_per_epoch for name, task in tasks.items()},
        config.sampling,
        temperature=config.sampling_temperature,
        weights={name: config.tasks[name].weight for name in names},
    )

    def loss(model, batch, dropout_rng):
        name, rest = task_of(batch)  # a static choice: each task's batches trace their own step
        value, sums = tasks[name].loss(model.heads[name], rest, dropout_rng)
        named = {f"{name}/{key}": value for key, value in sums.items()}
        return value, named | {f"{name}/steps": jnp.float32(1.0)}

    def eval_outputs(model, batch) -> dict:
        name, rest = task_of(batch)
        marker = task_key(name)
        return tasks[name].eval_outputs(model.heads[name], rest) | {marker: batch[marker]}

    def evaluate(outputs: list[dict]) -> dict:
        metrics, main = {}, []
        for name, task in tasks.items():
            own = [task_of(output)[1] for output in outputs if task_key(name) in output]
            task_metrics = task.evaluate(own)
            metrics |= {f"{name}/{key}": value for key, value in task_metrics.items()}
            main.append(task_metrics[task.main_metric])
        return metrics | {"average": float(np.mean(main))}

    info = {"kind": "multitask", "tasks": {name: task.info for name, task in tasks.items()}}
    return Task(
        name="multitask",
        tokenizer=first.tokenizer,
        model_config=first.model_config,
        build_model=model(first.model_config, info),
        loss=loss,
        summarize=lambda sums, num_steps: _sums_summary(sums, num_steps, names),
        train=TaskMixture(
            {name: task.train for name, task in tasks.items()}, probabilities, config.seed
        ),
        eval_batches=[
            mark(batch, name) for name, task in tasks.items() for batch in task.eval_batches
        ],
        eval_outputs=eval_outputs,
        evaluate=evaluate,
        flops_per_step=sum(probabilities[n] * task.flops_per_step for n, task in tasks.items()),
        console_metric="accuracy",
        main_metric="average",
        info=info,
        pretrained=first.pretrained,
    )
