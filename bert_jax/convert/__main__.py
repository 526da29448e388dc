"""Convert BERT weights between this project and Hugging Face or Google.

    python -m bert_jax.convert --from=hf --src=HF_DIR --dst=DIR      # or --from=tf (Google)
    python -m bert_jax.convert --to=hf --src=DIR --dst=HF_DIR

--from writes a pretrained weights directory of this project (see `pretrained.py`); --to=hf
exports one, or the newest checkpoint of a training workdir, as a Hugging Face directory.
"""

import sys

from absl import app, flags, logging

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
flags.mark_flags_as_required(["src", "dst"])


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
    (save_pretrained if target is None else save_hf)(dst, pretrained)
    return pretrained


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        print(f"error: unexpected arguments {' '.join(argv[1:])}.", file=sys.stderr)
        sys.exit(1)
    try:
        pretrained = convert(FLAGS["from"].value, FLAGS.to, FLAGS.src, FLAGS.dst)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    logging.info("Wrote %s: %s.", FLAGS.dst, pretrained.config)
    if pretrained.absent:
        logging.warning(
            "%s has no %s: initialise them before use.", FLAGS.src, ", ".join(pretrained.absent)
        )


if __name__ == "__main__":
    app.run(main)
