"""Convert BERT weights between this project and Hugging Face or Google.

    python -m bert_jax.convert --from=hf --src=HF_DIR --dst=DIR      # or --from=tf (Google)
    python -m bert_jax.convert --to=hf --src=DIR --dst=HF_DIR [--max_shard_size=5GB]

--from writes a pretrained weights directory of this project (see `pretrained.py`); --to=hf
exports one, or the newest checkpoint of a training workdir (pretraining or fine-tuned), as a
Hugging Face directory of the model's class (BertForPreTraining, BertForSequenceClassification,
BertForTokenClassification or BertForQuestionAnswering).
"""

from absl import app, flags, logging

from bert_jax.cli import fail, no_extra_arguments
from bert_jax.convert.hf import load_hf, save_hf
from bert_jax.convert.load import load_workdir
from bert_jax.convert.pretrained import (
    Pretrained,
    is_pretrained_dir,
    load_pretrained,
    save_pretrained,
)
from bert_jax.convert.tf import load_tf
from bert_jax.errors import UserError
from bert_jax.workdir import is_workdir

FLAGS = flags.FLAGS
flags.DEFINE_enum("from", None, ["hf", "tf"], "Import Hugging Face or Google TF weights.")
flags.DEFINE_enum("to", None, ["hf"], "Export to a Hugging Face directory.")
flags.DEFINE_string("src", None, "Directory to read.")
flags.DEFINE_string("dst", None, "New directory to write; an existing one must be empty.")
flags.DEFINE_bool(
    "do_lower_case", True, "--from=tf: whether the vocabulary is uncased (Google's files omit it)."
)
flags.DEFINE_string(
    "max_shard_size", "5GB", "--to=hf: largest safetensors file (e.g. 500MB); more are sharded."
)
flags.mark_flags_as_required(["src", "dst"])

_UNITS = {"KB": 10**3, "MB": 10**6, "GB": 10**9}


def shard_bytes(size: str) -> int:
    """Bytes of a size such as "5GB", "500MB" or "1000000"."""
    text = size.strip().upper()
    unit = next((u for u in _UNITS if text.endswith(u)), None)
    try:
        number = float(text.removesuffix(unit) if unit else text)
    except ValueError:
        raise UserError(f"--max_shard_size={size!r} is not a size such as 5GB or 500MB.") from None
    if number <= 0:
        raise UserError(f"--max_shard_size={size!r} must be positive.")
    return int(number * _UNITS.get(unit, 1))


def _load_for_export(src: str) -> Pretrained:
    """A pretrained weights directory, or the newest checkpoint of a training workdir."""
    if is_pretrained_dir(src):
        return load_pretrained(src)
    if is_workdir(src):
        return load_workdir(src)
    raise UserError(
        f"{src} is neither a pretrained weights directory nor a training workdir; point --src "
        "at one."
    )


def convert(source: str | None, target: str | None, src: str, dst: str) -> Pretrained:
    """Runs one conversion and returns the weights it wrote."""
    if (source is None) == (target is None):
        raise UserError("Give exactly one of --from=hf|tf and --to=hf.")
    if source == "hf":
        pretrained = load_hf(src)
    elif source == "tf":
        pretrained = load_tf(src, do_lower_case=FLAGS.do_lower_case)
    else:
        pretrained = _load_for_export(src)
    if target is None:
        save_pretrained(dst, pretrained)
    else:
        save_hf(dst, pretrained, max_shard_bytes=shard_bytes(FLAGS.max_shard_size))
    return pretrained


def main(argv: list[str]) -> None:
    no_extra_arguments(argv)
    try:
        pretrained = convert(FLAGS["from"].value, FLAGS.to, FLAGS.src, FLAGS.dst)
    except UserError as error:
        fail(str(error))
    logging.info("Wrote %s (%s): %s.", FLAGS.dst, pretrained.kind, pretrained.config)
    if pretrained.absent:
        logging.warning(
            "%s has no %s: initialise them before use.", FLAGS.src, ", ".join(pretrained.absent)
        )


if __name__ == "__main__":
    app.run(main)
