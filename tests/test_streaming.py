"""Streamed pretraining input: batches are a function of (seed, epoch, batch) alone, whatever the
number of Grain workers or processes, and each process reads only the records of its rows."""

import jax
import numpy as np
import pytest

from bert_jax.data.epoch_order import EpochOrder
from bert_jax.data.pipeline import build_pretraining_data
from bert_jax.data.prepare_runners import prepare_directory
from bert_jax.data.streaming import StreamedBatches
from conftest import load_pretrain_config

SMALL = {"data.vocab_size": 300, "data.max_seq_length": 32, "data.dupe_factor": 1}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> str:
    """The default corpus in 3 shards (sequences of 32 tokens)."""
    directory = str(tmp_path_factory.mktemp("streaming") / "prepared")
    config = load_pretrain_config(**(SMALL | {"data.corpus": "default"}))
    prepare_directory(config, directory, num_shards=3)
    return directory


def stream(directory: str, tmp_path, **overrides) -> StreamedBatches:
    settings = {"data.corpus": f"prepared:{directory}", "batch_size": 16, "data.prefetch": 0}
    config = load_pretrain_config(**(SMALL | settings | overrides))
    return build_pretraining_data(config, str(tmp_path / "unused")).train


def take(batches, count: int) -> list[dict]:
    return [next(batches) for _ in range(count)]


def test_epoch_order_is_a_seeded_bijection():
    for n in (1, 2, 3, 17, 1000, 4097):
        order = EpochOrder(n, seed=0, epoch=1)(np.arange(n))
        assert sorted(order.tolist()) == list(range(n))
    first, other_epoch = EpochOrder(1000, 0, 0)(np.arange(1000)), EpochOrder(1000, 0, 1)
    assert not np.array_equal(first, other_epoch(np.arange(1000)))
    assert np.array_equal(EpochOrder(1000, 0, 0)(np.arange(990, 1000)), first[990:])


def test_two_processes_read_only_their_rows_and_together_make_the_batch(
    prepared, tmp_path, monkeypatch
):
    whole = stream(prepared, tmp_path, **{"data.num_workers": 0})
    halves = []
    for index in range(2):  # what process `index` of a 2-process job builds
        monkeypatch.setattr(jax, "process_index", lambda index=index: index)
        monkeypatch.setattr(jax, "process_count", lambda: 2)
        halves.append(stream(prepared, tmp_path, **{"data.num_workers": 0}))
    expected = take(whole, 5)
    parts = [take(half, 5) for half in halves]
    for batch, first, second in zip(expected, *parts, strict=True):
        for key in batch:
            assert np.array_equal(np.concatenate([first[key], second[key]]), batch[key]), key
    for half in halves:  # 5 batches of 8 of the 16 rows each, nothing else
        assert half.records_read == 5 * 8
    assert whole.records_read == 5 * 16


def test_batches_do_not_depend_on_the_workers_and_resume_from_two_integers(prepared, tmp_path):
    in_process = stream(prepared, tmp_path, **{"data.num_workers": 0})
    per_epoch = in_process.batches_per_epoch
    first = take(in_process, 2)
    in_process.set_state({"epoch": 1, "batch": per_epoch - 2})
    across = take(in_process, 3)  # the end of epoch 1 and the start of epoch 2
    assert in_process.get_state() == {"epoch": 2, "batch": 1}
    assert not np.array_equal(first[0]["input_ids"], across[0]["input_ids"])

    workers = stream(prepared, tmp_path, **{"data.num_workers": 2, "data.prefetch": 2})
    workers.set_state({"epoch": 1, "batch": per_epoch - 2})
    for a, b in zip(across, take(workers, 3), strict=True):
        assert all(np.array_equal(a[key], b[key]) for key in a)
    assert workers.get_state() == {"epoch": 2, "batch": 1}
    workers.close()
