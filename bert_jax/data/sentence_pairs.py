"""Tokenized documents -> fixed-shape `[CLS] A [SEP] B [SEP]` pairs, as BERT's data script made.

Follows `create_instances_from_document` of google-research/bert (NSP) and its ALBERT variant
(SOP). Pure NumPy and seeded: the same documents and seed always give the same examples.
"""

import dataclasses
import itertools
import math
from collections.abc import Sequence

import numpy as np

from bert_jax.errors import UserError

# Sentence-pair objective: next-sentence prediction, sentence-order prediction, or MLM only.
SENTENCE_TASKS = ("nsp", "sop", "none")

Segment = list[int]
TokenDocument = list[Segment]  # a document's sentences, each a list of token ids
Pair = tuple[Segment, Segment, int]  # A, B (empty without a sentence task), label


def check_sentence_task(sentence_task: str) -> None:
    """Refuses a sentence-pair objective this module cannot build."""
    if sentence_task not in SENTENCE_TASKS:
        raise UserError(
            f"sentence_task={sentence_task!r} is unknown; use one of {', '.join(SENTENCE_TASKS)}."
        )


def max_predictions_per_seq(max_seq_length: int, masked_lm_prob: float) -> int:
    """Masked positions per sequence, the one number shared by the data and the MLM head.

    `ceil` gives BERT's own value for 128 tokens at 0.15 (20), and never falls below what
    `mask_tokens` asks for (it rounds), so no masked token is ever dropped.
    """
    return max(1, math.ceil(masked_lm_prob * max_seq_length - 1e-9))


@dataclasses.dataclass(frozen=True)
class PairExamples:
    """Sentence pairs as arrays: rows are `[CLS] A [SEP] B [SEP]` (or `[CLS] A [SEP]` without a
    sentence task) followed by `pad_id`."""

    input_ids: np.ndarray  # int32 [N, S]
    token_type_ids: np.ndarray  # int32 [N, S]: 0 for [CLS] A [SEP], 1 for B [SEP], 0 on padding
    next_sentence_labels: np.ndarray  # int32 [N]: 0 = B follows A (NSP) / in order (SOP), else 1
    pad_id: int = 0

    def __len__(self) -> int:
        return len(self.input_ids)


def create_pair_examples(
    token_docs: list[TokenDocument],
    *,
    max_seq_length: int,
    short_seq_prob: float,
    sentence_task: str,
    cls_id: int,
    sep_id: int,
    pad_id: int,
    seed: int | Sequence[int],
    dupe_factor: int = 1,
) -> PairExamples:
    """The pairs of `create_pairs` as padded arrays."""
    pairs = create_pairs(
        token_docs,
        max_seq_length=max_seq_length,
        short_seq_prob=short_seq_prob,
        sentence_task=sentence_task,
        seed=seed,
        dupe_factor=dupe_factor,
    )
    return _to_arrays(pairs, max_seq_length, cls_id, sep_id, pad_id)


def create_pairs(
    token_docs: list[TokenDocument],
    *,
    max_seq_length: int,
    short_seq_prob: float,
    sentence_task: str,
    seed: int | Sequence[int],
    dupe_factor: int = 1,
) -> list[Pair]:
    """All (A, B, label) pairs of `dupe_factor` passes over the shuffled documents, shuffled.

    NSP: B is the text after A, or (label 1) text from another document, always so when the
    chunk holds one sentence. SOP: A and B are consecutive and swapped with label 1; a chunk of
    one sentence is split inside it, and dropped if it is a single token. "none": A alone, B
    empty. A and B leave room for `[CLS] A [SEP] B [SEP]` in `max_seq_length` tokens.
    """
    check_sentence_task(sentence_task)
    if max_seq_length < 5:
        raise UserError(
            f"data.max_seq_length={max_seq_length} leaves no room for a pair; use 5 or more."
        )
    docs = [doc for doc in ([s for s in doc if s] for doc in token_docs) if doc]
    rng = np.random.default_rng(seed)
    rng.shuffle(docs)
    pairs = []
    for _ in range(dupe_factor):
        for index in range(len(docs)):
            pairs += _document_pairs(
                docs, index, max_seq_length, short_seq_prob, sentence_task, rng
            )
    order = rng.permutation(len(pairs))
    return [pairs[i] for i in order]


def _document_pairs(
    docs: list[TokenDocument],
    index: int,
    max_seq_length: int,
    short_seq_prob: float,
    task: str,
    rng: np.random.Generator,
) -> list[tuple[Segment, Segment, int]]:
    """The (A, B, label) pairs of one document: chunks of sentences up to a target length."""
    max_tokens = max_seq_length - (2 if task == "none" else 3)
    target = max_tokens
    if rng.random() < short_seq_prob:  # once per document, as in BERT
        target = int(rng.integers(2, max_tokens + 1))
    doc, pairs, chunk, chunk_tokens, i = docs[index], [], [], 0, 0
    while i < len(doc):
        chunk.append(doc[i])
        chunk_tokens += len(doc[i])
        if i == len(doc) - 1 or chunk_tokens >= target:
            if task == "none":
                pair = (_concat(chunk), [], 0)
            elif task == "nsp":
                pair, unused = _nsp_pair(docs, index, chunk, target, rng)
                i -= unused  # those sentences start the next chunk instead
            else:
                pair = _sop_pair(chunk, rng)
            if pair:
                a, b, label = pair
                _truncate_pair(a, b, max_tokens, rng)
                pairs.append((a, b, label))
            chunk, chunk_tokens = [], 0
        i += 1
    return pairs


def _nsp_pair(
    docs: list[TokenDocument],
    index: int,
    chunk: list[Segment],
    target: int,
    rng: np.random.Generator,
) -> tuple[tuple[Segment, Segment, int], int]:
    """A pair for next-sentence prediction, and how many chunk sentences it left unused."""
    a_end = int(rng.integers(1, len(chunk))) if len(chunk) > 1 else 1
    a = _concat(chunk[:a_end])
    if len(chunk) > 1 and rng.random() >= 0.5:
        return (a, _concat(chunk[a_end:]), 0), 0
    other = index
    for _ in range(10):  # BERT's bounded retry: a one-document corpus pairs with itself
        other = int(rng.integers(len(docs)))
        if other != index:
            break
    b: Segment = []
    for sentence in docs[other][int(rng.integers(len(docs[other]))) :]:
        b += sentence
        if len(b) >= target - len(a):
            break
    return (a, b, 1), len(chunk) - a_end


def _sop_pair(
    chunk: list[Segment], rng: np.random.Generator
) -> tuple[Segment, Segment, int] | None:
    """A pair for sentence-order prediction (ALBERT), or None for a one-token chunk."""
    if len(chunk) > 1:
        a_end = int(rng.integers(1, len(chunk)))
        a, b = _concat(chunk[:a_end]), _concat(chunk[a_end:])
    elif len(chunk[0]) > 1:
        cut = int(rng.integers(1, len(chunk[0])))
        a, b = chunk[0][:cut], chunk[0][cut:]
    else:
        return None
    return (b, a, 1) if rng.random() < 0.5 else (a, b, 0)


def _concat(segments: list[Segment]) -> Segment:
    """One list of the segments' tokens, in order."""
    return list(itertools.chain.from_iterable(segments))


def _truncate_pair(a: Segment, b: Segment, max_tokens: int, rng: np.random.Generator) -> None:
    """Trims the longer segment, one token at a time from a random end, to fit `max_tokens`.

    The draws are taken at once (the same numbers as one `rng.random()` per token) and only the
    ends move until the final slice, so a long overflow costs no repeated list deletions.
    """
    excess = len(a) + len(b) - max_tokens
    if excess <= 0:
        return
    a_start, a_end, b_start, b_end = 0, len(a), 0, len(b)
    for draw in rng.random(excess).tolist():
        if a_end - a_start > b_end - b_start:
            a_start, a_end = (a_start + 1, a_end) if draw < 0.5 else (a_start, a_end - 1)
        else:
            b_start, b_end = (b_start + 1, b_end) if draw < 0.5 else (b_start, b_end - 1)
    a[:], b[:] = a[a_start:a_end], b[b_start:b_end]


def _to_arrays(
    pairs: list[tuple[Segment, Segment, int]],
    max_seq_length: int,
    cls_id: int,
    sep_id: int,
    pad_id: int,
) -> PairExamples:
    """Packs the pairs into padded int32 arrays."""
    input_ids = np.full((len(pairs), max_seq_length), pad_id, np.int32)
    token_type_ids = np.zeros((len(pairs), max_seq_length), np.int32)
    for row, (a, b, _) in enumerate(pairs):
        first = [cls_id, *a, sep_id]
        second = [*b, sep_id] if b else []
        input_ids[row, : len(first) + len(second)] = first + second
        token_type_ids[row, len(first) : len(first) + len(second)] = 1
    labels = np.array([label for _, _, label in pairs], np.int32)
    return PairExamples(input_ids, token_type_ids, labels, pad_id)


def split_documents(
    docs: list, eval_fraction: float, seed: int | Sequence[int]
) -> tuple[list, list]:
    """A seeded (train, eval) split of whole documents, so no eval text is seen in training.

    Any positive fraction holds out at least one document and leaves at least one for training;
    a fraction of 0 holds out nothing.
    """
    if not 0 <= eval_fraction < 1:
        raise UserError(f"data.eval_fraction={eval_fraction} is outside [0, 1); use e.g. 0.05.")
    if eval_fraction == 0:
        return list(docs), []
    if len(docs) < 2:
        raise UserError(
            f"data.eval_fraction={eval_fraction} needs at least 2 documents to hold "
            f"some out but the corpus has {len(docs)}; add documents or set it to 0."
        )
    num_eval = min(len(docs) - 1, max(1, round(eval_fraction * len(docs))))
    held_out = set(np.random.default_rng(seed).permutation(len(docs))[:num_eval].tolist())
    return (
        [doc for i, doc in enumerate(docs) if i not in held_out],
        [doc for i, doc in enumerate(docs) if i in held_out],
    )
