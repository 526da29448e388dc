"""Early stopping: end a run after `patience` evaluations without an improvement of its metric.

The loop offers every evaluation's `best_metric`; the counts travel in the checkpoint's progress,
so a rerun of a stopped run does not train further, and raising the patience lets it continue.
"""

import math

from absl import logging

from bert_jax.errors import UserError


class EarlyStopping:
    """Counts evaluations since `best_metric` last improved by more than `min_delta`."""

    def __init__(self, patience: int | None, min_delta: float, mode: str, metric: str):
        if patience is not None and patience < 1:
            raise UserError(
                f"early_stopping_patience={patience} must be a positive number of evaluations "
                "(unset turns early stopping off)."
            )
        if min_delta < 0:
            raise UserError(f"early_stopping_min_delta={min_delta} must be zero or positive.")
        self.patience, self.min_delta, self.mode, self.metric = patience, min_delta, mode, metric
        self.best: float | None = None
        self.evals_without_improvement = 0

    @property
    def stopped(self) -> bool:
        """Whether the run has ended for lack of improvement (with the current patience)."""
        return self.patience is not None and self.evals_without_improvement >= self.patience

    def improves(self, value: float) -> bool:
        """Whether `value` beats the best so far by more than `min_delta` (a NaN never does)."""
        if math.isnan(value):
            return False
        if self.best is None:
            return True
        if self.mode == "max":
            return value > self.best + self.min_delta
        return value < self.best - self.min_delta

    def update(self, step: int, metrics: dict[str, float]) -> bool:
        """Records one evaluation's metrics; True when the run should stop now."""
        if self.patience is None or self.metric not in metrics:
            return False  # a missing metric is reported where the best checkpoint is chosen
        value = float(metrics[self.metric])
        if self.improves(value):
            self.best, self.evals_without_improvement = value, 0
        else:
            self.evals_without_improvement += 1
        if self.stopped:
            logging.warning(
                "Early stopping at step %d: %s has not improved on %.6g by more than %g for %d "
                "evaluations.",
                step, self.metric, self.best, self.min_delta, self.evals_without_improvement,
            )  # fmt: skip
        return self.stopped

    def state(self) -> dict:
        """JSON for the checkpoint's progress."""
        return {"best": self.best, "evals_without_improvement": self.evals_without_improvement}

    def load(self, state: dict | None) -> None:
        """Continues from `state()` (None: a checkpoint written before early stopping existed)."""
        if state:
            self.best = state["best"]
            self.evals_without_improvement = int(state["evals_without_improvement"])
