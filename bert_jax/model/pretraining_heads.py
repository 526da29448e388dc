"""Pretraining heads (masked LM tied to the word embeddings, sentence pair) and their model."""

import jax
import jax.numpy as jnp
from flax import nnx

from bert_jax.model.activations import gelu
from bert_jax.model.bert import BertModel
from bert_jax.model.config import BertConfig, dense, layer_norm, partitioned


class MaskedLMHead(nnx.Module):
    """Predicts the original tokens at the masked positions only, as the original BERT did.

    The output matrix is the word-embedding table, passed in at call time (tied, never copied).
    """

    def __init__(self, config: BertConfig, *, rngs: nnx.Rngs):
        hidden = config.hidden_size
        self.transform = dense(config, hidden, hidden, "embed", None, rngs=rngs)
        self.norm = layer_norm(config, rngs=rngs)
        self.bias = nnx.Param(
            partitioned(nnx.initializers.zeros_init(), "vocab")(
                rngs.params(), (config.vocab_size,), jnp.float32
            )
        )
        self.compute_dtype = config.compute_dtype

    def __call__(
        self,
        sequence_output: jax.Array,
        masked_lm_positions: jax.Array,
        word_embeddings: jax.Array,
    ) -> jax.Array:
        """float32 logits [B, P, V] at the [B, P] positions of [B, S, H]; table is [V, H]."""
        # Gather first: full-vocabulary logits at every position would dominate step cost.
        x = jnp.take_along_axis(sequence_output, masked_lm_positions[..., None], axis=1)
        x = self.norm(gelu(self.transform(x)))
        logits = jnp.einsum(
            "bph,vh->bpv",
            x.astype(self.compute_dtype),
            word_embeddings.astype(self.compute_dtype),
            preferred_element_type=jnp.float32,
        )
        return logits + self.bias[...]


class SentencePairHead(nnx.Module):
    """Two-way classifier on the pooled output: next-sentence (NSP) or sentence-order (SOP)."""

    def __init__(self, config: BertConfig, *, rngs: nnx.Rngs):
        self.classifier = dense(config, config.hidden_size, 2, "embed", None, rngs=rngs)

    def __call__(self, pooled_output: jax.Array) -> jax.Array:
        """float32 logits [B, 2] from [B, H]."""
        return self.classifier(pooled_output).astype(jnp.float32)


class BertForPreTraining(nnx.Module):
    """BERT with the masked-LM head and, if `sentence_head`, a sentence-pair head."""

    def __init__(self, config: BertConfig, *, sentence_head: bool, rngs: nnx.Rngs):
        self.bert = BertModel(config, rngs=rngs)
        self.mlm = MaskedLMHead(config, rngs=rngs)
        # NSP and SOP differ only in how the data labels pairs; the head is the same.
        self.sentence = SentencePairHead(config, rngs=rngs) if sentence_head else None

    def __call__(
        self,
        input_ids: jax.Array,
        token_type_ids: jax.Array,
        attention_mask: jax.Array,
        masked_lm_positions: jax.Array,
        *,
        dropout_rng: jax.Array | None = None,
    ) -> dict[str, jax.Array]:
        """{"mlm_logits": [B, P, V], "sentence_logits": [B, 2] (if a sentence task)}, float32."""
        sequence_output, pooled_output = self.bert(
            input_ids, token_type_ids, attention_mask, dropout_rng=dropout_rng
        )
        word_embeddings = self.bert.embeddings.word.embedding[...]
        outputs = {"mlm_logits": self.mlm(sequence_output, masked_lm_positions, word_embeddings)}
        if self.sentence is not None:
            outputs["sentence_logits"] = self.sentence(pooled_output)
        return outputs
