"""Sentence(-pair) classification and regression (GLUE): [CLS] -> pooler -> dropout -> linear."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging
from ml_collections import ConfigDict

from bert_jax import flops, scores
from bert_jax.data import glue, input_lines
from bert_jax.data.encoding import encode_pair
from bert_jax.model import BertConfig
from bert_jax.model.inputs import ENCODER_INPUTS
from bert_jax.model.task_models import BertForSequenceClassification
from bert_jax.tasks import finetuning
from bert_jax.tasks.base import Task
from bert_jax.tasks.finetuning import forward
from bert_jax.tasks.starting_point import starting_point, with_matching_head


def example_weight(batch) -> jax.Array:
    """1 for each example of the batch: one per row, or (packed rows) each filled slot of
    `labels` [B, M], read at that example's [CLS]."""
    return batch.get("label_weight", jnp.ones(batch["labels"].shape, jnp.float32))


def make_logits_loss(regression: bool):
    """(logits, batch) -> (the mean loss over the batch's examples, metric sums)."""

    def logits_loss(logits, batch):
        labels = batch["labels"]
        weight = example_weight(batch)
        if regression:
            per_example = jnp.square(logits[..., 0] - labels)
            sums = {}
        else:
            per_example = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
            sums = {"correct": ((logits.argmax(-1) == labels) * weight).sum()}
        count, loss_sum = weight.sum(), (per_example * weight).sum()
        sums |= {"loss_sum": loss_sum, "count": count}
        if "label_weight" in batch:  # packed: how many rows the examples took
            sums["rows"] = jnp.float32(labels.shape[0])
        return loss_sum / jnp.maximum(count, 1.0), sums

    return logits_loss


def make_loss(regression: bool):
    logits_loss = make_logits_loss(regression)

    def loss(model, batch, dropout_rng):
        """Cross-entropy (squared error for regression), the mean over the batch's examples."""
        return logits_loss(forward(model, batch, dropout_rng), batch)

    return loss


def eval_outputs(model, batch) -> dict:
    logits = forward(model, batch)
    return {"logits": logits, "labels": batch["labels"], "example_weight": batch["example_weight"]}


def metrics(logits: np.ndarray, labels: np.ndarray, num_labels: int | None) -> dict[str, float]:
    """Every metric the task type supports; the config picks the one that selects "best"."""
    if num_labels is None:
        values = logits[:, 0]
        return {
            "loss": float(np.mean(np.square(values - labels))),
            "pearson": scores.pearson(labels, values),
            "spearman": scores.spearman(labels, values),
        }
    log_probs = jax.nn.log_softmax(logits)
    predictions = logits.argmax(-1)
    out = {
        "loss": float(-np.mean(np.take_along_axis(log_probs, labels[:, None], axis=1))),
        "accuracy": scores.accuracy(labels, predictions),
        "matthews_corr": scores.matthews_corrcoef(labels, predictions),
    }
    if num_labels == 2:
        out |= scores.precision_recall_f1(labels, predictions, average="binary")
        if len(np.unique(labels)) == 2:
            out["roc_auc"] = scores.roc_auc(labels, np.asarray(jax.nn.softmax(logits))[:, 1])
    else:
        for average in ("macro", "micro"):
            averaged = scores.precision_recall_f1(
                labels, predictions, average=average, num_labels=num_labels
            )
            out |= {f"{key}_{average}": value for key, value in averaged.items()}
    return out


def model(bert: BertConfig, info: dict):
    """The model builder: one output for regression (no labels), else one per label."""
    num_labels = 1 if info["labels"] is None else len(info["labels"])
    return lambda rngs: BertForSequenceClassification(bert, num_labels, rngs=rngs)


def build(config: ConfigDict, workdir: str, fallback_tokenizer=None) -> Task:
    data = config.data
    layout = glue.table_task(config)
    finetuning.require_data(config)
    start = starting_point(config, fallback_tokenizer)
    train_rows = glue.read_rows(data.train, layout, split=data.train_split, data_dir=data.data_dir)
    train_rows = train_rows[: data.max_train_examples]
    eval_rows = glue.read_rows(
        data.validation, layout, split=data.validation_split, data_dir=data.data_dir
    )
    labels = glue.label_names(layout, train_rows)
    num_labels = None if labels is None else len(labels)

    def encode(rows, source):
        return glue.encode_rows(rows, start.tokenizer, labels, data.max_seq_length, source)

    train, eval_batches = finetuning.batches(
        config,
        encode(train_rows, data.train),
        encode(eval_rows, data.validation),
        pad_id=start.tokenizer.pad_id,
    )
    if data.pack_sequences:
        logging.info(
            "Each step packs its %d training examples into rows of %d tokens (at most %d per "
            "row); steps and epochs count examples as unpacked.",
            config.batch_size, data.max_seq_length, data.max_segments_per_row,
        )  # fmt: skip
    bert = start.model_config

    def evaluate(outputs: list[dict]) -> dict:
        joined = finetuning.gather(outputs)
        return metrics(joined["logits"], joined["labels"], num_labels)

    info = {
        "kind": "classification",
        "labels": None if labels is None else list(labels),
        "text_a": layout.text_a,
        "text_b": layout.text_b,
        "max_seq_length": data.max_seq_length,
    }
    return Task(
        name=config.task,
        tokenizer=start.tokenizer,
        model_config=bert,
        build_model=model(bert, info),
        loss=make_loss(regression=num_labels is None),
        summarize=finetuning.summarize,
        train=train,
        eval_batches=eval_batches,
        eval_outputs=eval_outputs,
        evaluate=evaluate,
        flops_per_step=flops.train_flops_per_step(
            bert, config.batch_size, data.max_seq_length, 0, sentence_head=True
        ),
        console_metric="accuracy" if num_labels else "loss",
        main_metric=layout.main_metric,
        info=info,
        pretrained=with_matching_head(start.pretrained, info),
    )


def predict(predictor, lines: list[str], batch_size: int) -> list[dict]:
    """{"label", "probability", "probabilities"} per line, or {"score"} for regression."""
    info = predictor.info
    columns = [info["text_a"], info["text_b"]]
    pairs = [_texts(index, record, info) for index, record in input_lines.records(lines, columns)]
    if not pairs:  # a header line alone
        return []
    encoded = [
        encode_pair(predictor.tokenizer, a, b, max_length=info["max_seq_length"], pad=True)
        for a, b in pairs
    ]
    arrays = {key: np.asarray([e[key] for e in encoded], np.int32) for key in ENCODER_INPUTS}
    logits = predictor.logits(arrays, batch_size)
    if info["labels"] is None:
        return [{"score": float(row[0])} for row in logits]
    probabilities = np.asarray(jax.nn.softmax(logits))
    return [
        {
            "label": info["labels"][int(p.argmax())],
            "probability": float(p.max()),
            "probabilities": dict(zip(info["labels"], map(float, p), strict=True)),
        }
        for p in probabilities
    ]


def _texts(index: int, record: dict, info: dict) -> tuple[str, str | None]:
    """The text (pair) of a record; a second text where the task reads pairs, or (a model
    imported from Hugging Face, which does not say) where the record gives `text_pair`."""
    text_a = input_lines.text_field(index, record, info["text_a"], "text")
    if not info["text_b"]:
        return text_a, None if record.get("text_pair") is None else str(record["text_pair"])
    try:
        return text_a, input_lines.text_field(index, record, info["text_b"], "text_b")
    except input_lines.BadLine:
        raise input_lines.BadLine(
            index,
            f"has no second text {info['text_b']!r}; this task reads pairs (TSV: two columns)",
        ) from None
