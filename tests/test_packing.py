"""Packed rows give every example exactly the outputs it gets alone in its own padded row: the
segment mask keeps packed examples from attending to each other, positions restart per example,
and the pooler reads each example's own [CLS]."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from bert_jax.data.bucketing import pad_rows
from bert_jax.data.packing import pack_examples
from bert_jax.model import BertModel
from bert_jax.model.task_models import BertForSequenceClassification
from bert_jax.tasks.classification import make_loss
from conftest import tiny_bert

# Attention dropout this small never drops (keep probability 1.0 in float32) and scales by
# exactly 1, yet a dropout key sends attention through the einsum path instead of the fused one.
CONFIG = tiny_bert(
    hidden_dropout=0.0,
    attention_dropout=1e-9,
    initializer_range=0.2,  # sharper attention than BERT's 0.02, so mixing shows plainly
)
ATOL = 1e-5
ROW_LENGTH, MAX_SEGMENTS = 28, 4
# First fit: the first four fill row 0 (24 tokens, four segments), the last two go to row 1.
LENGTHS = (5, 9, 3, 7, 11, 6)
PAIRS = (1, 4)  # examples with a second sentence (token type 1)
ATTENTION_PATHS = {"fused": None, "einsum": jax.random.key(7)}


def alone_rows() -> dict[str, np.ndarray]:
    """Each example in its own row of ROW_LENGTH, padded; `labels` numbers the examples."""
    rng = np.random.default_rng(0)
    lengths = np.asarray(LENGTHS)
    mask = (np.arange(ROW_LENGTH)[None] < lengths[:, None]).astype(np.int32)
    input_ids = rng.integers(5, CONFIG.vocab_size, mask.shape) * mask
    input_ids[:, 0] = 2  # [CLS]
    token_type_ids = np.zeros_like(mask)
    for i in PAIRS:
        token_type_ids[i, lengths[i] // 2 : lengths[i]] = 1
    return {
        "input_ids": input_ids.astype(np.int32),
        "token_type_ids": token_type_ids,
        "attention_mask": mask,
        "labels": np.arange(len(LENGTHS), dtype=np.int32),
    }


@pytest.fixture(scope="module")
def rows():
    alone = alone_rows()
    packed = pack_examples(alone, max_segments=MAX_SEGMENTS, pad_id=0)
    assert packed["input_ids"].shape == (2, ROW_LENGTH)  # the packing this test means
    assert packed["label_weight"].sum(axis=1).tolist() == [4, 2]
    return alone, packed


@nnx.jit
def encode(model, alone: dict, packed: dict, dropout_rng, segment_ids):
    inputs = ("input_ids", "token_type_ids", "attention_mask")
    alone_out = model(*(alone[k] for k in inputs), dropout_rng=dropout_rng)
    packed_out = model(
        *(packed[k] for k in inputs),
        dropout_rng=dropout_rng,
        segment_ids=segment_ids,
        position_ids=packed["position_ids"],
        cls_positions=packed["cls_positions"],
    )
    return alone_out, packed_out


def example_spans(packed: dict):
    """(example, row, slot, token columns) of every packed example."""
    for row, slot in zip(*np.nonzero(packed["label_weight"]), strict=True):
        yield packed["labels"][row, slot], row, slot, packed["segment_ids"][row] == slot + 1


def max_differences(alone_out, packed_out, packed: dict) -> tuple[float, float]:
    """Largest |packed - alone| over every real token's sequence output and every pooled output."""
    (alone_seq, alone_pooled), (packed_seq, packed_pooled) = alone_out, packed_out
    tokens = pooled = 0.0
    for example, row, slot, columns in example_spans(packed):
        real = alone_seq[example, : columns.sum()]
        tokens = max(tokens, float(jnp.abs(packed_seq[row, columns] - real).max()))
        pooled = max(pooled, float(jnp.abs(packed_pooled[row, slot] - alone_pooled[example]).max()))
    return tokens, pooled


@pytest.mark.parametrize("path", ATTENTION_PATHS)
def test_packed_examples_encode_exactly_as_alone(rows, path):
    alone, packed = rows
    model = BertModel(CONFIG, rngs=nnx.Rngs(0))
    alone_out, packed_out = encode(
        model, alone, packed, ATTENTION_PATHS[path], packed["segment_ids"]
    )
    assert packed_out[0].shape == (2, ROW_LENGTH, CONFIG.hidden_size)
    assert packed_out[1].shape == (2, MAX_SEGMENTS, CONFIG.hidden_size)
    tokens, pooled = max_differences(alone_out, packed_out, packed)
    assert tokens < ATOL and pooled < ATOL, (tokens, pooled)


def test_without_the_segment_mask_packed_examples_see_each_other(rows):
    """The check above can fail: the plain padding mask lets the examples mix."""
    alone, packed = rows
    model = BertModel(CONFIG, rngs=nnx.Rngs(0))
    alone_out, packed_out = encode(model, alone, packed, None, None)
    tokens, pooled = max_differences(alone_out, packed_out, packed)
    assert tokens > 100 * ATOL and pooled > 100 * ATOL, (tokens, pooled)


def test_positions_restart_for_every_packed_example(rows):
    """Without packed positions, every example but a row's first is encoded differently."""
    alone, packed = rows
    model = BertModel(CONFIG, rngs=nnx.Rngs(0))
    counting = dict(packed, position_ids=np.broadcast_to(np.arange(ROW_LENGTH), (2, ROW_LENGTH)))
    alone_out, packed_out = encode(model, alone, counting, None, packed["segment_ids"])
    _, pooled = max_differences(alone_out, packed_out, counting)
    assert pooled > 100 * ATOL, pooled


@pytest.mark.parametrize("path", ATTENTION_PATHS)
def test_packed_classification_logits_match_alone(rows, path):
    alone, packed = rows
    model = BertForSequenceClassification(CONFIG, num_labels=3, rngs=nnx.Rngs(1))
    alone_logits, packed_logits = encode(
        model, alone, packed, ATTENTION_PATHS[path], packed["segment_ids"]
    )
    assert alone_logits.shape == (len(LENGTHS), 3)
    assert packed_logits.shape == (2, MAX_SEGMENTS, 3)
    for example, row, slot, _ in example_spans(packed):
        np.testing.assert_allclose(packed_logits[row, slot], alone_logits[example], atol=ATOL)


@pytest.mark.parametrize("regression", [False, True], ids=["classification", "regression"])
def test_packed_loss_is_the_mean_over_the_same_examples(regression):
    """The loss, accuracy count and example count of packed rows are those of the examples
    alone: each is read at its own [CLS], and empty slots weigh nothing."""
    alone = alone_rows()
    rng = np.random.default_rng(1)
    alone["labels"] = (
        rng.normal(size=len(LENGTHS)).astype(np.float32)
        if regression
        else rng.integers(0, 3, len(LENGTHS)).astype(np.int32)
    )
    packed = pack_examples(alone, max_segments=MAX_SEGMENTS, pad_id=0)
    # Empty rows up to a row bucket, as training batches get them, weigh nothing either.
    packed = pad_rows(packed, len(packed["input_ids"]) + 3)
    model = BertForSequenceClassification(CONFIG, 1 if regression else 3, rngs=nnx.Rngs(2))
    loss = nnx.jit(make_loss(regression))
    alone_loss, alone_sums = loss(model, alone, None)
    packed_loss, packed_sums = loss(model, packed, None)
    np.testing.assert_allclose(packed_loss, alone_loss, rtol=1e-5)
    assert packed_sums.keys() - {"rows"} == alone_sums.keys()
    assert float(packed_sums["rows"]) == len(packed["input_ids"])  # logged as rows_per_step
    for key in alone_sums:
        np.testing.assert_allclose(packed_sums[key], alone_sums[key], rtol=1e-5, err_msg=key)
    assert float(packed_sums["count"]) == len(LENGTHS)
