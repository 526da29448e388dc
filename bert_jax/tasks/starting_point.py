"""A fine-tuning run's tokenizer, architecture and starting weights, from `init_from` or not."""

import dataclasses
import os

from ml_collections import ConfigDict

from bert_jax.convert import Pretrained
from bert_jax.convert.load import load_weights
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


def starting_point(
    config: ConfigDict, fallback_tokenizer: AnyTokenizer | None = None
) -> StartingPoint:
    """`init_from` brings its own tokenizer and architecture (with this run's dropout, dtype,
    remat and layer scan); without it, the model is `config.model` over `data.tokenizer`, or
    over `fallback_tokenizer` when that is unset (a resumed run's, a distillation teacher's)."""
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
        if data.tokenizer or fallback_tokenizer is None:
            tokenizer = _tokenizer(data.tokenizer, data.do_lower_case)
        else:
            tokenizer = fallback_tokenizer
        pretrained = None
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
