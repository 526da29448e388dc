"""One sentence pair as a compact record, and a batch of records back to model-ready rows.

A record is the little-endian array `[len(A), label, *A, *B]` of token ids without the special
tokens, in uint16 when the vocabulary fits (else uint32): about 2 bytes per token on disk.
Decoding rebuilds `[CLS] A [SEP] B [SEP]` (or `[CLS] A [SEP]` when B is empty) and padding, as
`sentence_pairs.create_pair_examples` lays rows out.
"""

import dataclasses
from collections.abc import Sequence

import numpy as np


def record_dtype(vocab_size: int) -> np.dtype:
    """The narrowest unsigned type holding every id."""
    return np.dtype("<u2") if vocab_size <= 1 << 16 else np.dtype("<u4")


def encode_pair(a: Sequence[int], b: Sequence[int], label: int, dtype: np.dtype) -> bytes:
    """The record of one pair."""
    return np.array([len(a), label, *a, *b], dtype).tobytes()


@dataclasses.dataclass(frozen=True)
class RowLayout:
    """How records become rows: their id type, the special ids and the row length."""

    dtype: str
    max_seq_length: int
    cls_id: int
    sep_id: int
    pad_id: int


def decode_pairs(records: Sequence[bytes], layout: RowLayout) -> dict[str, np.ndarray]:
    """int32 `input_ids`, `token_type_ids` [N, S] and `next_sentence_labels` [N], vectorised."""
    arrays = [np.frombuffer(record, layout.dtype) for record in records]
    count, length = len(arrays), layout.max_seq_length
    sizes = np.array([len(a) for a in arrays], np.int64).reshape(count)
    heads = np.stack([a[:2] for a in arrays]).astype(np.int64) if count else np.zeros((0, 2), int)
    len_a, labels = heads[:, 0], heads[:, 1]
    len_b = sizes - 2 - len_a
    tokens = np.concatenate([a[2:] for a in arrays]) if count else np.zeros(0, layout.dtype)
    # Column of every token: A starts after [CLS], B after A's [SEP].
    row = np.repeat(np.arange(count), sizes - 2)
    within = np.arange(len(tokens)) - np.repeat(np.cumsum(sizes - 2) - (sizes - 2), sizes - 2)
    column = 1 + within + (within >= len_a[row])
    input_ids = np.full((count, length), layout.pad_id, np.int32)
    input_ids[row, column] = tokens
    rows = np.arange(count)
    input_ids[:, 0] = layout.cls_id
    input_ids[rows, 1 + len_a] = layout.sep_id
    has_b = len_b > 0
    input_ids[rows[has_b], (2 + len_a + len_b)[has_b]] = layout.sep_id
    columns = np.arange(length)[None, :]
    second = (columns >= (2 + len_a)[:, None]) & (columns < (3 + len_a + len_b)[:, None])
    return {
        "input_ids": input_ids,
        "token_type_ids": (second & has_b[:, None]).astype(np.int32),
        "next_sentence_labels": labels.astype(np.int32),
    }
