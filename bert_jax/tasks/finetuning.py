"""What the fine-tuning tasks share: batches from encoded arrays, summaries, eval gathering."""

import jax
import numpy as np
from ml_collections import ConfigDict

from bert_jax.data.batches import EpochBatches, array_batches, padded_batches
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


def batches(config: ConfigDict, train: dict, validation: dict) -> tuple[EpochBatches, list[dict]]:
    """Shuffled train batches by epoch, and every validation row once in padded batches."""
    processes = dict(process_index=jax.process_index(), process_count=jax.process_count())
    train_batches = array_batches(
        train, global_batch_size=config.batch_size, seed=config.seed, **processes
    )
    eval_batches = padded_batches(validation, batch_size=config.data.eval_batch_size, **processes)
    return train_batches, eval_batches


def summarize(sums: dict, num_steps: int) -> dict:
    """Per-step means, the loss averaged over examples (or tokens), accuracy if counted."""
    out = {key: sums[key] / num_steps for key in ("loss", "grad_norm", "param_norm")}
    if "correct" in sums:
        out["accuracy"] = sums["correct"] / max(sums["count"], 1.0)
    return out


def gather(outputs: list[dict]) -> dict[str, np.ndarray]:
    """Eval outputs of all batches, concatenated, padding rows dropped."""
    joined = {key: np.concatenate([o[key] for o in outputs]) for key in outputs[0]}
    keep = joined.pop("example_weight") > 0
    return {key: value[keep] for key, value in joined.items()}
