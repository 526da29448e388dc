"""Packing encoded examples into rows: first fit in order, every token once and in place, nothing
overflows, unpacking gives the examples back, and SST-2 needs far fewer rows packed."""

import os

import numpy as np
import pytest

from bert_jax.data import glue
from bert_jax.data.packing import first_fit, pack_examples, unpack_rows
from bert_jax.data.wordpiece import SPECIAL_TOKENS, WordPiece

SST2_DEV = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "sst2", "dev.tsv")
PAD = 0


def examples(lengths, row_length: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Padded examples whose token ids name them: example i's j-th token is 1000 * i + j + 1."""
    lengths = np.asarray(lengths)
    count = len(lengths)
    mask = (np.arange(row_length)[None] < lengths[:, None]).astype(np.int32)
    ids = (1000 * np.arange(count)[:, None] + np.arange(row_length) + 1) * mask
    token_types = np.random.default_rng(seed).integers(0, 2, mask.shape) * mask
    return {
        "input_ids": ids.astype(np.int32),
        "token_type_ids": token_types.astype(np.int32),
        "attention_mask": mask,
        "labels": np.random.default_rng(seed).integers(0, 3, count).astype(np.int32),
    }


def random_lengths(count: int, row_length: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(2, row_length + 1, count)


def test_first_fit_takes_the_first_row_with_room_and_free_slots():
    # Row 0 takes 6 then 4 (full); 5 opens row 1, which takes 3 and 2 (full, three segments)...
    assert first_fit(np.array([6, 5, 4, 3, 2, 2, 1]), 10, 3).tolist() == [0, 1, 0, 1, 1, 2, 2]
    # ... and three examples close a row however much room it has left.
    assert first_fit(np.ones(7, int), 10, 3).tolist() == [0, 0, 0, 1, 1, 1, 2]
    # A later short example goes back to an earlier row with room.
    assert first_fit(np.array([8, 9, 2, 1]), 10, 8).tolist() == [0, 1, 0, 1]


@pytest.mark.parametrize("max_segments", [1, 3, 8])
def test_every_token_once_in_order_contiguous_and_no_row_overflows(max_segments):
    row_length = 32
    lengths = random_lengths(300, row_length)
    source = examples(lengths, row_length)
    packed = pack_examples(source, max_segments=max_segments, pad_id=PAD)
    num_rows = len(packed["input_ids"])
    assert all(packed[k].shape == (num_rows, row_length) for k in ("segment_ids", "position_ids"))
    assert packed["cls_positions"].shape == packed["labels"].shape == (num_rows, max_segments)

    seen = []
    for row in range(num_rows):
        segments = packed["segment_ids"][row]
        real = int(packed["attention_mask"][row].sum())
        # Real tokens first, then padding; segments numbered 1, 2, ... in runs.
        np.testing.assert_array_equal(packed["attention_mask"][row], np.arange(row_length) < real)
        assert (segments[:real] > 0).all() and (segments[real:] == 0).all()
        assert (packed["input_ids"][row, real:] == PAD).all()
        assert (np.diff(segments[:real]) >= 0).all()
        weights = packed["label_weight"][row]
        used = int(weights.sum())
        assert 1 <= used <= max_segments
        assert (weights[:used] == 1).all() and not weights[used:].any()
        assert segments.max() == used
        examples_here = []
        for slot in range(used):
            columns = np.flatnonzero(segments == slot + 1)
            start = packed["cls_positions"][row, slot]
            assert columns[0] == start and (np.diff(columns) == 1).all()  # contiguous
            example = packed["input_ids"][row, start] // 1000
            length = len(columns)
            assert length == lengths[example]
            np.testing.assert_array_equal(
                packed["input_ids"][row, columns], source["input_ids"][example, :length]
            )
            np.testing.assert_array_equal(
                packed["token_type_ids"][row, columns], source["token_type_ids"][example, :length]
            )
            np.testing.assert_array_equal(packed["position_ids"][row, columns], np.arange(length))
            assert packed["labels"][row, slot] == source["labels"][example]
            examples_here.append(example)
        assert examples_here == sorted(examples_here)  # in the given order
        seen += examples_here
    assert sorted(seen) == list(range(len(lengths)))  # every example exactly once


def test_unpacking_gives_back_the_examples():
    row_length = 24
    lengths = random_lengths(100, row_length, seed=1)
    source = examples(lengths, row_length, seed=1)
    packed = pack_examples(source, max_segments=4, pad_id=PAD)
    order = np.argsort(first_fit(lengths, row_length, 4), kind="stable")
    unpacked = unpack_rows(packed, pad_id=PAD)
    assert unpacked.keys() == source.keys()
    for name, array in source.items():
        np.testing.assert_array_equal(unpacked[name], array[order], err_msg=name)


def test_packing_is_deterministic_and_rejects_padding_before_tokens():
    source = examples(random_lengths(50, 16), 16)
    first, second = (pack_examples(source, max_segments=4, pad_id=PAD) for _ in range(2))
    assert all(np.array_equal(first[k], second[k]) for k in first)
    holey = dict(source, attention_mask=source["attention_mask"].copy())
    holey["attention_mask"][3, 0] = 0
    with pytest.raises(ValueError, match="real tokens first"):
        pack_examples(holey, max_segments=4, pad_id=PAD)


def test_sst2_dev_needs_about_a_fifth_of_the_rows_packed():
    rows = glue.read_rows(SST2_DEV, glue.GLUE["sst2"], split="validation", data_dir=None)
    words = sorted({word for sentence, _, _ in rows for word in sentence.split()})
    tokenizer = WordPiece([*SPECIAL_TOKENS, *words])
    encoded = glue.encode_rows(rows, tokenizer, ("0", "1"), 128, SST2_DEV)
    packed = pack_examples(encoded, max_segments=8, pad_id=tokenizer.pad_id)
    num_rows = len(packed["input_ids"])
    tokens = int(encoded["attention_mask"].sum())
    print(
        f"SST-2 dev at max_seq_length 128: {len(rows)} examples ({tokens} tokens) in {num_rows} "
        f"packed rows ({num_rows / len(rows):.3f}x); real tokens fill "
        f"{tokens / (128 * len(rows)):.1%} of unpacked rows, {tokens / (128 * num_rows):.1%} packed"
    )
    assert len(rows) == 872
    assert num_rows < 0.35 * len(rows)
    assert num_rows >= -(-tokens // 128)  # no fewer rows than the tokens need
