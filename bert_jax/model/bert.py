"""The BERT encoder: embeddings, a scanned stack of post-LN Transformer layers, and the pooler."""

import jax
import jax.numpy as jnp
from flax import nnx

from bert_jax.model import local_init
from bert_jax.model.activations import gelu
from bert_jax.model.attention import SelfAttention, packing_bias, padding_bias
from bert_jax.model.config import (
    REMAT_POLICIES,
    BertConfig,
    dense,
    layer_norm,
)
from bert_jax.model.dropout import Dropout
from bert_jax.model.embeddings import BertEmbeddings

# Names the stacked leading axis of every layer parameter, so sharding rules can address it.
_LAYER_AXIS = {nnx.PARTITION_NAME: "layers"}


def _split(rng: jax.Array | None, num: int) -> tuple[jax.Array | None, ...]:
    """`num` independent keys from `rng`, or `num` Nones when dropout is off."""
    return (None,) * num if rng is None else tuple(jax.random.split(rng, num))


class FeedForward(nnx.Module):
    """Position-wise MLP: dense to intermediate_size, exact (erf) GELU, dense back to hidden."""

    def __init__(self, config: BertConfig, *, rngs: nnx.Rngs):
        hidden, intermediate = config.hidden_size, config.intermediate_size
        self.intermediate = dense(config, hidden, intermediate, "embed", "mlp", rngs=rngs)
        self.output = dense(config, intermediate, hidden, "mlp", "embed", rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        """Transforms each position of [B, S, H] independently."""
        return self.output(gelu(self.intermediate(x)))


class EncoderLayer(nnx.Module):
    """One post-LN Transformer layer: x = LN(x + drop(attn(x))); x = LN(x + drop(mlp(x)))."""

    def __init__(self, config: BertConfig, *, rngs: nnx.Rngs):
        self.attention = SelfAttention(config, rngs=rngs)
        self.attention_norm = layer_norm(config, rngs=rngs)
        self.mlp = FeedForward(config, rngs=rngs)
        self.mlp_norm = layer_norm(config, rngs=rngs)
        self.dropout = Dropout(config.hidden_dropout)

    def __call__(
        self,
        x: jax.Array,
        attention_bias: jax.Array,
        *,
        dropout_rng: jax.Array | None = None,
        return_scores: bool = False,
    ) -> jax.Array | tuple[jax.Array, jax.Array]:
        """Maps float32 [B, S, H] to float32 [B, S, H]; `dropout_rng=None` means no dropout.
        `return_scores` also returns the attention scores (SelfAttention's)."""
        attention_rng, attention_output_rng, mlp_output_rng = _split(dropout_rng, 3)
        deterministic = dropout_rng is None
        y = self.attention(
            x, attention_bias, dropout_rng=attention_rng, return_scores=return_scores
        )
        y, scores = y if return_scores else (y, None)
        y = self.dropout(y, deterministic=deterministic, rngs=attention_output_rng)
        x = self.attention_norm(x + y)
        y = self.dropout(self.mlp(x), deterministic=deterministic, rngs=mlp_output_rng)
        x = self.mlp_norm(x + y)
        return (x, scores) if return_scores else x


class BertEncoder(nnx.Module):
    """`num_layers` EncoderLayers stored with a leading "layers" axis.

    With `scan_layers`, scan traces one layer, so compile time does not grow with depth; without
    it the layers are unrolled, which compiles longer but skips the scan's stacked buffers of
    activations (zero-filled, then written a layer at a time) and runs faster on CPU. The
    parameters are the same either way, so checkpoints work with both.
    """

    def __init__(self, config: BertConfig, *, rngs: nnx.Rngs):
        @nnx.vmap(transform_metadata=_LAYER_AXIS)
        def stacked_layers(key: jax.Array) -> EncoderLayer:
            return EncoderLayer(config, rngs=nnx.Rngs(key))

        self.layers = stacked_layers(jax.random.split(rngs.params(), config.num_layers))
        self.num_layers = config.num_layers
        self.remat = config.remat
        self.remat_policy = config.remat_policy
        self.scan_layers = config.scan_layers

    def __call__(
        self,
        x: jax.Array,
        attention_bias: jax.Array,
        *,
        dropout_rng: jax.Array | None = None,
        intermediates: bool = False,
    ) -> jax.Array | tuple[jax.Array, dict[str, jax.Array]]:
        """Runs all layers over [B, S, H]; each layer draws dropout from its own key.

        `intermediates` also returns every layer's output ("hidden" [L, B, S, H]) and attention
        scores ("attention_scores" [L, B, heads, S, S]), as knowledge distillation reads them.
        """
        if intermediates:
            return self._with_intermediates(x, attention_bias, dropout_rng)

        def apply_layer(x: jax.Array, layer: EncoderLayer, rng: jax.Array | None) -> jax.Array:
            return layer(x, attention_bias, dropout_rng=rng)

        if self.remat:
            # prevent_cse=False is safe (and faster) under scan, as jax.checkpoint documents.
            policy = REMAT_POLICIES[self.remat_policy]
            apply_layer = nnx.remat(apply_layer, prevent_cse=False, policy=policy)
        layer_rngs = None if dropout_rng is None else jax.random.split(dropout_rng, self.num_layers)
        if not self.scan_layers:
            graphdef, stacked = nnx.split(self.layers)
            for index in range(self.num_layers):
                layer = nnx.merge(graphdef, jax.tree.map(lambda param, i=index: param[i], stacked))
                x = apply_layer(x, layer, None if layer_rngs is None else layer_rngs[index])
            return x
        scan = nnx.scan(
            apply_layer,
            in_axes=(nnx.Carry, 0, 0),
            out_axes=nnx.Carry,
            transform_metadata=_LAYER_AXIS,
        )
        return scan(x, self.layers, layer_rngs)

    def _with_intermediates(self, x, attention_bias, dropout_rng):
        """The scanned layers, stacking each layer's output and scores (no remat, no unroll:
        this serves distillation, whose intermediate losses need them all anyway)."""

        def apply_layer(x, layer: EncoderLayer, rng):
            x, scores = layer(x, attention_bias, dropout_rng=rng, return_scores=True)
            return x, (x, scores)

        layer_rngs = None if dropout_rng is None else jax.random.split(dropout_rng, self.num_layers)
        scan = nnx.scan(
            apply_layer,
            in_axes=(nnx.Carry, 0, 0),
            out_axes=(nnx.Carry, 0),
            transform_metadata=_LAYER_AXIS,
        )
        x, (hidden, scores) = scan(x, self.layers, layer_rngs)
        return x, {"hidden": hidden, "attention_scores": scores}


class BertModel(nnx.Module):
    """The BERT encoder with its pooler; the base of every task model."""

    def __init__(self, config: BertConfig, *, rngs: nnx.Rngs):
        self.embeddings = BertEmbeddings(config, rngs=rngs)
        self.encoder = BertEncoder(config, rngs=rngs)
        hidden = config.hidden_size
        self.pooler = dense(config, hidden, hidden, "embed", None, rngs=rngs)
        if config.local_init_layers:
            self._start_local(config)

    def _start_local(self, config: BertConfig) -> None:
        """Overwrites the random position table and the first layers' query and key kernels
        with local_init.py's offset heads."""
        position = self.embeddings.position.embedding
        position[...] = local_init.position_table(*position.shape, config.initializer_range)
        attention = self.encoder.layers.attention
        query, key = attention.query.kernel[...], attention.key.kernel[...]  # [L, H, n, d]
        for layer in range(config.local_init_layers):
            for head in range(config.num_heads):
                index = layer * config.num_heads + head
                q, k = local_init.offset_head_kernels(
                    config.hidden_size, config.head_dim, local_init.head_offset(index), index
                )
                query = query.at[layer, :, head].set(q)
                key = key.at[layer, :, head].set(k)
        attention.query.kernel[...], attention.key.kernel[...] = query, key

    def __call__(
        self,
        input_ids: jax.Array,
        token_type_ids: jax.Array,
        attention_mask: jax.Array,
        *,
        dropout_rng: jax.Array | None = None,
        segment_ids: jax.Array | None = None,
        position_ids: jax.Array | None = None,
        cls_positions: jax.Array | None = None,
        intermediates: bool = False,
    ) -> tuple[jax.Array, ...]:
        """Returns float32 (sequence_output [B, S, H], pooled_output [B, H]), and with
        `intermediates` a third item: the encoder's (see BertEncoder), whose "hidden" then starts
        with the embeddings' output ([L + 1, B, S, H]).

        `attention_mask` is 1 for real tokens and 0 for padding; `dropout_rng=None` means eval.
        Packed rows (several examples per row, `data/packing.py`) also give `segment_ids`
        [B, S] (which example, 0 = padding: examples attend only to themselves), `position_ids`
        [B, S] (restarting per example) and `cls_positions` [B, M] (each example's [CLS]),
        and get pooled_output [B, M, H], one per example.
        """
        embeddings_rng, encoder_rng = _split(dropout_rng, 2)
        x = self.embeddings(
            input_ids, token_type_ids, dropout_rng=embeddings_rng, position_ids=position_ids
        )
        bias = padding_bias(attention_mask) if segment_ids is None else packing_bias(segment_ids)
        embedded = x
        x = self.encoder(x, bias, dropout_rng=encoder_rng, intermediates=intermediates)
        x, inner = x if intermediates else (x, None)
        # The pooled output summarises the sequence from the first ([CLS]) position.
        if cls_positions is None:
            cls = x[:, 0]
        else:
            cls = jnp.take_along_axis(x, cls_positions[:, :, None], axis=1)  # [B, M, H]
        pooled = jnp.tanh(self.pooler(cls).astype(jnp.float32))
        if not intermediates:
            return x, pooled
        hidden = jnp.concatenate([embedded[None].astype(inner["hidden"].dtype), inner["hidden"]])
        return x, pooled, inner | {"hidden": hidden}
