"""Benchmark the real train step: one JSON line of speed, compile, memory and MFU per case.

    python -m bert_jax.benchmark --preset=small,base --seq-len=128 --batch=32 --steps=5
    python -m bert_jax.benchmark --task=classification --preset=mini --seq-len=64 \
        --config.model.num_layers=6 --config.model.hidden_size=384 --config.model.num_heads=12 \
        --config.model.intermediate_size=1536 --profile     # the SST-2 fine-tuning step

Each case builds the config's optimizer and model at the preset's size with BERT's 30,522-word
vocabulary, compiles the donated train step ahead of time, times it on synthetic batches
(median after warm-up), and compares it with the device's peak (a measured float32 matmul on
CPU) and with the rate the real input pipeline produces batches. `--steps=0` only compiles.
Peak memory is the device's, or on CPU the peak RSS of the process so far (cases share it).
"""

import os
import sys

import jax
from absl import app, flags, logging
from ml_collections import ConfigDict, config_flags

from bert_jax import allocator
from bert_jax.benchmark import measure
from bert_jax.benchmark.input_rate import input_examples_per_sec
from bert_jax.benchmark.step import measure_step
from bert_jax.benchmark.task_cases import TASKS
from bert_jax.errors import UserError

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# BERT's settings (dropout on, scanned layers), not the quick start's.
_DEFAULT_CONFIG = os.path.join(_REPO, "configs", "pretrain.py") + ":standard"

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", _DEFAULT_CONFIG, "Experiment config file.")
flags.DEFINE_list("preset", ["small"], "Model size presets, comma-separated: one case each.")
flags.DEFINE_integer("seq-len", 128, "Tokens per sequence.")
flags.DEFINE_integer("batch", 32, "Global batch size (sequences per step).")
flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "Compute dtype of the matmuls.")
flags.DEFINE_integer("steps", 5, "Timed steps after warm-up; 0 compiles only.")
flags.DEFINE_integer("warmup", 2, "Untimed steps before timing.")
flags.DEFINE_integer("vocab-size", measure.BERT_VOCAB_SIZE, "Model vocabulary size.")
flags.DEFINE_integer("input-batches", 20, "Timed input-pipeline batches; 0 skips the pipeline.")
flags.DEFINE_bool("profile", False, "Also trace two steps and report the time per kind of op.")
flags.DEFINE_enum(
    "task",
    "pretraining",
    list(TASKS),
    "Which train step: pretraining (MLM + the config's sentence task), or a fine-tuning task's "
    "model and loss (classification: SST-2's two labels; ner; squad) on padded synthetic rows.",
)


def case_config(base: ConfigDict, preset: str, seq_len: int, batch: int, dtype: str) -> ConfigDict:
    """The experiment config with the case's size, shape and dtype; other overrides stay."""
    config = base.copy_and_resolve_references()
    config.model.preset = preset
    config.data.max_seq_length = seq_len
    config.batch_size = batch
    config.dtype = dtype
    # Fine-tuning configs count steps in epochs of data the benchmark does not read; the
    # schedule only needs a length, which does not change the step's cost.
    if config.num_train_steps is None:
        config.num_train_steps = 1000
    if config.warmup_steps is None:
        config.warmup_steps = config.num_train_steps // 10
    return config


def run_case(config: ConfigDict, input_rates: dict) -> dict:
    """Every figure of one case; `input_rates` caches the pipeline rate per (seq_len, batch)."""
    seq_len, batch = config.data.max_seq_length, config.batch_size
    record = {
        "framework": "jax",
        "task": FLAGS.task,
        "preset": config.model.preset,
        "seq_len": seq_len,
        "batch": batch,
        "dtype": config.dtype,
        "device_kind": jax.devices()[0].device_kind,
        "num_devices": jax.device_count(),
        "cpu_count": measure.cpu_count(),
        "allocator": allocator.in_use(),
        "load_average_1m": os.getloadavg()[0],
        "steps": FLAGS.steps,
        "warmup": FLAGS.warmup,
    }
    record |= measure_step(
        config, FLAGS["vocab-size"].value, FLAGS.steps, FLAGS.warmup, FLAGS.profile, FLAGS.task
    )
    # The input rate is the pretraining pipeline's (masking per batch); fine-tuning batches are
    # slices of arrays encoded once before training.
    if FLAGS["input-batches"].value > 0 and FLAGS.task == "pretraining":
        key = (seq_len, batch)
        if key not in input_rates:
            input_rates[key] = input_examples_per_sec(config, FLAGS["input-batches"].value)
        record["input_examples_per_sec"] = input_rates[key]
        record |= measure.input_check(input_rates[key], record.get("sequences_per_sec"))
    return record


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    input_rates: dict = {}
    for preset in FLAGS.preset:
        config = case_config(FLAGS.config, preset, FLAGS["seq-len"].value, FLAGS.batch, FLAGS.dtype)
        try:
            measure.print_json(run_case(config, input_rates))
        except UserError as error:
            logging.error("%s", error)
            print(f"error: {error}", file=sys.stderr)
            sys.exit(1)


if __name__ == "__main__":
    allocator.reexec_with_jemalloc()
    app.run(main)
