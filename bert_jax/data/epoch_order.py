"""The order of an epoch as a seeded bijection of [0, n): a Feistel network with cycle walking.

Position -> record index is computed for the positions asked, never as a materialised
permutation, so the order of a billion-record epoch costs no memory.
"""

import numpy as np

from bert_jax.data.keyed_random import derive_key, mix64

_ROUNDS = 6


class EpochOrder:
    """A pseudo-random permutation of [0, n) chosen by (seed, epoch)."""

    def __init__(self, n: int, seed: int, epoch: int):
        if n < 1:
            raise ValueError("an epoch order needs at least one record")
        self._n = n
        bits = max(2, int(n - 1).bit_length())
        self._half = (bits + 1) // 2  # the domain 4**half is below 4n: few walks per position
        self._mask = np.uint64((1 << self._half) - 1)
        self._round_keys = [derive_key(seed, epoch, r) for r in range(_ROUNDS)]

    def __call__(self, positions: np.ndarray) -> np.ndarray:
        """The record index at each position (int64)."""
        x = np.asarray(positions, np.uint64)
        if x.size and int(x.max()) >= self._n:
            raise IndexError(f"position {int(x.max())} outside an epoch of {self._n}")
        x = self._permute(x)
        outside = x >= self._n
        while outside.any():  # cycle walking: re-apply until back inside [0, n)
            x[outside] = self._permute(x[outside])
            outside = x >= self._n
        return x.astype(np.int64)

    def _permute(self, x: np.ndarray) -> np.ndarray:
        half = np.uint64(self._half)
        left, right = x >> half, x & self._mask
        for key in self._round_keys:
            left, right = right, left ^ (mix64(right ^ key) & self._mask)
        return (left << half) | right
