"""Host-side metrics: exact windowed averages, the NaN/inf guard, CLU writers, progress."""

import time

import jax
import numpy as np
from absl import logging
from clu import metric_writers

from bert_jax.errors import UserError


class NonFiniteError(UserError):
    """The loss or gradient norm became NaN/inf: training stops, the last good checkpoint stays."""


class MetricWindow:
    """Per-step metrics since the last log. Device values are fetched lazily, to keep the device
    busy, and summed in float64 on the host in step order, so a resumed run sums identically."""

    def __init__(self):
        self._pending: list[tuple[int, dict]] = []
        self.sums: dict[str, float] = {}
        self.num_steps = 0

    def add(self, step: int, device_metrics: dict) -> None:
        self._pending.append((step, device_metrics))

    def drain(self) -> None:
        """Moves pending device metrics into the sums; stops on the first NaN/inf loss or grad."""
        for step, metrics in self._pending:
            values = jax.device_get(metrics)
            for key in ("loss", "grad_norm"):
                if not np.isfinite(values[key]):
                    raise NonFiniteError(
                        f"{key} is {values[key]} at step {step}; training stopped and the last "
                        "good checkpoint was kept; lower learning_rate or check the data."
                    )
            for key, value in values.items():
                self.sums[key] = self.sums.get(key, 0.0) + float(value)
            self.num_steps += 1
        self._pending = []

    def state(self) -> dict:
        self.drain()
        return {"sums": dict(self.sums), "num_steps": self.num_steps}

    def load(self, state: dict) -> None:
        self._pending, self.sums, self.num_steps = [], dict(state["sums"]), state["num_steps"]

    def pop_summary(self, summarize) -> dict[str, float]:
        """`summarize(sums, num_steps)` of the window, which then starts afresh."""
        self.drain()
        summary = summarize(self.sums, self.num_steps)
        self.sums, self.num_steps = {}, 0
        return summary


def create_writer(workdir: str) -> metric_writers.MetricWriter:
    """TensorBoard event files in the workdir, written by process 0 only. The console gets the
    concise `Progress` line instead of every scalar and histogram."""
    if jax.process_index() > 0:
        return metric_writers.MultiWriter([])
    return metric_writers.AsyncMultiWriter([metric_writers.SummaryWriter(workdir)])


def flat_config(config) -> dict:
    """The config as flat `a.b.c` hyperparameters for TensorBoard's HParams tab."""

    def walk(node, prefix):
        for key, value in node.items():
            name = f"{prefix}{key}"
            if hasattr(value, "items"):
                yield from walk(value, name + ".")
            else:
                yield name, value if isinstance(value, (int, float, str, bool)) else str(value)

    return dict(walk(config, ""))


def param_histograms(tree, prefix: str) -> dict[str, np.ndarray]:
    """`prefix/path/to/param` -> values, for TensorBoard histograms."""
    flat = jax.tree_util.tree_flatten_with_path(jax.device_get(tree))[0]
    return {
        prefix + "/" + "/".join(str(getattr(k, "key", k)) for k in path): np.asarray(value)
        for path, value in flat
    }


class Progress:
    """Throughput between logs, and one console line per log: step, loss, speed, time left."""

    def __init__(self, first_step: int, total_steps: int, accuracy_key: str = "mlm_accuracy"):
        self.total_steps, self.accuracy_key = total_steps, accuracy_key
        self._step, self._time = first_step, time.perf_counter()
        self._start_step, self._start_time = first_step, self._time

    def elapsed(self, step: int) -> tuple[int, float]:
        """(steps, seconds) since the previous call."""
        now = time.perf_counter()
        steps, seconds = step - self._step, max(now - self._time, 1e-9)
        self._step, self._time = step, now
        return steps, seconds

    def log(self, step: int, summary: dict[str, float]) -> None:
        done = step - self._start_step
        per_step = (time.perf_counter() - self._start_time) / max(done, 1)
        eta = per_step * (self.total_steps - step)
        logging.info(
            "step %d/%d | loss %.4f | %s %.3f | %.0f tokens/s | MFU %.1f%% | ETA %s",
            step, self.total_steps, summary["loss"], self.accuracy_key.replace("accuracy", "acc"),
            summary.get(self.accuracy_key, float("nan")),
            summary["tokens_per_sec"], 100 * summary["mfu"], _duration(eta),
        )  # fmt: skip


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes}m{seconds:02d}s"
