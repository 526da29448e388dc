"""Predict with a fine-tuned workdir or any weights: one JSON line out per input line.

    python -m bert_jax.predict --workdir=DIR [--input=FILE] [--checkpoint=best|latest]
    python -m bert_jax.predict --workdir=WEIGHTS_DIR --task=embeddings|fill-mask
    python -m bert_jax.predict --workdir=MULTITASK_DIR --task=NAME

--workdir is a training workdir, or a weights directory (convert's output, Hugging Face or
Google BERT). Input lines are JSON objects or tab-separated text (stdin without --input):
  classification: the text column(s) the task was trained on (JSON keys, or TSV columns in
    order; a TSV header naming them is read and skipped) -> {"label", "probability",
    "probabilities"} or {"score"} for regression;
  ner: {"tokens": [...]} or plain text split at whitespace -> {"words", "tags", "entities"};
  squad: {"id", "question", "context"} or question<TAB>context -> {"id", "answer", "probability"};
  --task=embeddings: text or {"text"} -> {"embedding"} (--pooling=mean|cls, --normalize);
  --task=fill-mask: text with [MASK]s -> {"masks": [[{"token", "token_str", "score"}]]}.
Records are written as they are ready, in input order; a bad line stops with one sentence
naming its line number, after the records of the lines before it. A multi-task workdir
predicts with the head of the task --task names.
"""

import json
import sys
from collections.abc import Iterable, Iterator

from absl import app, flags

from bert_jax import console
from bert_jax.cli import fail, no_extra_arguments

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "A training workdir, or a weights directory.")
flags.DEFINE_string("input", None, "File of inputs, one per line; default stdin.")
flags.DEFINE_string("output", None, "File for the JSON lines; default stdout.")
flags.DEFINE_enum("checkpoint", "best", ["best", "latest"], "Which checkpoint of a workdir.")
flags.DEFINE_string(
    "task", None, "embeddings|fill-mask for any weights, or a task of a multi-task workdir."
)
flags.DEFINE_enum("pooling", "mean", ["mean", "cls"], "--task=embeddings: how tokens are pooled.")
flags.DEFINE_bool("normalize", False, "--task=embeddings: scale vectors to unit length.")
flags.DEFINE_integer("top_k", 5, "--task=fill-mask: tokens per [MASK].")
flags.DEFINE_integer("batch_size", 32, "Inputs per forward pass.")
flags.mark_flags_as_required(["workdir"])


def _numbered(source: Iterable[str]) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(source, 1):
        line = line.rstrip("\n")
        if line.strip():
            yield number, line


def main(argv: list[str]) -> None:
    no_extra_arguments(argv)
    from bert_jax.errors import UserError

    with console.native_stderr_silenced():
        from bert_jax.inference import Predictor

    console.quiet_libraries()
    target = None
    try:
        options = dict(pooling=FLAGS.pooling, normalize=FLAGS.normalize, top_k=FLAGS.top_k)
        predictor = Predictor.from_path(
            FLAGS.workdir, FLAGS.task, which=FLAGS.checkpoint, **options
        )
        try:
            source = open(FLAGS.input, encoding="utf-8") if FLAGS.input else sys.stdin
        except OSError as error:
            raise UserError(
                f"--input={FLAGS.input} cannot be read ({error.strerror}); give a file of input "
                "lines."
            ) from None
        target = open(FLAGS.output, "w", encoding="utf-8") if FLAGS.output else sys.stdout
        with source:
            name = FLAGS.input or "stdin"
            for record in predictor.stream(_numbered(source), FLAGS.batch_size, name):
                target.write(json.dumps(record, ensure_ascii=False) + "\n")
                target.flush()  # a whole line at a time: what is written is valid JSON lines
    except (UserError, OSError, UnicodeDecodeError) as error:
        fail(str(error))
    finally:
        if target is not None and target is not sys.stdout:
            target.close()


if __name__ == "__main__":
    console.silence_startup_noise()
    app.run(main)
