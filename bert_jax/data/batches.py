"""Fine-tuning batches: an endless, seeded, resumable epoch iterator over in-memory feature arrays
(plain, length-bucketed or packed), and eval sets padded to full batches. (Pretraining streams
prepared shards: `streaming.py`.)

Every random choice is a function of (seed, epoch, batch), so the iterator's whole state is two
integers and a restored run sees exactly the batches it would have seen. Batch contents do not
depend on the number of processes: each process builds the global batch and keeps its own rows.
"""

from collections.abc import Callable, Iterator, Mapping

import numpy as np

from bert_jax.data.bucketing import pad_rows, row_bucket, trim_to_bucket
from bert_jax.data.packing import pack_examples
from bert_jax.errors import UserError

Batch = dict[str, np.ndarray]


class EpochBatches(Iterator[Batch]):
    """This process's rows of each global batch, epoch after epoch, in a seeded order.

    `make_batch(rows, rng)` builds the global batch of the example indices `rows`; `rng` is
    seeded by (seed, epoch, batch), so batches are a function of the position alone.
    """

    def __init__(
        self,
        num_examples: int,
        make_batch: Callable[[np.ndarray, np.random.Generator], Batch],
        *,
        global_batch_size: int,
        seed: int,
        process_index: int = 0,
        process_count: int = 1,
        shuffle: bool = True,
        more_data: str = "use a larger data.corpus",
    ):
        check_batch_size(
            "batch_size", global_batch_size, process_count, num_examples=num_examples,
            more_data=more_data,
        )  # fmt: skip
        self._num_examples = num_examples
        self._make_batch = make_batch
        self._batch_size = global_batch_size
        self._seed = seed
        self._process_index, self._process_count = process_index, process_count
        self._shuffle = shuffle
        self._batches_per_epoch = num_examples // global_batch_size  # the remainder is dropped
        self._epoch = self._batch = 0
        self._order = self._epoch_order()

    @property
    def batches_per_epoch(self) -> int:
        return self._batches_per_epoch

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
                "config the run started with."
            )
        self._epoch, self._batch = epoch, batch
        self._order = self._epoch_order()

    def __next__(self) -> Batch:
        """The next batch; never raises StopIteration."""
        start = self._batch * self._batch_size
        rows = self._order[start : start + self._batch_size]
        rng = np.random.default_rng([self._seed, self._epoch, self._batch, 1])
        batch = self._make_batch(rows, rng)
        # This process's share of the rows (a packed batch may have another row count).
        local = len(next(iter(batch.values()))) // self._process_count
        start = self._process_index * local
        batch = {name: array[start : start + local] for name, array in batch.items()}
        self._batch += 1
        if self._batch == self._batches_per_epoch:
            self._epoch, self._batch = self._epoch + 1, 0
            self._order = self._epoch_order()
        return batch

    def _epoch_order(self) -> np.ndarray:
        """The example order of the current epoch."""
        if not self._shuffle:
            return np.arange(self._num_examples)
        return np.random.default_rng([self._seed, self._epoch]).permutation(self._num_examples)


def check_batch_size(
    key: str,
    batch_size: int,
    divisor: int,
    *,
    over: str | None = None,
    num_examples: int | None = None,
    more_data: str = "add data",
) -> None:
    """The one batch-size check: a positive multiple of `divisor` (the processes feeding it, or
    `over`, a description such as "4 batch shards of 8 devices and 2 processes"), and no more
    rows than `num_examples` when given."""
    if batch_size <= 0 or batch_size % divisor:
        raise UserError(
            f"{key}={batch_size} does not split evenly over {over or f'{divisor} processes'}; "
            f"use a positive multiple of {divisor}."
        )
    if num_examples is not None and num_examples < batch_size:
        raise UserError(
            f"{key}={batch_size} exceeds the {num_examples} examples; lower {key} or {more_data}."
        )


def array_batches(
    arrays: Mapping[str, np.ndarray],
    *,
    global_batch_size: int,
    seed: int,
    process_index: int = 0,
    process_count: int = 1,
    max_seq_length: int | None = None,
) -> EpochBatches:
    """Shuffled batches of rows of equally long feature arrays (fine-tuning examples); with
    `max_seq_length`, each batch is cut to the length bucket of its longest row."""
    num_examples = len(next(iter(arrays.values())))

    def make_batch(rows, rng):
        batch = {name: array[rows] for name, array in arrays.items()}
        return batch if max_seq_length is None else trim_to_bucket(batch, max_seq_length)

    return EpochBatches(
        num_examples,
        make_batch,
        global_batch_size=global_batch_size,
        seed=seed,
        process_index=process_index,
        process_count=process_count,
        more_data="add training data",
    )


def padded_batches(
    arrays: Mapping[str, np.ndarray],
    *,
    batch_size: int,
    process_index: int = 0,
    process_count: int = 1,
    max_seq_length: int | None = None,
) -> list[Batch]:
    """Every row once in full batches: the last is padded with copies of the first (shortest)
    row whose `example_weight` is 0, so metrics skip the padding. `example_index` numbers the
    rows, so outputs can be matched back to their examples.

    With `max_seq_length`, rows go shortest first and each batch is cut to the length bucket of
    its longest row (a few shapes, little padding); without it, rows stay in order."""
    check_batch_size("data.eval_batch_size", batch_size, process_count)
    num_examples = len(next(iter(arrays.values())))
    order = np.arange(num_examples)
    if max_seq_length is not None:
        order = np.argsort(np.asarray(arrays["attention_mask"]).sum(axis=1), kind="stable")
    padded = -(-num_examples // batch_size) * batch_size
    rows = np.concatenate([order, np.full(padded - num_examples, order[0] if len(order) else 0)])
    columns = {name: array[rows] for name, array in arrays.items()}
    columns["example_weight"] = (np.arange(padded) < num_examples).astype(np.float32)
    columns["example_index"] = rows.astype(np.int32)
    local = batch_size // process_count
    batches = []
    for start in range(0, padded, batch_size):
        batch = {name: array[start : start + batch_size] for name, array in columns.items()}
        if max_seq_length is not None:
            batch = trim_to_bucket(batch, max_seq_length)
        begin = process_index * local
        batches.append({name: array[begin : begin + local] for name, array in batch.items()})
    return batches


def packed_batches(
    arrays: Mapping[str, np.ndarray],
    *,
    global_batch_size: int,
    seed: int,
    max_segments: int,
    pad_id: int,
    row_multiple: int,
    process_index: int = 0,
    process_count: int = 1,
) -> EpochBatches:
    """Shuffled batches of `global_batch_size` examples each, as unpacked, but each batch's
    examples packed into as few rows as fit (data/packing.py), padded with empty rows to a
    row-count bucket (a multiple of `row_multiple`): the same examples per update, a fraction
    of the tokens."""
    num_examples = len(next(iter(arrays.values())))

    def make_batch(rows, rng):
        packed = pack_examples(
            {name: array[rows] for name, array in arrays.items()},
            max_segments=max_segments,
            pad_id=pad_id,
        )
        filled = len(packed["input_ids"])
        return pad_rows(packed, row_bucket(filled, global_batch_size, row_multiple))

    return EpochBatches(
        num_examples,
        make_batch,
        global_batch_size=global_batch_size,
        seed=seed,
        process_index=process_index,
        process_count=process_count,
        more_data="add training data",
    )
