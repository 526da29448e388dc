"""This project's pretrained weights directory, what every converter reads into or writes from:

    DIR/bert_config.json     the BertConfig fields
    DIR/params/              the float32 params dict (bert_jax.workdir.save_params)
    DIR/vocab.txt + DIR/tokenizer_config.json  (WordPiece)  or  DIR/tokenizer.model (SentencePiece)
    DIR/task.json            a fine-tuned model's task (kind, labels, settings), as checkpoints
                             store it; absent for pretraining weights

The params are those of a BertForPreTraining, or of a task model (the encoder and the task's
head); the pooler, MLM or NSP head may be missing (`Pretrained.absent`), for their user to
initialise.
"""

import dataclasses
import json
import os

from flax import traverse_util

from bert_jax.checkpoint_reads import has_params, load_params, save_params
from bert_jax.convert.config_json import read_json
from bert_jax.convert.names import HEAD_GROUPS, NAMES, PRETRAINING_GROUPS
from bert_jax.convert.tensors import absent_groups
from bert_jax.convert.tokenizer_files import AnyTokenizer, read_tokenizer, write_tokenizer
from bert_jax.errors import UserError
from bert_jax.model import BertConfig

CONFIG_FILE = "bert_config.json"
TASK_FILE = "task.json"


@dataclasses.dataclass(frozen=True)
class Pretrained:
    """BERT weights with their config and tokenizer, from any source this package reads."""

    config: BertConfig
    params: dict  # nested like nnx.to_pure_dict(nnx.state(BertForPreTraining(...), nnx.Param))
    tokenizer: AnyTokenizer
    task: dict | None = None  # a fine-tuned model's task info (kind, labels...); None: pretraining

    @property
    def kind(self) -> str:
        """The task kind of the weights: "pretraining" unless fine-tuned."""
        return (self.task or {}).get("kind", "pretraining")

    @property
    def absent(self) -> tuple[str, ...]:
        """The optional groups the model of this kind uses and the params lack: the pooler, MLM
        and NSP heads for pretraining, the pooler for sequence classification."""
        flat = traverse_util.flatten_dict(self.params, sep="/")
        missing = absent_groups([name for name in NAMES if name.path not in flat])
        used = {"pretraining": PRETRAINING_GROUPS, "classification": ("bert/pooler",)}
        return tuple(group for group in missing if group in used.get(self.kind, ()))

    @property
    def head(self) -> str | None:
        """The fine-tuning head the params hold ("classifier" or "qa_outputs"), if any."""
        return next((group for group in HEAD_GROUPS if group in self.params), None)


def is_pretrained_dir(directory: str) -> bool:
    """Whether `directory` looks like a pretrained weights directory of this project."""
    return has_params(directory)


def new_output_dir(directory: str) -> None:
    """Creates `directory`, refusing one that holds anything: a conversion never overwrites."""
    if os.path.exists(directory) and not (os.path.isdir(directory) and not os.listdir(directory)):
        raise UserError(f"{directory} is not empty; choose a new output directory.")
    os.makedirs(directory, exist_ok=True)


def save_pretrained(directory: str, pretrained: Pretrained) -> None:
    """Writes `pretrained` as a new pretrained weights directory."""
    new_output_dir(directory)
    with open(os.path.join(directory, CONFIG_FILE), "w", encoding="utf-8") as file:
        json.dump(dataclasses.asdict(pretrained.config), file, indent=2)
    save_params(directory, pretrained.params)
    write_tokenizer(directory, pretrained.tokenizer)
    if pretrained.task is not None:
        with open(os.path.join(directory, TASK_FILE), "w", encoding="utf-8") as file:
            json.dump(pretrained.task, file, indent=2)


def load_pretrained(directory: str) -> Pretrained:
    """Reads a pretrained weights directory written by `save_pretrained`."""
    if not is_pretrained_dir(directory):
        raise UserError(
            f"{directory} is not a pretrained weights directory (no params/); create one "
            "with python -m bert_jax.convert."
        )
    fields = read_json(os.path.join(directory, CONFIG_FILE))
    try:
        config = BertConfig(**fields)
    except TypeError as error:
        raise UserError(f"{directory}/{CONFIG_FILE} is not a BertConfig ({error}).") from None
    params = load_params(directory)
    tokenizer = read_tokenizer(directory, config.vocab_size)
    task_path = os.path.join(directory, TASK_FILE)
    task = read_json(task_path) if os.path.exists(task_path) else None
    return Pretrained(config, params, tokenizer, task)
