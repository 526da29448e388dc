"""The one table between this project's parameter paths and Hugging Face / Google TF BERT names.

Both directions (import and export, either format) are derived from `NAMES`; nothing else lists
names. Per-layer source names hold "{i}", the index along this project's stacked "layers" axis.
"""

import dataclasses
import math
from typing import Literal

import numpy as np

Format = Literal["hf", "tf"]

HEAD_GROUPS = ("classifier", "qa_outputs")
"""The fine-tuning heads: a classifier (sequence or token classification) or span QA outputs."""

PRETRAINING_GROUPS = ("bert/pooler", "mlm", "sentence")
"""The pooler and the pretraining heads (masked LM, sentence pair)."""

OPTIONAL_GROUPS = (*PRETRAINING_GROUPS, *HEAD_GROUPS)
"""Parameter path prefixes a source may lack (e.g. a headless Hugging Face BertModel, or a task
model, which has one fine-tuning head and no pretraining heads)."""


@dataclasses.dataclass(frozen=True)
class Name:
    """One parameter: its path here, its names elsewhere, and how the array layouts differ.

    Sources store a per-layer slice of ours as a matrix [prod(shape[:split]), prod(shape[split:])]
    (a vector when `split` is None), transposed in the formats listed in `transposed_in`
    (PyTorch Linear weights are [out, in]; Google keeps only the NSP weights that way).
    """

    path: str
    hf: str
    tf: str
    split: int | None
    transposed_in: tuple[Format, ...] = ()

    @property
    def per_layer(self) -> bool:
        """Whether the parameter is stacked over the encoder layers here and split there."""
        return "{i}" in self.hf

    @property
    def group(self) -> str | None:
        """The optional group the parameter belongs to, None if every source must have it."""
        return next((g for g in OPTIONAL_GROUPS if self.path.startswith(g + "/")), None)

    def sources(self, fmt: Format, num_layers: int) -> list[str]:
        """The source tensor names: one per layer for per-layer parameters."""
        template = getattr(self, fmt)
        return [template.format(i=i) for i in range(num_layers)] if self.per_layer else [template]

    def source_shape(self, fmt: Format, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The source's shape for one (per-layer) slice of this project's `shape`."""
        layout = self._layout(shape)
        return layout[::-1] if fmt in self.transposed_in else layout

    def from_source(self, array: np.ndarray, fmt: Format, shape: tuple[int, ...]) -> np.ndarray:
        """One (per-layer) slice of ours, float32, from the source's array."""
        array = np.asarray(array, np.float32)
        return (array.T if fmt in self.transposed_in else array).reshape(shape)

    def to_source(self, array: np.ndarray, fmt: Format) -> np.ndarray:
        """The source's array from one (per-layer) slice of ours."""
        array = np.asarray(array, np.float32).reshape(self._layout(array.shape))
        return np.ascontiguousarray(array.T) if fmt in self.transposed_in else array

    def _layout(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The untransposed source shape: a matrix split at `split`, or a vector."""
        if self.split is None:
            return (math.prod(shape),)
        return (math.prod(shape[: self.split]), math.prod(shape[self.split :]))


def _dense(path: str, hf: str, tf: str, split: int = 1) -> list[Name]:
    """A dense layer's kernel and bias; PyTorch stores the kernel [out, in]."""
    return [
        Name(f"{path}/kernel", f"{hf}.weight", f"{tf}/kernel", split, ("hf",)),
        Name(f"{path}/bias", f"{hf}.bias", f"{tf}/bias", None),
    ]


def _norm(path: str, hf: str, tf: str) -> list[Name]:
    """A LayerNorm's scale and bias (gamma and beta in TF)."""
    return [
        Name(f"{path}/scale", f"{hf}.weight", f"{tf}/gamma", None),
        Name(f"{path}/bias", f"{hf}.bias", f"{tf}/beta", None),
    ]


def _layer(path: str, hf: str, tf: str) -> tuple[str, str, str]:
    """The three names of a parameter inside one encoder layer."""
    return (
        f"bert/encoder/layers/{path}",
        f"bert.encoder.layer.{{i}}.{hf}",
        f"bert/encoder/layer_{{i}}/{tf}",
    )


def _embedding(table: str, source: str) -> Name:
    """An embedding table: [rows, H] in every format."""
    return Name(
        f"bert/embeddings/{table}/embedding",
        f"bert.embeddings.{source}.weight",
        f"bert/embeddings/{source}",
        1,
    )


NAMES: tuple[Name, ...] = (
    _embedding("word", "word_embeddings"),
    _embedding("position", "position_embeddings"),
    _embedding("token_type", "token_type_embeddings"),
    *_norm("bert/embeddings/norm", "bert.embeddings.LayerNorm", "bert/embeddings/LayerNorm"),
    # Kernels are [H, heads, head_dim] here and [H, H] there; the output kernel the other way.
    *_dense(*_layer("attention/query", "attention.self.query", "attention/self/query")),
    *_dense(*_layer("attention/key", "attention.self.key", "attention/self/key")),
    *_dense(*_layer("attention/value", "attention.self.value", "attention/self/value")),
    *_dense(*_layer("attention/output", "attention.output.dense", "attention/output/dense"), 2),
    *_norm(*_layer("attention_norm", "attention.output.LayerNorm", "attention/output/LayerNorm")),
    *_dense(*_layer("mlp/intermediate", "intermediate.dense", "intermediate/dense")),
    *_dense(*_layer("mlp/output", "output.dense", "output/dense")),
    *_norm(*_layer("mlp_norm", "output.LayerNorm", "output/LayerNorm")),
    *_dense("bert/pooler", "bert.pooler.dense", "bert/pooler/dense"),
    *_dense("mlm/transform", "cls.predictions.transform.dense", "cls/predictions/transform/dense"),
    *_norm(
        "mlm/norm", "cls.predictions.transform.LayerNorm", "cls/predictions/transform/LayerNorm"
    ),
    Name("mlm/bias", "cls.predictions.bias", "cls/predictions/output_bias", None),
    Name(
        "sentence/classifier/kernel",
        "cls.seq_relationship.weight",
        "cls/seq_relationship/output_weights",
        1,
        ("hf", "tf"),
    ),
    Name(
        "sentence/classifier/bias",
        "cls.seq_relationship.bias",
        "cls/seq_relationship/output_bias",
        None,
    ),
    # Fine-tuning heads: Hugging Face's BertFor{Sequence,Token}Classification and
    # BertForQuestionAnswering; Google's run_classifier.py and run_squad.py ([outputs, H]).
    Name("classifier/kernel", "classifier.weight", "output_weights", 1, ("hf", "tf")),
    Name("classifier/bias", "classifier.bias", "output_bias", None),
    Name("qa_outputs/kernel", "qa_outputs.weight", "cls/squad/output_weights", 1, ("hf", "tf")),
    Name("qa_outputs/bias", "qa_outputs.bias", "cls/squad/output_bias", None),
)

HF_TIED = {
    "cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight",
    "cls.predictions.decoder.bias": "cls.predictions.bias",
}
"""Hugging Face copies of tensors named in NAMES (the MLM output is tied to the embeddings)."""

HF_BUFFERS = ("bert.embeddings.position_ids",)
"""Non-parameter buffers some Hugging Face checkpoints hold; they carry no weights."""

HF_LEGACY_SUFFIXES = {".gamma": ".weight", ".beta": ".bias"}
"""LayerNorm names of early Hugging Face checkpoints (e.g. the original bert-base-uncased)."""

HF_HEADLESS_PREFIXES = ("embeddings.", "encoder.", "pooler.")
"""How a BertModel (no heads) names its tensors: without the "bert." of BertForPreTraining."""

TF_IGNORED = ("global_step", "/adam_m", "/adam_v")
"""Optimizer state in Google checkpoints (names ending with these): not weights."""
