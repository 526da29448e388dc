"""Sentence pairs (NSP/SOP), MLM masking and the resumable, sharded batch iterator."""

import collections
import json
import os
import tempfile

import numpy as np
import pytest

from bert_jax.data.keyed_random import RowRandom, derive_key
from bert_jax.data.masking import mask_tokens
from bert_jax.data.pair_records import RowLayout, encode_pair
from bert_jax.data.prepared_records import PreparedRecords
from bert_jax.data.sentence_pairs import (
    PairExamples,
    create_pair_examples,
    max_predictions_per_seq,
    split_documents,
)
from bert_jax.data.shard_files import write_records
from bert_jax.data.streaming import StreamedBatches, eval_batches
from bert_jax.errors import UserError

PAD, UNK, CLS, SEP, MASK = range(5)
SPECIALS = (PAD, CLS, SEP, MASK)
S = 64
FIRST_TOKEN = 100  # synthetic token ids count up from here, one new id per token


def synthetic_corpus(num_docs: int = 60, seed: int = 0) -> tuple[list, np.ndarray]:
    """Documents of 3-20 sentences of 2-15 tokens; every token id is new and ids grow in reading
    order, so a pair's ids tell which document each token came from and in which order."""
    rng = np.random.default_rng(seed)
    docs, doc_of_token, next_id = [], [], FIRST_TOKEN
    for doc_index in range(num_docs):
        doc = []
        for length in rng.integers(2, 16, rng.integers(3, 21)):
            doc.append(list(range(next_id, next_id + length)))
            next_id += length
        doc_of_token += [doc_index] * sum(map(len, doc))
        docs.append(doc)
    return docs, np.array(doc_of_token)


def pairs(sentence_task: str, seed: int = 0, **options):
    docs, _ = synthetic_corpus()
    settings = {"max_seq_length": S, "short_seq_prob": 0.1, "dupe_factor": 2} | options
    return create_pair_examples(
        docs, sentence_task=sentence_task, cls_id=CLS, sep_id=SEP, pad_id=PAD, seed=seed, **settings
    )


def segments(row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A and B of `[CLS] A [SEP] B [SEP]`, after checking that layout."""
    seps = np.flatnonzero(row == SEP)
    assert row[0] == CLS and len(seps) == 2 and (row[seps[1] + 1 :] == PAD).all()
    return row[1 : seps[0]], row[seps[0] + 1 : seps[1]]


@pytest.mark.parametrize("task", ["nsp", "sop"])
def test_pairs_are_cls_a_sep_b_sep_with_segment_ids(task):
    examples = pairs(task)
    assert examples.input_ids.shape == (len(examples), S)
    for row, types in zip(examples.input_ids, examples.token_type_ids, strict=True):
        a, b = segments(row)
        assert len(a) > 0 and len(b) > 0
        expected = [0] * (len(a) + 2) + [1] * (len(b) + 1)
        assert types.tolist() == expected + [0] * (S - len(expected))


def test_nsp_label_0_continues_the_document_and_label_1_comes_from_another():
    _, doc_of = synthetic_corpus()
    examples = pairs("nsp")
    assert 0.4 < examples.next_sentence_labels.mean() < 0.6
    for row, label in zip(examples.input_ids, examples.next_sentence_labels, strict=True):
        a, b = segments(row)
        doc_a, doc_b = doc_of[a - FIRST_TOKEN], doc_of[b - FIRST_TOKEN]
        assert (doc_a == doc_a[0]).all() and (doc_b == doc_b[0]).all()
        if label == 0:
            assert doc_a[0] == doc_b[0] and a.max() < b.min()
        else:
            assert doc_a[0] != doc_b[0]


def test_sop_pairs_are_consecutive_text_swapped_when_labelled_1():
    _, doc_of = synthetic_corpus()
    examples = pairs("sop")
    assert 0.4 < examples.next_sentence_labels.mean() < 0.6
    for row, label in zip(examples.input_ids, examples.next_sentence_labels, strict=True):
        a, b = segments(row)
        assert len(set(doc_of[np.concatenate([a, b]) - FIRST_TOKEN])) == 1
        assert (a.max() < b.min()) if label == 0 else (b.max() < a.min())


def test_without_a_sentence_task_rows_are_one_segment():
    examples = pairs("none")
    assert (examples.next_sentence_labels == 0).all() and (examples.token_type_ids == 0).all()
    for row in examples.input_ids:
        seps = np.flatnonzero(row == SEP)
        assert row[0] == CLS and len(seps) == 1 and (row[seps[0] + 1 :] == PAD).all()


def test_short_seq_prob_makes_shorter_sequences():
    def mean_length(short_seq_prob):
        return (pairs("nsp", short_seq_prob=short_seq_prob).input_ids != PAD).sum(1).mean()

    assert mean_length(1.0) < 0.8 * mean_length(0.0)


def test_pairs_depend_only_on_the_seed():
    first, again, other = pairs("nsp", seed=1), pairs("nsp", seed=1), pairs("nsp", seed=2)
    assert np.array_equal(first.input_ids, again.input_ids)
    assert np.array_equal(first.next_sentence_labels, again.next_sentence_labels)
    assert not np.array_equal(first.input_ids[:50], other.input_ids[:50])


def test_unknown_sentence_task_is_a_user_error():
    with pytest.raises(UserError, match="sentence_task='mlm'"):
        pairs("mlm")


def test_max_predictions_per_seq_matches_bert():
    assert max_predictions_per_seq(128, 0.15) == 20
    assert max_predictions_per_seq(512, 0.15) == 77
    assert max_predictions_per_seq(100, 0.2) == 20


def test_split_documents_holds_out_whole_documents_deterministically():
    docs = [[f"document {i}"] for i in range(40)]
    train, held_out = split_documents(docs, 0.1, seed=0)
    assert len(held_out) == 4 and sorted(train + held_out) == sorted(docs)
    assert split_documents(docs, 0.1, seed=0) == (train, held_out)
    assert split_documents(docs, 0.1, seed=1) != (train, held_out)
    assert len(split_documents(docs[:2], 0.01, seed=0)[1]) == 1
    with pytest.raises(UserError, match=r"data\.eval_fraction"):
        split_documents(docs[:1], 0.1, seed=0)


# Masking: a large batch of random rows of varying length, [CLS] a [SEP] b [SEP] [PAD]...
VOCAB = 5000
MASKING = {
    "masked_lm_prob": 0.15,
    "max_predictions": max_predictions_per_seq(S, 0.15),
    "mask_id": MASK,
    "vocab_size": VOCAB,
    "special_ids": SPECIALS,
}


def random_rows(batch: int = 4000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, VOCAB, (batch, S))
    lengths = rng.integers(4, S + 1, batch)
    ids[np.arange(S) >= lengths[:, None]] = PAD
    ids[:, 0] = CLS
    ids[np.arange(batch), lengths - 1] = SEP
    ids[np.arange(batch), rng.integers(1, lengths - 1)] = SEP
    return ids


def expected_counts(ids: np.ndarray) -> np.ndarray:
    maskable = (~np.isin(ids, SPECIALS)).sum(1)
    return np.minimum(MASKING["max_predictions"], np.maximum(1, np.round(maskable * 0.15)))


# NumPy's generator, and the per-row keyed numbers streamed batches are masked with.
GENERATORS = {
    "numpy": lambda seed, rows: np.random.default_rng(seed),
    "row_keys": lambda seed, rows: RowRandom(derive_key(seed, np.arange(rows))),
}


@pytest.mark.parametrize("generator", GENERATORS)
def test_masking_picks_the_expected_number_of_non_special_positions(generator):
    ids = random_rows()
    out = mask_tokens(ids, rng=GENERATORS[generator](0, len(ids)), **MASKING)
    positions, weights = out["masked_lm_positions"], out["masked_lm_weights"]
    assert positions.shape == (len(ids), MASKING["max_predictions"])
    assert np.array_equal(weights.sum(1), expected_counts(ids))
    real = weights > 0
    assert (np.diff(positions, axis=1)[real[:, 1:]] > 0).all()  # sorted, no repeats
    assert (positions[~real] == 0).all() and (out["masked_lm_ids"][~real] == 0).all()
    originals = np.take_along_axis(ids, positions, 1)
    assert not np.isin(originals[real], SPECIALS).any()
    assert np.array_equal(out["masked_lm_ids"][real], originals[real])
    untouched = np.ones(ids.shape, bool)
    np.put_along_axis(untouched, positions, ~real, 1)
    assert np.array_equal(out["input_ids"][untouched], ids[untouched])


@pytest.mark.parametrize("generator", GENERATORS)
def test_masked_positions_are_80_percent_mask_10_random_10_unchanged(generator):
    ids = random_rows()
    out = mask_tokens(ids, rng=GENERATORS[generator](1, len(ids)), **MASKING)
    real = out["masked_lm_weights"] > 0
    now = np.take_along_axis(out["input_ids"], out["masked_lm_positions"], 1)[real]
    before = out["masked_lm_ids"][real]
    assert abs((now == MASK).mean() - 0.8) < 0.02
    assert abs(((now != MASK) & (now != before)).mean() - 0.1) < 0.02
    assert abs((now == before).mean() - 0.1) < 0.02
    assert (now[now != MASK] >= 5).all()


@pytest.mark.parametrize("generator", GENERATORS)
def test_whole_word_masking_masks_whole_words_only(generator):
    word_start = np.random.default_rng(2).random(VOCAB) < 0.4
    word_start[:5] = True
    ids = random_rows(1000)
    rng = GENERATORS[generator](3, len(ids))
    out = mask_tokens(ids, rng=rng, word_start=word_start, **MASKING)
    chosen = np.zeros(ids.shape, bool)
    np.put_along_axis(chosen, out["masked_lm_positions"], out["masked_lm_weights"] > 0, 1)
    maskable = ~np.isin(ids, SPECIALS)
    continues = np.zeros(ids.shape, bool)  # a piece continuing the word before it
    continues[:, 1:] = ~word_start[ids[:, 1:]] & maskable[:, :-1]
    assert (chosen[:, 1:] == chosen[:, :-1])[continues[:, 1:]].all()
    assert chosen[continues].any()  # multi-piece words were masked
    assert (out["masked_lm_weights"].sum(1) <= expected_counts(ids)).all()


# The streamed iterator over a small set of pair examples, written as a one-shard split.
LAYOUT = RowLayout(dtype="<u2", max_seq_length=S, cls_id=CLS, sep_id=SEP, pad_id=PAD)
_SPLITS = tempfile.TemporaryDirectory()


def as_records(examples: PairExamples) -> PreparedRecords:
    """The examples as the records of a prepared split (one ArrayRecord shard)."""
    records = []
    for row, label in zip(examples.input_ids, examples.next_sentence_labels, strict=True):
        a, b = segments(row)
        records.append(encode_pair(a.tolist(), b.tolist(), int(label), np.dtype("<u2")))
    path = os.path.join(_SPLITS.name, f"{len(os.listdir(_SPLITS.name))}.array_record")
    write_records(path, records)
    return PreparedRecords([(path, len(records))])


def iterator(examples=None, **options) -> StreamedBatches:
    settings = {"global_batch_size": 8, "seed": 0} | options
    return StreamedBatches(as_records(examples or pairs("nsp")), LAYOUT, MASKING, **settings)


def take(batches, count: int) -> list[dict]:
    return [next(batches) for _ in range(count)]


def unmasked(batch: dict) -> np.ndarray:
    """The batch's input_ids with the original tokens back at the masked positions."""
    ids = batch["input_ids"].copy()
    real = batch["masked_lm_weights"] > 0
    rows = np.broadcast_to(np.arange(len(ids))[:, None], real.shape)
    ids[rows[real], batch["masked_lm_positions"][real]] = batch["masked_lm_ids"][real]
    return ids


def assert_same(first: list[dict], second: list[dict]) -> None:
    assert len(first) == len(second)
    for a, b in zip(first, second, strict=True):
        assert a.keys() == b.keys()
        assert all(np.array_equal(a[key], b[key]) for key in a)


def test_batches_have_the_model_inputs():
    examples = pairs("nsp")
    batch = next(iterator(examples))
    assert batch.keys() == {
        "input_ids",
        "token_type_ids",
        "attention_mask",
        "masked_lm_positions",
        "masked_lm_ids",
        "masked_lm_weights",
        "next_sentence_labels",
    }
    assert batch["input_ids"].shape == (8, S) and batch["next_sentence_labels"].shape == (8,)
    assert all(array.dtype == np.int32 for key, array in batch.items() if "weights" not in key)
    real = batch["attention_mask"] == 1
    assert (batch["input_ids"][~real] == PAD).all() and (batch["input_ids"][real] != PAD).all()


def test_batches_depend_only_on_the_seed_and_epochs_visit_each_example_once():
    examples = pairs("nsp")
    assert_same(take(iterator(examples), 5), take(iterator(examples), 5))
    assert not np.array_equal(
        next(iterator(examples))["input_ids"], next(iterator(examples, seed=1))["input_ids"]
    )
    batches = iterator(examples)
    for _ in range(2):
        seen = collections.Counter(
            row.tobytes() for _ in range(len(examples) // 8) for row in unmasked(next(batches))
        )
        assert seen.total() == len(examples) // 8 * 8
        assert not seen - collections.Counter(row.tobytes() for row in examples.input_ids)


def test_restored_state_continues_with_the_same_batches():
    examples = pairs("nsp", dupe_factor=1)
    examples = PairExamples(
        examples.input_ids[:20], examples.token_type_ids[:20], examples.next_sentence_labels[:20]
    )  # 2 batches per epoch
    original = iterator(examples)
    take(original, 5)  # into the third epoch
    state = json.loads(json.dumps(original.get_state()))
    assert state == {"epoch": 2, "batch": 1}
    restored = iterator(examples)
    restored.set_state(state)
    assert_same(take(restored, 4), take(original, 4))
    with pytest.raises(UserError):
        restored.set_state({"epoch": 0, "batch": 2})


def test_process_shards_concatenate_to_the_global_batch():
    examples = pairs("nsp")
    whole = take(iterator(examples), 3)
    shards = [take(iterator(examples, process_index=i, process_count=2), 3) for i in range(2)]
    joined = [
        {key: np.concatenate([s0[key], s1[key]]) for key in s0}
        for s0, s1 in zip(*shards, strict=True)
    ]
    assert_same(joined, whole)


@pytest.mark.parametrize(
    "options", [{"global_batch_size": 9, "process_count": 2}, {"global_batch_size": 100_000}]
)
def test_impossible_batch_sizes_are_user_errors(options):
    with pytest.raises(UserError, match="batch_size="):
        iterator(**options)


def test_fixed_batches_are_in_order_masked_once_and_full():
    examples = pairs("nsp")
    records = as_records(examples)

    def fixed_batches(**options):
        return eval_batches(records, LAYOUT, MASKING, seed=0, **options)

    batches = fixed_batches(batch_size=8, num_batches=3)
    assert_same(batches, fixed_batches(batch_size=8, num_batches=3))
    assert len(batches) == 3
    assert np.array_equal(
        np.concatenate([b["token_type_ids"] for b in batches]), examples.token_type_ids[:24]
    )
    everything = fixed_batches(batch_size=8)
    assert len(everything) == len(examples) // 8
    with pytest.raises(UserError, match=r"data\.eval_batch_size"):
        fixed_batches(batch_size=len(examples) + 1)
