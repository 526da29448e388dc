"""Prediction models over a pretrained encoder: sentence embeddings (pooled as
sentence-transformers pools) and the most likely tokens at masked positions (fill-mask).

Both keep the encoder at `bert` and the MLM head at `mlm`, the paths of BertForPreTraining, so
any pretrained or fine-tuned weights load by name.
"""

import jax
import jax.numpy as jnp
from flax import nnx

from bert_jax.model.bert import BertModel
from bert_jax.model.config import BertConfig
from bert_jax.model.pretraining_heads import MaskedLMHead

POOLINGS = ("mean", "cls")


class BertSentenceEmbedding(nnx.Module):
    """[B, H] float32 vectors: the mean of the last layer over real tokens, or its [CLS] vector
    (not the pooler), optionally scaled to unit length."""

    def __init__(self, config: BertConfig, pooling: str, normalize: bool, *, rngs: nnx.Rngs):
        self.bert = BertModel(config, rngs=rngs)
        self.pooling, self.normalize = pooling, normalize

    def __call__(self, input_ids, token_type_ids, attention_mask) -> jax.Array:
        sequence_output, _ = self.bert(input_ids, token_type_ids, attention_mask)
        if self.pooling == "cls":
            vectors = sequence_output[:, 0]
        else:
            mask = attention_mask[..., None].astype(jnp.float32)
            vectors = (sequence_output * mask).sum(1) / jnp.maximum(mask.sum(1), 1e-9)
        if self.normalize:
            vectors = vectors / jnp.maximum(jnp.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)
        return vectors.astype(jnp.float32)


class BertTopTokens(nnx.Module):
    """The `top_k` most probable tokens (probabilities [B, P, k], ids [B, P, k]) at the [B, P]
    `masked_lm_positions`, from the masked-LM head."""

    def __init__(self, config: BertConfig, top_k: int, *, rngs: nnx.Rngs):
        self.bert = BertModel(config, rngs=rngs)
        self.mlm = MaskedLMHead(config, rngs=rngs)
        self.top_k = top_k

    def __call__(self, input_ids, token_type_ids, attention_mask, masked_lm_positions):
        sequence_output, _ = self.bert(input_ids, token_type_ids, attention_mask)
        table = self.bert.embeddings.word.embedding[...]
        logits = self.mlm(sequence_output, masked_lm_positions, table)
        return jax.lax.top_k(jax.nn.softmax(logits, axis=-1), self.top_k)
