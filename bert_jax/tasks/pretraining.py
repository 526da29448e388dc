"""Pretraining as a task: masked LM plus the sentence-pair objective (NSP/SOP) or none."""

import math

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from ml_collections import ConfigDict

from bert_jax import flops
from bert_jax.data.pipeline import build_pretraining_data
from bert_jax.model import BertConfig, BertForPreTraining
from bert_jax.model.config import from_run_config
from bert_jax.model.inputs import ENCODER_INPUTS, MLM_INPUTS
from bert_jax.tasks.base import Task
from bert_jax.tasks.starting_point import pretraining_start, with_run_settings


def model(bert: BertConfig, info: dict):
    """The model builder: the MLM head, and the sentence-pair head if the run has one."""
    sentence_head = info["sentence_head"]
    return lambda rngs: BertForPreTraining(bert, sentence_head=sentence_head, rngs=rngs)


def pretraining_loss(outputs: dict, batch: dict) -> tuple[jax.Array, dict[str, jax.Array]]:
    """MLM loss averaged over real masked positions, plus the sentence-pair loss when present."""
    logits = outputs["mlm_logits"].astype(jnp.float32)
    weights = batch["masked_lm_weights"]
    token_loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["masked_lm_ids"])
    weight_sum = weights.sum()
    mlm_loss_sum = (token_loss * weights).sum()
    mlm_loss = mlm_loss_sum / jnp.maximum(weight_sum, 1.0)
    correct = (logits.argmax(-1) == batch["masked_lm_ids"]) * weights
    sums = {"mlm_loss_sum": mlm_loss_sum, "mlm_correct": correct.sum(), "mlm_weight": weight_sum}
    loss = mlm_loss
    if "sentence_logits" in outputs:
        sentence_logits = outputs["sentence_logits"].astype(jnp.float32)
        labels = batch["next_sentence_labels"]
        sentence_loss = optax.softmax_cross_entropy_with_integer_labels(sentence_logits, labels)
        loss = loss + sentence_loss.mean()
        sums |= {
            "sentence_loss_sum": sentence_loss.sum(),
            "sentence_correct": (sentence_logits.argmax(-1) == labels).sum().astype(jnp.float32),
            "sentence_count": jnp.float32(labels.shape[0]),
            "sentence_label_sum": labels.sum().astype(jnp.float32),
        }
    return loss, sums


def loss(model: nnx.Module, batch: dict, dropout_rng) -> tuple[jax.Array, dict]:
    outputs = model(*(batch[k] for k in ENCODER_INPUTS + MLM_INPUTS), dropout_rng=dropout_rng)
    return pretraining_loss(outputs, batch)


def eval_sums(model: nnx.Module, batch: dict) -> dict:
    return loss(model, batch, None)[1]


def summarize(sums: dict[str, float], num_steps: int, sentence_task: str) -> dict[str, float]:
    """Averages from metric sums: ratios of sums for token/example metrics, per-step means else."""
    out = {}
    for key in ("loss", "grad_norm", "param_norm"):
        if key in sums:
            out[key] = sums[key] / num_steps
    out["mlm_loss"] = sums["mlm_loss_sum"] / max(sums["mlm_weight"], 1.0)
    out["mlm_accuracy"] = sums["mlm_correct"] / max(sums["mlm_weight"], 1.0)
    out["mlm_perplexity"] = math.exp(min(out["mlm_loss"], 100.0))
    if "sentence_count" in sums:
        out[f"{sentence_task}_loss"] = sums["sentence_loss_sum"] / sums["sentence_count"]
        out[f"{sentence_task}_accuracy"] = sums["sentence_correct"] / sums["sentence_count"]
        # What always answering the commoner label scores: the share of random-next (NSP) or
        # swapped (SOP) pairs is rarely one half, so accuracy means something only above this.
        label_share = sums["sentence_label_sum"] / sums["sentence_count"]
        out[f"{sentence_task}_majority"] = max(label_share, 1.0 - label_share)
    return out


def build(config: ConfigDict, workdir: str) -> Task:
    """Pretraining from scratch, or continued from `init_from` (its weights and vocabulary,
    fresh optimizer state; a resume continues from the workdir's checkpoints as usual)."""
    pretrained = None
    if config.init_from:
        config, pretrained = pretraining_start(config)
    data = build_pretraining_data(config, workdir)
    if pretrained is None:
        bert = from_run_config(config, data.tokenizer.vocab_size)
    else:
        bert = with_run_settings(pretrained.config, config)
    sentence_task = config.sentence_task

    def evaluate(outputs: list[dict]) -> dict:
        sums: dict[str, float] = {}
        for output in outputs:
            for key, value in output.items():
                sums[key] = sums.get(key, 0.0) + float(value)
        return summarize(sums, len(outputs), sentence_task)

    info = {"kind": "pretraining", "sentence_head": sentence_task != "none"}
    return Task(
        name="pretraining",
        tokenizer=data.tokenizer,
        model_config=bert,
        build_model=model(bert, info),
        loss=loss,
        summarize=lambda sums, steps: summarize(sums, steps, sentence_task),
        train=data.train,
        eval_batches=data.eval_batches,
        eval_outputs=eval_sums,
        evaluate=evaluate,
        flops_per_step=flops.train_flops_per_step(
            bert,
            config.batch_size,
            config.data.max_seq_length,
            data.max_predictions,
            sentence_head=sentence_task != "none",
        ),
        console_metric="mlm_accuracy",
        main_metric="mlm_loss",
        info=info,
        data_fingerprint=data.data_fingerprint,
        pretrained=pretrained,
    )
