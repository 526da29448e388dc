"""A trained checkpoint as a function from input lines to prediction records (for predict).

The checkpoint carries everything: the model architecture, the tokenizer and the task's labels
and settings (its `info`), so a workdir alone is enough. The task registry gives the model and
the decoding, exactly as training built them.
"""

import json
import os

import jax
import numpy as np
from flax import nnx

from bert_jax.data.any_tokenizer import tokenizer_from_meta
from bert_jax.errors import UserError
from bert_jax.model import BertConfig
from bert_jax.model.inputs import ENCODER_INPUTS
from bert_jax.tasks.registry import select_task, task_module
from bert_jax.workdir import (
    BEST_DIR,
    CHECKPOINTS_DIR,
    model_config_of,
    newest_step_dir,
    read_checkpoint,
)


class Predictor:
    """The model of a task `info` with its `params`, and the task's decoding."""

    def __init__(self, info: dict, bert: BertConfig, params: dict, tokenizer):
        self.info, self.tokenizer, self.params = info, tokenizer, params
        self._task = task_module(info["kind"])
        build = self._task.model(bert, info)
        graphdef, _ = nnx.split(nnx.eval_shape(lambda: build(nnx.Rngs(0))), nnx.Param)
        self._forward = jax.jit(lambda p, *inputs: nnx.merge(graphdef, p)(*inputs))

    @classmethod
    def from_workdir(
        cls, workdir: str, which: str = "best", task: str | None = None
    ) -> "Predictor":
        """The best checkpoint (the newest if no eval has run yet), or the newest; `task` picks
        one task of a multi-task checkpoint."""
        if which == "best" and not os.path.isdir(os.path.join(workdir, BEST_DIR)):
            which = "latest"
        directory = BEST_DIR if which == "best" else CHECKPOINTS_DIR
        if not os.path.isdir(os.path.join(workdir, directory)):
            raise UserError(f"{workdir} holds no checkpoints; point --workdir at a trained run.")
        meta, params = read_checkpoint(newest_step_dir(workdir, directory))
        info = json.loads(meta.get("task", "{}")) or {"kind": "pretraining"}
        info, params = select_task(info, params, task)
        if not hasattr(task_module(info["kind"]), "predict"):
            raise UserError(
                f"{workdir} is a pretraining run; predict needs a run fine-tuned with "
                "configs/finetune_glue.py, finetune_ner.py or finetune_squad.py."
            )
        return cls(info, model_config_of(meta, params), params, tokenizer_from_meta(meta))

    def logits(self, arrays: dict[str, np.ndarray], batch_size: int) -> np.ndarray:
        """Model outputs for every row, in fixed-size batches (one compilation)."""
        rows = len(arrays["input_ids"])
        outputs = []
        for start in range(0, rows, batch_size):
            chunk = [arrays[key][start : start + batch_size] for key in ENCODER_INPUTS]
            real = len(chunk[0])
            chunk = [np.concatenate([c, np.repeat(c[:1], batch_size - real, 0)]) for c in chunk]
            outputs.append(np.asarray(self._forward(self.params, *chunk))[:real])
        return np.concatenate(outputs)

    def predict_lines(self, lines: list[str], batch_size: int = 32) -> list[dict]:
        """One record per input line, in order."""
        if not lines:
            return []
        return self._task.predict(self, lines, batch_size)
