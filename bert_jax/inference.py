"""A fine-tuned checkpoint as a function from input lines to prediction records (for predict).

The checkpoint carries everything: the model architecture, the tokenizer and the task's labels
and settings, so a workdir alone is enough.
"""

import json
import os

import jax
import numpy as np
from flax import nnx

from bert_jax import scores
from bert_jax.convert.workdir import checkpoint_model_config, newest_step_dir, read_checkpoint
from bert_jax.data import ner, squad_decoding
from bert_jax.data.any_tokenizer import tokenizer_from_meta
from bert_jax.data.encoding import encode_pair
from bert_jax.data.squad_examples import QAExample
from bert_jax.data.squad_features import make_features
from bert_jax.errors import UserError
from bert_jax.model.inputs import ENCODER_INPUTS
from bert_jax.model.task_models import (
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
)


def _task_model(kind: str, bert, info: dict):
    if kind == "classification":
        labels = info["labels"]
        return lambda rngs: BertForSequenceClassification(bert, len(labels or [0]), rngs=rngs)
    if kind == "ner":
        return lambda rngs: BertForTokenClassification(bert, len(info["labels"]), rngs=rngs)
    return lambda rngs: BertForQuestionAnswering(bert, rngs=rngs)


class Predictor:
    def __init__(self, info: dict, bert, params: dict, tokenizer):
        self.info, self.kind, self.tokenizer = info, info["kind"], tokenizer
        build = _task_model(self.kind, bert, info)
        graphdef, _ = nnx.split(nnx.eval_shape(lambda: build(nnx.Rngs(0))), nnx.Param)
        self.params = params
        self._forward = jax.jit(lambda p, *inputs: nnx.merge(graphdef, p)(*inputs))

    @classmethod
    def from_workdir(cls, workdir: str, which: str = "best") -> "Predictor":
        """The best checkpoint (the newest if no eval has run yet), or the newest."""
        if which == "best" and not os.path.isdir(os.path.join(workdir, "best")):
            which = "latest"
        directory = "best" if which == "best" else "checkpoints"
        if not os.path.isdir(os.path.join(workdir, directory)):
            raise UserError(f"{workdir} holds no checkpoints; point --workdir at a trained run.")
        meta, params = read_checkpoint(newest_step_dir(workdir, directory))
        info = json.loads(meta.get("task", "{}"))
        if info.get("kind") not in ("classification", "ner", "squad"):
            raise UserError(
                f"{workdir} is a pretraining run; predict needs a run fine-tuned with "
                "configs/finetune_glue.py, finetune_ner.py or finetune_squad.py."
            )
        bert = checkpoint_model_config(meta, params)
        return cls(info, bert, params, tokenizer_from_meta(meta))

    def logits(self, arrays: dict[str, np.ndarray], batch_size: int) -> np.ndarray:
        """Model outputs for every row, in fixed-size batches (one compilation)."""
        rows = len(arrays["input_ids"])
        outputs = []
        for start in range(0, rows, batch_size):
            chunk = [arrays[key][start : start + batch_size] for key in ENCODER_INPUTS]
            real = len(chunk[0])
            chunk = [np.concatenate([c, np.repeat(c[:1], batch_size - real, 0)]) for c in chunk]
            outputs.append(np.asarray(self._forward(self.params, *chunk))[:real])
        return np.concatenate(outputs)

    def predict_lines(self, lines: list[str], batch_size: int = 32) -> list[dict]:
        if not lines:
            return []
        if self.kind == "classification":
            return self._classify(lines, batch_size)
        if self.kind == "ner":
            return self._tag(lines, batch_size)
        return self._answer(lines, batch_size)

    def _classify(self, lines: list[str], batch_size: int) -> list[dict]:
        info = self.info
        pairs = [
            _texts(record, info) for record in _records(lines, [info["text_a"], info["text_b"]])
        ]
        encoded = [
            encode_pair(self.tokenizer, a, b, max_length=info["max_seq_length"], pad=True)
            for a, b in pairs
        ]
        arrays = {key: np.asarray([e[key] for e in encoded], np.int32) for key in ENCODER_INPUTS}
        logits = self.logits(arrays, batch_size)
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

    def _tag(self, lines: list[str], batch_size: int) -> list[dict]:
        labels = self.info["labels"]
        sentences = []
        for line in lines:
            words = json.loads(line)["tokens"] if line.lstrip().startswith("{") else line.split()
            sentences.append((words, [ner.OUTSIDE] * len(words)))
        arrays = ner.encode_sentences(
            self.tokenizer, sentences, {ner.OUTSIDE: 0}, self.info["max_seq_length"]
        )
        predictions = self.logits(arrays, batch_size).argmax(-1)
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

    def _answer(self, lines: list[str], batch_size: int) -> list[dict]:
        info = self.info
        examples = []
        for number, record in enumerate(_records(lines, ["question", "context"])):
            examples.append(
                QAExample(
                    str(record.get("id", number)), record["question"], record["context"], (), ()
                )
            )
        features = make_features(
            self.tokenizer,
            examples,
            max_seq_length=info["max_seq_length"],
            doc_stride=info["doc_stride"],
            max_query_length=info["max_query_length"],
            is_training=False,
        )
        arrays = {key: getattr(features, key) for key in ENCODER_INPUTS}
        logits = self.logits(arrays, batch_size)
        ranked = squad_decoding.predictions(
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


def _records(lines: list[str], columns: list[str | None]) -> list[dict]:
    """JSON objects as they are; TSV lines as {column: field}, a header line naming them read."""
    if lines[0].lstrip().startswith("{"):
        return [json.loads(line) for line in lines]
    names = [c for c in columns if c is not None]
    rows = [line.split("\t") for line in lines]
    if names[0] in rows[0]:  # a header, such as GLUE's "sentence\tlabel"
        header, rows = rows[0], rows[1:]
        return [dict(zip(header, row, strict=False)) for row in rows]
    if names[0].isdigit():  # header-less GLUE files (CoLA) name columns by index
        return [{str(i): field for i, field in enumerate(row)} for row in rows]
    return [dict(zip(names, row, strict=False)) for row in rows]


def _texts(record: dict, info: dict) -> tuple[str, str | None]:
    text_a = record.get(info["text_a"], record.get("text"))
    if text_a is None:
        raise UserError(
            f"an input line has no {info['text_a']!r} (or 'text') field; give one per line."
        )
    text_b = None
    if info["text_b"]:
        text_b = record.get(info["text_b"], record.get("text_b"))
        if text_b is None:
            raise UserError(
                f"an input line has no second text {info['text_b']!r}; this task reads pairs "
                "(TSV: two columns)."
            )
    return str(text_a), text_b
