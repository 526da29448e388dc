"""What the training loop needs from an objective (pretraining or a fine-tuning task).

The loop knows no task: it builds the model a task describes, minimises the task's loss, sums
its train metrics, runs its eval outputs over its eval batches and asks it for the eval metrics.
"""

import dataclasses
from collections.abc import Callable
from typing import Any

from flax import nnx

from bert_jax.data.batches import EpochBatches
from bert_jax.model import BertConfig
from bert_jax.train_step import EvalFn, LossFn


@dataclasses.dataclass
class Task:
    name: str
    tokenizer: Any  # WordPiece or SentencePiece
    model_config: BertConfig
    build_model: Callable[[nnx.Rngs], nnx.Module]
    loss: LossFn  # jittable: (model, batch, dropout_rng[, frozen]) -> (loss, metric sums)
    summarize: Callable[[dict, int], dict]  # train metric sums over n steps -> figures
    train: EpochBatches  # or anything with its interface (data/task_mixture.TaskMixture)
    eval_batches: list[dict]  # this process's rows of each eval batch
    eval_outputs: EvalFn  # jittable: (model, batch) -> arrays gathered on the host
    evaluate: Callable[[list[dict]], dict]  # host: eval outputs of every batch -> metrics
    # Model FLOPs of a full micro-batch (batch_size rows of max_seq_length), for MFU; the loop
    # scales them to the positions a packed or length-bucketed batch computes.
    flops_per_step: float
    console_metric: str  # the accuracy-like train figure on the console line
    main_metric: str  # the eval metric that picks the best checkpoint unless configured
    info: dict = dataclasses.field(default_factory=dict)  # JSON; what `predict` needs
    pretrained: Any = None  # bert_jax.convert.Pretrained to start from on a fresh run
    data_fingerprint: str | None = None  # checksum of the prepared data; a resume must match
    # Parameters the loss reads but never trains (a distillation teacher), already placed in
    # their shards: passed to every train step as `frozen`, never in the state or a checkpoint.
    frozen: Any = None
