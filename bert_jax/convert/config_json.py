"""BertConfig <-> the JSON configs of Hugging Face (`config.json`) and Google (`bert_config.json`).

Both use the same key names; Google's has no `layer_norm_eps` (it is 1e-12, BERT's value).
"""

import json

from bert_jax.errors import UserError
from bert_jax.model import BertConfig

# Hugging Face / Google key -> BertConfig field; the keys every source must have come first.
_REQUIRED = {
    "vocab_size": "vocab_size",
    "hidden_size": "hidden_size",
    "num_hidden_layers": "num_layers",
    "num_attention_heads": "num_heads",
    "intermediate_size": "intermediate_size",
}
_OPTIONAL = {
    "max_position_embeddings": "max_position_embeddings",
    "type_vocab_size": "type_vocab_size",
    "hidden_dropout_prob": "hidden_dropout",
    "attention_probs_dropout_prob": "attention_dropout",
    "layer_norm_eps": "layer_norm_eps",
    "initializer_range": "initializer_range",
}
# This project's encoder has exactly these: the exact (erf) GELU and learned absolute positions.
# Google's "gelu" was the tanh approximation, which Hugging Face also reads as the exact GELU.
_SUPPORTED = {
    "hidden_act": ("gelu", "gelu_python"),
    "position_embedding_type": ("absolute",),
}


def read_json(path: str) -> dict:
    """A JSON object from a file, or a UserError naming the file."""
    try:
        with open(path, encoding="utf-8") as file:
            data = json.load(file)
    except (OSError, ValueError) as error:
        raise UserError(f"{path} cannot be read as JSON ({error}); check the directory.") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} is not a JSON object; check the directory.")
    return data


def from_source_json(data: dict, origin: str) -> BertConfig:
    """The BertConfig of a Hugging Face `config.json` or a Google `bert_config.json`."""
    if missing := [key for key in _REQUIRED if key not in data]:
        raise UserError(f"{origin} lacks {', '.join(missing)}; it is not a BERT config.")
    for key, supported in _SUPPORTED.items():
        if data.get(key, supported[0]) not in supported:
            raise UserError(
                f"{origin} sets {key}={data[key]!r}, which this BERT does not implement "
                f"(it supports {', '.join(supported)})."
            )
    fields = {field: data[key] for key, field in (_REQUIRED | _OPTIONAL).items() if key in data}
    return BertConfig(**fields)


def to_hf_json(config: BertConfig) -> dict:
    """A Hugging Face `config.json` from which `transformers` builds the same BertForPreTraining."""
    keys = {field: key for key, field in (_REQUIRED | _OPTIONAL).items()}
    return {
        "architectures": ["BertForPreTraining"],
        "model_type": "bert",
        **{key: getattr(config, field) for field, key in keys.items()},
        "hidden_act": "gelu",
        "position_embedding_type": "absolute",
        "tie_word_embeddings": True,
    }
