"""`python -m bert_jax.prepare --config=configs/pretrain.py --output=DIR`: a corpus, once, into
shards of finished sentence pairs that training streams (`--config.data.corpus=prepared:DIR`).

Rerun the same command after a kill: finished shards are kept, the rest is redone, and the
result is byte-identical to an uninterrupted run.
"""

import os

from absl import app, flags, logging
from ml_collections import config_flags

from bert_jax.cli import fail, no_extra_arguments, parse_flags
from bert_jax.errors import UserError

FLAGS = flags.FLAGS
flags.DEFINE_string("output", None, "Local directory to prepare into.")
flags.mark_flags_as_required(["output"])
config_flags.DEFINE_config_file("config", None, "Pretraining config file.", lock_config=True)
flags.DEFINE_integer("num_shards", None, "Shards (default: data.num_shards, else by corpus size).")
flags.DEFINE_integer("workers", os.cpu_count() or 1, "Local worker processes.")
flags.DEFINE_integer("task_index", 0, "This task's index, for a job of --num_tasks tasks.")
flags.DEFINE_integer("num_tasks", 1, "Tasks sharing the shards (SLURM array, several VMs).")
flags.DEFINE_enum("runner", "local", ["local", "beam"], "local processes or Apache Beam.")
flags.DEFINE_multi_string("beam_option", [], "A Beam pipeline option, e.g. --runner=FlinkRunner.")


def main(argv: list[str]) -> None:
    no_extra_arguments(argv, "; pass settings as --config.KEY=VALUE")
    from bert_jax.data.prepare_runners import prepare_directory

    logging.set_verbosity(logging.INFO)
    try:
        manifest = prepare_directory(
            FLAGS.config,
            FLAGS.output,
            num_shards=FLAGS.num_shards,
            workers=FLAGS.workers,
            task_index=FLAGS.task_index,
            num_tasks=FLAGS.num_tasks,
            runner=FLAGS.runner,
            beam_options=FLAGS.beam_option,
        )
    except UserError as error:
        fail(str(error))
    if manifest is not None:
        content = manifest.content
        print(
            f"Prepared {content['train_records']:,} train and {content['eval_records']:,} eval "
            f"sentence pairs in {len(content['shards'])} shards; train with "
            f"--config.data.corpus=prepared:{os.path.abspath(FLAGS.output)}"
        )


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
