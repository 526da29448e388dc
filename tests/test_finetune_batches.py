"""Fine-tuning batches: seeded epochs of feature arrays that resume exactly and split over
processes, and eval sets padded to full batches whose padding carries weight 0."""

import json

import numpy as np
import pytest

from bert_jax.data.batches import array_batches, padded_batches
from bert_jax.errors import UserError


def features(num_examples: int) -> dict[str, np.ndarray]:
    """Rows that name themselves: `row` is the row number, the other arrays derive from it."""
    rows = np.arange(num_examples)
    return {
        "row": rows.astype(np.int32),
        "input_ids": (rows[:, None] * 10 + np.arange(4)).astype(np.int32),
        "labels": (rows % 3).astype(np.int32),
    }


def take(batches, count: int) -> list[dict[str, np.ndarray]]:
    return [next(batches) for _ in range(count)]


def assert_rows_consistent(batch: dict[str, np.ndarray]) -> None:
    """Every array of the batch holds the same rows, in the same order."""
    rows = batch["row"]
    np.testing.assert_array_equal(batch["input_ids"], rows[:, None] * 10 + np.arange(4))
    np.testing.assert_array_equal(batch["labels"], rows % 3)


def assert_same_batches(first, second) -> None:
    assert len(first) == len(second)
    for a, b in zip(first, second, strict=True):
        assert sorted(a) == sorted(b)
        for name in a:
            np.testing.assert_array_equal(a[name], b[name])


# --- array_batches ------------------------------------------------------------------------------


def test_every_row_once_per_epoch_when_batches_fill_it():
    batches = array_batches(features(12), global_batch_size=4, seed=0)
    assert batches.batches_per_epoch == 3
    for _ in range(3):  # epochs
        epoch = take(batches, 3)
        for batch in epoch:
            assert batch["row"].shape == (4,)
            assert batch["input_ids"].shape == (4, 4)
            assert_rows_consistent(batch)
        rows = np.concatenate([batch["row"] for batch in epoch])
        assert sorted(rows.tolist()) == list(range(12))


def test_the_remainder_is_dropped_and_differs_between_epochs():
    batches = array_batches(features(10), global_batch_size=4, seed=3)
    assert batches.batches_per_epoch == 2
    seen_per_epoch = []
    for _ in range(6):
        rows = np.concatenate([batch["row"] for batch in take(batches, 2)]).tolist()
        assert len(rows) == 8
        assert len(set(rows)) == 8  # no row twice in an epoch
        assert set(rows) <= set(range(10))
        seen_per_epoch.append(frozenset(rows))
    # The two dropped rows are not always the same ones: over the epochs, every row is used.
    assert len(set(seen_per_epoch)) > 1
    assert frozenset().union(*seen_per_epoch) == frozenset(range(10))


def test_order_differs_between_epochs_and_is_a_function_of_the_seed():
    def epochs(seed: int, count: int) -> list[list[int]]:
        batches = array_batches(features(16), global_batch_size=4, seed=seed)
        return [
            np.concatenate([batch["row"] for batch in take(batches, 4)]).tolist()
            for _ in range(count)
        ]

    first = epochs(seed=7, count=3)
    assert first[0] != first[1] != first[2] != first[0]
    assert first[0] != list(range(16))  # shuffled
    assert epochs(seed=7, count=3) == first  # the same seed, the same batches
    assert epochs(seed=8, count=3)[0] != first[0]  # another seed, another order


def test_resuming_from_get_state_continues_with_identical_batches():
    arrays = features(10)
    reference = array_batches(arrays, global_batch_size=4, seed=5)
    expected = take(reference, 9)  # batches 0..8: four and a half epochs

    first = array_batches(arrays, global_batch_size=4, seed=5)
    assert first.get_state() == {"epoch": 0, "batch": 0}
    assert_same_batches(take(first, 3), expected[:3])
    state = first.get_state()
    assert state == {"epoch": 1, "batch": 1}
    state = json.loads(json.dumps(state))  # as a checkpoint stores it

    resumed = array_batches(arrays, global_batch_size=4, seed=5)
    resumed.set_state(state)
    assert resumed.get_state() == {"epoch": 1, "batch": 1}
    assert_same_batches(take(resumed, 6), expected[3:])
    assert resumed.get_state() == {"epoch": 4, "batch": 1}


def test_set_state_at_an_epoch_start():
    arrays = features(9)
    expected = take(array_batches(arrays, global_batch_size=3, seed=1), 7)
    resumed = array_batches(arrays, global_batch_size=3, seed=1)
    resumed.set_state({"epoch": 2, "batch": 0})
    assert_same_batches(take(resumed, 1), expected[6:])


@pytest.mark.parametrize("state", [{"epoch": 0, "batch": 2}, {"epoch": -1, "batch": 0}])
def test_set_state_rejects_positions_outside_the_epoch(state):
    batches = array_batches(features(10), global_batch_size=4, seed=0)
    with pytest.raises(UserError, match="2 batches per epoch"):
        batches.set_state(state)


def test_each_of_two_processes_gets_half_of_the_same_global_batch():
    arrays = features(20)
    whole = take(array_batches(arrays, global_batch_size=8, seed=2), 6)
    halves = [
        take(
            array_batches(
                arrays, global_batch_size=8, seed=2, process_index=index, process_count=2
            ),
            6,
        )
        for index in range(2)
    ]
    for step, batch in enumerate(whole):
        first, second = halves[0][step], halves[1][step]
        for name in batch:
            assert first[name].shape[0] == 4
            np.testing.assert_array_equal(first[name], batch[name][:4])
            np.testing.assert_array_equal(second[name], batch[name][4:])
        assert not set(first["row"].tolist()) & set(second["row"].tolist())


def test_process_batches_resume_too():
    arrays = features(20)
    expected = take(
        array_batches(arrays, global_batch_size=8, seed=4, process_index=1, process_count=2), 5
    )
    batches = array_batches(arrays, global_batch_size=8, seed=4, process_index=1, process_count=2)
    take(batches, 3)
    resumed = array_batches(arrays, global_batch_size=8, seed=4, process_index=1, process_count=2)
    resumed.set_state(batches.get_state())
    assert_same_batches(take(resumed, 2), expected[3:])


def test_batch_size_not_divisible_by_processes():
    with pytest.raises(UserError, match="batch_size=6 does not split evenly over 4 processes"):
        array_batches(features(20), global_batch_size=6, seed=0, process_count=4)


def test_batch_size_larger_than_the_data():
    with pytest.raises(UserError, match="batch_size=16 exceeds the 10 examples"):
        array_batches(features(10), global_batch_size=16, seed=0)


def test_batch_size_error_says_lower_batch_size_once():
    with pytest.raises(UserError) as error:
        array_batches(features(10), global_batch_size=16, seed=0)
    assert str(error.value).count("lower batch_size") == 1


# --- padded_batches -----------------------------------------------------------------------------


def test_padded_batches_cover_every_row_once_in_order():
    arrays = features(10)
    batches = padded_batches(arrays, batch_size=4)
    assert len(batches) == 3
    for batch in batches:
        assert sorted(batch) == ["example_index", "example_weight", "input_ids", "labels", "row"]
        assert batch["row"].shape == (4,)
        assert batch["input_ids"].shape == (4, 4)
        assert batch["example_weight"].shape == (4,)
        assert batch["example_index"].shape == (4,)
        assert batch["example_weight"].dtype == np.float32
        assert batch["example_index"].dtype == np.int32
        assert_rows_consistent(batch)
    index = np.concatenate([batch["example_index"] for batch in batches])
    weight = np.concatenate([batch["example_weight"] for batch in batches])
    rows = np.concatenate([batch["row"] for batch in batches])
    assert index.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 0]
    assert weight.tolist() == [1.0] * 10 + [0.0] * 2
    # Real rows in order; the padding copies row 0.
    assert rows.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 0]
    np.testing.assert_array_equal(
        np.concatenate([batch["input_ids"] for batch in batches])[:10], arrays["input_ids"]
    )


def test_padded_batches_without_padding():
    batches = padded_batches(features(8), batch_size=4)
    assert len(batches) == 2
    assert np.concatenate([b["example_index"] for b in batches]).tolist() == list(range(8))
    assert np.concatenate([b["example_weight"] for b in batches]).tolist() == [1.0] * 8


def test_padded_batches_smaller_than_one_batch():
    batches = padded_batches(features(3), batch_size=8)
    assert len(batches) == 1
    assert batches[0]["example_index"].tolist() == [0, 1, 2, 0, 0, 0, 0, 0]
    assert batches[0]["example_weight"].tolist() == [1, 1, 1, 0, 0, 0, 0, 0]
    assert batches[0]["labels"].tolist() == [0, 1, 2, 0, 0, 0, 0, 0]


def test_padded_batches_split_over_two_processes():
    arrays = features(11)
    whole = padded_batches(arrays, batch_size=6)
    halves = [
        padded_batches(arrays, batch_size=6, process_index=index, process_count=2)
        for index in range(2)
    ]
    assert len(whole) == len(halves[0]) == len(halves[1]) == 2
    for step, batch in enumerate(whole):
        for name in batch:
            assert halves[0][step][name].shape[0] == 3
            np.testing.assert_array_equal(halves[0][step][name], batch[name][:3])
            np.testing.assert_array_equal(halves[1][step][name], batch[name][3:])
    # The second process holds the last real row and the one padding row.
    assert halves[1][1]["example_index"].tolist() == [9, 10, 0]
    assert halves[1][1]["example_weight"].tolist() == [1.0, 1.0, 0.0]


def test_eval_batch_size_not_divisible_by_processes():
    with pytest.raises(UserError, match="data.eval_batch_size=5 does not split evenly over 2"):
        padded_batches(features(10), batch_size=5, process_count=2)
