"""Batches of several tasks: each step draws one task, then takes that task's next batch.

The task of step i is drawn from (seed, i) alone, and each task keeps its own epoch iterator,
so the whole position is the step count plus two integers per task: a resumed run draws the
same tasks and sees the same batches. Every process draws the same task and reads its rows.
Each batch carries a marker key naming its task (`task_key`), so a jitted step can tell tasks
apart even when their arrays have the same shapes.
"""

from collections.abc import Iterator, Mapping

import numpy as np

from bert_jax.data.batches import Batch, EpochBatches
from bert_jax.errors import UserError

SAMPLING = ("size", "temperature", "weights")
_MARKER = "task="


def task_key(name: str) -> str:
    """The batch key that marks a batch (and its eval outputs) as task `name`'s."""
    return _MARKER + name


def task_of(batch: Mapping) -> tuple[str, dict]:
    """(the task a marked batch belongs to, the batch without its marker)."""
    names = [key[len(_MARKER) :] for key in batch if key.startswith(_MARKER)]
    if len(names) != 1:
        raise ValueError(f"a multi-task batch must carry one task marker, got {names}")
    rest = {key: value for key, value in batch.items() if not key.startswith(_MARKER)}
    return names[0], rest


def mark(batch: Batch, name: str) -> Batch:
    """`batch` with the marker of task `name` (one int32 per row, so it shards like a row)."""
    rows = len(next(iter(batch.values())))
    return batch | {task_key(name): np.zeros(rows, np.int32)}


def task_probabilities(
    sizes: Mapping[str, int],
    sampling: str,
    *,
    temperature: float = 1.0,
    weights: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """How often each task is drawn: in proportion to its size (examples), to size^(1/T)
    (temperature T > 1 flattens towards uniform, as in multilingual and MT-DNN training), or
    to fixed `weights`."""
    if sampling == "size":
        raw = {name: float(size) for name, size in sizes.items()}
    elif sampling == "temperature":
        if temperature <= 0:
            raise UserError(f"sampling_temperature={temperature} must be positive.")
        raw = {name: float(size) ** (1.0 / temperature) for name, size in sizes.items()}
    elif sampling == "weights":
        raw = {name: float((weights or {}).get(name) or 0.0) for name in sizes}
        if any(value < 0 for value in raw.values()) or not sum(raw.values()) > 0:
            raise UserError(
                f"sampling='weights' needs tasks.<name>.weight >= 0, not all 0; got {raw}."
            )
    else:
        raise UserError(f"sampling={sampling!r} is unknown; use one of {', '.join(SAMPLING)}.")
    total = sum(raw.values())
    return {name: value / total for name, value in raw.items()}


class TaskMixture(Iterator[Batch]):
    """Endless marked batches drawn from several tasks' `EpochBatches` with `probabilities`."""

    def __init__(
        self, tasks: Mapping[str, EpochBatches], probabilities: Mapping[str, float], seed: int
    ):
        self._names = list(tasks)
        self._tasks = dict(tasks)
        self._cumulative = np.cumsum([probabilities[name] for name in self._names])
        self._seed = seed
        self._step = 0

    @property
    def batches_per_epoch(self) -> int:
        """The steps of one pass over every task's batches (what `num_epochs` counts)."""
        return sum(task.batches_per_epoch for task in self._tasks.values())

    def task_at(self, step: int) -> str:
        """The task drawn for step `step`: a function of (seed, step) alone."""
        u = np.random.default_rng([self._seed, step, 2]).random()
        index = int(np.searchsorted(self._cumulative, u * self._cumulative[-1], side="right"))
        return self._names[min(index, len(self._names) - 1)]

    def get_state(self) -> dict:
        return {"step": self._step, "tasks": {n: t.get_state() for n, t in self._tasks.items()}}

    def set_state(self, state: Mapping) -> None:
        if set(state.get("tasks", {})) != set(self._tasks):
            raise UserError(
                f"The saved data position is of the tasks {sorted(state.get('tasks', {}))}, this "
                f"run has {sorted(self._tasks)}; resume with the tasks the run started with."
            )
        for name, task_state in state["tasks"].items():
            self._tasks[name].set_state(task_state)
        self._step = int(state["step"])

    def __next__(self) -> Batch:
        name = self.task_at(self._step)
        self._step += 1
        return mark(next(self._tasks[name]), name)
