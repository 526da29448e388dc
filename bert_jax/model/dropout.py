"""Dropout with exactly `nnx.Dropout`'s masks, drawn by a Threefry that XLA fuses into the mask.

`nnx.Dropout` draws `jax.random.bernoulli(key, 1 - rate)`: Threefry-2x32 over the element
indices, then a float compare. On CPU, JAX lowers Threefry as a rolled loop of five steps, each
reading and writing two uint32 arrays the size of the mask (for attention probabilities, 12
times the hidden states), about 6% of a 6-layer fine-tuning step. Here the same 20 rounds are
written out as plain integer ops, which XLA fuses into one elementwise pass with the compare and
the select: the same bits (`tests/test_dropout.py` checks masks and outputs bitwise), so every
run trains exactly as before, without the uint32 arrays.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax import lax

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))  # Threefry-2x32's, alternating per step
_KEY_PARITY = np.uint32(0x1BD11BDA)
_MANTISSA_BITS = 23  # float32: uniform() keeps the top 23 random bits


def _rotate_left(x: jax.Array, distance: int) -> jax.Array:
    return lax.shift_left(x, np.uint32(distance)) | lax.shift_right_logical(
        x, np.uint32(32 - distance)
    )


def threefry2x32(key: jax.Array, x1: jax.Array, x2: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Threefry-2x32 (20 rounds) of counters (x1, x2) under a uint32[2] key, as JAX computes it."""
    ks = (key[0], key[1], key[0] ^ key[1] ^ _KEY_PARITY)
    x1, x2 = x1 + ks[0], x2 + ks[1]
    for step in range(5):
        for rotation in _ROTATIONS[step % 2]:
            x1 = x1 + x2
            x2 = x1 ^ _rotate_left(x2, rotation)
        x1 = x1 + ks[(step + 1) % 3]
        x2 = x2 + ks[(step + 2) % 3] + np.uint32(step + 1)
    return x1, x2


def _flat_index(shape: tuple[int, ...]) -> jax.Array:
    """uint32 row-major index of every element (what `jax.random.bits` counts with)."""
    index = jnp.zeros(shape, jnp.uint32)
    stride = 1
    for axis in reversed(range(len(shape))):
        index = index + lax.broadcasted_iota(jnp.uint32, shape, axis) * np.uint32(stride)
        stride *= shape[axis]
    return index


def _exact_here(key: jax.Array, shape: tuple[int, ...]) -> bool:
    """Whether the fused draw reproduces `jax.random.bernoulli` for this key and shape."""
    if not jnp.issubdtype(key.dtype, jax.dtypes.prng_key) or key.shape:
        return False
    impl = str(jax.random.key_impl(key))
    return (
        "threefry2x32" in impl
        and jax.config.jax_threefry_partitionable
        and (math.prod(shape) < 2**32)
    )


def bernoulli_mask(key: jax.Array, keep_prob: float, shape: tuple[int, ...]) -> jax.Array:
    """`jax.random.bernoulli(key, keep_prob, shape)`, bit for bit, in one fusible expression."""
    if not _exact_here(key, shape):
        return jax.random.bernoulli(key, keep_prob, shape)
    bits1, bits2 = threefry2x32(
        jax.random.key_data(key), jnp.zeros(shape, jnp.uint32), _flat_index(shape)
    )
    mantissa = lax.shift_right_logical(bits1 ^ bits2, np.uint32(32 - _MANTISSA_BITS))
    # uniform() is mantissa · 2^-23 exactly, so `uniform < p` is `mantissa < ceil(p · 2^23)`.
    threshold = math.ceil(float(np.float32(keep_prob)) * 2**_MANTISSA_BITS)
    return mantissa < np.uint32(threshold)


class Dropout(nnx.Module):
    """`nnx.Dropout(rate)` for a key given at call time, with the fused mask above."""

    def __init__(self, rate: float):
        self.rate = rate

    def __call__(
        self, inputs: jax.Array, *, deterministic: bool, rngs: jax.Array | None = None
    ) -> jax.Array:
        """Zeroes each element with probability `rate` and scales the rest by 1 / (1 - rate)."""
        if deterministic or self.rate == 0.0:
            return inputs
        if self.rate == 1.0:
            return jnp.zeros_like(inputs)
        keep_prob = 1.0 - self.rate
        mask = bernoulli_mask(rngs, keep_prob, inputs.shape)
        return lax.select(mask, inputs / keep_prob, jnp.zeros_like(inputs))
