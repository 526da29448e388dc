"""Training speed of a finished bert_jax run, read back from its event files.

The rate is taken between the first and the last train log, so start-up, data encoding and
compilation (all before the first log) are left out; benchmarks time the whole command apart.
"""

import itertools
import os
import subprocess
import time

from bert_jax.events import read_scalars

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(command: list[str]) -> float:
    """Runs a command in the repo; its wall time in seconds."""
    start = time.perf_counter()
    subprocess.run(command, cwd=REPO, check=True)
    return time.perf_counter() - start


def train_rate(workdir: str, rows_per_step: int, packed: bool = False) -> dict[str, float]:
    """Steps/s and examples/s between the first and last train logs, and the last logged step.

    Unpacked, a step trains `rows_per_step` examples; packed, each log window says how many
    examples its steps carried on average, weighed here by the steps of each window.
    """
    values, times = read_scalars(workdir), read_scalars(workdir, wall_time=True)
    logged = sorted(times["train/loss"])
    if len(logged) < 2:
        raise ValueError(f"{workdir} has fewer than two train logs: log more often")
    first, last = logged[0], logged[-1]
    steps_per_sec = (last - first) / (times["train/loss"][last] - times["train/loss"][first])
    examples_per_step = rows_per_step
    if packed:
        per_window = values["train/examples_per_step"]
        examples_per_step = sum(
            per_window[end] * (end - start) for start, end in itertools.pairwise(logged)
        ) / (last - first)
    return {
        "train_steps": last,
        "timed_steps": last - first,
        "steps_per_sec": steps_per_sec,
        "examples_per_sec": steps_per_sec * examples_per_step,
    }
