"""What the step benchmark trains: pretraining or a fine-tuning task's real model and loss, on a
synthetic batch of the shapes and dtypes that task's batches have.

Fine-tuning rows are padded to `seq_len` as the unpacked batchers pad them, with real lengths
drawn uniformly from a quarter to all of the row (SST-2 sentences fill about a quarter of 64
tokens; padding costs the same time as real tokens, so only the shapes matter for speed).
"""

import dataclasses
from collections.abc import Callable

import numpy as np
from flax import nnx

from bert_jax import flops
from bert_jax.benchmark import measure
from bert_jax.data.sentence_pairs import max_predictions_per_seq
from bert_jax.model import BertConfig
from bert_jax.tasks import classification, pretraining, question_answering, token_classification
from bert_jax.train_step import LossFn

TASKS = ("pretraining", "classification", "ner", "squad")
# SST-2's two classes; CoNLL-2003's nine BIO tags. Only their number matters to the step.
LABELS = {"classification": ["0", "1"], "ner": [f"tag{i}" for i in range(9)]}


@dataclasses.dataclass(frozen=True)
class TaskCase:
    """The model to build, the loss to differentiate, one host batch, and its model FLOPs."""

    build_model: Callable[[nnx.Rngs], nnx.Module]
    loss: LossFn
    batch: dict[str, np.ndarray]
    flops_per_step: float
    max_predictions_per_seq: int = 0


def _padded_rows(batch: int, seq_len: int, vocab_size: int, rng) -> dict[str, np.ndarray]:
    """Encoder inputs of rows [CLS] ... [SEP] then padding, one segment, random lengths."""
    lengths = rng.integers(max(2, seq_len // 4), seq_len + 1, batch)
    real = np.arange(seq_len)[None, :] < lengths[:, None]
    ids = rng.integers(5, vocab_size, (batch, seq_len), dtype=np.int32)
    return {
        "input_ids": np.where(real, ids, 0).astype(np.int32),
        "token_type_ids": np.zeros((batch, seq_len), np.int32),
        "attention_mask": real.astype(np.int32),
    }


def task_case(task: str, bert: BertConfig, config, batch: int, seq_len: int) -> TaskCase:
    """The case of `task` (one of TASKS) at this size; `config` is the run config."""
    vocab_size, seed = bert.vocab_size, config.seed
    rng = np.random.default_rng(seed)
    # Fine-tuning heads: the pooler always runs (6·H² per example); two logits per position
    # for NER/SQuAD heads are far below a percent of the step and not counted, as in the tasks.
    finetune_flops = flops.train_flops_per_step(bert, batch, seq_len, 0, sentence_head=True)
    if task == "pretraining":
        predictions = max_predictions_per_seq(seq_len, config.data.masked_lm_prob)
        head = config.sentence_task != "none"
        return TaskCase(
            pretraining.model(bert, {"sentence_head": head}),
            pretraining.loss,
            measure.synthetic_batch(batch, seq_len, predictions, vocab_size, seed),
            flops.train_flops_per_step(bert, batch, seq_len, predictions, head),
            predictions,
        )
    rows = _padded_rows(batch, seq_len, vocab_size, rng)
    if task == "classification":
        labels = LABELS[task]
        return TaskCase(
            classification.model(bert, {"labels": labels}),
            classification.make_loss(regression=False),
            rows | {"labels": rng.integers(0, len(labels), batch, dtype=np.int32)},
            finetune_flops,
        )
    if task == "ner":
        labels = LABELS[task]
        tags = rng.integers(0, len(labels), (batch, seq_len), dtype=np.int32)
        tags = np.where(rows["attention_mask"] > 0, tags, -1).astype(np.int32)
        return TaskCase(
            token_classification.model(bert, {"labels": labels}),
            token_classification.loss,
            rows | {"labels": tags},
            finetune_flops,
        )
    if task == "squad":
        lengths = rows["attention_mask"].sum(1)
        starts = rng.integers(1, lengths)
        ends = np.minimum(starts + rng.integers(0, 4, batch), lengths - 1)
        spans = {"start_positions": starts, "end_positions": ends}
        return TaskCase(
            question_answering.model(bert, {}),
            question_answering.loss,
            rows | {key: value.astype(np.int32) for key, value in spans.items()},
            finetune_flops,
        )
    raise ValueError(f"unknown benchmark task {task!r}; one of {TASKS}")
