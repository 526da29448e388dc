"""BertConfig <-> the JSON configs of Hugging Face (`config.json`) and Google (`bert_config.json`),
and a task model's `info` (as a checkpoint stores it) <-> Hugging Face's architecture and labels.

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


# Task kind -> the Hugging Face class of the same model (pretraining: no task, or "pretraining").
HF_ARCHITECTURES = {
    "pretraining": "BertForPreTraining",
    "classification": "BertForSequenceClassification",
    "ner": "BertForTokenClassification",
    "squad": "BertForQuestionAnswering",
}
_KINDS = {architecture: kind for kind, architecture in HF_ARCHITECTURES.items()}
_HEADLESS = ("BertModel",)

# What a run fine-tuned here records and an imported task model lacks: the settings of
# configs/finetune_*.py, so predict reads an imported model as it would a model trained here.
IMPORTED_TASK_DEFAULTS = {
    "classification": {"text_a": "text", "text_b": None, "max_seq_length": 128},
    "ner": {"max_seq_length": 128},
    "squad": {
        "max_seq_length": 384,
        "doc_stride": 128,
        "max_query_length": 64,
        "n_best_size": 20,
        "max_answer_length": 30,
        "version_2": False,
        "null_score_diff_threshold": 0.0,
    },
}


def to_hf_json(config: BertConfig, task: dict | None = None) -> dict:
    """A Hugging Face `config.json` from which `transformers` builds the same model: a
    BertForPreTraining, or the class of the fine-tuned `task` with its labels."""
    keys = {field: key for key, field in (_REQUIRED | _OPTIONAL).items()}
    kind = (task or {}).get("kind", "pretraining")
    data = {
        "architectures": [HF_ARCHITECTURES[kind]],
        "model_type": "bert",
        **{key: getattr(config, field) for field, key in keys.items()},
        "hidden_act": "gelu",
        "position_embedding_type": "absolute",
        "tie_word_embeddings": True,
    }
    if kind in ("classification", "ner"):
        labels = task["labels"]
        names = ["LABEL_0"] if labels is None else list(labels)  # one output for regression
        data["id2label"] = {str(i): name for i, name in enumerate(names)}
        data["label2id"] = {name: i for i, name in enumerate(names)}
    if kind == "classification":
        regression = task["labels"] is None
        data["problem_type"] = "regression" if regression else "single_label_classification"
    return data


def task_from_hf_json(data: dict, origin: str) -> dict | None:
    """The task `info` of a Hugging Face task model's config, None for BertForPreTraining or
    BertModel (or a config naming no architecture)."""
    architectures = data.get("architectures") or []
    architecture = architectures[0] if architectures else "BertForPreTraining"
    if architecture in _HEADLESS or _KINDS.get(architecture) == "pretraining":
        return None
    if architecture not in _KINDS:
        raise UserError(
            f"{origin} is a {architecture}; this project reads {', '.join(_KINDS)} and BertModel."
        )
    kind = _KINDS[architecture]
    info = {"kind": kind, **IMPORTED_TASK_DEFAULTS[kind]}
    if kind == "squad":
        return info
    count = data.get("num_labels", 2)
    id2label = data.get("id2label") or {str(i): f"LABEL_{i}" for i in range(count)}
    labels = [id2label[str(i)] for i in range(len(id2label))]
    problem = data.get("problem_type")
    if problem == "multi_label_classification":
        raise UserError(
            f"{origin} is a multi-label classifier, which this project does not fine-tune; "
            "convert a single-label classifier or a regression model."
        )
    regression = kind == "classification" and (problem == "regression" or len(labels) == 1)
    return info | {"labels": None if regression else labels}
