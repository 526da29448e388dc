"""Optimizer construction: schedules, weight-decay mask, gradient accumulation."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from bert_jax.errors import UserError
from bert_jax.optim import build_optimizer, build_schedule, decay_mask
from configs.pretrain import get_config


def config_with(**optimizer):
    config = get_config("standard")  # BERT's AdamW: b2 0.999
    config.num_train_steps, config.warmup_steps, config.learning_rate = 100, 10, 1.0
    config.optimizer.update(optimizer)
    return config


@pytest.mark.parametrize(
    "schedule, expected",
    [
        ("warmup_linear", {0: 0.0, 5: 0.5, 10: 1.0, 55: 0.5, 100: 0.0}),
        ("warmup_cosine", {0: 0.0, 5: 0.5, 10: 1.0, 55: 0.5, 100: 0.0}),
        # warmup_steps applies to every schedule (it was once ignored by these two)
        ("constant", {0: 0.0, 5: 0.5, 10: 1.0, 50: 1.0, 100: 1.0}),
        ("step", {0: 0.0, 5: 0.5, 10: 1.0, 49: 1.0, 50: 0.5, 74: 0.5, 75: 0.25, 99: 0.25}),
        ("exponential", {0: 0.0, 10: 1.0, 20: 0.5 ** (10 / 1000)}),
    ],
)
def test_schedule_values(schedule, expected):
    fn = build_schedule(config_with(schedule=schedule))
    for step, value in expected.items():
        assert float(fn(step)) == pytest.approx(value, abs=1e-6), (schedule, step)


def test_unknown_schedule_and_optimizer_are_user_errors():
    with pytest.raises(UserError, match="optimizer.schedule"):
        build_schedule(config_with(schedule="triangle"))
    with pytest.raises(UserError, match="optimizer.name"):
        build_optimizer(config_with(name="sgdx"))


def test_decay_mask_excludes_exactly_biases_and_layernorm():
    params = {
        "embeddings": {"word": {"embedding": 0}, "norm": {"scale": 0, "bias": 0}},
        "layer": {"query": {"kernel": 0, "bias": 0}, "mlp_norm": {"scale": 0, "bias": 0}},
    }
    mask = decay_mask(params)
    excluded = sorted(
        "/".join(k.key for k in path)
        for path, decays in jax.tree_util.tree_flatten_with_path(mask)[0]
        if not decays
    )
    assert excluded == [
        "embeddings/norm/bias",
        "embeddings/norm/scale",
        "layer/mlp_norm/bias",
        "layer/mlp_norm/scale",
        "layer/query/bias",
    ]


def _quadratic_loss(params, xs, ys):
    return jnp.mean((xs @ params["w"] + params["b"] - ys) ** 2)


@pytest.mark.parametrize("name", ["adamw", "lamb", "adam"])
def test_multisteps_k_micro_batches_equal_one_big_batch(name):
    """Two updates of k micro-batches of b equal two updates of k*b. The schedule (warmup 1, then
    decay) must count updates, not micro-batches, or the second update's rate would differ."""
    k, b, updates_done = 4, 8, 2
    rng = np.random.default_rng(0)
    xs = jnp.asarray(rng.normal(size=(updates_done, k * b, 5)), jnp.float32)
    ys = jnp.asarray(rng.normal(size=(updates_done, k * b, 3)), jnp.float32)
    params = {"w": jnp.asarray(rng.normal(size=(5, 3)), jnp.float32), "b": jnp.zeros(3)}
    grad = jax.grad(_quadratic_loss)
    settings = dict(name=name, clip_norm=0.5, weight_decay=0.1)

    def train(accum: int):
        config = config_with(grad_accum_steps=accum, **settings)
        config.warmup_steps, config.learning_rate = 1, 0.1
        tx, _ = build_optimizer(config)
        p, opt_state = params, tx.init(params)
        micro = k * b // accum
        for u in range(updates_done):
            for i in range(accum):
                rows = slice(i * micro, (i + 1) * micro)
                updates, opt_state = tx.update(grad(p, xs[u, rows], ys[u, rows]), opt_state, p)
                if i < accum - 1:  # nothing moves before the last micro-batch
                    assert all(float(jnp.abs(x).max()) == 0 for x in jax.tree.leaves(updates))
                p = optax.apply_updates(p, updates)
        return p

    big, small = train(1), train(k)
    assert float(jnp.abs(big["w"] - params["w"]).max()) > 1e-3  # the updates really moved
    for key in params:
        np.testing.assert_allclose(small[key], big[key], rtol=1e-5, atol=1e-6)


def test_adamw_matches_a_hand_written_reference():
    """Two AdamW updates against the textbook formulas, decay masked off the bias."""
    config = config_with(name="adamw", schedule="constant", clip_norm=0.0, weight_decay=0.1)
    config.learning_rate, config.optimizer.eps, config.warmup_steps = 0.01, 1e-6, 0
    tx, _ = build_optimizer(config)
    rng = np.random.default_rng(1)
    params = {"dense": {"kernel": rng.normal(size=(3, 2)), "bias": rng.normal(size=2)}}
    params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), params)
    grads = [
        jax.tree.map(lambda x: jnp.asarray(rng.normal(size=x.shape), jnp.float32), params)
        for _ in range(2)
    ]

    state, got = tx.init(params), params
    for g in grads:
        updates, state = tx.update(g, state, got)
        got = optax.apply_updates(got, updates)

    b1, b2, eps, lr, wd = 0.9, 0.999, 1e-6, 0.01, 0.1
    for name, decays in (("kernel", True), ("bias", False)):
        p = np.asarray(params["dense"][name], np.float64)
        m = v = np.zeros_like(p)
        for t, g in enumerate(grads, start=1):
            g = np.asarray(g["dense"][name], np.float64)
            m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
            step = (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
            p = p - lr * (step + (wd * p if decays else 0.0))
        np.testing.assert_allclose(got["dense"][name], p, rtol=1e-5, atol=1e-6)
