"""Checks of a run config that need no data and no devices, done before anything is written."""

import math

from ml_collections import ConfigDict

from bert_jax.data.sentence_pairs import check_sentence_task
from bert_jax.errors import UserError
from bert_jax.model.config import bert_config
from bert_jax.optim import build_optimizer


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise UserError(message)


def validate_config(config: ConfigDict) -> None:
    """One clear sentence for the first setting that cannot work."""
    if "task" not in config:
        check_sentence_task(config.sentence_task)
    _require(
        config.best_mode in ("min", "max"),
        f"best_mode={config.best_mode!r} is unknown; use 'min' or 'max'.",
    )
    _require(
        config.best_metric is None or config.best_metric.startswith("eval/"),
        f"best_metric={config.best_metric!r} must name an eval metric such as 'eval/mlm_loss'.",
    )
    for key in (
        "num_train_steps",
        "log_every_steps",
        "eval_every_steps",
        "checkpoint_every_steps",
        "histogram_every_steps",
        "max_checkpoints_to_keep",
        "data.eval_batch_size",
        "data.max_eval_batches",
        "data.dupe_factor",
        "data.vocab_size",
        "data.max_train_examples",
        "data.max_segments_per_row",
        "num_epochs",
    ):
        value = _lookup(config, key)
        if value is not None:  # absent from this task's config, or derived later
            _require(value > 0, f"{key}={value} must be positive.")
    if config.num_train_steps is not None and config.warmup_steps is not None:
        _require(
            0 <= config.warmup_steps <= config.num_train_steps,
            f"warmup_steps={config.warmup_steps} must lie in [0, "
            f"num_train_steps={config.num_train_steps}].",
        )
    _require(config.learning_rate > 0, f"learning_rate={config.learning_rate} must be positive.")
    _require(
        config.data.max_seq_length <= config.model.max_position_embeddings,
        f"data.max_seq_length={config.data.max_seq_length} exceeds the position table "
        f"(model.max_position_embeddings={config.model.max_position_embeddings}); "
        "lower the first or raise the second.",
    )
    if "task" not in config:
        _validate_pretraining_data(config.data)
        # Checked now, not when the model and optimizer are built: a corpus given directly is
        # prepared into the workdir before that, and a bad setting must leave no workdir.
        bert_config(config.model.preset, vocab_size=8)
        build_optimizer(config)
    _validate_no_ignored_setting(config)


def _validate_no_ignored_setting(config: ConfigDict) -> None:
    """Settings that would otherwise have no effect (or a silently wrong one) are refused."""
    opt = config.optimizer
    _require(
        not (opt.name == "adam" and opt.weight_decay),
        f"optimizer.weight_decay={opt.weight_decay} has no effect with optimizer.name='adam'; "
        "use optimizer.name=adamw (decoupled weight decay) or set optimizer.weight_decay=0.",
    )
    _require(
        config.dtype != "float16",
        "dtype='float16' needs loss scaling, which this project does not do (gradients would "
        "underflow); use dtype=bfloat16, which has float32's range.",
    )
    limit = config.get("device_memory_limit_bytes")
    _require(
        limit is None or limit > 0,
        f"device_memory_limit_bytes={limit} must be positive (or unset).",
    )


def check_best_metric(best_metric: str, eval_metrics: list[str]) -> None:
    """`best_metric` must be one of the metrics the task's evaluation reports."""
    _require(
        best_metric in eval_metrics,
        f"best_metric={best_metric!r} is not among the eval metrics {sorted(eval_metrics)}; "
        "set best_metric to one of them.",
    )


def _lookup(config: ConfigDict, key: str):
    value = config
    for part in key.split("."):
        if part not in value:
            return None
        value = value[part]
    return value


def resolve_derived(config: ConfigDict, batches_per_epoch: int, main_metric: str) -> ConfigDict:
    """The config with what fine-tuning leaves unset: `num_train_steps` from `num_epochs`,
    `warmup_steps` from `warmup_fraction`, `best_metric` from the task's main metric."""
    if None not in (config.num_train_steps, config.warmup_steps, config.best_metric):
        return config
    resolved = config.copy_and_resolve_references()
    if resolved.best_metric is None:
        resolved.best_metric = f"eval/{main_metric}"
    updates = batches_per_epoch // config.optimizer.grad_accum_steps
    if resolved.num_train_steps is None:
        resolved.num_train_steps = max(1, math.ceil(config.num_epochs * updates))
    if resolved.warmup_steps is None:
        resolved.warmup_steps = int(config.warmup_fraction * resolved.num_train_steps)
    validate_config(resolved)
    return resolved


def _validate_pretraining_data(data: ConfigDict) -> None:
    _require(
        0.0 < data.masked_lm_prob < 1.0,
        f"data.masked_lm_prob={data.masked_lm_prob} must lie strictly between 0 and 1.",
    )
    _require(
        0.0 <= data.short_seq_prob <= 1.0,
        f"data.short_seq_prob={data.short_seq_prob} must lie in [0, 1].",
    )
    _require(
        0.0 < data.eval_fraction < 1.0,
        f"data.eval_fraction={data.eval_fraction} must lie strictly between 0 and 1.",
    )
    _require(
        data.max_seq_length >= 8,
        f"data.max_seq_length={data.max_seq_length} is too short; use at least 8 tokens.",
    )
    for key in ("num_workers", "prefetch"):
        _require(data[key] >= 0, f"data.{key}={data[key]} must be 0 or more.")
    for key in ("prepare_workers", "tokenizer_sample_sentences", "num_shards"):
        if data[key] is not None:
            _require(data[key] >= 1, f"data.{key}={data[key]} must be 1 or more.")
    _require(
        data.corpus != "prepared:",
        "data.corpus='prepared:' names no directory; use prepared:DIR with the --output of "
        "bert_jax.prepare.",
    )
