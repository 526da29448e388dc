"""The distillation loss: the labels' loss, the teacher's soft targets and TinyBERT's layer
losses, for a student and a frozen teacher run in the same jitted step.

    loss = alpha * CE(labels) + (1 - alpha) * T^2 * KL(softmax(teacher / T) || softmax(student / T))
           [+ hidden_weight * sum MSE(hidden states) + attention_weight * sum MSE(attention scores)]
"""

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from bert_jax.tasks import classification, token_classification
from bert_jax.tasks.finetuning import forward

# What each distillable kind contributes: the labels' loss from logits, and the weight of each
# position of logits[..., 0] (an example, or a labelled token).
KINDS = {
    "classification": (classification.make_logits_loss, classification.example_weight),
    "ner": (
        lambda regression: token_classification.logits_loss,
        token_classification.example_weight,
    ),
}
_METRICS = ("hard_loss", "soft_loss", "hidden_loss", "attention_loss")


@dataclasses.dataclass(frozen=True)
class Settings:
    """The loss's weights and layer pairs, from the run's `distill` section."""

    alpha: float
    temperature: float
    hidden_weight: float
    attention_weight: float
    hidden_pairs: tuple[tuple[int, int], ...]  # (student, teacher) layers; 0 = embeddings
    attention_pairs: tuple[tuple[int, int], ...]  # (student, teacher) layers, both >= 1

    @property
    def intermediates(self) -> bool:
        return self.hidden_weight > 0 or self.attention_weight > 0

    @property
    def needs_teacher(self) -> bool:
        """alpha=1 without layer losses is plain fine-tuning: the teacher is not run at all."""
        return self.alpha < 1.0 or self.intermediates


def soft_loss(student_logits, teacher_logits, temperature: float, regression: bool):
    """Per position: T^2 * KL(softmax(teacher/T) || softmax(student/T)), or for regression the
    squared difference of the scores."""
    if regression:
        return jnp.square(student_logits[..., 0] - teacher_logits[..., 0])
    teacher_log_p = jax.nn.log_softmax(teacher_logits / temperature)
    student_log_p = jax.nn.log_softmax(student_logits / temperature)
    kl = (jnp.exp(teacher_log_p) * (teacher_log_p - student_log_p)).sum(-1)
    return temperature**2 * kl


def _token_mask(batch) -> jax.Array:
    return batch["attention_mask"].astype(jnp.float32)  # [B, S]


def _pair_mask(batch) -> jax.Array:
    """[B, 1, S, S]: 1 where query and key are real tokens of the same example."""
    if "segment_ids" in batch:
        segments = batch["segment_ids"]
        same = segments[:, :, None] == segments[:, None, :]
        return (same & (segments[:, None, :] > 0)).astype(jnp.float32)[:, None]
    mask = _token_mask(batch)
    return (mask[:, :, None] * mask[:, None, :])[:, None]


def layer_losses(student: dict, teacher: dict, batch, settings: Settings) -> dict:
    """TinyBERT's hidden-state and attention-score MSE, each summed over its layer pairs and
    averaged over real tokens (token pairs of one example for attention)."""
    out = {}
    if settings.hidden_weight > 0:
        mask = _token_mask(batch)[..., None]
        count = jnp.maximum(mask.sum() * student["hidden"].shape[-1], 1.0)
        out["hidden_loss"] = sum(
            (jnp.square(student["hidden"][m] - teacher["hidden"][n]) * mask).sum() / count
            for m, n in settings.hidden_pairs
        )
    if settings.attention_weight > 0:
        mask = _pair_mask(batch)
        count = jnp.maximum(mask.sum() * student["attention_scores"].shape[2], 1.0)
        scores_s, scores_t = student["attention_scores"], teacher["attention_scores"]
        out["attention_loss"] = sum(
            (jnp.square(scores_s[m - 1] - scores_t[n - 1]) * mask).sum() / count
            for m, n in settings.attention_pairs
        )
    return out


def make_loss(teacher_graphdef: nnx.GraphDef, kind: str, regression: bool, settings: Settings):
    """The jittable distillation loss: (student, batch, dropout_rng, teacher params) -> (loss,
    sums); the teacher runs without dropout and no gradient reaches it."""
    make_hard_loss, weight_of = KINDS[kind]
    hard_loss = make_hard_loss(regression)

    def loss(model, batch, dropout_rng, teacher_params):
        if not settings.needs_teacher:
            return hard_loss(forward(model, batch, dropout_rng), batch)
        teacher = nnx.merge(teacher_graphdef, jax.lax.stop_gradient(teacher_params))
        options = {"intermediates": True} if settings.intermediates else {}
        student_out = forward(model, batch, dropout_rng, **options)
        teacher_out = forward(teacher, batch, None, **options)
        if not settings.intermediates:
            student_out, teacher_out = (student_out, None), (teacher_out, None)
        (student_logits, student_inner), (teacher_logits, teacher_inner) = student_out, teacher_out
        hard, sums = hard_loss(student_logits, batch)
        weight = weight_of(batch)
        per_position = soft_loss(student_logits, teacher_logits, settings.temperature, regression)
        soft = (per_position * weight).sum() / jnp.maximum(weight.sum(), 1.0)
        parts = {"hard_loss": hard, "soft_loss": soft}
        total = settings.alpha * hard + (1.0 - settings.alpha) * soft
        if settings.intermediates:
            layers = layer_losses(student_inner, teacher_inner, batch, settings)
            total += settings.hidden_weight * layers.get("hidden_loss", 0.0)
            total += settings.attention_weight * layers.get("attention_loss", 0.0)
            parts |= layers
        return total, sums | parts

    return loss


def make_summarize(summarize):
    """The student task's train figures, and the loss's parts averaged per step."""

    def summarize_distillation(sums: dict, num_steps: int) -> dict:
        parts = {key: sums[key] / num_steps for key in _METRICS if key in sums}
        return summarize(sums, num_steps) | parts

    return summarize_distillation
