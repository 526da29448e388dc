"""What the fine-tuning tasks share: batches from encoded arrays, summaries, eval gathering."""

import math

import jax
import numpy as np
from ml_collections import ConfigDict

from bert_jax import sharding
from bert_jax.data.batches import EpochBatches, array_batches, packed_batches, padded_batches
from bert_jax.errors import UserError
from bert_jax.model.inputs import ENCODER_INPUTS, PACKED_INPUTS


def forward(model, batch: dict, dropout_rng=None, **options):
    """The task model on a batch's inputs (packed or not); `options` such as `intermediates`."""
    packed = {k: batch[k] for k in PACKED_INPUTS if k in batch}
    inputs = (batch[k] for k in ENCODER_INPUTS)
    return model(*inputs, dropout_rng=dropout_rng, **packed, **options)


def require_data(config: ConfigDict) -> None:
    if not config.data.train or not config.data.validation:
        raise UserError(
            "Set data.train and data.validation to the training and validation data (files, or "
            "tfds:NAME)."
        )


def require_unpacked(config: ConfigDict) -> None:
    if config.data.pack_sequences:
        raise UserError(
            f"data.pack_sequences works only for sentence classification and regression, not "
            f"task={config.task!r}; set it to false."
        )


def batches(
    config: ConfigDict, train: dict, validation: dict, *, pad_id: int | None = None
) -> tuple[EpochBatches, list[dict]]:
    """Shuffled train batches of `batch_size` examples by epoch (packed into rows when the
    config packs and `pad_id` is given, else cut to their length bucket), and every validation
    row once in padded, length-bucketed batches."""
    processes = dict(process_index=jax.process_index(), process_count=jax.process_count())
    max_seq_length = config.data.max_seq_length
    if config.data.pack_sequences and pad_id is not None:
        # Packed rows are split over the batch shards and processes like unpacked ones.
        shards = sharding.batch_shards(sharding.make_mesh(config), config)
        train_batches = packed_batches(
            train,
            global_batch_size=config.batch_size,
            seed=config.seed,
            max_segments=config.data.max_segments_per_row,
            pad_id=pad_id,
            row_multiple=math.lcm(shards, jax.process_count()),
            **processes,
        )
    else:
        train_batches = array_batches(
            train,
            global_batch_size=config.batch_size,
            seed=config.seed,
            max_seq_length=max_seq_length,
            **processes,
        )
    eval_batches = padded_batches(
        validation,
        batch_size=config.data.eval_batch_size,
        max_seq_length=max_seq_length,
        **processes,
    )
    return train_batches, eval_batches


def summarize(sums: dict, num_steps: int) -> dict:
    """Per-step means, the loss averaged over examples (or tokens), accuracy if counted."""
    out = {key: sums[key] / num_steps for key in ("loss", "grad_norm", "param_norm")}
    if "correct" in sums:
        out["accuracy"] = sums["correct"] / max(sums["count"], 1.0)
    if "rows" in sums:  # packed batches
        out["rows_per_step"] = sums["rows"] / num_steps
    return out


def gather(outputs: list[dict], width: int | None = None) -> dict[str, np.ndarray]:
    """Eval outputs of all batches, concatenated, padding rows dropped; per-token outputs of
    length-bucketed batches are padded back to `width` columns (-1e9 logits, 0 ids)."""

    def widen(array: np.ndarray) -> np.ndarray:
        if width is None or array.ndim < 2 or array.shape[1] == width:
            return array
        fill = -1e9 if np.issubdtype(array.dtype, np.floating) else 0
        pad = [(0, 0), (0, width - array.shape[1])] + [(0, 0)] * (array.ndim - 2)
        return np.pad(array, pad, constant_values=fill)

    joined = {key: np.concatenate([widen(o[key]) for o in outputs]) for key in outputs[0]}
    keep = joined.pop("example_weight") > 0
    return {key: value[keep] for key, value in joined.items()}
