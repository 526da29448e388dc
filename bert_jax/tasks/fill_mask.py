"""Fill-mask with any weights that have the masked-LM head: a prediction mode, not a training
task. Each [MASK] in a line (text, or JSON with "text") gets its `top_k` tokens, as the
Hugging Face fill-mask pipeline ranks them: {"masks": [[{"token", "token_str", "score"}]]}."""

import numpy as np

from bert_jax.data import input_lines
from bert_jax.data.sentencepiece import SPECIAL_TOKENS
from bert_jax.model import BertConfig
from bert_jax.model.encoder_outputs import BertTopTokens
from bert_jax.model.inputs import ENCODER_INPUTS, MLM_INPUTS
from bert_jax.tasks.embeddings import check_length, texts

MASK = SPECIAL_TOKENS[4]


def model(bert: BertConfig, info: dict):
    """The model builder: the encoder and its masked-LM head, returning the top tokens."""
    return lambda rngs: BertTopTokens(bert, info["top_k"], rngs=rngs)


def encode_masked(tokenizer, text: str) -> list[int]:
    """[CLS] text [SEP] with every literal "[MASK]" as the mask token and the text between
    tokenized piece by piece (as Hugging Face splits text at its special tokens)."""
    ids = [tokenizer.cls_id]
    for number, part in enumerate(text.split(MASK)):
        ids += ([tokenizer.mask_id] if number else []) + tokenizer.encode(part)
    return [*ids, tokenizer.sep_id]


def predict(predictor, lines: list[str], batch_size: int) -> list[dict]:
    """{"masks": one list of top_k {"token", "token_str", "score"} per [MASK]} per line."""
    tokenizer, max_length = predictor.tokenizer, predictor.info["max_seq_length"]
    rows = []
    for index, text in enumerate(texts(lines)):
        ids = encode_masked(tokenizer, text)
        check_length(index, len(ids), max_length)
        if tokenizer.mask_id not in ids:
            raise input_lines.BadLine(index, f"has no {MASK}; mark each token to predict")
        rows.append(ids)
    # Mask slots per row: a power of two, so few shapes are compiled.
    most = max(row.count(tokenizer.mask_id) for row in rows)
    slots = 1 << (most - 1).bit_length()
    arrays = {key: np.zeros((len(rows), max_length), np.int32) for key in ENCODER_INPUTS}
    positions = np.zeros((len(rows), slots), np.int32)
    for i, ids in enumerate(rows):
        arrays["input_ids"][i, : len(ids)] = ids
        arrays["attention_mask"][i, : len(ids)] = 1
        masked = [p for p, token in enumerate(ids) if token == tokenizer.mask_id]
        positions[i, : len(masked)] = masked
    arrays[MLM_INPUTS[0]] = positions
    scores, tokens = predictor.logits(arrays, batch_size, extra_inputs=MLM_INPUTS)
    records = []
    for i, ids in enumerate(rows):
        count = ids.count(tokenizer.mask_id)
        masks = [
            [
                {"token": int(t), "token_str": tokenizer.decode([int(t)]), "score": float(s)}
                for t, s in zip(tokens[i, m], scores[i, m], strict=True)
            ]
            for m in range(count)
        ]
        records.append({"masks": masks})
    return records
