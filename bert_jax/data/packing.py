"""Sequence packing: several short encoded examples share one row, so fewer rows are padding.

A packed row carries `segment_ids` (1, 2, ... for its examples, 0 for padding; not BERT's
sentence A/B `token_type_ids`), from which the model keeps the examples from attending to each
other, and `position_ids` that restart at 0 for every example, so each example is encoded as if
it stood alone in its own row. Per-example arrays (the labels) become [rows, max_segments]
slots with `label_weight` 0 for empty slots. Packing depends only on the data, never on a seed.
"""

from collections.abc import Mapping

import numpy as np

TOKEN_ARRAYS = ("input_ids", "token_type_ids")
# What packing adds, or (attention_mask) rebuilds per row.
_PACKED_ONLY = ("segment_ids", "position_ids", "attention_mask", "cls_positions", "label_weight")


def first_fit(lengths: np.ndarray, row_length: int, max_segments: int) -> np.ndarray:
    """The row of every example: each goes, in the given order, into the first row that still
    has room for its tokens and holds fewer than `max_segments` examples."""
    free = np.full(len(lengths), row_length)  # room left in each row; -1 once a row is full
    shortest = int(lengths.min(initial=row_length))
    first_open = 0  # every row before it has no room for even the shortest example
    rows_used = 0
    placement = np.empty(len(lengths), np.int64)
    segments = np.zeros(len(lengths), np.int64)
    for i, length in enumerate(lengths):
        # Searching up to the first unused row, which always has room: one vectorised scan.
        row = first_open + int(np.argmax(free[first_open : rows_used + 1] >= length))
        placement[i] = row
        rows_used = max(rows_used, row + 1)
        segments[row] += 1
        free[row] = -1 if segments[row] == max_segments else free[row] - length
        while first_open < rows_used and free[first_open] < shortest:
            first_open += 1
    return placement


def pack_examples(
    examples: Mapping[str, np.ndarray], *, max_segments: int, pad_id: int
) -> dict[str, np.ndarray]:
    """Packs padded examples ([N, S] input_ids, token_type_ids, attention_mask; [N] per-example
    arrays such as labels) into [R, S] rows; see the module docstring for the packed arrays."""
    mask = np.asarray(examples["attention_mask"])
    num_examples, row_length = mask.shape
    lengths = mask.sum(axis=1)
    if lengths.min(initial=1) < 1 or not np.array_equal(
        mask, np.arange(row_length)[None] < lengths[:, None]
    ):
        raise ValueError("Every example needs real tokens first, then only padding.")
    rows = first_fit(lengths, row_length, max_segments)
    num_rows = int(rows.max(initial=-1)) + 1
    slots, starts = _slots_and_starts(rows, lengths)

    # Every real token once, in example order: its example, and its position in that example.
    example = np.repeat(np.arange(num_examples), lengths)
    position = np.arange(len(example)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    row, column = rows[example], starts[example] + position

    packed = {}
    for name in TOKEN_ARRAYS:
        packed[name] = np.full((num_rows, row_length), pad_id if name == "input_ids" else 0)
        packed[name][row, column] = np.asarray(examples[name])[mask > 0]
    for name, values in (
        ("segment_ids", slots[example] + 1),
        ("position_ids", position),
        ("attention_mask", 1),
    ):
        packed[name] = np.zeros((num_rows, row_length))
        packed[name][row, column] = values
    packed = {name: array.astype(np.int32) for name, array in packed.items()}
    packed["cls_positions"] = np.zeros((num_rows, max_segments), np.int32)
    packed["cls_positions"][rows, slots] = starts
    packed["label_weight"] = np.zeros((num_rows, max_segments), np.float32)
    packed["label_weight"][rows, slots] = 1.0
    for name, array in examples.items():
        if np.ndim(array) == 1:  # per example: labels
            packed[name] = np.zeros((num_rows, max_segments), np.asarray(array).dtype)
            packed[name][rows, slots] = array
    return packed


def unpack_rows(packed: Mapping[str, np.ndarray], *, pad_id: int) -> dict[str, np.ndarray]:
    """The inverse of `pack_examples`, for checks: the examples row by row, slot by slot (the
    order of a stable sort of `first_fit`'s rows), each padded to the row length again."""
    num_rows, row_length = packed["segment_ids"].shape
    per_example = [name for name in packed if name not in (*_PACKED_ONLY, *TOKEN_ARRAYS)]
    columns: dict[str, list] = {name: [] for name in (*TOKEN_ARRAYS, "attention_mask")}
    columns |= {name: [] for name in per_example}
    for row in range(num_rows):
        for slot in np.flatnonzero(packed["label_weight"][row]):
            span = packed["segment_ids"][row] == slot + 1
            length = int(span.sum())
            for name in TOKEN_ARRAYS:
                padded = np.full(row_length, pad_id if name == "input_ids" else 0, np.int32)
                padded[:length] = packed[name][row, span]
                columns[name].append(padded)
            columns["attention_mask"].append((np.arange(row_length) < length).astype(np.int32))
            for name in per_example:
                columns[name].append(packed[name][row, slot])
    return {name: np.asarray(values) for name, values in columns.items()}


def _slots_and_starts(rows: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each example's slot in its row (examples before it in the same row) and the column of its
    first token there: a row holds its examples in their given order, back to back."""
    order = np.argsort(rows, kind="stable")
    sorted_rows = rows[order]
    first_of_row = np.searchsorted(sorted_rows, sorted_rows)  # in sorted order
    ends = np.cumsum(lengths[order])
    starts_sorted = ends - lengths[order]
    slots, starts = np.empty_like(rows), np.empty_like(rows)
    slots[order] = np.arange(len(rows)) - first_of_row
    starts[order] = starts_sorted - starts_sorted[first_of_row]
    return slots, starts
