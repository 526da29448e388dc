"""The pure shard function of a preparation: (plan, shard id) -> that shard's finished records.

A shard holds the documents starting in its slice of the corpus. They are split into train and
held-out eval documents, tokenized in one batched call, and paired (NSP/SOP negatives from the
shard's own documents) exactly as `sentence_pairs.create_pairs` does, with seeds of
(seed, shard): every runner computes the same bytes for the same plan.
"""

import dataclasses
import functools
import math

import numpy as np
from ml_collections import ConfigDict

from bert_jax.data.any_tokenizer import AnyTokenizer, tokenizer_from_meta, tokenizer_to_meta
from bert_jax.data.corpus import Document
from bert_jax.data.corpus_slices import CorpusLayout, slice_bounds, slice_documents
from bert_jax.data.pair_records import encode_pair, record_dtype
from bert_jax.data.sentence_pairs import create_pairs
from bert_jax.data.tokenizer_choice import tokenizer_settings

FORMAT_VERSION = 1
TEXT_BYTES_PER_SHARD = 64 << 20
"""Without data.num_shards, text files get one shard per 64 MiB (the default corpus one)."""
DOCUMENTS_PER_SHARD = 100_000
"""... and TFDS datasets one per 100,000 documents."""

# Seeds of a shard's random choices: [seed, shard, stream].
_TRAIN_PAIRS, _EVAL_PAIRS, _EVAL_SPLIT = range(3)


def example_settings(config: ConfigDict, layout: CorpusLayout, num_shards: int | None) -> dict:
    """Every setting that shapes the prepared examples, JSON-safe: the manifest's `settings`."""
    data = config.data
    shards = num_shards or data.num_shards or default_num_shards(layout)
    tfds = layout.spec.startswith("tfds:")
    return {
        "format_version": FORMAT_VERSION,
        "corpus": data.corpus,
        "corpus_size": layout.size,
        "corpus_unit": layout.unit,
        "tfds": [data.data_dir, data.split, data.text_key] if tfds else None,
        "num_shards": shards,
        "seed": config.seed,
        "sentence_task": config.sentence_task,
        "max_seq_length": data.max_seq_length,
        "short_seq_prob": data.short_seq_prob,
        "dupe_factor": data.dupe_factor,
        "eval_fraction": data.eval_fraction,
        "tokenizer": tokenizer_settings(config),
    }


def default_num_shards(layout: CorpusLayout) -> int:
    """A shard count that keeps every shard's documents small in memory."""
    per_shard = DOCUMENTS_PER_SHARD if layout.unit == "documents" else TEXT_BYTES_PER_SHARD
    if layout.spec == "default":
        return 1
    return max(1, math.ceil(layout.size / per_shard))


@dataclasses.dataclass(frozen=True)
class Plan:
    """Everything a worker needs for any shard (picklable: sent to processes and Beam workers)."""

    settings: dict
    layout: CorpusLayout
    tokenizer_meta: dict  # `any_tokenizer.tokenizer_to_meta`

    @classmethod
    def create(cls, settings: dict, layout: CorpusLayout, tokenizer: AnyTokenizer) -> "Plan":
        return cls(settings, layout, tokenizer_to_meta(tokenizer))

    @property
    def num_shards(self) -> int:
        return self.settings["num_shards"]

    def tokenizer(self) -> AnyTokenizer:
        return _tokenizer(tuple(sorted(self.tokenizer_meta.items())))

    def shard_text_size(self, shard: int) -> int:
        """The shard's slice of the corpus, in the layout's unit."""
        start, stop = slice_bounds(self.layout.size, shard, self.num_shards)
        return stop - start


@functools.lru_cache(maxsize=2)
def _tokenizer(meta: tuple) -> AnyTokenizer:
    """One tokenizer per worker process, not one per shard."""
    return tokenizer_from_meta(dict(meta))


@dataclasses.dataclass
class ShardRecords:
    """A shard's records and what it was made from."""

    train: list[bytes]
    eval: list[bytes]
    documents: int
    sentences: int
    text_bytes: int  # UTF-8 bytes of the sentences tokenized


def prepare_shard(plan: Plan, shard: int) -> ShardRecords:
    """The records of one shard: a pure function of the plan and the shard id."""
    settings = plan.settings
    documents = slice_documents(
        plan.layout, *slice_bounds(plan.layout.size, shard, plan.num_shards)
    )
    train_docs, eval_docs = held_out_split(
        documents,
        settings["eval_fraction"],
        [settings["seed"], shard, _EVAL_SPLIT],
        at_least_one=plan.num_shards == 1,
    )
    tokenizer = plan.tokenizer()
    dtype = record_dtype(tokenizer.vocab_size)
    records = []
    for docs, stream in ((train_docs, _TRAIN_PAIRS), (eval_docs, _EVAL_PAIRS)):
        pairs = create_pairs(
            tokenize_documents(tokenizer, docs),
            max_seq_length=settings["max_seq_length"],
            short_seq_prob=settings["short_seq_prob"],
            sentence_task=settings["sentence_task"],
            seed=[settings["seed"], shard, stream],
            dupe_factor=settings["dupe_factor"],
        )
        records.append([encode_pair(a, b, label, dtype) for a, b, label in pairs])
    sentences = [sentence for doc in documents for sentence in doc]
    return ShardRecords(
        train=records[0],
        eval=records[1],
        documents=len(documents),
        sentences=len(sentences),
        text_bytes=sum(len(s.encode("utf-8")) for s in sentences),
    )


def held_out_split(
    documents: list[Document], eval_fraction: float, seed: list[int], at_least_one: bool
) -> tuple[list[Document], list[Document]]:
    """(train, eval) documents of a shard: `eval_fraction` of them held out whole, the count
    rounded at random so that many small shards hold out that fraction on average; the only
    shard of a corpus holds out at least one (and every shard keeps one for training)."""
    rng = np.random.default_rng(seed)
    count = int(eval_fraction * len(documents) + rng.random())
    count = min(max(count, int(at_least_one)), len(documents) - 1)
    held_out = set(rng.permutation(len(documents))[: max(count, 0)].tolist())
    return (
        [doc for i, doc in enumerate(documents) if i not in held_out],
        [doc for i, doc in enumerate(documents) if i in held_out],
    )


def tokenize_documents(tokenizer: AnyTokenizer, documents: list[Document]) -> list[list[list[int]]]:
    """Token ids of every sentence, in one batched call, regrouped by document."""
    ids = iter(tokenizer.encode_batch([sentence for doc in documents for sentence in doc]))
    return [[next(ids) for _ in doc] for doc in documents]
