"""Fine-tune BERT on a GLUE task (or any sentence(-pair) classification/regression table).

    python -m bert_jax.main --config=configs/finetune_glue.py --workdir=DIR \
        --config.task=sst2 --config.init_from=WEIGHTS_DIR \
        --config.data.train=../shared/data/sst2/train.tsv \
        --config.data.validation=../shared/data/sst2/dev.tsv

`task` is one of cola, sst2, mrpc, qqp, stsb, mnli, qnli, rte, wnli (columns and labels as in
GLUE's TSV files), or classification/regression with the columns set below. Data may also come
from TFDS: `--config.data.train=tfds:glue/sst2` (and `data.validation_split` for MNLI's
`validation_matched`).
"""

from ml_collections import config_dict

from bert_jax.config_defaults import add_finetuning


def get_config() -> config_dict.ConfigDict:
    c = config_dict.ConfigDict()
    add_finetuning(c, task="sst2", max_seq_length=128)
    # Columns of TSV/CSV/JSONL files; unset: the GLUE task's (an index for header-less files).
    c.data.text_a = config_dict.placeholder(str)
    c.data.text_b = config_dict.placeholder(str)
    c.data.label = config_dict.placeholder(str)
    c.data.header = config_dict.placeholder(bool)
    c.data.labels = config_dict.placeholder(tuple)  # label names, in id order
    c.data.pack_sequences = True  # the same examples per step in fewer, fuller rows
    return c
