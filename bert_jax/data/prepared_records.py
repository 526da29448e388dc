"""The records of a prepared split (its shard files in order) by global index, read in batches.

Only the per-shard record counts are held (from the manifest), and readers open a shard on its
first read, in whichever process reads: nothing proportional to the corpus is in memory.
"""

from collections.abc import Sequence

import numpy as np

from bert_jax.data.shard_files import ShardReader


class PreparedRecords:
    """Records 0..N-1 of a split's shards; counts every record it reads (`records_read`)."""

    def __init__(self, files: Sequence[tuple[str, int]]):
        self._readers = [ShardReader(path) for path, _ in files]
        counts = np.array([count for _, count in files], np.int64)
        self._starts = np.concatenate([[0], np.cumsum(counts)])
        self.records_read = 0

    def __len__(self) -> int:
        return int(self._starts[-1])

    def read(self, indices: Sequence[int] | np.ndarray) -> list[bytes]:
        """The records at the global `indices`, in that order: one batched read per shard."""
        indices = np.asarray(indices, np.int64)
        shards = np.searchsorted(self._starts, indices, side="right") - 1
        out: list[bytes] = [b""] * len(indices)
        for shard in np.unique(shards):
            where = np.flatnonzero(shards == shard)
            offsets = (indices[where] - self._starts[shard]).tolist()
            for position, record in zip(
                where.tolist(), self._readers[shard].read(offsets), strict=True
            ):
                out[position] = record
        self.records_read += len(indices)
        return out
