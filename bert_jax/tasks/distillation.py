"""Knowledge distillation: a student fine-tuned on the labels and on a frozen teacher's outputs.

    loss = alpha * CE(labels) + (1 - alpha) * T^2 * KL(softmax(teacher / T) || softmax(student / T))
           [+ hidden_weight * sum MSE(hidden states) + attention_weight * sum MSE(attention scores)]

as Hinton et al. (2015) and DistilBERT, with TinyBERT's layer losses over a layer map (student
layer m <- teacher layer g(m); the hidden-state loss needs equal widths, the attention loss equal
head counts). Regression distils the teacher's score by squared error. The student is built like
any fine-tuning run of its task, and its checkpoints are that task's (predict and convert treat
them as such); the teacher's parameters are a frozen input of the same jitted step.
"""

import dataclasses

from absl import logging
from ml_collections import ConfigDict

from bert_jax import flops, sharding
from bert_jax.data.any_tokenizer import tokenizer_to_meta
from bert_jax.errors import UserError
from bert_jax.tasks.base import Task
from bert_jax.tasks.distillation_loss import KINDS, Settings, make_loss, make_summarize
from bert_jax.tasks.registry import task_kind, task_module
from bert_jax.tasks.teacher import Teacher, load_teacher, place_params, teacher_model


def settings_from_config(config: ConfigDict, student_layers: int, teacher_layers: int) -> Settings:
    d = config.distill
    if not 0.0 <= d.alpha <= 1.0:
        raise UserError(f"distill.alpha={d.alpha} must lie in [0, 1].")
    if d.temperature <= 0:
        raise UserError(f"distill.temperature={d.temperature} must be positive.")
    if d.hidden_weight < 0 or d.attention_weight < 0:
        raise UserError("distill.hidden_weight and distill.attention_weight must not be negative.")
    if d.layer_map is None:
        pairs = [(0, 0)] + [
            (m, m * teacher_layers // student_layers) for m in range(1, student_layers + 1)
        ]
    else:
        pairs = [
            tuple(pair) if isinstance(pair, (tuple, list)) else (pair,) for pair in d.layer_map
        ]
    for pair in pairs:
        if len(pair) != 2 or not (
            0 <= int(pair[0]) <= student_layers and 0 <= int(pair[1]) <= teacher_layers
        ):
            raise UserError(
                f"distill.layer_map has {pair}; give (student layer, teacher layer) pairs within "
                f"0..{student_layers} and 0..{teacher_layers} (0 = the embeddings)."
            )
    return Settings(
        alpha=float(d.alpha),
        temperature=float(d.temperature),
        hidden_weight=float(d.hidden_weight),
        attention_weight=float(d.attention_weight),
        hidden_pairs=tuple((int(m), int(n)) for m, n in pairs),
        attention_pairs=tuple((int(m), int(n)) for m, n in pairs if m >= 1 and n >= 1),
    )


def check_compatible(teacher: Teacher, student: Task, kind: str, config: ConfigDict) -> None:
    """The teacher must have been trained for this task, on the same labels and token ids."""
    origin = f"teacher={config.teacher!r}"
    if teacher.info.get("labels") != student.info.get("labels"):
        raise UserError(
            f"{origin} predicts the labels {teacher.info.get('labels')}, the student's data has "
            f"{student.info.get('labels')}; give a teacher trained on the same labels."
        )
    if tokenizer_to_meta(teacher.tokenizer) != tokenizer_to_meta(student.tokenizer):
        raise UserError(
            f"{origin} uses another tokenizer than the student; leave data.tokenizer and "
            "init_from unset to use the teacher's, or give weights with the teacher's vocabulary."
        )
    if config.data.max_seq_length > teacher.model_config.max_position_embeddings:
        raise UserError(
            f"data.max_seq_length={config.data.max_seq_length} exceeds the teacher's "
            f"{teacher.model_config.max_position_embeddings} positions; lower it."
        )
    d, s, t = config.distill, student.model_config, teacher.model_config
    if d.hidden_weight > 0 and s.hidden_size != t.hidden_size:
        raise UserError(
            f"distill.hidden_weight needs the student's hidden_size ({s.hidden_size}) to equal "
            f"the teacher's ({t.hidden_size}); set distill.hidden_weight=0 for a narrower student."
        )
    if d.attention_weight > 0 and s.num_heads != t.num_heads:
        raise UserError(
            f"distill.attention_weight needs the student's num_heads ({s.num_heads}) to equal "
            f"the teacher's ({t.num_heads}); set model.num_heads or distill.attention_weight=0."
        )


def build(config: ConfigDict, workdir: str, fallback_tokenizer=None) -> Task:
    kind = task_kind(config.task)
    if kind not in KINDS:
        raise UserError(
            f"distillation is for classification, regression and NER; task={config.task!r} "
            "is not one of them."
        )
    teacher = load_teacher(config.teacher)
    teacher_kind = teacher.info.get("kind", "pretraining")
    if teacher_kind != kind:
        raise UserError(
            f"teacher={config.teacher!r} was trained for a {teacher_kind} task, the student for "
            f"{kind} (task={config.task!r}); give a teacher fine-tuned on the same task."
        )
    # Without data.tokenizer or init_from, the student reads the teacher's token ids.
    student = task_module(kind).build(config, workdir, fallback_tokenizer or teacher.tokenizer)
    check_compatible(teacher, student, kind, config)
    bert, build_teacher = teacher_model(teacher, config.dtype)
    settings = settings_from_config(config, student.model_config.num_layers, bert.num_layers)
    graphdef, params = place_params(teacher, build_teacher, sharding.make_mesh(config), config)
    logging.info(
        "Distilling from the teacher %s (%d layers, hidden %d) into a student of %d layers, "
        "hidden %d: alpha=%g, T=%g%s.",
        teacher.origin, bert.num_layers, bert.hidden_size, student.model_config.num_layers,
        student.model_config.hidden_size, settings.alpha, settings.temperature,
        f", hidden {settings.hidden_weight:g} and attention {settings.attention_weight:g} over "
        f"(student, teacher) layers {settings.hidden_pairs}" if settings.intermediates else "",
    )  # fmt: skip
    regression = kind == "classification" and student.info["labels"] is None
    # The teacher's forward pass is a third of its forward + backward; none when it is not run.
    teacher_forward = (
        settings.needs_teacher
        * flops.train_flops_per_step(
            bert, config.batch_size, config.data.max_seq_length, 0, sentence_head=False
        )
        / 3
    )
    return dataclasses.replace(
        student,
        loss=make_loss(graphdef, kind, regression, settings),
        summarize=make_summarize(student.summarize),
        flops_per_step=student.flops_per_step + teacher_forward,
        frozen=params,
    )
