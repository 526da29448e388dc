"""A fine-tuning run's tokenizer, architecture and starting weights, from `init_from` or not."""

import dataclasses
import os

import numpy as np
from absl import logging
from ml_collections import ConfigDict

from bert_jax.convert import Pretrained
from bert_jax.convert.load import load_weights
from bert_jax.convert.names import HEAD_GROUPS
from bert_jax.data.any_tokenizer import AnyTokenizer
from bert_jax.data.sentencepiece import SentencePiece
from bert_jax.data.wordpiece import WordPiece
from bert_jax.errors import UserError
from bert_jax.model import BertConfig
from bert_jax.model.config import from_run_config


@dataclasses.dataclass(frozen=True)
class StartingPoint:
    tokenizer: AnyTokenizer
    model_config: BertConfig
    pretrained: Pretrained | None


def starting_point(config: ConfigDict) -> StartingPoint:
    """`init_from` brings its own tokenizer and architecture (with this run's dropout, dtype,
    remat and layer scan); without it, the model is `config.model` over `data.tokenizer`."""
    data = config.data
    if config.init_from:
        pretrained = load_weights(config.init_from, do_lower_case=data.do_lower_case)
        bert = dataclasses.replace(
            pretrained.config,
            hidden_dropout=config.model.hidden_dropout,
            attention_dropout=config.model.attention_dropout,
            remat=config.model.remat,
            remat_policy=config.model.remat_policy,
            scan_layers=config.model.scan_layers,
            dtype=config.dtype,
        )
        tokenizer = pretrained.tokenizer
    else:
        tokenizer, pretrained = _tokenizer(data.tokenizer, data.do_lower_case), None
        bert = from_run_config(config, tokenizer.vocab_size)
    if data.max_seq_length > bert.max_position_embeddings:
        raise UserError(
            f"data.max_seq_length={data.max_seq_length} exceeds the model's "
            f"{bert.max_position_embeddings} positions; lower data.max_seq_length."
        )
    return StartingPoint(tokenizer, bert, pretrained)


def _tokenizer(path: str | None, do_lower_case: bool | None) -> AnyTokenizer:
    if not path:
        raise UserError(
            "Set init_from (the weights to fine-tune) or, to train from scratch, data.tokenizer "
            "(a vocab.txt or a SentencePiece .model)."
        )
    if not os.path.exists(path):
        raise UserError(f"data.tokenizer={path!r} does not exist; give a vocab.txt or .model file.")
    if path.endswith(".txt"):
        return WordPiece.from_vocab_file(path, do_lower_case=do_lower_case is not False)
    return SentencePiece.load(path)


def with_matching_head(pretrained: Pretrained | None, info: dict) -> Pretrained | None:
    """The starting weights with their fine-tuning head only where it is this task's: the same
    kind and the same labels (a classifier's outputs reordered to this run's label order), so a
    model fine-tuned elsewhere continues, and any other head is initialised afresh."""
    if pretrained is None or pretrained.head is None:
        return pretrained
    same_kind = pretrained.kind == info["kind"]
    theirs, ours = (pretrained.task or {}).get("labels"), info.get("labels")
    params = {k: v for k, v in pretrained.params.items() if k not in HEAD_GROUPS}
    if same_kind and (info["kind"] == "squad" or theirs == ours):
        return pretrained
    if same_kind and theirs and ours and sorted(theirs) == sorted(ours):
        order = [theirs.index(label) for label in ours]
        head = pretrained.params["classifier"]
        params["classifier"] = {
            "kernel": np.asarray(head["kernel"])[:, order],
            "bias": np.asarray(head["bias"])[order],
        }
        return dataclasses.replace(pretrained, params=params)
    logging.info(
        "The starting weights' %s head (%s, labels %s) is not this task's (%s, labels %s): "
        "it is initialised afresh.",
        pretrained.head, pretrained.kind, theirs, info["kind"], ours,
    )  # fmt: skip
    return dataclasses.replace(pretrained, params=params)
