"""Fine-tuning batches: an endless, seeded, resumable epoch iterator over in-memory feature arrays,
and eval sets padded to full batches. (Pretraining streams prepared shards: `streaming.py`.)

Every random choice is a function of (seed, epoch, batch), so the iterator's whole state is two
integers and a restored run sees exactly the batches it would have seen. Batch contents do not
depend on the number of processes: each process builds the global batch and keeps its own rows.
"""

from collections.abc import Callable, Iterator, Mapping

import numpy as np

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
        check_batch_size("batch_size", global_batch_size, process_count, num_examples, more_data)
        self._num_examples = num_examples
        self._make_batch = make_batch
        self._batch_size = global_batch_size
        self._seed = seed
        local = global_batch_size // process_count
        self._local_rows = slice(process_index * local, (process_index + 1) * local)
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
        batch = {name: array[self._local_rows] for name, array in batch.items()}
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
    key: str, batch_size: int, process_count: int, num_examples: int, more_data: str
) -> None:
    """Rejects a batch size that processes cannot share or that the examples cannot fill."""
    if batch_size % process_count:
        raise UserError(
            f"{key}={batch_size} does not split evenly over {process_count} "
            f"processes; use a multiple of {process_count}."
        )
    if num_examples < batch_size:
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
) -> EpochBatches:
    """Shuffled batches of rows of equally long feature arrays (fine-tuning examples)."""
    num_examples = len(next(iter(arrays.values())))
    return EpochBatches(
        num_examples,
        lambda rows, rng: {name: array[rows] for name, array in arrays.items()},
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
) -> list[Batch]:
    """Every row once, in order, in full batches: the last is padded with copies of row 0 whose
    `example_weight` is 0, so all batches share one shape and metrics skip the padding.

    `example_index` numbers the rows, so outputs can be matched back to their examples."""
    if batch_size % process_count:
        raise UserError(
            f"data.eval_batch_size={batch_size} does not split evenly over {process_count} "
            f"processes; use a multiple of {process_count}."
        )
    num_examples = len(next(iter(arrays.values())))
    padded = -(-num_examples // batch_size) * batch_size
    rows = np.concatenate([np.arange(num_examples), np.zeros(padded - num_examples, np.int64)])
    columns = {name: array[rows] for name, array in arrays.items()}
    columns["example_weight"] = (np.arange(padded) < num_examples).astype(np.float32)
    columns["example_index"] = rows.astype(np.int32)
    local = batch_size // process_count
    return [
        {
            name: array[start + process_index * local : start + (process_index + 1) * local]
            for name, array in columns.items()
        }
        for start in range(0, padded, batch_size)
    ]
