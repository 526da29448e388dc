"""Named-entity recognition: a label per word, predicted at the word's first sub-token."""

import jax.numpy as jnp
import optax
from ml_collections import ConfigDict

from bert_jax import flops, scores
from bert_jax.data import input_lines, ner
from bert_jax.model import BertConfig
from bert_jax.model.task_models import BertForTokenClassification
from bert_jax.tasks import finetuning
from bert_jax.tasks.base import Task
from bert_jax.tasks.finetuning import forward
from bert_jax.tasks.starting_point import starting_point, with_matching_head


def example_weight(batch):
    """1 at the labelled positions (each word's first token), 0 elsewhere."""
    return (batch["labels"] >= 0).astype(jnp.float32)


def logits_loss(logits, batch):
    """(logits, batch) -> (mean cross-entropy over the labelled positions, metric sums)."""
    labels = batch["labels"]
    weights = example_weight(batch)
    safe_labels = jnp.maximum(labels, 0)
    per_token = optax.softmax_cross_entropy_with_integer_labels(logits, safe_labels) * weights
    correct = ((logits.argmax(-1) == safe_labels) * weights).sum()
    count = weights.sum()
    sums = {"loss_sum": per_token.sum(), "correct": correct, "count": count}
    return per_token.sum() / jnp.maximum(count, 1.0), sums


def loss(model, batch, dropout_rng):
    """Cross-entropy over the labelled positions (each word's first token) of the batch."""
    return logits_loss(forward(model, batch, dropout_rng), batch)


def eval_outputs(model, batch) -> dict:
    return {
        "predictions": forward(model, batch).argmax(-1).astype(jnp.int32),
        "example_index": batch["example_index"],
        "example_weight": batch["example_weight"],
    }


def model(bert: BertConfig, info: dict):
    """The model builder: a label distribution per token."""
    return lambda rngs: BertForTokenClassification(bert, len(info["labels"]), rngs=rngs)


def build(config: ConfigDict, workdir: str, fallback_tokenizer=None) -> Task:
    data = config.data
    finetuning.require_data(config)
    finetuning.require_unpacked(config)
    start = starting_point(config, fallback_tokenizer)

    def read(source, split):
        return ner.read_tagged(
            source, split=split, data_dir=data.data_dir, tokens_key=data.tokens_key,
            tags_key=data.tags_key, label_names=data.labels,
        )  # fmt: skip

    train_sentences = read(data.train, data.train_split)[: data.max_train_examples]
    eval_sentences = read(data.validation, data.validation_split)
    labels = list(data.labels) if data.labels else ner.label_list(train_sentences)
    label_to_id = {label: i for i, label in enumerate(labels)}

    def encode(sentences):
        return ner.encode_sentences(start.tokenizer, sentences, label_to_id, data.max_seq_length)

    eval_arrays = encode(eval_sentences)
    train, eval_batches = finetuning.batches(config, encode(train_sentences), eval_arrays)

    def evaluate(outputs: list[dict]) -> dict:
        joined = finetuning.gather(outputs, width=data.max_seq_length)
        gold, predicted, correct, count = [], [], 0, 0
        for index, token_predictions in zip(
            joined["example_index"], joined["predictions"], strict=True
        ):
            words, tags = eval_sentences[index]
            tagged = ner.decode_tags(
                len(words), eval_arrays["word_starts"][index], token_predictions, labels
            )
            gold.append(tags)
            predicted.append(tagged)
            correct += sum(g == p for g, p in zip(tags, tagged, strict=True))
            count += len(tags)
        return scores.entity_f1(gold, predicted) | {"accuracy": correct / max(count, 1)}

    bert = start.model_config
    info = {"kind": "ner", "labels": labels, "max_seq_length": data.max_seq_length}
    return Task(
        name="ner",
        tokenizer=start.tokenizer,
        model_config=bert,
        build_model=model(bert, info),
        loss=loss,
        summarize=finetuning.summarize,
        train=train,
        eval_batches=eval_batches,
        eval_outputs=eval_outputs,
        evaluate=evaluate,
        flops_per_step=flops.train_flops_per_step(
            bert, config.batch_size, data.max_seq_length, 0, sentence_head=False
        )
        + 6.0 * config.batch_size * data.max_seq_length * bert.hidden_size * len(labels),
        console_metric="accuracy",
        main_metric="f1",
        info=info,
        pretrained=with_matching_head(start.pretrained, info),
    )


def predict(predictor, lines: list[str], batch_size: int) -> list[dict]:
    """{"words", "tags", "entities"} per line: JSON with "tokens", or text split at whitespace."""
    labels, max_length = predictor.info["labels"], predictor.info["max_seq_length"]
    sentences = []
    for index, line in enumerate(lines):
        words = _words(index, line)
        tokens = 2 + sum(len(predictor.tokenizer.encode(word)) for word in words)
        if tokens > max_length:
            raise input_lines.BadLine(
                index,
                f"has {tokens} tokens with [CLS] and [SEP], more than the {max_length} the model "
                "reads (data.max_seq_length); split the sentence",
            )
        sentences.append((words, [ner.OUTSIDE] * len(words)))
    arrays = ner.encode_sentences(predictor.tokenizer, sentences, {ner.OUTSIDE: 0}, max_length)
    predictions = predictor.logits(arrays, batch_size, per_token=True).argmax(-1)
    records = []
    for (words, _), starts, predicted in zip(
        sentences, arrays["word_starts"], predictions, strict=True
    ):
        tags = ner.decode_tags(len(words), starts, predicted, labels)
        entities = [
            {"type": kind, "start": start, "end": end, "text": " ".join(words[start:end])}
            for kind, start, end in sorted(scores.entity_spans(tags), key=lambda e: e[1])
        ]
        records.append({"words": words, "tags": tags, "entities": entities})
    return records


def _words(index: int, line: str) -> list[str]:
    """A JSON line's "tokens" (a list of strings), or the line split at whitespace."""
    if not line.lstrip().startswith("{"):
        return line.split()
    words = input_lines.parse_json(index, line).get("tokens")
    if not isinstance(words, list) or not all(isinstance(word, str) for word in words):
        raise input_lines.BadLine(index, 'has no "tokens" field holding a list of strings')
    return words
