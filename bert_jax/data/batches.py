"""Masked pretraining batches: an endless, seeded, resumable iterator and a fixed eval set.

Every random choice is a function of (seed, epoch, batch), so the iterator's whole state is two
integers and a restored run sees exactly the batches it would have seen. Batch contents do not
depend on the number of processes: each process masks the global batch and keeps its own rows.
"""

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from bert_jax.data.masking import mask_tokens
from bert_jax.data.pretraining import PairExamples
from bert_jax.errors import UserError

Batch = dict[str, np.ndarray]


class PretrainingBatches(Iterator[Batch]):
    """This process's rows of each global batch, epoch after epoch, dynamically masked."""

    def __init__(
        self,
        examples: PairExamples,
        *,
        global_batch_size: int,
        seed: int,
        masking: Mapping[str, Any],
        process_index: int = 0,
        process_count: int = 1,
        shuffle: bool = True,
    ):
        """`masking` holds the keyword arguments of `mask_tokens` other than `rng`."""
        _check_batch_size(
            "batch_size",
            global_batch_size,
            process_count,
            len(examples),
            "use a larger data.corpus",
        )
        self._examples = examples
        self._batch_size = global_batch_size
        self._seed = seed
        self._masking = dict(masking)
        local = global_batch_size // process_count
        self._local_rows = slice(process_index * local, (process_index + 1) * local)
        self._shuffle = shuffle
        self._batches_per_epoch = len(examples) // global_batch_size  # the remainder is dropped
        self._epoch = self._batch = 0
        self._order = self._epoch_order()

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
        batch = _masked_batch(
            self._examples,
            rows,
            self._local_rows,
            np.random.default_rng([self._seed, self._epoch, self._batch, 1]),
            self._masking,
        )
        self._batch += 1
        if self._batch == self._batches_per_epoch:
            self._epoch, self._batch = self._epoch + 1, 0
            self._order = self._epoch_order()
        return batch

    def _epoch_order(self) -> np.ndarray:
        """The example order of the current epoch."""
        if not self._shuffle:
            return np.arange(len(self._examples))
        return np.random.default_rng([self._seed, self._epoch]).permutation(len(self._examples))


def _masked_batch(
    examples: PairExamples,
    rows: np.ndarray,
    keep: slice,
    rng: np.random.Generator,
    masking: Mapping[str, Any],
) -> Batch:
    """Masks the given examples together and returns the `keep` rows of every array."""
    input_ids = examples.input_ids[rows]
    batch = {
        "token_type_ids": examples.token_type_ids[rows],
        "attention_mask": (input_ids != examples.pad_id).astype(np.int32),
        "next_sentence_labels": examples.next_sentence_labels[rows],
        **mask_tokens(input_ids, rng=rng, **masking),
    }
    return {name: array[keep] for name, array in batch.items()}


def fixed_batches(
    examples: PairExamples,
    *,
    batch_size: int,
    seed: int,
    masking: Mapping[str, Any],
    num_batches: int | None = None,
    process_index: int = 0,
    process_count: int = 1,
) -> list[Batch]:
    """The eval set: the first `num_batches` (default all) full batches, in order, masked once.

    The remainder that does not fill a batch is dropped, so every eval batch has the same shape.
    """
    _check_batch_size(
        "data.eval_batch_size", batch_size, process_count, len(examples), "raise data.eval_fraction"
    )
    batches = PretrainingBatches(
        examples,
        global_batch_size=batch_size,
        seed=seed,
        masking=masking,
        process_index=process_index,
        process_count=process_count,
        shuffle=False,
    )
    available = len(examples) // batch_size
    return [
        next(batches)
        for _ in range(available if num_batches is None else min(available, num_batches))
    ]


def _check_batch_size(
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
