"""Tests of the BERT model: shapes, dtypes, masking, dropout keys, tying, scan, numerics, remat,
unrolled layers, GELU."""

import dataclasses
import functools
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from bert_jax.data.sentence_pairs import check_sentence_task
from bert_jax.errors import UserError
from bert_jax.model import BertConfig, BertForPreTraining, BertModel, bert_config
from conftest import tiny_bert

CONFIG = tiny_bert(num_layers=3, max_position_embeddings=24)
BATCH, SEQ, PREDICTIONS = 2, 12, 3


def make_model(config: BertConfig = CONFIG, sentence_head: bool = True) -> BertForPreTraining:
    return BertForPreTraining(config, sentence_head=sentence_head, rngs=nnx.Rngs(0))


def make_batch(seed: int = 0, seq: int = SEQ, real: tuple[int, ...] = (SEQ, 7)) -> dict:
    """Random ids with row i real for its first real[i] tokens, padding (id 0, mask 0) after."""
    rng = np.random.default_rng(seed)
    mask = (np.arange(seq)[None] < np.asarray(real)[:, None]).astype(np.int32)
    return {
        "input_ids": jnp.asarray(rng.integers(1, CONFIG.vocab_size, (BATCH, seq)) * mask),
        "token_type_ids": jnp.asarray((np.arange(seq)[None] >= 4) * mask),
        "attention_mask": jnp.asarray(mask),
        "masked_lm_positions": jnp.asarray([[1, 5, 9], [0, 3, 6]]),
    }


@pytest.fixture(scope="module")
def model() -> BertForPreTraining:
    return make_model()


# Jitted once and shared: each eager call would re-trace and re-compile the layer scan.
@nnx.jit
def pretrain(model: BertForPreTraining, batch: dict, rng: jax.Array | None = None) -> dict:
    return model(**batch, dropout_rng=rng)


@nnx.jit
def encode(bert: BertModel, batch: dict) -> tuple[jax.Array, jax.Array]:
    return bert(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"])


def params_of(model: nnx.Module) -> dict:
    return nnx.to_pure_dict(nnx.state(model, nnx.Param))


def flat_params(model: nnx.Module) -> dict[str, nnx.Variable]:
    return {
        "/".join(map(str, path)): v for path, v in nnx.to_flat_state(nnx.state(model, nnx.Param))
    }


def test_output_shapes_with_and_without_sentence_head(model):
    outputs = pretrain(model, make_batch())
    assert outputs["mlm_logits"].shape == (BATCH, PREDICTIONS, CONFIG.vocab_size)
    assert outputs["sentence_logits"].shape == (BATCH, 2)
    assert all(v.dtype == jnp.float32 for v in outputs.values())

    no_sentence = make_model(sentence_head=False)
    assert set(pretrain(no_sentence, make_batch())) == {"mlm_logits"}
    assert not any(path.startswith("sentence") for path in flat_params(no_sentence))


def test_bfloat16_compute_keeps_float32_params_and_tracks_float32(model):
    bf16 = make_model(dataclasses.replace(CONFIG, dtype="bfloat16"))
    assert {v.dtype for v in jax.tree.leaves(params_of(bf16))} == {jnp.dtype("float32")}
    nnx.update(bf16, nnx.state(model, nnx.Param))  # same weights, so only precision differs
    batch = make_batch()
    low, high = pretrain(bf16, batch), pretrain(model, batch)
    for key in high:
        assert low[key].dtype == jnp.float32
        np.testing.assert_allclose(low[key], high[key], atol=3e-2)


def test_unknown_sentence_task_and_too_long_sequence_are_user_errors(model):
    with pytest.raises(UserError, match="sentence_task"):
        check_sentence_task("mlm")
    with pytest.raises(UserError, match="model.max_position_embeddings"):
        model(**make_batch(seq=CONFIG.max_position_embeddings + 1, real=(3, 3)))


def test_padding_does_not_change_real_positions(model):
    short = make_batch(seq=SEQ, real=(SEQ, 7))
    padded = {
        key: jnp.pad(value, ((0, 0), (0, 5))) if key != "masked_lm_positions" else value
        for key, value in short.items()
    }
    sequence, pooled = encode(model.bert, short)
    sequence_padded, pooled_padded = encode(model.bert, padded)
    real = np.asarray(short["attention_mask"], bool)
    np.testing.assert_allclose(sequence_padded[:, :SEQ][real], sequence[real], atol=1e-5)
    np.testing.assert_allclose(pooled_padded, pooled, atol=1e-5)


def test_dropout_is_driven_only_by_the_explicit_key(model):
    assert not jax.tree.leaves(nnx.state(model, nnx.Not(nnx.Param)))  # no RNG state inside
    batch = make_batch()

    def logits(rng):
        return pretrain(model, batch, rng)["mlm_logits"]

    np.testing.assert_array_equal(logits(None), logits(None))
    key = jax.random.key(1)
    np.testing.assert_array_equal(logits(key), logits(key))
    assert not np.allclose(logits(key), logits(jax.random.key(2)))
    assert not np.allclose(logits(key), logits(None))


def test_mlm_head_is_tied_to_the_word_embeddings(model):
    batch = make_batch()
    graphdef, params = nnx.split(model, nnx.Param)

    def mlm_sum(params):
        return nnx.merge(graphdef, params)(**batch)["mlm_logits"].sum()

    table_grad = nnx.to_pure_dict(jax.jit(jax.grad(mlm_sum))(params))["bert"]["embeddings"]["word"]
    unused = np.setdiff1d(np.arange(CONFIG.vocab_size), np.asarray(batch["input_ids"]))
    # Rows of tokens absent from the input can only get gradient through the output matrix.
    assert np.all(np.abs(np.asarray(table_grad["embedding"])[unused]).sum(-1) > 0)

    vocab_matrices = [
        path
        for path, v in flat_params(model).items()
        if v.ndim == 2 and CONFIG.vocab_size in v.shape
    ]
    assert vocab_matrices == ["bert/embeddings/word/embedding"]


def test_layers_are_stacked_and_every_param_has_logical_axis_names(model):
    params = flat_params(model)
    layer_params = {p: v for p, v in params.items() if p.startswith("bert/encoder/layers/")}
    assert len(layer_params) == 16
    for path, variable in params.items():
        names = variable.get_metadata()["out_sharding"]
        assert len(names) == variable.ndim, path
        assert (path in layer_params) == (names[0] == "layers"), path
    assert all(v.shape[0] == CONFIG.num_layers for v in layer_params.values())
    assert params["bert/encoder/layers/attention/query/kernel"].shape == (3, 32, 4, 8)
    assert params["bert/encoder/layers/attention/output/kernel"].shape == (3, 4, 8, 32)


@functools.partial(jax.jit, static_argnums=1)
def reference_forward(p: dict, config: BertConfig, batch: dict) -> dict:
    """A plain loop-over-layers BERT (post-LN, erf GELU) in jnp, independent of the model code."""
    hidden, heads = config.hidden_size, config.num_heads
    head_dim = hidden // heads
    ids, types, mask = batch["input_ids"], batch["token_type_ids"], batch["attention_mask"]
    batch_size, seq = ids.shape

    def layer_norm(x, norm):
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / jnp.sqrt(var + config.layer_norm_eps) * norm["scale"] + norm["bias"]

    def gelu(x):
        return 0.5 * x * (1.0 + jax.scipy.special.erf(x / math.sqrt(2.0)))

    def dense(x, params, inputs, outputs):
        return x @ params["kernel"].reshape(inputs, outputs) + params["bias"].reshape(outputs)

    def split_heads(x):
        return x.reshape(batch_size, seq, heads, head_dim).transpose(0, 2, 1, 3)

    embeddings = p["bert"]["embeddings"]
    x = (
        embeddings["word"]["embedding"][ids]
        + embeddings["position"]["embedding"][:seq]
        + embeddings["token_type"]["embedding"][types]
    )
    x = layer_norm(x, embeddings["norm"])
    stacked = p["bert"]["encoder"]["layers"]
    for i in range(config.num_layers):
        layer = jax.tree.map(lambda a, i=i: a[i], stacked)
        attention = layer["attention"]
        q, k, v = (
            split_heads(dense(x, attention[name], hidden, hidden))
            for name in ("query", "key", "value")
        )
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(head_dim)
        scores = jnp.where(mask[:, None, None, :] == 1, scores, -jnp.inf)
        context = (jax.nn.softmax(scores, axis=-1) @ v).transpose(0, 2, 1, 3)
        attended = dense(
            context.reshape(batch_size, seq, hidden), attention["output"], hidden, hidden
        )
        x = layer_norm(x + attended, layer["attention_norm"])
        mlp = layer["mlp"]
        h = dense(gelu(dense(x, mlp["intermediate"], hidden, -1)), mlp["output"], -1, hidden)
        x = layer_norm(x + h, layer["mlp_norm"])
    pooled = jnp.tanh(dense(x[:, 0], p["bert"]["pooler"], hidden, hidden))
    gathered = x[jnp.arange(batch_size)[:, None], batch["masked_lm_positions"]]
    mlm = p["mlm"]
    t = layer_norm(gelu(dense(gathered, mlm["transform"], hidden, hidden)), mlm["norm"])
    return {
        "sequence_output": x,
        "pooled_output": pooled,
        "mlm_logits": t @ embeddings["word"]["embedding"].T + mlm["bias"],
        "sentence_logits": dense(pooled, p["sentence"]["classifier"], hidden, 2),
    }


def test_matches_an_independent_reference_implementation(model):
    batch = make_batch(seed=3)
    # Random LayerNorm and bias values, so a misplaced or missing one cannot go unnoticed.
    rng = np.random.default_rng(7)
    params = jax.tree.map(
        lambda a: a + np.float32(0.1) * rng.standard_normal(a.shape, np.float32), params_of(model)
    )
    randomized = make_model()
    nnx.update(randomized, params)
    expected = reference_forward(params, CONFIG, batch)

    outputs = pretrain(randomized, batch)
    sequence, pooled = encode(randomized.bert, batch)
    real = np.asarray(batch["attention_mask"], bool)
    np.testing.assert_allclose(sequence[real], expected["sequence_output"][real], atol=1e-5)
    np.testing.assert_allclose(pooled, expected["pooled_output"], atol=1e-5)
    for key in ("mlm_logits", "sentence_logits"):
        np.testing.assert_allclose(outputs[key], expected[key], atol=1e-5)


def test_presets_give_the_standard_sizes():
    standard = {  # (layers, hidden, heads, intermediate) of Google's released BERT sizes
        "tiny": (2, 128, 2, 512),
        "mini": (4, 256, 4, 1024),
        "small": (4, 512, 8, 2048),
        "medium": (8, 512, 8, 2048),
        "base": (12, 768, 12, 3072),
        "large": (24, 1024, 16, 4096),
    }
    for preset, sizes in standard.items():
        c = bert_config(preset, 30522)
        assert (c.num_layers, c.hidden_size, c.num_heads, c.intermediate_size) == sizes, preset
    large = bert_config("large", 30522, num_layers=None, hidden_dropout=0.0)
    assert (large.num_layers, large.num_heads, large.hidden_dropout) == (24, 16, 0.0)
    base = bert_config("base", 30522)
    abstract = nnx.eval_shape(
        lambda: BertForPreTraining(base, sentence_head=True, rngs=nnx.Rngs(0))
    )
    count = sum(v.size for v in jax.tree.leaves(nnx.state(abstract, nnx.Param)))
    assert 109e6 < count < 111e6  # BERT-base's ~110M, with pooler and MLM head


def test_run_config_initializer_range_sets_the_stddev_of_fresh_weights():
    from bert_jax.model.config import from_run_config
    from configs.pretrain import get_config

    def stddevs(initializer_range: float) -> dict[str, float]:
        run = get_config()
        run.model.initializer_range = initializer_range
        run.model.local_init_layers = 0  # the random position table (test_local_init.py)
        config = from_run_config(run, vocab_size=500)
        model = BertForPreTraining(config, sentence_head=True, rngs=nnx.Rngs(0))
        return {
            "word": float(jnp.std(model.bert.embeddings.word.embedding.value)),
            "position": float(jnp.std(model.bert.embeddings.position.embedding.value)),
        }

    default, wide = stddevs(0.02), stddevs(0.1)
    for table in default:
        # A truncated normal at 2 stddevs keeps about 88% of the stddev.
        assert 0.85 * 0.02 < default[table] < 0.02, table
        assert 0.85 * 0.1 < wide[table] < 0.1, table


def test_loaded_weights_keep_their_initializer_range_unless_the_run_sets_one():
    from bert_jax.tasks.starting_point import with_run_settings
    from configs.finetune_glue import get_config

    run, weights = get_config(), tiny_bert(initializer_range=0.01)
    assert with_run_settings(weights, run).initializer_range == 0.01
    run.model.initializer_range = 0.05
    assert with_run_settings(weights, run).initializer_range == 0.05


def test_bad_presets_and_head_counts_are_user_errors():
    with pytest.raises(UserError, match=r"model\.preset.*tiny, mini, small, medium, base, large"):
        bert_config("huge", 100)
    with pytest.raises(UserError, match=r"model\.num_heads"):
        bert_config("tiny", 100, num_heads=3)
    with pytest.raises(UserError, match=r"model\.remat_policy='some'.*full, dots"):
        bert_config("tiny", 100, remat_policy="some")


def _loss_and_grad(config: BertConfig) -> tuple[tuple, str, str]:
    """A dropout-on loss of the encoder, its gradients, the jaxpr they were traced to and the
    StableHLO it lowered to."""
    batch = make_batch()
    rng = jax.random.key(5)
    model = BertModel(config, rngs=nnx.Rngs(0))
    graphdef, params = nnx.split(model, nnx.Param)

    def loss(params):
        bert = nnx.merge(graphdef, params)
        sequence, pooled = bert(
            batch["input_ids"], batch["token_type_ids"], batch["attention_mask"], dropout_rng=rng
        )
        return jnp.sum(sequence**2) + jnp.sum(pooled)

    traced = jax.jit(jax.value_and_grad(loss)).trace(params)
    lowered = traced.lower()
    return lowered.compile()(params), str(traced.jaxpr), lowered.as_text()


def test_remat_gives_the_same_outputs_and_gradients():
    config = dataclasses.replace(CONFIG, num_layers=2)
    plain, plain_jaxpr, plain_hlo = _loss_and_grad(config)
    remat, remat_jaxpr, remat_hlo = _loss_and_grad(dataclasses.replace(config, remat=True))
    dots, _, dots_hlo = _loss_and_grad(dataclasses.replace(config, remat=True, remat_policy="dots"))
    recomputes = re.compile(r"\b(remat\w*|checkpoint)\b")
    assert (bool(recomputes.search(plain_jaxpr)), bool(recomputes.search(remat_jaxpr))) == (
        False,
        True,
    )
    for recomputed in (remat, dots):
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4), plain, recomputed
        )
    # A layer has 6 weight matmuls and 2 attention-score matmuls: full remat recomputes all 8
    # in the backward pass, "dots" only the 2 score matmuls (the scan body is lowered once).
    matmuls = [hlo.count("dot_general") for hlo in (plain_hlo, remat_hlo, dots_hlo)]
    assert (matmuls[1] - matmuls[0], matmuls[2] - matmuls[0]) == (8, 2)


def test_unrolled_layers_give_the_same_outputs_and_gradients_as_the_scan():
    """scan_layers=False applies the same stacked parameters and dropout keys layer by layer."""
    scanned, scanned_jaxpr, _ = _loss_and_grad(CONFIG)
    unrolled, unrolled_jaxpr, _ = _loss_and_grad(dataclasses.replace(CONFIG, scan_layers=False))
    assert (" scan[" in scanned_jaxpr, " scan[" in unrolled_jaxpr) == (True, False)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4), scanned, unrolled
    )
    # Remat composes with the unrolled layers too.
    remat, remat_jaxpr, _ = _loss_and_grad(
        dataclasses.replace(CONFIG, scan_layers=False, remat=True)
    )
    assert "remat" in remat_jaxpr or "checkpoint" in remat_jaxpr
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4), scanned, remat
    )


def test_gelu_is_exact_and_its_derivative_keeps_one_tensor():
    from bert_jax.model.activations import gelu

    def reference(x):
        return jax.nn.gelu(x, approximate=False)

    x = jnp.linspace(-10.0, 10.0, 2001)
    np.testing.assert_array_equal(gelu(x), reference(x))
    derivative = jax.vmap(jax.grad(gelu))(x)
    np.testing.assert_allclose(derivative, jax.vmap(jax.grad(reference))(x), atol=3e-7)
    # The exact derivative at a few points: Phi(x) + x * phi(x).
    for point in (-3.0, -0.5, 0.0, 1.0, 2.5):
        phi = math.exp(-point * point / 2) / math.sqrt(2 * math.pi)
        expected = 0.5 * (1 + math.erf(point / math.sqrt(2))) + point * phi
        assert float(jax.grad(gelu)(point)) == pytest.approx(expected, abs=1e-6)

    def saved_tensors(f) -> int:
        _, backward = jax.vjp(f, x)
        return sum(getattr(leaf, "shape", None) == x.shape for leaf in jax.tree.leaves(backward))

    assert (saved_tensors(gelu), saved_tensors(reference)) == (1, 3)


def test_fused_attention_path_matches_the_einsum_path():
    """Without dropout on the probabilities, attention goes through jax.nn.dot_product_attention;
    a vanishing dropout rate keeps the einsum path, and both must agree."""
    from bert_jax.model import SelfAttention, padding_bias

    config = dataclasses.replace(CONFIG, attention_dropout=0.0)
    fused = SelfAttention(config, rngs=nnx.Rngs(0))
    einsum = SelfAttention(dataclasses.replace(config, attention_dropout=1e-30), rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (2, 6, config.hidden_size))
    bias = padding_bias(jnp.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]]))
    rng = jax.random.key(2)
    np.testing.assert_allclose(fused(x, bias, dropout_rng=rng), einsum(x, bias, dropout_rng=rng),
                               atol=1e-6)  # fmt: skip
