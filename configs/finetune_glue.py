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

from bert_jax.config_defaults import add_finetuning, add_glue_data


def get_config() -> config_dict.ConfigDict:
    c = config_dict.ConfigDict()
    add_finetuning(c, task="sst2", max_seq_length=128)
    add_glue_data(c.data)
    c.data.pack_sequences = True  # the same examples per step in fewer, fuller rows
    return c
