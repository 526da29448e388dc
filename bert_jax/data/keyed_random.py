"""Counter-based random numbers: every value is a hash of (key, counter), so a row of a batch gets
the same numbers whichever batch, process or worker computes it. Vectorised NumPy (splitmix64)."""

import functools
from collections.abc import Sequence

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a bijection of uint64 whose outputs look independent."""
    x = np.asarray(x, np.uint64)
    with np.errstate(over="ignore"):
        x = x + _GOLDEN
        x = (x ^ (x >> np.uint64(30))) * _MIX1
        x = (x ^ (x >> np.uint64(27))) * _MIX2
    return x ^ (x >> np.uint64(31))


def derive_key(*parts: int | np.ndarray) -> np.ndarray:
    """One uint64 key (or one per element) from a sequence of integers, hashed in order."""
    key = np.uint64(0x2545F4914F6CDD1D)
    for part in parts:
        key = mix64(key ^ np.asarray(part).astype(np.uint64))
    return key


@functools.lru_cache(maxsize=64)
def _counters(draw: int, columns: int) -> np.ndarray:
    """The per-column counters of a row's `draw`-th draw (the same for every batch)."""
    counters = derive_key(draw, np.arange(columns, dtype=np.uint64))
    counters.flags.writeable = False
    return counters


class RowRandom:
    """The subset of `np.random.Generator` that `mask_tokens` uses, with one key per row: row r of
    every draw depends only on `keys[r]`, the draw's number and the column."""

    def __init__(self, keys: np.ndarray):
        self._keys = np.asarray(keys, np.uint64)[:, None]
        self._draws = 0

    def _bits(self, shape: Sequence[int]) -> np.ndarray:
        rows, columns = shape
        if rows != len(self._keys):
            raise ValueError(f"{rows} rows drawn with {len(self._keys)} row keys")
        self._draws += 1
        return mix64(self._keys ^ _counters(self._draws, columns)[None, :])

    def random(self, shape: Sequence[int]) -> np.ndarray:
        """Floats in [0, 1), 53 random bits each."""
        return (self._bits(shape) >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))

    def integers(self, low: int, high: int, shape: Sequence[int]) -> np.ndarray:
        """Integers in [low, high)."""
        return low + (self._bits(shape) % np.uint64(high - low)).astype(np.int64)
