"""Sentence embeddings from any encoder (pretrained, imported or fine-tuned): a prediction mode,
not a training task. Lines are text, or JSON with "text"; each gives {"embedding": [H floats]}."""

import numpy as np

from bert_jax.data import input_lines
from bert_jax.data.encoding import encode_pair
from bert_jax.model import BertConfig
from bert_jax.model.encoder_outputs import BertSentenceEmbedding
from bert_jax.model.inputs import ENCODER_INPUTS


def model(bert: BertConfig, info: dict):
    """The model builder: the encoder with sentence-transformers' pooling ("mean" or "cls")."""
    return lambda rngs: BertSentenceEmbedding(bert, info["pooling"], info["normalize"], rngs=rngs)


def texts(lines: list[str]) -> list[str]:
    """Each line's text: the line itself, or a JSON object's "text"."""
    return [
        input_lines.text_field(index, input_lines.parse_json(index, line), "text")
        if line.lstrip().startswith("{")
        else line
        for index, line in enumerate(lines)
    ]


def check_length(index: int, length: int, max_length: int) -> None:
    """BadLine for a text longer than the model's positions: it is never cut silently."""
    if length > max_length:
        raise input_lines.BadLine(
            index,
            f"has {length} tokens with [CLS] and [SEP], more than the model's {max_length} "
            "positions; shorten it",
        )


def predict(predictor, lines: list[str], batch_size: int) -> list[dict]:
    """{"embedding": [...]} per line."""
    max_length = predictor.info["max_seq_length"]
    encoded = []
    for index, text in enumerate(texts(lines)):
        check_length(index, len(predictor.tokenizer.encode(text)) + 2, max_length)
        encoded.append(encode_pair(predictor.tokenizer, text, max_length=max_length, pad=True))
    arrays = {key: np.asarray([e[key] for e in encoded], np.int32) for key in ENCODER_INPUTS}
    vectors = predictor.logits(arrays, batch_size)
    return [{"embedding": [float(x) for x in row]} for row in vectors]
