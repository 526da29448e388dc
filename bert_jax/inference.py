"""Any weights as a function from input lines to prediction records: the library behind predict.

    predictor = Predictor.from_path("runs/sst2")                 # a fine-tuned workdir
    predictor = Predictor.from_path("weights/base", task="fill-mask")   # any weights directory
    records = predictor.predict_lines(["a gorgeous movie ."])

A fine-tuned checkpoint carries everything (architecture, tokenizer, the task's labels and
settings); pretrained weights take a prediction mode (`task="embeddings"` or `"fill-mask"`).
The task registry gives the model and the decoding, exactly as training built them. Only the
parameters are read, once, and put on the device once; inputs are sorted by length into a few
fixed lengths (`BUCKETS`), so each is compiled once and short inputs cost little.
"""

from collections.abc import Iterable, Iterator

import jax
import numpy as np
from flax import nnx, traverse_util

from bert_jax.checkpoint_reads import newest_step_dir
from bert_jax.convert.load import load_weights, load_workdir
from bert_jax.data.input_lines import BadLine
from bert_jax.errors import UserError
from bert_jax.model import BertConfig
from bert_jax.model.encoder_outputs import POOLINGS
from bert_jax.model.inputs import ENCODER_INPUTS
from bert_jax.tasks.registry import PREDICTION_MODES, select_task, task_module
from bert_jax.workdir import BEST_DIR, CHECKPOINTS_DIR, is_workdir

BUCKETS = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
"""Sequence lengths inputs are padded to (the shortest that fits), besides the full width: each
at most 1.5 x the one before, so a row is at most a third padding (SST-2 sentences average 17
tokens: 29% fewer positions than buckets of 32 and 64; benchmarks/predict_padding.py)."""

CHUNK_LINES = 2048
"""Input lines predicted together by `stream`: sorted by length within, written in order."""

# Parameters a model may lack because it never reads them: Hugging Face's token-classification
# and QA models have no pooler, and embeddings and fill-mask do not read it either.
_UNREAD_IF_ABSENT = ("bert/pooler/",)


class Predictor:
    """The model of a task `info` with its `params` on the device, and the task's decoding."""

    def __init__(self, info: dict, bert: BertConfig, params: dict, tokenizer):
        self.info, self.tokenizer, self.model_config = info, tokenizer, bert
        self._task = task_module(info["kind"])
        if not hasattr(self._task, "predict"):
            raise UserError(
                f"the weights are of kind {info['kind']!r}, which has nothing to predict; "
                f"give a fine-tuned model or --task={'|'.join(PREDICTION_MODES)}."
            )
        build = self._task.model(bert, info)
        graphdef, abstract = nnx.split(nnx.eval_shape(lambda: build(nnx.Rngs(0))), nnx.Param)
        params = _model_params(nnx.to_pure_dict(abstract), params)
        self.params = jax.device_put(params)  # once: every batch reuses the device copy
        self._graphdef = graphdef
        # One function; jit compiles it once per input shape, i.e. once per bucket.
        self._forward = jax.jit(self.forward_fn())
        self._line_numbers: list[int] | None = None
        self._had_header = False

    @classmethod
    def from_workdir(
        cls, workdir: str, which: str = "best", task: str | None = None, **options
    ) -> "Predictor":
        """A training workdir's best checkpoint (the newest if none is best yet), or its newest
        (`which="latest"`); `task` picks a prediction mode for pretraining runs, or one task of a
        multi-task run."""
        directory = CHECKPOINTS_DIR
        if which == "best":
            try:
                newest_step_dir(workdir, BEST_DIR)
                directory = BEST_DIR
            except UserError:  # no evaluation has kept a best checkpoint yet
                pass
        pretrained = load_workdir(workdir, directory)
        return cls._of(pretrained, workdir, task, options)

    @classmethod
    def from_weights(cls, directory: str, task: str | None = None, **options) -> "Predictor":
        """A weights directory: convert's output, Hugging Face (BERT or a BERT task model) or
        Google BERT."""
        return cls._of(load_weights(directory, role="the weights"), directory, task, options)

    @classmethod
    def from_path(cls, path: str, task: str | None = None, **options) -> "Predictor":
        """A training workdir (`which` in `options`) or any weights directory."""
        if is_workdir(path):
            return cls.from_workdir(path, options.pop("which", "best"), task, **options)
        options.pop("which", None)
        return cls.from_weights(path, task, **options)

    @classmethod
    def _of(cls, pretrained, origin: str, task: str | None, options: dict) -> "Predictor":
        positions = pretrained.config.max_position_embeddings
        if task not in PREDICTION_MODES:
            if pretrained.task is None and task is None:
                raise UserError(
                    f"{origin} is a pretraining run; predict needs a run fine-tuned with "
                    "configs/finetune_glue.py, finetune_ner.py or finetune_squad.py, or "
                    f"--task={'|'.join(PREDICTION_MODES)}."
                )
            if pretrained.task is None:
                raise UserError(f"--task={task!r} is not one of {', '.join(PREDICTION_MODES)}.")
            # A fine-tuned model predicts as trained; `task` names one task of a multi-task run.
            info, params = select_task(pretrained.task, pretrained.params, task)
            return cls(info, pretrained.config, params, pretrained.tokenizer)
        if task == "embeddings":
            pooling = options.get("pooling", "mean")
            if pooling not in POOLINGS:
                raise UserError(f"pooling={pooling!r} is not one of {', '.join(POOLINGS)}.")
            info = {"kind": task, "pooling": pooling, "normalize": options.get("normalize", False)}
            info["max_seq_length"] = positions
        elif task == "fill-mask":
            if "mlm" not in pretrained.params:
                raise UserError(
                    f"{origin} has no masked-LM head (it is a {pretrained.kind} model); "
                    "fill-mask needs pretraining weights."
                )
            info = {"kind": task, "top_k": options.get("top_k", 5), "max_seq_length": positions}
        return cls(info, pretrained.config, pretrained.params, pretrained.tokenizer)

    def forward_fn(self):
        """The pure model function `(params, [inputs...]) -> outputs` (for jit or export)."""
        graphdef = self._graphdef
        return lambda params, inputs: nnx.merge(graphdef, params)(*inputs)

    def logits(
        self,
        arrays: dict[str, np.ndarray],
        batch_size: int,
        *,
        per_token: bool = False,
        extra_inputs: tuple[str, ...] = (),
    ):
        """The model's outputs for every row of `arrays` ([N, S] encoder inputs and any
        `extra_inputs`), in row order; `per_token` outputs come back [N, S, ...].

        Rows are sorted by length and run at the shortest bucket that holds them, in batches of
        `batch_size` (the last one of a bucket filled with copies), so each bucket compiles once.
        """
        keys = (*ENCODER_INPUTS, *extra_inputs)
        rows, width = arrays["input_ids"].shape
        lengths = arrays["attention_mask"].sum(1)
        buckets = sorted({b for b in BUCKETS if b < width} | {width})
        bucket_of = np.searchsorted(buckets, lengths)
        order = np.argsort(lengths, kind="stable")
        results = []
        for number, length in enumerate(buckets):
            members = order[bucket_of[order] == number]
            for start in range(0, len(members), batch_size):
                index = members[start : start + batch_size]
                filled = np.concatenate([index, np.repeat(index[:1], batch_size - len(index))])
                inputs = [
                    arrays[k][filled][:, :length] if k in ENCODER_INPUTS else arrays[k][filled]
                    for k in keys
                ]
                outputs = jax.device_get(self._forward(self.params, inputs))
                real = len(index)
                results.append((index, jax.tree.map(lambda x, n=real: x[:n], outputs)))
        return jax.tree.map(
            lambda *leaves: _assemble(
                [r[0] for r in results], leaves, rows, width if per_token else None
            ),
            *[r[1] for r in results],
        )

    def predict_lines(
        self, lines: list[str], batch_size: int = 32, line_numbers: list[int] | None = None
    ) -> list[dict]:
        """One record per input line, in order (a TSV header line gives none). A bad line
        raises `BadLine` with its index; `line_numbers` name the lines in records that need it
        (SQuAD's default ids)."""
        if not lines:
            return []
        self._line_numbers = line_numbers
        try:
            return self._task.predict(self, lines, batch_size)
        finally:
            self._line_numbers = None

    def line_number(self, index: int) -> int:
        """The input line number (from 1) of `lines[index]` in the current `predict_lines`."""
        return self._line_numbers[index] if self._line_numbers else index + 1

    def stream(
        self, numbered_lines: Iterable[tuple[int, str]], batch_size: int = 32, source: str = ""
    ) -> Iterator[dict]:
        """Records of (line number, text) pairs, in input order, `CHUNK_LINES` at a time.

        A bad line stops the stream after the records of the lines before it, with one
        sentence naming its line number in `source`.
        """
        header: tuple[int, str] | None = None
        chunk: list[tuple[int, str]] = []
        first = True
        for item in numbered_lines:
            chunk.append(item)
            if len(chunk) == CHUNK_LINES:
                yield from self._chunk(chunk, header, batch_size, source, first)
                if first and self._had_header:
                    header = chunk[0]
                first, chunk = False, []
        if chunk or first:
            if first and not chunk:
                raise UserError(f"{source or 'the input'} holds no input lines; give one per line.")
            yield from self._chunk(chunk, header, batch_size, source, first)

    def _chunk(self, chunk, header, batch_size: int, source: str, first: bool) -> Iterator[dict]:
        # A TSV header seen on the first line is put before every later chunk, so each is read
        # with the same columns.
        chunk = ([header] if header else []) + chunk
        numbers, texts = [n for n, _ in chunk], [t for _, t in chunk]
        try:
            records = self.predict_lines(texts, batch_size, numbers)
        except BadLine as bad:
            yield from self.predict_lines(texts[: bad.index], batch_size, numbers)
            raise UserError(
                f"line {numbers[bad.index]} of {source or 'the input'} {bad.reason}; the lines "
                "before it were predicted."
            ) from None
        self._had_header = first and len(records) == len(texts) - 1
        yield from records


def _assemble(indexes: list[np.ndarray], leaves, rows: int, width: int | None) -> np.ndarray:
    """Batches of rows (at their bucket's length) back in row order, per-token ones padded
    with zeros to `width`."""
    sample = leaves[0]
    shape = (rows, *sample.shape[1:])
    if width is not None:
        shape = (rows, width, *sample.shape[2:])
    out = np.zeros(shape, sample.dtype)
    for index, leaf in zip(indexes, leaves, strict=True):
        if width is not None:
            out[index, : leaf.shape[1]] = leaf
        else:
            out[index] = leaf
    return out


def _model_params(abstract: dict, given: dict) -> dict:
    """The params the model has, from `given` (which may hold more, e.g. pretraining heads),
    as float32 NumPy arrays; a pooler the weights lack is zeros, as nothing here reads it."""
    target = traverse_util.flatten_dict(abstract, sep="/")
    source = traverse_util.flatten_dict(given, sep="/")
    params, missing = {}, []
    for path, spec in target.items():
        if path in source:
            value = np.asarray(source[path], spec.dtype)
            if value.shape != tuple(spec.shape):
                raise UserError(
                    f"the weights' {path} has shape {value.shape}, not the model's "
                    f"{tuple(spec.shape)}; the checkpoint and its config disagree."
                )
            params[path] = value
        elif path.startswith(_UNREAD_IF_ABSENT):
            params[path] = np.zeros(spec.shape, spec.dtype)
        else:
            missing.append(path)
    if missing:
        raise UserError(
            f"the weights lack {', '.join(sorted(missing)[:3])}; they are not a complete model "
            "of this kind."
        )
    return traverse_util.unflatten_dict(params, sep="/")
