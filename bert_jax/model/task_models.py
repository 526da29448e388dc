"""Fine-tuning models: the BERT encoder under one dropout + linear head, as in the BERT paper.

Every model keeps the encoder at `bert`, the path pretraining uses, so pretrained weights load by
name; the head is `classifier` (or `qa_outputs`) and is what a new task initialises.
"""

import jax
import jax.numpy as jnp
from flax import nnx

from bert_jax.model.bert import BertModel
from bert_jax.model.config import BertConfig, dense
from bert_jax.model.dropout import Dropout


class _TaskModel(nnx.Module):
    """Encoder, dropout on the features the head reads, and the head."""

    def __init__(self, config: BertConfig, outputs: int, *, rngs: nnx.Rngs, name: str):
        self.bert = BertModel(config, rngs=rngs)
        self.dropout = Dropout(config.hidden_dropout)
        setattr(self, name, dense(config, config.hidden_size, outputs, "embed", None, rngs=rngs))
        self._head_name = name

    def features(self, sequence_output: jax.Array, pooled_output: jax.Array) -> jax.Array:
        raise NotImplementedError

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
    ) -> jax.Array | tuple[jax.Array, dict[str, jax.Array]]:
        """float32 logits; `dropout_rng=None` means evaluation (no dropout). The packed-row
        inputs `segment_ids`, `position_ids` and `cls_positions` are BertModel's, and so are
        the `intermediates` returned after the logits when asked for (distillation)."""
        rngs = (None, None) if dropout_rng is None else jax.random.split(dropout_rng)
        encoder_rng, head_rng = rngs
        outputs = self.bert(
            input_ids,
            token_type_ids,
            attention_mask,
            dropout_rng=encoder_rng,
            segment_ids=segment_ids,
            position_ids=position_ids,
            cls_positions=cls_positions,
            intermediates=intermediates,
        )
        x = self.features(*outputs[:2])
        x = self.dropout(x, deterministic=dropout_rng is None, rngs=head_rng)
        logits = getattr(self, self._head_name)(x).astype(jnp.float32)
        return (logits, outputs[2]) if intermediates else logits


class BertForSequenceClassification(_TaskModel):
    """Logits [B, num_labels] from the pooled [CLS] output; num_labels=1 is regression.

    Packed rows (`cls_positions` [B, M]) give logits [B, M, num_labels], one per example.
    """

    def __init__(self, config: BertConfig, num_labels: int, *, rngs: nnx.Rngs):
        super().__init__(config, num_labels, rngs=rngs, name="classifier")

    def features(self, sequence_output, pooled_output):
        return pooled_output


class BertForTokenClassification(_TaskModel):
    """Logits [B, S, num_labels], one label distribution per token (NER)."""

    def __init__(self, config: BertConfig, num_labels: int, *, rngs: nnx.Rngs):
        super().__init__(config, num_labels, rngs=rngs, name="classifier")

    def features(self, sequence_output, pooled_output):
        return sequence_output


class BertForQuestionAnswering(_TaskModel):
    """Logits [B, S, 2]: answer-start and answer-end scores per token (SQuAD)."""

    def __init__(self, config: BertConfig, *, rngs: nnx.Rngs):
        super().__init__(config, 2, rngs=rngs, name="qa_outputs")
        self.dropout = Dropout(0.0)  # BERT's SQuAD head reads the encoder output undropped

    def features(self, sequence_output, pooled_output):
        return sequence_output
