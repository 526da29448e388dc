"""Fine-tune BERT for extractive question answering (SQuAD v1.1, or v2.0 with no-answer).

    python -m bert_jax.main --config=configs/finetune_squad.py --workdir=DIR \
        --config.init_from=WEIGHTS_DIR \
        --config.data.train=train-v1.1.json --config.data.validation=dev-v1.1.json

Data: the official SQuAD JSON files, JSON lines in the Hugging Face layout (id, question,
context, answers {text, answer_start}), or TFDS (`tfds:squad/v1.1`, `tfds:squad/v2.0`).
"""

from ml_collections import config_dict

from bert_jax.config_defaults import add_finetuning, add_squad_data


def get_config() -> config_dict.ConfigDict:
    c = config_dict.ConfigDict()
    add_finetuning(c, task="squad", max_seq_length=384)
    c.num_epochs = 2.0
    c.learning_rate = 3e-5
    add_squad_data(c.data)
    return c
