"""Distil a fine-tuned BERT (the teacher) into a smaller one on a GLUE task (or any table).

    python -m bert_jax.main --config=configs/distill_glue.py --workdir=DIR \
        --config.task=sst2 --config.teacher=TEACHER_WORKDIR \
        --config.data.train=../shared/data/sst2/train.tsv \
        --config.data.validation=../shared/data/sst2/dev.tsv

The teacher is a workdir fine-tuned on the same task (its best checkpoint). The student is
`config.model` (tiny by default) over the teacher's tokenizer, or `init_from` weights sharing
the teacher's vocabulary. Loss: distill.alpha * CE(labels) + (1 - alpha) * T^2 * KL(teacher ||
student), optionally with TinyBERT's hidden-state and attention losses (`distill.*`).
"""

from ml_collections import config_dict

from bert_jax.config_defaults import add_distillation, add_finetuning, add_glue_data, model


def get_config() -> config_dict.ConfigDict:
    c = config_dict.ConfigDict()
    add_finetuning(c, task="sst2", max_seq_length=128)
    add_glue_data(c.data)
    add_distillation(c)
    c.model = model("tiny")  # the student, without init_from
    c.learning_rate = 1e-4  # small students train from scratch or from brief pretraining
    return c
