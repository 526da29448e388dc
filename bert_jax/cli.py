"""What the commands share: flag parsing and their errors, one line each instead of tracebacks."""

import sys

from absl import flags

FLAGS = flags.FLAGS


def fail(message: str) -> None:
    """Prints `error: message` and exits with status 1."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(1)


def no_extra_arguments(argv: list[str], hint: str = "") -> None:
    """Refuses arguments absl left over (a setting without its `--`, a stray word)."""
    if len(argv) > 1:
        fail(f"unexpected arguments {' '.join(argv[1:])}{hint}.")


def parse_flags(argv: list[str]) -> list[str]:
    """absl parsing, with one-line errors instead of tracebacks for bad flags and configs."""
    try:
        remaining = FLAGS(argv)
        if FLAGS.config is None:
            fail("--config is required, e.g. --config=configs/pretrain.py.")
        FLAGS.config.keys()  # a config file that failed to load raises only when first read
    except flags.Error as error:
        text = str(error).strip()
        if "Traceback (most recent call last)" in text:  # ml_collections quotes the config's
            reason = text.splitlines()[-1].split(": ", 1)[-1]  # the raise, not the traceback
            fail(f"the config could not be loaded ({reason}); check --config and its overrides.")
        fail(f"{text}; see --helpfull.")
    except (AttributeError, KeyError) as error:
        key = str(error).strip("\"'")
        fail(f"the config has no key {key!r}; check the --config.* flags against the config file.")
    except (OSError, SyntaxError, TypeError, ValueError) as error:
        reason = str(error).strip().splitlines()[-1].strip()  # the root cause, not the preamble
        fail(f"the config could not be loaded ({reason}); check --config and its overrides.")
    return remaining
