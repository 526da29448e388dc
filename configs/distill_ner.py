"""Distil a fine-tuned NER model (the teacher) into a smaller one (CoNLL-2003 style BIO tags).

    python -m bert_jax.main --config=configs/distill_ner.py --workdir=DIR \
        --config.teacher=TEACHER_WORKDIR \
        --config.data.train=train.txt --config.data.validation=valid.txt

The teacher is a workdir fine-tuned with configs/finetune_ner.py on the same tags; the soft
targets are its tag distributions at each word's first token. See configs/distill_glue.py for
the student and the loss.
"""

from ml_collections import config_dict

from bert_jax.config_defaults import add_distillation, add_finetuning, add_ner_data, model


def get_config() -> config_dict.ConfigDict:
    c = config_dict.ConfigDict()
    add_finetuning(c, task="ner", max_seq_length=128)
    add_ner_data(c.data)
    add_distillation(c)
    c.model = model("tiny")  # the student, without init_from
    c.learning_rate = 1e-4
    return c
