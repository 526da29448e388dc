"""A few fixed shapes for batches of varying size: sequence lengths and packed row counts are
rounded up to buckets, so each shape compiles once and little compute goes to padding."""

import math
from collections.abc import Mapping

import numpy as np

SEQUENCE_BUCKETS = (32, 64, 128, 256, 512)
ROW_BUCKETS_PER_BATCH = 8  # packed row counts step by 1/8 of the batch (or the row multiple)


def sequence_bucket(longest: int, max_seq_length: int) -> int:
    """The smallest bucket that holds `longest` tokens; `max_seq_length` is always one."""
    return next((b for b in SEQUENCE_BUCKETS if longest <= b < max_seq_length), max_seq_length)


def row_bucket(rows: int, batch_size: int, multiple: int) -> int:
    """`rows` rounded up to a step of about an eighth of `batch_size`, a multiple of `multiple`
    (the batch shards and processes the rows are split over)."""
    step = multiple * math.ceil(math.ceil(batch_size / ROW_BUCKETS_PER_BATCH) / multiple)
    return step * math.ceil(max(rows, 1) / step)


def trim_to_bucket(batch: Mapping[str, np.ndarray], max_seq_length: int) -> dict[str, np.ndarray]:
    """The batch with every [rows, max_seq_length] array cut to the bucket of its longest row
    (the columns cut are padding in every row)."""
    longest = int(np.asarray(batch["attention_mask"]).sum(axis=1).max(initial=1))
    length = sequence_bucket(longest, max_seq_length)
    return {
        name: array[:, :length] if np.ndim(array) == 2 and array.shape[1] == max_seq_length
        else array
        for name, array in batch.items()
    }  # fmt: skip


def pad_rows(batch: Mapping[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
    """The batch with all-zero rows appended up to `rows` (zero weight, mask and segments: they
    carry no example)."""
    return {
        name: np.concatenate([a, np.zeros((rows - len(a), *a.shape[1:]), a.dtype)])
        for name, a in batch.items()
    }
