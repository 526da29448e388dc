"""Entry point: `python -m bert_jax.main --config=configs/pretrain.py --workdir=DIR`."""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from bert_jax import allocator
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


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(1)


def parse_flags(argv: list[str]) -> list[str]:
    """absl parsing, with one-line errors instead of tracebacks for bad flags and configs."""
    try:
        remaining = FLAGS(argv)
        if FLAGS.config is None:
            _fail("--config is required, e.g. --config=configs/pretrain.py.")
        FLAGS.config.keys()  # a config file that failed to load raises only when first read
    except flags.Error as error:
        _fail(f"{error}; see --helpfull.")
    except (AttributeError, KeyError) as error:
        key = str(error).strip("\"'")
        _fail(f"the config has no key {key!r}; check the --config.* flags against the config file.")
    except (OSError, SyntaxError, TypeError, ValueError) as error:
        reason = str(error).strip().splitlines()[-1].strip()  # the root cause, not the preamble
        _fail(f"the config could not be loaded ({reason}); check --config and its overrides.")
    return remaining


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        _fail(f"unexpected arguments {' '.join(argv[1:])}; pass settings as --config.KEY=VALUE.")
    from bert_jax import console, distributed
    from bert_jax.trainer import train_and_evaluate  # heavy imports after the flags are checked

    try:
        distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
    except UserError as error:
        _fail(str(error))

    console.quiet_libraries()
    logging.info("Memory allocator: %s.", allocator.in_use())
    logging.info("Config:\n%s", FLAGS.config)
    try:
        train_and_evaluate(FLAGS.config, FLAGS.workdir)
    except UserError as error:
        logging.error("%s", error)
        _fail(str(error))


if __name__ == "__main__":
    allocator.reexec_with_jemalloc()  # first, before anything large is allocated
    app.run(main, flags_parser=parse_flags)
