"""A run's tokenizer, architecture and starting weights, from `init_from` or not: fine-tuning
(`starting_point`) and continued pretraining (`pretraining_start`)."""

import dataclasses
import json
import os

import numpy as np
from absl import logging
from ml_collections import ConfigDict

from bert_jax.checkpoint_reads import latest_meta
from bert_jax.convert import Pretrained
from bert_jax.convert.config_json import read_json
from bert_jax.convert.load import load_weights
from bert_jax.convert.names import HEAD_GROUPS
from bert_jax.convert.tokenizer_files import (
    HF_SENTENCEPIECE_FILE,
    TOKENIZER_CONFIG_FILE,
    TOKENIZER_FILE,
    VOCAB_FILE,
)
from bert_jax.data.any_tokenizer import AnyTokenizer
from bert_jax.data.manifest import read_manifest
from bert_jax.data.pipeline import PREPARED, local_prepared_directory
from bert_jax.data.sentencepiece import SentencePiece
from bert_jax.data.wordpiece import WordPiece
from bert_jax.errors import UserError
from bert_jax.model import BertConfig
from bert_jax.model.config import from_run_config
from bert_jax.workdir import is_workdir


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
    over `fallback_tokenizer` when that is unset (a distillation teacher's)."""
    data = config.data
    if config.init_from:
        pretrained = load_weights(config.init_from, do_lower_case=data.do_lower_case)
        bert, tokenizer = with_run_settings(pretrained.config, config), pretrained.tokenizer
    else:
        if data.tokenizer or fallback_tokenizer is None:
            tokenizer = _tokenizer(data.tokenizer, data.do_lower_case)
        else:
            tokenizer = fallback_tokenizer
        pretrained = None
        bert = from_run_config(config, tokenizer.vocab_size)
    _check_positions(config, bert)
    return StartingPoint(tokenizer, bert, pretrained)


def with_run_settings(weights_config: BertConfig, config: ConfigDict) -> BertConfig:
    """The weights' architecture with this run's dropout, new-weight initialiser, dtype, remat
    and layer scan."""
    initializer_range = config.model.initializer_range
    if initializer_range is None:  # unset keeps what the weights were initialised with
        initializer_range = weights_config.initializer_range
    return dataclasses.replace(
        weights_config,
        hidden_dropout=config.model.hidden_dropout,
        attention_dropout=config.model.attention_dropout,
        initializer_range=initializer_range,
        remat=config.model.remat,
        remat_policy=config.model.remat_policy,
        scan_layers=config.model.scan_layers,
        dtype=config.dtype,
    )


def _check_positions(config: ConfigDict, bert: BertConfig) -> None:
    if config.data.max_seq_length > bert.max_position_embeddings:
        raise UserError(
            f"data.max_seq_length={config.data.max_seq_length} exceeds the model's "
            f"{bert.max_position_embeddings} positions; lower data.max_seq_length."
        )


def pretraining_start(config: ConfigDict) -> tuple[ConfigDict, Pretrained]:
    """Continued pretraining from `init_from`: its weights, and the run config with
    `data.tokenizer` set to the file of the weights' own tokenizer (unless given), so the corpus
    is prepared with the vocabulary the weights embed."""
    pretrained = load_weights(config.init_from, do_lower_case=config.data.do_lower_case)
    config = config.copy_and_resolve_references()
    if not config.data.tokenizer:
        path, do_lower_case = tokenizer_file(config.init_from)
        config.data.tokenizer = path
        if config.data.do_lower_case is None and do_lower_case is not None:
            config.data.do_lower_case = do_lower_case
    given = _tokenizer(config.data.tokenizer, config.data.do_lower_case)
    if given.vocab_size != pretrained.config.vocab_size:
        raise UserError(
            f"data.tokenizer={config.data.tokenizer!r} has {given.vocab_size} pieces but "
            f"init_from={config.init_from!r} embeds {pretrained.config.vocab_size}; unset "
            "data.tokenizer to use the weights' own vocabulary."
        )
    _check_positions(config, pretrained.config)
    return config, pretrained


def tokenizer_file(source: str) -> tuple[str, bool | None]:
    """(path, do_lower_case) of the tokenizer file of a weights source: the `vocab.txt` or
    `tokenizer.model` of a weights directory, or the prepared corpus a workdir trained on."""
    if is_workdir(source):
        meta = latest_meta(source)
        if meta is None:
            raise UserError(f"init_from={source!r} holds no readable checkpoint; train it first.")
        corpus = json.loads(meta["config"])["data"].get("corpus", "")
        prepared = (
            corpus.removeprefix(PREPARED) if corpus.startswith(PREPARED)
            else local_prepared_directory(source)
        )  # fmt: skip
        tokenizer = read_manifest(prepared).tokenizer
        return os.path.join(prepared, tokenizer["file"]), tokenizer.get("do_lower_case")
    for name in (VOCAB_FILE, TOKENIZER_FILE, HF_SENTENCEPIECE_FILE):
        path = os.path.join(source, name)
        if os.path.exists(path):
            options_path = os.path.join(source, TOKENIZER_CONFIG_FILE)
            lower = (
                read_json(options_path).get("do_lower_case")
                if os.path.exists(options_path)
                else None
            )
            return path, lower if name == VOCAB_FILE else None
    raise UserError(
        f"init_from={source!r} holds no {VOCAB_FILE} or {TOKENIZER_FILE}; add the vocabulary "
        "the weights were trained with, or set data.tokenizer."
    )


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
