"""Google's TensorFlow BERT checkpoints: `bert_config.json`, `bert_model.ckpt.*` and `vocab.txt`.

Optimizer slots and the step counter saved beside the weights are ignored. Google's configs say
nothing about casing, so the caller says whether the vocabulary is uncased.
"""

import glob
import os

from bert_jax.convert.config_json import IMPORTED_TASK_DEFAULTS, from_source_json, read_json
from bert_jax.convert.names import TF_IGNORED
from bert_jax.convert.pretrained import Pretrained
from bert_jax.convert.tensors import import_tensors
from bert_jax.convert.tokenizer_files import read_tokenizer
from bert_jax.errors import UserError

CONFIG_FILE = "bert_config.json"


def load_tf(directory: str, *, do_lower_case: bool = True) -> Pretrained:
    """The weights of a Google BERT checkpoint directory (e.g. uncased_L-12_H-768_A-12)."""
    import tensorflow as tf  # heavy, and needed by this format only

    config_path = os.path.join(directory, CONFIG_FILE)
    config = from_source_json(read_json(config_path), config_path)
    prefix = _checkpoint_prefix(directory)
    reader = tf.train.load_checkpoint(prefix)
    tensors = {
        name: reader.get_tensor(name)
        for name in reader.get_variable_to_shape_map()
        if not name.endswith(TF_IGNORED)
    }
    # Google's run_classifier.py and run_squad.py save their head beside the encoder.
    num_labels = len(tensors["output_bias"]) if "output_bias" in tensors else 2
    params = import_tensors(tensors, "tf", config, prefix, num_labels)
    tokenizer = read_tokenizer(directory, config.vocab_size, do_lower_case=do_lower_case)
    task = None
    if "classifier" in params:
        labels = [f"LABEL_{i}" for i in range(num_labels)]
        task = {"kind": "classification", **IMPORTED_TASK_DEFAULTS["classification"]}
        task["labels"] = None if num_labels == 1 else labels
    elif "qa_outputs" in params:
        task = {"kind": "squad", **IMPORTED_TASK_DEFAULTS["squad"]}
    return Pretrained(config, params, tokenizer, task)


def _checkpoint_prefix(directory: str) -> str:
    """The prefix of the directory's one checkpoint (the part before ".index")."""
    indexes = glob.glob(os.path.join(directory, "*.index"))
    if len(indexes) != 1:
        raise UserError(
            f"{directory} holds {len(indexes)} TensorFlow checkpoints (*.index files); "
            "point at a directory with exactly one, e.g. bert_model.ckpt."
        )
    return indexes[0].removesuffix(".index")
