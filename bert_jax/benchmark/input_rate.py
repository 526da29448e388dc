"""Examples per second the real data pipeline produces on its own (no model, no device)."""

import tempfile

from absl import logging
from ml_collections import ConfigDict

from bert_jax.benchmark import measure
from bert_jax.data.pipeline import build_pretraining_data


def input_examples_per_sec(config: ConfigDict, batches: int) -> float:
    """Masked batches/s of `pretraining_batches` on the config's corpus, times the batch size.

    Building the examples (corpus, tokenizer, sentence pairs) happens once before training and is
    not timed; what is timed is what every step waits for: shuffling, masking and slicing.
    """
    with tempfile.TemporaryDirectory() as workdir:
        data = build_pretraining_data(config, workdir)
    seconds = measure.time_calls(lambda: next(data.train), warmup=1, repeats=batches).median_sec
    logging.info("Input pipeline: %.4f s per batch of %d.", seconds, config.batch_size)
    return config.batch_size / seconds
