"""Tests of model.local_init_layers: which heads start local, where they look, what else is kept."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx, traverse_util

from bert_jax.errors import UserError
from bert_jax.model import BertModel, padding_bias
from conftest import tiny_bert

SEQ = 16
OFFSETS = range(-4, 5)


def attention_by_offset(config) -> np.ndarray:
    """Mean initial attention probability [layers, heads, offsets] on random text."""
    model = BertModel(config, rngs=nnx.Rngs(0))
    ids = jnp.asarray(np.random.default_rng(0).integers(4, config.vocab_size, (8, SEQ)))
    x = model.embeddings(ids, jnp.zeros_like(ids))
    _, inner = model.encoder(x, padding_bias(jnp.ones_like(ids)), intermediates=True)
    probs = np.asarray(jax.nn.softmax(inner["attention_scores"], axis=-1))  # [L, B, n, S, S]
    means = []
    for offset in OFFSETS:
        query = np.arange(max(0, -offset), min(SEQ, SEQ - offset))
        means.append(probs[:, :, :, query, query + offset].mean(axis=(1, 3)))
    return np.stack(means, axis=-1)


def test_local_heads_start_at_their_offsets_and_later_layers_stay_uniform():
    config = tiny_bert(hidden_size=64, num_heads=2, num_layers=3, local_init_layers=2)
    by_offset = attention_by_offset(config)
    expected = [[-1, 1], [-2, 2]]
    for layer, offsets in enumerate(expected):
        for head, offset in enumerate(offsets):
            mass = by_offset[layer, head]
            assert OFFSETS[int(mass.argmax())] == offset, (layer, head, mass)
            assert mass.max() > 4 / SEQ, (layer, head, mass)  # uniform would be 1/SEQ
    assert by_offset[2].max() < 1.5 / SEQ  # a randomly initialised layer attends uniformly


def test_local_init_replaces_only_the_position_table_and_the_local_query_key_kernels():
    def flat(config) -> dict:
        params = nnx.to_pure_dict(nnx.state(BertModel(config, rngs=nnx.Rngs(0)), nnx.Param))
        return traverse_util.flatten_dict(params, sep="/")

    random, local = flat(tiny_bert()), flat(tiny_bert(local_init_layers=1))
    changed = {
        name
        for name in random
        if not np.array_equal(np.asarray(random[name])[:1], np.asarray(local[name])[:1])
    }
    assert changed == {
        "embeddings/position/embedding",
        "encoder/layers/attention/query/kernel",
        "encoder/layers/attention/key/kernel",
    }
    for name in ("query", "key"):  # the second layer keeps its random kernels
        kernel = f"encoder/layers/attention/{name}/kernel"
        np.testing.assert_array_equal(random[kernel][1], local[kernel][1])
    table = np.asarray(local["embeddings/position/embedding"])
    assert abs(table.std() - 0.02) < 1e-3  # initializer_range, as the random table's scale


def test_run_config_sets_local_init_layers_and_out_of_range_is_a_user_error():
    from bert_jax.model.config import from_run_config
    from configs.pretrain import get_config

    run = get_config()
    run.model.local_init_layers = 2
    assert from_run_config(run, vocab_size=500).local_init_layers == 2
    run.model.local_init_layers = 3
    with pytest.raises(UserError, match=r"model\.local_init_layers=3 is outside 0\.\.2"):
        from_run_config(run, vocab_size=500)
