"""Import and export of BERT weights: Hugging Face and Google TF checkpoints, training workdirs."""

from bert_jax.convert.hf import load_hf, save_hf
from bert_jax.convert.load import load_weights, load_workdir
from bert_jax.convert.pretrained import Pretrained, load_pretrained, save_pretrained
from bert_jax.convert.tf import load_tf

__all__ = [
    "Pretrained",
    "load_hf",
    "load_pretrained",
    "load_tf",
    "load_weights",
    "load_workdir",
    "save_hf",
    "save_pretrained",
]
