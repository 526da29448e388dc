"""Pure, jitted steps: (state, batch) -> (state, metric sums). No I/O, no host state.

The objective comes in as a task's `loss(model, batch, dropout_rng) -> (loss, sums)`, or
`loss(model, batch, dropout_rng, frozen)` for a task with frozen parameters (a distillation
teacher), which are a step input: never differentiated, updated or saved. Metrics come back as
sums with their counts (e.g. `mlm_loss_sum` and `mlm_weight`) so the loop can average them exactly
over any window of steps, and a resumed run reproduces the same figures.
"""

from collections.abc import Callable
from typing import Any

import jax
import optax
from flax import nnx

Batch = dict[str, jax.Array]
TrainState = dict[str, Any]  # {"micro_step": int32 micro-batches run, "params", "opt_state"}
LossFn = Callable[..., tuple[jax.Array, dict[str, jax.Array]]]  # (model, batch, rng[, frozen])
EvalFn = Callable[[nnx.Module, Batch], dict[str, jax.Array]]


def make_loss_and_grad(graphdef: nnx.GraphDef, loss: LossFn) -> Callable:
    """(params, batch, dropout_rng, frozen) -> ((loss, sums), grads of params alone); shared by
    the step and histograms. `frozen` is None unless the task has frozen parameters."""

    def loss_fn(params, batch, dropout_rng, frozen=None):
        model = nnx.merge(graphdef, params)
        if frozen is None:
            return loss(model, batch, dropout_rng)
        return loss(model, batch, dropout_rng, frozen)

    return jax.value_and_grad(loss_fn, has_aux=True)


def make_train_step(graphdef: nnx.GraphDef, tx: optax.GradientTransformation, seed: int, loss):
    """The training step; dropout draws from fold_in(seed, step) so nothing random is saved."""
    loss_and_grad = make_loss_and_grad(graphdef, loss)

    def train_step(state: TrainState, batch: Batch, frozen=None) -> tuple[TrainState, dict]:
        dropout_rng = jax.random.fold_in(jax.random.key(seed), state["micro_step"])
        (loss, sums), grads = loss_and_grad(state["params"], batch, dropout_rng, frozen)
        updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        metrics = sums | {
            "loss": loss,
            "grad_norm": optax.global_norm(grads),
            "param_norm": optax.global_norm(params),
        }
        return {
            "micro_step": state["micro_step"] + 1,
            "params": params,
            "opt_state": opt_state,
        }, metrics

    return train_step


def make_eval_step(graphdef: nnx.GraphDef, outputs: EvalFn):
    """Deterministic forward pass (no dropout) returning the task's eval outputs for one batch."""

    def eval_step(params, batch: Batch) -> dict:
        return outputs(nnx.merge(graphdef, params), batch)

    return eval_step
