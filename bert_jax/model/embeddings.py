"""BERT's input embeddings: word + position + token type, then LayerNorm and dropout."""

import jax
import jax.numpy as jnp
from flax import nnx

from bert_jax.errors import UserError
from bert_jax.model.config import BertConfig, layer_norm, weight_init
from bert_jax.model.dropout import Dropout


class BertEmbeddings(nnx.Module):
    """Maps token ids to float32 hidden states [B, S, H]; `word` is also the tied MLM output."""

    def __init__(self, config: BertConfig, *, rngs: nnx.Rngs):
        def table(rows: int, row_axis: str | None) -> nnx.Embed:
            return nnx.Embed(
                rows,
                config.hidden_size,
                embedding_init=weight_init(config, row_axis, "embed"),
                rngs=rngs,
            )

        self.word = table(config.vocab_size, "vocab")
        self.position = table(config.max_position_embeddings, None)
        self.token_type = table(config.type_vocab_size, None)
        self.norm = layer_norm(config, rngs=rngs)
        self.dropout = Dropout(config.hidden_dropout)

    def __call__(
        self,
        input_ids: jax.Array,
        token_type_ids: jax.Array,
        *,
        dropout_rng: jax.Array | None = None,
        position_ids: jax.Array | None = None,
    ) -> jax.Array:
        """Embeds [B, S] ids; `dropout_rng=None` means no dropout.

        `position_ids` [B, S] (default 0..S-1 in every row) restart at 0 for each example of a
        packed row, so it is embedded as if it stood alone.
        """
        seq_len = input_ids.shape[1]
        # jnp.take clamps out-of-range indices, so a too-long sequence would pass silently.
        if seq_len > self.position.num_embeddings:
            raise UserError(
                f"Sequences of length {seq_len} exceed "
                f"model.max_position_embeddings={self.position.num_embeddings}; raise it."
            )
        positions = jnp.arange(seq_len)[None] if position_ids is None else position_ids
        x = self.word(input_ids) + self.position(positions) + self.token_type(token_type_ids)
        return self.dropout(self.norm(x), deterministic=dropout_rng is None, rngs=dropout_rng)
