"""Pure, jitted pretraining steps: (state, batch) -> (state, metric sums). No I/O, no host state.

Metrics come back as sums with their counts (e.g. `mlm_loss_sum` and `mlm_weight`) so the loop can
average them exactly over any window of steps, and a resumed run reproduces the same figures.
"""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx

Batch = dict[str, jax.Array]
TrainState = dict[str, Any]  # {"step": int32 micro-batch count, "params": ..., "opt_state": ...}

MODEL_INPUTS = ("input_ids", "token_type_ids", "attention_mask", "masked_lm_positions")


def pretraining_loss(outputs: dict, batch: Batch) -> tuple[jax.Array, dict[str, jax.Array]]:
    """MLM loss averaged over real masked positions, plus the sentence-pair loss when present."""
    logits = outputs["mlm_logits"].astype(jnp.float32)
    weights = batch["masked_lm_weights"]
    token_loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["masked_lm_ids"])
    weight_sum = weights.sum()
    mlm_loss_sum = (token_loss * weights).sum()
    mlm_loss = mlm_loss_sum / jnp.maximum(weight_sum, 1.0)
    correct = (logits.argmax(-1) == batch["masked_lm_ids"]) * weights
    sums = {"mlm_loss_sum": mlm_loss_sum, "mlm_correct": correct.sum(), "mlm_weight": weight_sum}
    loss = mlm_loss
    if "sentence_logits" in outputs:
        sentence_logits = outputs["sentence_logits"].astype(jnp.float32)
        labels = batch["next_sentence_labels"]
        sentence_loss = optax.softmax_cross_entropy_with_integer_labels(sentence_logits, labels)
        loss = loss + sentence_loss.mean()
        sums |= {
            "sentence_loss_sum": sentence_loss.sum(),
            "sentence_correct": (sentence_logits.argmax(-1) == labels).sum().astype(jnp.float32),
            "sentence_count": jnp.float32(labels.shape[0]),
        }
    return loss, sums


def _forward(graphdef: nnx.GraphDef, params, batch: Batch, dropout_rng) -> dict:
    model = nnx.merge(graphdef, params)
    return model(*(batch[k] for k in MODEL_INPUTS), dropout_rng=dropout_rng)


def make_loss_and_grad(graphdef: nnx.GraphDef) -> Callable:
    """(params, batch, dropout_rng) -> ((loss, sums), grads); shared by the step and histograms."""

    def loss_fn(params, batch, dropout_rng):
        return pretraining_loss(_forward(graphdef, params, batch, dropout_rng), batch)

    return jax.value_and_grad(loss_fn, has_aux=True)


def make_train_step(graphdef: nnx.GraphDef, tx: optax.GradientTransformation, seed: int):
    """The training step; dropout draws from fold_in(seed, step) so nothing random is saved."""
    loss_and_grad = make_loss_and_grad(graphdef)

    def train_step(state: TrainState, batch: Batch) -> tuple[TrainState, dict]:
        dropout_rng = jax.random.fold_in(jax.random.key(seed), state["step"])
        (loss, sums), grads = loss_and_grad(state["params"], batch, dropout_rng)
        updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        metrics = sums | {
            "loss": loss,
            "grad_norm": optax.global_norm(grads),
            "param_norm": optax.global_norm(params),
        }
        return {"step": state["step"] + 1, "params": params, "opt_state": opt_state}, metrics

    return train_step


def make_eval_step(graphdef: nnx.GraphDef):
    """Deterministic forward pass (no dropout) returning metric sums for one batch."""

    def eval_step(params, batch: Batch) -> dict:
        _, sums = pretraining_loss(_forward(graphdef, params, batch, None), batch)
        return sums

    return eval_step
