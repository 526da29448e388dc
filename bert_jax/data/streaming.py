"""Pretraining input streamed from a prepared directory through Grain: this process's rows of
every global batch, read by index from the ArrayRecord shards and masked in worker processes.

Batch i of epoch e is a pure function of (seed, e, i): its rows are positions i*B.. of the
epoch's seeded bijection over record indices (`EpochOrder`), and each row is masked with numbers
keyed by (seed, e, row), so neither the worker count nor the process count changes a batch and
the position saved in checkpoints stays two integers.
"""

import atexit
import os
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from bert_jax.data.batches import Batch, check_batch_size
from bert_jax.data.epoch_order import EpochOrder
from bert_jax.data.keyed_random import RowRandom, derive_key
from bert_jax.data.masking import mask_tokens
from bert_jax.data.pair_records import RowLayout, decode_pairs
from bert_jax.data.prepared_records import PreparedRecords
from bert_jax.errors import UserError

_TRAIN_STREAM, _EVAL_STREAM = 0, 1
_ENDLESS = 1 << 40  # batches a Grain range spans: far beyond any run
_NO_SHARED_MEMORY = 1 << 40  # arrays below this many bytes are pickled between processes


def masked_rows(
    records: PreparedRecords,
    indices: np.ndarray,
    keys: np.ndarray,
    layout: RowLayout,
    masking: Mapping[str, Any],
) -> Batch:
    """The model inputs of the records at `indices`, each row masked from its own key."""
    pairs = decode_pairs(records.read(indices), layout)
    input_ids = pairs["input_ids"]
    return {
        "token_type_ids": pairs["token_type_ids"],
        "attention_mask": (input_ids != layout.pad_id).astype(np.int32),
        "next_sentence_labels": pairs["next_sentence_labels"],
        **mask_tokens(input_ids, rng=RowRandom(keys), **masking),
    }


class _LocalBatch:
    """Global batch number -> this process's rows of it (the function Grain's workers run)."""

    def __init__(self, records, layout, masking, batch_size, per_epoch, seed, rows: slice):
        self.records, self.layout, self.masking = records, layout, dict(masking)
        self.batch_size, self.per_epoch, self.seed, self.rows = batch_size, per_epoch, seed, rows

    def __call__(self, number: int) -> Batch:
        epoch, batch = divmod(int(number), self.per_epoch)
        positions = batch * self.batch_size + np.arange(self.rows.start, self.rows.stop)
        if getattr(self, "_order_epoch", None) != epoch:  # one order object per epoch
            self._order, self._order_epoch = EpochOrder(len(self.records), self.seed, epoch), epoch
        indices = self._order(positions)
        keys = derive_key(self.seed, _TRAIN_STREAM, epoch, positions)
        return masked_rows(self.records, indices, keys, self.layout, self.masking)


class StreamedBatches(Iterator[Batch]):
    """This process's rows of each global batch, epoch after epoch (the `EpochBatches`
    contract: `batches_per_epoch`, `get_state`, `set_state`, endless `__next__`)."""

    def __init__(
        self,
        records: PreparedRecords,
        layout: RowLayout,
        masking: Mapping[str, Any],
        *,
        global_batch_size: int,
        seed: int,
        process_index: int = 0,
        process_count: int = 1,
        num_workers: int = 0,
        prefetch: int = 4,
    ):
        check_batch_size(
            "batch_size", global_batch_size, process_count, len(records), "use a larger corpus"
        )
        local = global_batch_size // process_count
        self._batches_per_epoch = len(records) // global_batch_size  # the remainder is dropped
        self._make = _LocalBatch(
            records, layout, masking, global_batch_size, self._batches_per_epoch, seed,
            slice(process_index * local, (process_index + 1) * local),
        )  # fmt: skip
        self._num_workers, self._prefetch = num_workers, prefetch
        self._epoch = self._batch = 0
        self._iterator = None
        atexit.register(self.close)

    @property
    def batches_per_epoch(self) -> int:
        return self._batches_per_epoch

    @property
    def records_read(self) -> int:
        """Records read in this process so far (Grain workers count their own reads)."""
        return self._make.records.records_read

    def get_state(self) -> dict[str, int]:
        """The position of the next batch, JSON-serialisable, for checkpoints."""
        return {"epoch": self._epoch, "batch": self._batch}

    def set_state(self, state: Mapping[str, int]) -> None:
        """Continues from a position returned by `get_state`."""
        epoch, batch = int(state["epoch"]), int(state["batch"])
        if epoch < 0 or not 0 <= batch < self._batches_per_epoch:
            raise UserError(
                f"The saved data position {dict(state)} does not fit these "
                f"{self._batches_per_epoch} batches per epoch; resume with the data "
                "the run started with."
            )
        self.close()
        self._epoch, self._batch = epoch, batch

    def __next__(self) -> Batch:
        """The next batch; never raises StopIteration."""
        if self._iterator is None:
            self._iterator = iter(
                self._dataset(self._epoch * self._batches_per_epoch + self._batch)
            )
        batch = next(self._iterator)
        self._batch += 1
        if self._batch == self._batches_per_epoch:
            self._epoch, self._batch = self._epoch + 1, 0
        return batch

    def close(self) -> None:
        """Stops the worker processes (they restart from the position on the next batch)."""
        if self._iterator is not None:
            close = getattr(self._iterator, "close", None)
            if close is not None:
                close()
            self._iterator = None

    def _dataset(self, first: int):
        """Batches `first`, `first + 1`, ... as a Grain dataset, in order whatever the workers."""
        import grain
        from absl import flags

        if not flags.FLAGS.is_parsed():  # Grain reads its absl flags; a library caller has none
            flags.FLAGS.mark_as_parsed()
        dataset = grain.MapDataset.range(first, first + _ENDLESS).map(self._make)
        threads = 1 if self._prefetch else 0
        dataset = dataset.to_iter_dataset(
            grain.ReadOptions(num_threads=threads, prefetch_buffer_size=self._prefetch)
        )
        # Batches (tens of kB) travel pickled, not in shared memory: a run stopped by an error
        # then leaves no shared-memory blocks behind for the resource tracker to complain about.
        dataset = grain.experimental.WithOptionsIterDataset(
            dataset, grain.experimental.DatasetOptions(min_shm_size=_NO_SHARED_MEMORY)
        )
        if self._num_workers:
            dataset = dataset.mp_prefetch(
                grain.MultiprocessingOptions(
                    num_workers=self._num_workers, per_worker_buffer_size=max(self._prefetch, 1)
                ),
                worker_init_fn=_exit_with_parent,
            )
        return dataset


def _exit_with_parent(worker_index: int, worker_count: int) -> None:
    """In a Grain worker: exit once the training process is gone (SIGKILL gives it no chance to
    stop its workers, which would otherwise wait forever on a full queue)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def eval_batches(
    records: PreparedRecords,
    layout: RowLayout,
    masking: Mapping[str, Any],
    *,
    batch_size: int,
    seed: int,
    num_batches: int | None = None,
    process_index: int = 0,
    process_count: int = 1,
) -> list[Batch]:
    """The first `num_batches` (default all) full batches of the eval split, in order, masked
    once; this process's rows of each."""
    check_batch_size(
        "data.eval_batch_size", batch_size, process_count, len(records), "raise data.eval_fraction"
    )
    available = len(records) // batch_size
    count = available if num_batches is None else min(available, num_batches)
    local = batch_size // process_count
    batches = []
    for number in range(count):
        positions = number * batch_size + np.arange(
            process_index * local, (process_index + 1) * local
        )
        keys = derive_key(seed, _EVAL_STREAM, 0, positions)
        batches.append(masked_rows(records, positions, keys, layout, masking))
    return batches
