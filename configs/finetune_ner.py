"""Fine-tune BERT for named-entity recognition (CoNLL-2003 style BIO tags).

    python -m bert_jax.main --config=configs/finetune_ner.py --workdir=DIR \
        --config.init_from=WEIGHTS_DIR \
        --config.data.train=train.txt --config.data.validation=valid.txt

Data: CoNLL files (word first, tag last, blank lines between sentences), JSON lines with
`tokens` and `ner_tags`, or TFDS (`tfds:conll2003`, whose validation split is `dev`).
"""

from ml_collections import config_dict

from bert_jax.config_defaults import add_finetuning, add_ner_data


def get_config() -> config_dict.ConfigDict:
    c = config_dict.ConfigDict()
    add_finetuning(c, task="ner", max_seq_length=128)
    c.learning_rate = 5e-5
    add_ner_data(c.data)
    return c
