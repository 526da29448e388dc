"""Packed and length-bucketed fine-tuning batches: the same examples per step as unpacked, every
example once per epoch, the same model outputs as full-length rows, and a position that resumes."""

import numpy as np
import pytest
from flax import nnx

from bert_jax.data.batches import packed_batches, padded_batches
from bert_jax.data.bucketing import row_bucket, sequence_bucket, trim_to_bucket
from bert_jax.model.task_models import BertForSequenceClassification, BertForTokenClassification
from bert_jax.tasks.finetuning import forward, gather
from conftest import tiny_bert

SEQ = 128
CONFIG = tiny_bert(max_position_embeddings=SEQ, hidden_dropout=0.0, attention_dropout=0.0)


def examples(count: int, seed: int = 0, longest: int = 60) -> dict[str, np.ndarray]:
    """Padded examples of random lengths whose ids name them (row i: ids 1000*i + 1, ...)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, longest + 1, count)
    mask = (np.arange(SEQ)[None] < lengths[:, None]).astype(np.int32)
    ids = ((np.arange(SEQ) + 1) % 90 + 5)[None] * mask  # real ids in [5, 95), 0 is padding
    return {
        "input_ids": ids.astype(np.int32),
        "token_type_ids": (rng.integers(0, 2, mask.shape) * mask).astype(np.int32),
        "attention_mask": mask,
        "labels": np.arange(count, dtype=np.int32),  # each example's label is its index
    }


def test_buckets():
    assert [sequence_bucket(n, 128) for n in (1, 32, 33, 64, 100, 128)] == [
        32,
        32,
        64,
        64,
        128,
        128,
    ]
    assert sequence_bucket(40, 48) == 48  # max_seq_length itself is always a bucket
    assert [row_bucket(r, 32, 1) for r in (1, 4, 5, 9, 32)] == [4, 4, 8, 12, 32]
    assert row_bucket(5, 32, 8) == 8 and row_bucket(9, 32, 8) == 16  # multiples of the shards


def packed(count=96, batch=32, multiple=2, **processes):
    return packed_batches(
        examples(count), global_batch_size=batch, seed=3, max_segments=8, pad_id=0,
        row_multiple=multiple, **processes,
    )  # fmt: skip


def test_packed_batches_hold_batch_size_examples_each_once_per_epoch():
    batches = packed()
    seen = []
    for _ in range(batches.batches_per_epoch):
        batch = next(batches)
        rows = len(batch["input_ids"])
        assert rows % 2 == 0 and rows <= 32
        assert batch["label_weight"].sum() == 32  # the examples of an unpacked step
        seen += batch["labels"][batch["label_weight"] > 0].tolist()
    assert sorted(seen) == list(range(96))  # steps x examples covers the epoch exactly once
    assert batches.get_state() == {"epoch": 1, "batch": 0}


def test_packed_batches_split_over_processes_and_resume_exactly():
    whole = packed()
    halves = [packed(process_index=i, process_count=2) for i in range(2)]
    for _ in range(4):  # into the second epoch
        batch, parts = next(whole), [next(h) for h in halves]
        for name in batch:
            np.testing.assert_array_equal(np.concatenate([p[name] for p in parts]), batch[name])
    resumed = packed()
    resumed.set_state(whole.get_state())
    expected, again = next(whole), next(resumed)
    assert all(np.array_equal(expected[k], again[k]) for k in expected)


def test_eval_batches_shortest_first_cut_to_buckets_every_example_once():
    arrays = examples(70, longest=120)
    batches = padded_batches(arrays, batch_size=16, max_seq_length=SEQ)
    widths = [b["input_ids"].shape[1] for b in batches]
    assert widths == sorted(widths) and widths[0] < SEQ and set(widths) <= {32, 64, 128}
    for batch in batches:
        real = batch["attention_mask"].sum(axis=1)
        assert real.max() <= batch["input_ids"].shape[1]  # no real token was cut
    weights = np.concatenate([b["example_weight"] for b in batches])
    indices = np.concatenate([b["example_index"] for b in batches])
    assert sorted(indices[weights > 0].tolist()) == list(range(70))


@pytest.fixture(scope="module")
def models():
    return (
        BertForSequenceClassification(CONFIG, 3, rngs=nnx.Rngs(0)),
        BertForTokenClassification(CONFIG, 5, rngs=nnx.Rngs(1)),
    )


def test_bucketed_rows_give_the_outputs_of_full_length_rows(models):
    classifier, tagger = models
    full = examples(8, longest=40)
    short = trim_to_bucket(full, SEQ)
    assert short["input_ids"].shape[1] == 64
    np.testing.assert_allclose(forward(classifier, short), forward(classifier, full), atol=1e-5)
    tags_short, tags_full = forward(tagger, short), forward(tagger, full)
    real = full["attention_mask"][:, :64] > 0
    np.testing.assert_allclose(np.asarray(tags_short)[real], np.asarray(tags_full)[:, :64][real],
                               atol=1e-5)  # fmt: skip


def test_packed_examples_score_as_alone(models):
    """Each example of a packed training batch gets the logits it gets alone in its own row."""
    classifier, _ = models
    arrays = examples(32)
    batch = next(packed_batches(
        arrays, global_batch_size=32, seed=0, max_segments=8, pad_id=0, row_multiple=1,
    ))  # fmt: skip
    logits = np.asarray(forward(classifier, batch))
    alone = np.asarray(forward(classifier, arrays))
    filled = batch["label_weight"] > 0
    np.testing.assert_allclose(logits[filled], alone[batch["labels"][filled]], atol=1e-5)


def test_gather_pads_per_token_outputs_back_to_the_full_width():
    outputs = [
        {"predictions": np.ones((2, 32), np.int32), "example_weight": np.ones(2, np.float32)},
        {"predictions": np.ones((2, 64), np.int32), "example_weight": np.array([1.0, 0.0])},
    ]
    joined = gather(outputs, width=128)
    assert joined["predictions"].shape == (3, 128)
    assert joined["predictions"][:, 64:].sum() == 0 and joined["predictions"][0, 32:].sum() == 0
