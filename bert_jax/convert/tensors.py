"""Source tensors <-> this project's params dict through the `names` table, with every check.

An import uses every source tensor exactly once and fills every parameter with the right shape;
only whole optional groups (pooler, MLM head, NSP head, a fine-tuning head) may be absent.
"""

from collections.abc import Collection, Mapping

import numpy as np
from flax import nnx, traverse_util

from bert_jax.convert.names import NAMES, OPTIONAL_GROUPS, Format, Name
from bert_jax.errors import UserError
from bert_jax.model import BertConfig, BertForPreTraining
from bert_jax.model.task_models import BertForQuestionAnswering, BertForSequenceClassification

_SHOWN = 5  # names listed in an error message


def _few(names: Collection[str]) -> str:
    """Up to `_SHOWN` of the names, sorted, for a one-sentence error message."""
    ordered = sorted(names)
    more = len(ordered) - _SHOWN
    return ", ".join(ordered[:_SHOWN]) + (f" and {more} more" if more > 0 else "")


def _shapes(build) -> dict[str, tuple[int, ...]]:
    model = nnx.eval_shape(lambda: build(nnx.Rngs(0)))
    flat = traverse_util.flatten_dict(nnx.to_pure_dict(nnx.state(model, nnx.Param)), sep="/")
    return {path: tuple(value.shape) for path, value in flat.items()}


def _param_shapes(config: BertConfig, num_labels: int) -> dict[str, tuple[int, ...]]:
    """Path -> shape of every parameter a source may hold: a BertForPreTraining's (with its NSP
    head), and the fine-tuning heads (a classifier of `num_labels` outputs, the QA outputs)."""
    pretraining = _shapes(lambda rngs: BertForPreTraining(config, sentence_head=True, rngs=rngs))
    classifier = _shapes(lambda rngs: BertForSequenceClassification(config, num_labels, rngs=rngs))
    qa = _shapes(lambda rngs: BertForQuestionAnswering(config, rngs=rngs))
    heads = {path: shape for path, shape in (classifier | qa).items() if path not in pretraining}
    return pretraining | heads


def absent_groups(incomplete: Collection[Name]) -> tuple[str, ...]:
    """The optional groups none of whose parameters is there."""
    return tuple(
        group
        for group in OPTIONAL_GROUPS
        if all(name in incomplete for name in NAMES if name.group == group)
    )


def import_tensors(
    tensors: Mapping[str, np.ndarray],
    fmt: Format,
    config: BertConfig,
    origin: str,
    num_labels: int = 2,
) -> dict:
    """The float32 params of this project from the source `tensors` of a `config` model (whose
    classifier, if it has one, has `num_labels` outputs)."""
    shapes = _param_shapes(config, num_labels)
    incomplete: dict[Name, list[str]] = {}
    flat, misshapen, used = {}, [], set()
    for name in NAMES:
        sources = name.sources(fmt, config.num_layers)
        if lacking := [source for source in sources if source not in tensors]:
            incomplete[name] = lacking
            continue
        used.update(sources)
        shape = shapes[name.path][1:] if name.per_layer else shapes[name.path]
        expected = name.source_shape(fmt, shape)
        if wrong := [s for s in sources if tuple(tensors[s].shape) != expected]:
            misshapen += [f"{s} {tuple(tensors[s].shape)} instead of {expected}" for s in wrong]
            continue
        slices = [name.from_source(tensors[source], fmt, shape) for source in sources]
        flat[name.path] = np.stack(slices) if name.per_layer else slices[0]
    absent = absent_groups(incomplete)
    required = [s for n, lacking in incomplete.items() if n.group not in absent for s in lacking]
    if required:
        raise UserError(
            f"{origin} lacks the tensors {_few(required)}; it is not a complete BERT checkpoint "
            "of the config beside it."
        )
    if unknown := set(tensors) - used:
        raise UserError(
            f"{origin} holds tensors that are no part of a BERT model this project knows "
            f"({_few(unknown)}); convert a BERT pretraining, sequence or token classification, "
            "or question answering checkpoint."
        )
    if misshapen:
        raise UserError(
            f"{origin} has tensors whose shapes do not fit the config beside it: "
            f"{_few(misshapen)}; check that config and weights belong together."
        )
    return traverse_util.unflatten_dict(flat, sep="/")


def export_tensors(params: Mapping, fmt: Format) -> dict[str, np.ndarray]:
    """The float32 tensors, named and laid out as `fmt` has them, of this project's params."""
    flat = traverse_util.flatten_dict(params, sep="/")
    if unknown := set(flat) - {name.path for name in NAMES}:
        raise UserError(
            f"The parameters include {_few(unknown)}, which no BERT checkpoint of Hugging Face "
            "or Google names; export a pretraining or fine-tuned BERT of this project."
        )
    incomplete = [name for name in NAMES if name.path not in flat]
    absent = absent_groups(incomplete)
    if required := [name.path for name in incomplete if name.group not in absent]:
        raise UserError(f"The parameters lack {_few(required)}; they cannot be exported.")
    tensors = {}
    for name in NAMES:
        if name.path in flat:
            array = np.asarray(flat[name.path], np.float32)
            slices = list(array) if name.per_layer else [array]
            for source, part in zip(name.sources(fmt, len(slices)), slices, strict=True):
                tensors[source] = name.to_source(part, fmt)
    return tensors
