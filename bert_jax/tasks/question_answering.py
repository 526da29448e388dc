"""Extractive question answering (SQuAD v1.1/v2.0): start and end scores for every token."""

import jax.numpy as jnp
import numpy as np
import optax
from ml_collections import ConfigDict

from bert_jax import flops, scores
from bert_jax.data import input_lines
from bert_jax.data.squad_decoding import best_answers, predictions
from bert_jax.data.squad_examples import QAExample, read_examples
from bert_jax.data.squad_features import QAFeatures, make_features
from bert_jax.model import BertConfig
from bert_jax.model.inputs import ENCODER_INPUTS
from bert_jax.model.task_models import BertForQuestionAnswering
from bert_jax.tasks import finetuning
from bert_jax.tasks.base import Task
from bert_jax.tasks.finetuning import forward
from bert_jax.tasks.starting_point import starting_point, with_matching_head


def loss(model, batch, dropout_rng):
    """Mean of the start and end cross-entropies; [CLS] (position 0) is the no-answer span."""
    logits = forward(model, batch, dropout_rng)
    start = optax.softmax_cross_entropy_with_integer_labels(
        logits[..., 0], batch["start_positions"]
    )
    end = optax.softmax_cross_entropy_with_integer_labels(logits[..., 1], batch["end_positions"])
    per_example = (start + end) / 2
    correct = (logits[..., 0].argmax(-1) == batch["start_positions"]) & (
        logits[..., 1].argmax(-1) == batch["end_positions"]
    )
    count = jnp.float32(per_example.shape[0])
    sums = {"loss_sum": per_example.sum(), "correct": correct.sum().astype(jnp.float32)}
    return per_example.mean(), sums | {"count": count}


def eval_outputs(model, batch) -> dict:
    logits = forward(model, batch)
    return {
        "start_logits": logits[..., 0],
        "end_logits": logits[..., 1],
        "example_index": batch["example_index"],
        "example_weight": batch["example_weight"],
    }


def _arrays(features: QAFeatures, with_targets: bool) -> dict[str, np.ndarray]:
    keys = [*ENCODER_INPUTS, *(("start_positions", "end_positions") if with_targets else ())]
    return {key: getattr(features, key) for key in keys}


def model(bert: BertConfig, info: dict):
    """The model builder: answer-start and answer-end scores per token."""
    return lambda rngs: BertForQuestionAnswering(bert, rngs=rngs)


def build(config: ConfigDict, workdir: str, fallback_tokenizer=None) -> Task:
    data = config.data
    finetuning.require_data(config)
    finetuning.require_unpacked(config)
    start = starting_point(config, fallback_tokenizer)

    def read(source, split):
        return read_examples(source, split=split, data_dir=data.data_dir)

    train_examples = read(data.train, data.train_split)[: data.max_train_examples]
    eval_examples = read(data.validation, data.validation_split)
    options = dict(
        max_seq_length=data.max_seq_length,
        doc_stride=data.doc_stride,
        max_query_length=data.max_query_length,
    )
    train_features = make_features(start.tokenizer, train_examples, is_training=True, **options)
    eval_features = make_features(start.tokenizer, eval_examples, is_training=False, **options)
    train, eval_batches = finetuning.batches(
        config, _arrays(train_features, True), _arrays(eval_features, False)
    )
    decoding = dict(
        n_best_size=data.n_best_size,
        max_answer_length=data.max_answer_length,
        version_2=data.version_2,
        null_score_diff_threshold=data.null_score_diff_threshold,
    )

    def evaluate(outputs: list[dict]) -> dict:
        joined = finetuning.gather(outputs, width=data.max_seq_length)
        # Padded batches keep every feature once, in order: example_index is the feature's row.
        order = np.argsort(joined["example_index"])
        answers = best_answers(
            eval_examples,
            eval_features,
            joined["start_logits"][order],
            joined["end_logits"][order],
            **decoding,
        )
        gold = {example.id: list(example.answers) for example in eval_examples}
        return scores.squad_scores(answers, gold)

    bert = start.model_config
    info = {"kind": "squad", **options, **decoding}
    return Task(
        name="squad",
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
        ),
        console_metric="accuracy",
        main_metric="f1",
        info=info,
        pretrained=with_matching_head(start.pretrained, info),
    )


def predict(predictor, lines: list[str], batch_size: int) -> list[dict]:
    """{"id", "answer", "probability"} per line: JSON {"id", "question", "context"} or
    question<TAB>context."""
    info = predictor.info
    examples = [
        QAExample(
            str(record.get("id", predictor.line_number(index))),
            input_lines.text_field(index, record, "question"),
            input_lines.text_field(index, record, "context"),
            (),
            (),
        )
        for index, record in input_lines.records(lines, ["question", "context"])
    ]
    if not examples:  # a header line alone
        return []
    features = make_features(
        predictor.tokenizer,
        examples,
        max_seq_length=info["max_seq_length"],
        doc_stride=info["doc_stride"],
        max_query_length=info["max_query_length"],
        is_training=False,
    )
    arrays = {key: getattr(features, key) for key in ENCODER_INPUTS}
    logits = predictor.logits(arrays, batch_size, per_token=True)
    ranked = predictions(
        examples,
        features,
        logits[..., 0],
        logits[..., 1],
        n_best_size=info["n_best_size"],
        max_answer_length=info["max_answer_length"],
        version_2=info["version_2"],
        null_score_diff_threshold=info["null_score_diff_threshold"],
    )
    records = []
    for example in examples:
        answer, candidates = ranked[example.id]
        probability = next((c.probability for c in candidates if c.text == answer), 0.0)
        records.append({"id": example.id, "answer": answer, "probability": probability})
    return records
