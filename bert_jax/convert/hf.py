"""Hugging Face BERT directories: `config.json`, `model.safetensors` (or shards listed in
`model.safetensors.index.json`, or `pytorch_model.bin`) and the tokenizer files, read into and
written from this project's parameters: BertForPreTraining or BertModel, and the task models
BertForSequenceClassification, BertForTokenClassification and BertForQuestionAnswering.

Safetensors are read and written with NumPy alone; only `pytorch_model.bin` needs PyTorch.
"""

import json
import os

import ml_dtypes  # noqa: F401 - registers bfloat16 with NumPy, so bfloat16 safetensors load
import numpy as np
import safetensors.numpy
from absl import logging

from bert_jax.convert.config_json import (
    from_source_json,
    read_json,
    task_from_hf_json,
    to_hf_json,
)
from bert_jax.convert.names import HF_BUFFERS, HF_HEADLESS_PREFIXES, HF_LEGACY_SUFFIXES, HF_TIED
from bert_jax.convert.pretrained import Pretrained, new_output_dir
from bert_jax.convert.tensors import export_tensors, import_tensors
from bert_jax.convert.tokenizer_files import read_tokenizer, write_tokenizer
from bert_jax.errors import UserError

CONFIG_FILE = "config.json"
SAFETENSORS_FILE = "model.safetensors"
SAFETENSORS_INDEX_FILE = "model.safetensors.index.json"
TORCH_FILE = "pytorch_model.bin"
MAX_SHARD_BYTES = 5 * 10**9  # transformers' own default shard size (5GB)


def load_hf(directory: str) -> Pretrained:
    """The weights of a Hugging Face BERT directory: BertForPreTraining, BertModel, or a task
    model, whose task (kind and labels, from `config.json`) comes with them.

    A BertModel has no MLM or NSP head (and maybe no pooler): see `Pretrained.absent`.
    """
    config_path = os.path.join(directory, CONFIG_FILE)
    data = read_json(config_path)
    config = from_source_json(data, config_path)
    task = task_from_hf_json(data, config_path)
    num_labels = 2 if task is None or task["kind"] == "squad" else len(task["labels"] or [0])
    path, tensors = _read_tensors(directory)
    params = import_tensors(_canonical_names(tensors, path), "hf", config, path, num_labels)
    tokenizer = read_tokenizer(directory, config.vocab_size)
    return Pretrained(config, params, tokenizer, task)


def save_hf(
    directory: str, pretrained: Pretrained, *, max_shard_bytes: int = MAX_SHARD_BYTES
) -> None:
    """Writes a new directory that transformers loads as the class of the weights' task
    (`BertForPreTraining` for pretraining weights), in safetensors files of at most
    `max_shard_bytes` each (more than one: with `model.safetensors.index.json`)."""
    params = pretrained.params
    if pretrained.kind in ("ner", "squad"):
        # Hugging Face builds these without a pooler (add_pooling_layer=False).
        params = {**params, "bert": {k: v for k, v in params["bert"].items() if k != "pooler"}}
    tensors = export_tensors(params, "hf")
    new_output_dir(directory)
    _write_tensors(directory, tensors, max_shard_bytes)
    with open(os.path.join(directory, CONFIG_FILE), "w", encoding="utf-8") as file:
        json.dump(to_hf_json(pretrained.config, pretrained.task), file, indent=2)
    positions = pretrained.config.max_position_embeddings
    write_tokenizer(directory, pretrained.tokenizer, hf=True, max_length=positions)
    if pretrained.absent:
        logging.warning(
            "The weights lack %s: transformers will initialise them randomly.",
            ", ".join(pretrained.absent),
        )


def _write_tensors(directory: str, tensors: dict[str, np.ndarray], max_shard_bytes: int) -> None:
    """One `model.safetensors`, or shards in name order with the index transformers reads."""
    shards: list[dict[str, np.ndarray]] = [{}]
    size = 0
    for name in sorted(tensors):
        nbytes = tensors[name].nbytes
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][name] = tensors[name]
        size += nbytes
    metadata = {"format": "pt"}
    if len(shards) == 1:
        safetensors.numpy.save_file(tensors, os.path.join(directory, SAFETENSORS_FILE), metadata)
        return
    weight_map = {}
    for number, shard in enumerate(shards, 1):
        name = f"model-{number:05d}-of-{len(shards):05d}.safetensors"
        safetensors.numpy.save_file(shard, os.path.join(directory, name), metadata)
        weight_map |= dict.fromkeys(shard, name)
    index = {
        "metadata": {"total_size": sum(t.nbytes for t in tensors.values())},
        "weight_map": weight_map,
    }
    with open(os.path.join(directory, SAFETENSORS_INDEX_FILE), "w", encoding="utf-8") as file:
        json.dump(index, file, indent=2)


def _read_shards(directory: str, index_path: str) -> dict[str, np.ndarray]:
    """Every tensor of the shards `model.safetensors.index.json` lists, checked against it."""
    weight_map = read_json(index_path).get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise UserError(f"{index_path} has no weight_map; it is not a safetensors index.")
    tensors = {}
    for shard in sorted(set(weight_map.values())):
        path = os.path.join(directory, shard)
        if not os.path.exists(path):
            raise UserError(f"{index_path} lists {shard}, which is missing; copy every shard.")
        tensors |= safetensors.numpy.load_file(path)
    if missing := sorted(set(weight_map) - set(tensors)):
        raise UserError(
            f"{index_path} lists tensors its shards lack ({', '.join(missing[:5])}); copy the "
            "shards that belong to this index."
        )
    return tensors


def _read_tensors(directory: str) -> tuple[str, dict[str, np.ndarray]]:
    """(path, tensors) of the directory's safetensors file or shards, else of its PyTorch
    pickle."""
    path = os.path.join(directory, SAFETENSORS_FILE)
    if os.path.exists(path):
        return path, safetensors.numpy.load_file(path)
    index_path = os.path.join(directory, SAFETENSORS_INDEX_FILE)
    if os.path.exists(index_path):
        return index_path, _read_shards(directory, index_path)
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
