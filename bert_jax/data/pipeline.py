"""Config -> tokenizer and pretraining batches: text, tokens, sentence pairs, masked batches."""

import dataclasses

import jax
from absl import logging
from ml_collections import ConfigDict

from bert_jax.data.batches import EpochBatches, fixed_batches, pretraining_batches
from bert_jax.data.corpus import load_documents
from bert_jax.data.sentence_pairs import (
    create_pair_examples,
    max_predictions_per_seq,
    split_documents,
)
from bert_jax.data.sentencepiece import SentencePiece


@dataclasses.dataclass
class PretrainingData:
    tokenizer: SentencePiece
    train: EpochBatches
    eval_batches: list[dict]  # this process's rows of each eval batch
    max_predictions: int  # masked positions per sequence, shared with the MLM head


def resolve_tokenizer(config: ConfigDict, saved: SentencePiece | None, documents) -> SentencePiece:
    """The run's own tokenizer when resuming (`saved`, from its checkpoint), else the configured
    file, else a new one."""
    if saved is not None:
        return saved
    if config.data.tokenizer:
        return SentencePiece.load(config.data.tokenizer)
    logging.info("Training a SentencePiece tokenizer with %d pieces.", config.data.vocab_size)
    return SentencePiece.train(documents, config.data.vocab_size, seed=config.seed)


def masking_options(config: ConfigDict, tokenizer: SentencePiece) -> dict:
    data = config.data
    return dict(
        masked_lm_prob=data.masked_lm_prob,
        max_predictions=max_predictions_per_seq(data.max_seq_length, data.masked_lm_prob),
        mask_id=tokenizer.mask_id,
        vocab_size=tokenizer.vocab_size,
        special_ids=(tokenizer.pad_id, tokenizer.cls_id, tokenizer.sep_id, tokenizer.mask_id),
        word_start=tokenizer.word_start_mask() if data.whole_word_masking else None,
    )


def build_pretraining_data(
    config: ConfigDict, workdir: str, saved_tokenizer: SentencePiece | None = None
) -> PretrainingData:
    """Everything the loop reads; deterministic in the config, so resume rebuilds it identically
    (with `saved_tokenizer`, the one the run's checkpoints hold)."""
    data = config.data
    documents = load_documents(
        data.corpus, data_dir=data.data_dir, split=data.split, text_key=data.text_key
    )
    train_docs, eval_docs = split_documents(documents, data.eval_fraction, config.seed)
    tokenizer = resolve_tokenizer(config, saved_tokenizer, train_docs)

    def examples(docs, seed):
        token_docs = [[tokenizer.encode(sentence) for sentence in doc] for doc in docs]
        return create_pair_examples(
            token_docs,
            max_seq_length=data.max_seq_length,
            short_seq_prob=data.short_seq_prob,
            sentence_task=config.sentence_task,
            cls_id=tokenizer.cls_id,
            sep_id=tokenizer.sep_id,
            pad_id=tokenizer.pad_id,
            seed=seed,
            dupe_factor=data.dupe_factor,
        )

    masking = masking_options(config, tokenizer)
    train_examples = examples(train_docs, config.seed)
    eval_examples = examples(eval_docs, config.seed + 1)
    logging.info(
        "Data: %d documents, %d train / %d eval sentence pairs of up to %d tokens.",
        len(documents),
        len(train_examples),
        len(eval_examples),
        data.max_seq_length,
    )
    train = pretraining_batches(
        train_examples,
        global_batch_size=config.batch_size,
        seed=config.seed,
        masking=masking,
        process_index=jax.process_index(),
        process_count=jax.process_count(),
    )
    eval_batches = fixed_batches(
        eval_examples,
        batch_size=data.eval_batch_size,
        seed=config.seed + 1,
        masking=masking,
        num_batches=data.max_eval_batches,
        process_index=jax.process_index(),
        process_count=jax.process_count(),
    )
    return PretrainingData(tokenizer, train, eval_batches, masking["max_predictions"])
