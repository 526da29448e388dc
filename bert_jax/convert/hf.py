"""Hugging Face BERT directories: `config.json`, `model.safetensors` (or `pytorch_model.bin`) and
the tokenizer files, read into and written from this project's parameters.

Safetensors are read and written with NumPy alone; only `pytorch_model.bin` needs PyTorch.
"""

import json
import os

import ml_dtypes  # noqa: F401 - registers bfloat16 with NumPy, so bfloat16 safetensors load
import numpy as np
import safetensors.numpy
from absl import logging

from bert_jax.convert.config_json import from_source_json, read_json, to_hf_json
from bert_jax.convert.names import HF_BUFFERS, HF_HEADLESS_PREFIXES, HF_LEGACY_SUFFIXES, HF_TIED
from bert_jax.convert.pretrained import Pretrained, new_output_dir
from bert_jax.convert.tensors import export_tensors, import_tensors
from bert_jax.convert.tokenizer_files import read_tokenizer, write_tokenizer
from bert_jax.data.wordpiece import WordPiece
from bert_jax.errors import UserError

CONFIG_FILE = "config.json"
SAFETENSORS_FILE = "model.safetensors"
TORCH_FILE = "pytorch_model.bin"


def load_hf(directory: str) -> Pretrained:
    """The weights of a Hugging Face BertForPreTraining or BertModel directory.

    A BertModel has no MLM or NSP head (and maybe no pooler): see `Pretrained.absent`.
    """
    config_path = os.path.join(directory, CONFIG_FILE)
    config = from_source_json(read_json(config_path), config_path)
    path, tensors = _read_tensors(directory)
    params = import_tensors(_canonical_names(tensors, path), "hf", config, path)
    return Pretrained(config, params, read_tokenizer(directory, config.vocab_size))


def save_hf(directory: str, pretrained: Pretrained) -> None:
    """Writes a new directory that `transformers.BertForPreTraining.from_pretrained` loads."""
    tensors = export_tensors(pretrained.params, "hf")
    new_output_dir(directory)
    safetensors.numpy.save_file(
        tensors, os.path.join(directory, SAFETENSORS_FILE), metadata={"format": "pt"}
    )
    with open(os.path.join(directory, CONFIG_FILE), "w", encoding="utf-8") as file:
        json.dump(to_hf_json(pretrained.config), file, indent=2)
    write_tokenizer(directory, pretrained.tokenizer)
    if pretrained.absent:
        logging.warning(
            "The weights lack %s: transformers will initialise them randomly.",
            ", ".join(pretrained.absent),
        )
    if not isinstance(pretrained.tokenizer, WordPiece):
        logging.warning(
            "The tokenizer is SentencePiece, which BertTokenizer cannot read: %s holds it as "
            "tokenizer.model; tokenize with sentencepiece, not transformers.",
            directory,
        )


def _read_tensors(directory: str) -> tuple[str, dict[str, np.ndarray]]:
    """(path, tensors) of the directory's safetensors file, else of its PyTorch pickle."""
    path = os.path.join(directory, SAFETENSORS_FILE)
    if os.path.exists(path):
        return path, safetensors.numpy.load_file(path)
    path = os.path.join(directory, TORCH_FILE)
    if not os.path.exists(path):
        raise UserError(
            f"{directory} holds neither {SAFETENSORS_FILE} nor {TORCH_FILE}; point at a "
            "Hugging Face BERT directory."
        )
    try:
        import torch  # optional: only this legacy format needs it
    except ImportError:
        raise UserError(
            f"Reading {path} needs PyTorch; install the hf extra (pip install -e '.[hf]') "
            f"or give the weights as {SAFETENSORS_FILE}."
        ) from None
    state = torch.load(path, map_location="cpu", weights_only=True)
    return path, {name: tensor.float().numpy() for name, tensor in state.items()}


def _canonical_names(tensors: dict[str, np.ndarray], origin: str) -> dict[str, np.ndarray]:
    """The tensors under the names of the `names` table.

    Adds the "bert." of BertForPreTraining to BertModel names, renames legacy LayerNorm gamma and
    beta, drops buffers, and drops tied copies after checking they equal their original.
    """
    renamed = {}
    for name, tensor in tensors.items():
        name = "bert." + name if name.startswith(HF_HEADLESS_PREFIXES) else name
        for old, new in HF_LEGACY_SUFFIXES.items():
            name = name[: -len(old)] + new if name.endswith(old) else name
        if name not in HF_BUFFERS:
            renamed[name] = tensor
    for copy, original in HF_TIED.items():
        if copy in renamed:
            tied = renamed.pop(copy)
            if original in renamed and not np.array_equal(tied, renamed[original]):
                raise UserError(
                    f"{origin}: {copy} differs from {original}, but this BERT ties them; "
                    "convert a checkpoint whose MLM output is tied to the word embeddings."
                )
    return renamed
