"""Multi-head self-attention with a padding mask and attention-probability dropout."""

import jax
import jax.numpy as jnp
from flax import nnx

from bert_jax.model.config import BertConfig, partitioned, weight_init
from bert_jax.model.dropout import Dropout

# Added to the scores of padding keys: exp() of it is exactly 0 in float32, and it cannot overflow.
_MASKED_SCORE = -1e9


def padding_bias(attention_mask: jax.Array) -> jax.Array:
    """Additive float32 score bias [B, 1, 1, S] from a [B, S] mask (1 = real token, 0 = pad)."""
    return jnp.where(attention_mask[:, None, None, :] > 0, 0.0, _MASKED_SCORE).astype(jnp.float32)


def packing_bias(segment_ids: jax.Array) -> jax.Array:
    """Additive float32 score bias [B, 1, S, S] for rows holding several packed examples.

    `segment_ids` [B, S] numbers the example each token belongs to (1, 2, ...; 0 = padding); it
    is not BERT's sentence A/B `token_type_ids`. A query sees only keys of its own example.
    """
    same_example = segment_ids[:, None, :, None] == segment_ids[:, None, None, :]
    visible = same_example & (segment_ids[:, None, None, :] > 0)
    return jnp.where(visible, 0.0, _MASKED_SCORE).astype(jnp.float32)


class SelfAttention(nnx.Module):
    """Bidirectional scaled dot-product attention over all heads, as in the original BERT."""

    def __init__(self, config: BertConfig, *, rngs: nnx.Rngs):
        heads = (config.num_heads, config.head_dim)

        def projection() -> nnx.LinearGeneral:
            return nnx.LinearGeneral(
                config.hidden_size,
                heads,
                dtype=config.compute_dtype,
                kernel_init=weight_init(config, "embed", "heads", "kv"),
                bias_init=partitioned(nnx.initializers.zeros_init(), "heads", "kv"),
                rngs=rngs,
            )

        self.query = projection()
        self.key = projection()
        self.value = projection()
        self.output = nnx.LinearGeneral(
            heads,
            config.hidden_size,
            axis=(-2, -1),
            dtype=config.compute_dtype,
            kernel_init=weight_init(config, "heads", "kv", "embed"),
            bias_init=partitioned(nnx.initializers.zeros_init(), "embed"),
            rngs=rngs,
        )
        self.dropout = Dropout(config.attention_dropout)
        self.scale = config.head_dim**-0.5

    def __call__(
        self,
        x: jax.Array,
        attention_bias: jax.Array,
        *,
        dropout_rng: jax.Array | None = None,
        return_scores: bool = False,
    ) -> jax.Array | tuple[jax.Array, jax.Array]:
        """Attends [B, S, H] hidden states to each other; `attention_bias` from `padding_bias`
        ([B, 1, 1, S]) or `packing_bias` ([B, 1, S, S]). `return_scores` also gives the scaled
        scores q·k/sqrt(d) [B, heads, S, S] before the bias and softmax (for distillation)."""
        query, key, value = self.query(x), self.key(x), self.value(x)  # [B, S, heads, kv]
        if not return_scores and (dropout_rng is None or self.dropout.rate == 0.0):
            # No dropout on the probabilities: the fused kernel (cuDNN flash attention on GPU
            # for bf16/fp16, XLA elsewhere) computes the same softmax(q·k·scale + bias)·v.
            context = jax.nn.dot_product_attention(
                query, key, value, bias=attention_bias.astype(query.dtype), scale=self.scale
            )
            return self.output(context)
        # Scores and softmax in float32: the padding bias and small probabilities survive bf16.
        scores = jnp.einsum("bqnd,bknd->bnqk", query, key, preferred_element_type=jnp.float32)
        scores = scores * self.scale
        probs = jax.nn.softmax(scores + attention_bias, axis=-1)
        probs = self.dropout(probs, deterministic=dropout_rng is None, rngs=dropout_rng)
        context = jnp.einsum("bnqk,bknd->bqnd", probs.astype(value.dtype), value)
        output = self.output(context)
        return (output, scores) if return_scores else output
