"""Predict with a fine-tuned workdir: one JSON line out per input line.

    python -m bert_jax.predict --workdir=DIR [--input=FILE] [--checkpoint=best|latest] [--task=NAME]

Input lines are JSON objects or tab-separated text (stdin without --input):
  classification: the text column(s) the task was trained on (JSON keys, or TSV columns in
    order; a TSV header naming them is read and skipped) -> {"label", "probability",
    "probabilities"} or {"score"} for regression;
  ner: {"tokens": [...]} or plain text split at whitespace -> {"words", "tags", "entities"};
  squad: {"id", "question", "context"} or question<TAB>context -> {"id", "answer"}.
A multi-task workdir predicts with the head of the task --task names.
"""

import json
import sys

from absl import app, flags, logging

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "A fine-tuning workdir.")
flags.DEFINE_string("input", None, "File of inputs, one per line; default stdin.")
flags.DEFINE_string("output", None, "File for the JSON lines; default stdout.")
flags.DEFINE_enum("checkpoint", "best", ["best", "latest"], "Which checkpoint to use.")
flags.DEFINE_integer("batch_size", 32, "Inputs per forward pass.")
flags.DEFINE_string("task", None, "The task of a multi-task workdir to predict with.")
flags.mark_flags_as_required(["workdir"])


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        print(f"error: unexpected arguments {' '.join(argv[1:])}.", file=sys.stderr)
        sys.exit(1)
    from bert_jax.console import quiet_libraries
    from bert_jax.errors import UserError
    from bert_jax.inference import Predictor

    quiet_libraries()
    try:
        predictor = Predictor.from_workdir(FLAGS.workdir, FLAGS.checkpoint, FLAGS.task)
        source = open(FLAGS.input, encoding="utf-8") if FLAGS.input else sys.stdin
        with source:
            lines = [line.rstrip("\n") for line in source if line.strip()]
        records = predictor.predict_lines(lines, FLAGS.batch_size)
    except (UserError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    target = open(FLAGS.output, "w", encoding="utf-8") if FLAGS.output else sys.stdout
    with target:
        for record in records:
            target.write(json.dumps(record, ensure_ascii=False) + "\n")
    logging.info("Predicted %d lines.", len(records))


if __name__ == "__main__":
    app.run(main)
