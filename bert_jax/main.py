"""Entry point: `python -m bert_jax.main --config=configs/pretrain.py --workdir=DIR`."""

from absl import app, flags, logging
from ml_collections import config_flags

from bert_jax import allocator, console
from bert_jax.cli import fail, no_extra_arguments, parse_flags
from bert_jax.errors import UserError

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Directory for checkpoints, TensorBoard events, tokenizer.")
flags.mark_flags_as_required(["workdir"])
config_flags.DEFINE_config_file("config", None, "Experiment config file.", lock_config=True)
flags.DEFINE_string(
    "coordinator_address", None, "host:port of process 0, for a multi-process job started by hand."
)
flags.DEFINE_integer("num_processes", None, "Processes in the job (with --coordinator_address).")
flags.DEFINE_integer("process_id", None, "This process's index (with --coordinator_address).")


def main(argv: list[str]) -> None:
    no_extra_arguments(argv, "; pass settings as --config.KEY=VALUE")
    from bert_jax import distributed

    with console.native_stderr_silenced():  # heavy imports after the flags are checked
        from bert_jax.trainer import train_and_evaluate

    try:
        distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
    except UserError as error:
        fail(str(error))

    console.quiet_libraries()
    console.readable_lines()
    if allocator.in_use() != "system":
        logging.info("Memory allocator: %s.", allocator.in_use())
    try:
        train_and_evaluate(FLAGS.config, FLAGS.workdir)  # the config goes to WORKDIR/config.json
    except UserError as error:
        fail(str(error))  # once, as the last line


if __name__ == "__main__":
    console.silence_startup_noise()  # before TensorFlow and XLA load: they read it then
    allocator.reexec_with_jemalloc()  # first, before anything large is allocated
    app.run(main, flags_parser=parse_flags)
