"""The fused dropout draws exactly nnx.Dropout's masks: same outputs, same gradients, bitwise."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from bert_jax.model.dropout import Dropout, bernoulli_mask, threefry2x32

RATES = (0.1, 0.5, 0.9)


def _bits(x: jax.Array) -> np.ndarray:
    return np.asarray(x).view(np.uint32)


def test_threefry_matches_jax_random_bits():
    key = jax.random.key(42)
    shape = (3, 70)
    x2 = jnp.arange(np.prod(shape), dtype=jnp.uint32).reshape(shape)
    bits1, bits2 = threefry2x32(jax.random.key_data(key), jnp.zeros(shape, jnp.uint32), x2)
    np.testing.assert_array_equal(bits1 ^ bits2, jax.random.bits(key, shape, jnp.uint32))


@pytest.mark.parametrize("shape", [(7,), (2, 4, 16, 16)])
def test_mask_is_jax_random_bernoulli(shape):
    @jax.jit
    def both(key):
        ours = [bernoulli_mask(key, 1.0 - rate, shape) for rate in RATES]
        return ours, [jax.random.bernoulli(key, 1.0 - rate, shape) for rate in RATES]

    for seed in range(2):
        ours, expected = both(jax.random.fold_in(jax.random.key(seed), 1000 + seed))
        for got, want in zip(ours, expected, strict=True):
            np.testing.assert_array_equal(got, want)


def test_outputs_and_gradients_equal_nnx_dropout():
    x = jax.random.normal(jax.random.key(0), (3, 5, 11))
    key = jax.random.split(jax.random.key(3), 4)[2]

    def output_and_grad(layer):
        def loss(x):
            return jnp.sum(jnp.sin(layer(x, deterministic=False, rngs=key)))

        return jax.jit(lambda x: (layer(x, deterministic=False, rngs=key), jax.grad(loss)(x)))(x)

    for rate in (0.1, 0.3):
        (got, got_grad), (want, want_grad) = (
            output_and_grad(layer) for layer in (Dropout(rate), nnx.Dropout(rate))
        )
        np.testing.assert_array_equal(_bits(got), _bits(want))
        np.testing.assert_array_equal(_bits(got_grad), _bits(want_grad))
        assert 0 < int((got == 0).sum()) < got.size


def test_deterministic_zero_rate_and_raw_keys():
    x = jnp.linspace(-1.0, 1.0, 24).reshape(4, 6)
    np.testing.assert_array_equal(Dropout(0.5)(x, deterministic=True), x)
    np.testing.assert_array_equal(Dropout(0.0)(x, deterministic=False), x)
    np.testing.assert_array_equal(Dropout(1.0)(x, deterministic=False, rngs=jax.random.key(0)), 0)
    raw = jax.random.PRNGKey(5)  # legacy uint32[2] keys take jax.random's own path
    np.testing.assert_array_equal(
        Dropout(0.2)(x, deterministic=False, rngs=raw),
        nnx.Dropout(0.2)(x, deterministic=False, rngs=raw),
    )
