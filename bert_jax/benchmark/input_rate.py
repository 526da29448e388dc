"""Examples per second the real data pipeline produces on its own (no model, no device)."""

import tempfile

from absl import logging
from ml_collections import ConfigDict

from bert_jax.benchmark import measure
from bert_jax.data.pipeline import build_pretraining_data


def input_examples_per_sec(config: ConfigDict, batches: int) -> float:
    """Masked batches/s of the streamed pretraining input on the config's corpus, times the batch
    size.

    Preparing the corpus (tokenizer, sentence pairs) happens once before training and is not
    timed; what is timed is what every step waits for: reading, masking and handing over a batch.
    """
    with tempfile.TemporaryDirectory() as workdir:
        data = build_pretraining_data(config, workdir)
        next(data.train)  # worker start-up is not a per-step cost
        seconds = measure.time_calls(lambda: next(data.train), warmup=1, repeats=batches)
        data.train.close()
    seconds = seconds.median_sec
    logging.info("Input pipeline: %.4f s per batch of %d.", seconds, config.batch_size)
    return config.batch_size / seconds
