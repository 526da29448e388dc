"""The console speaks for this project: libraries' start-up noise and INFO lines are filtered out.

Keep this module's imports light: `silence_startup_noise` must run before TensorFlow, JAX or
XLA are first imported, since they read these settings when they load.
"""

import contextlib
import logging as py_logging
import math
import os
import sys
from collections.abc import Iterator

from absl import logging

# TensorFlow's C++ log (oneDNN notices, CPU feature lines, "All log messages before
# absl::InitializeLog()"), and XLA/abseil's own C++ log: errors only.
_QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3", "GRPC_VERBOSITY": "ERROR", "GLOG_minloglevel": "2"}


def silence_startup_noise() -> None:
    """Sets the libraries' log levels in the environment, unless the user set them."""
    for key, value in _QUIET_ENV.items():
        os.environ.setdefault(key, value)


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Hides what native code writes to stderr while the heavy libraries load: TensorFlow 2.21
    logs its oneDNN notice through abseil when its library is loaded, whatever
    TF_CPP_MIN_LOG_LEVEL says. Restored on exit, so an import error is still shown."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def _own_or_important(record: py_logging.LogRecord) -> bool:
    own = "/bert_jax/" in record.pathname
    if record.name == "asyncio" and "never retrieved" in str(record.msg):
        # Orbax's failed async save, collected at exit: reported already as this run's error.
        return False
    if not own:
        # A library's error is one line here: a fault it hit (a full disk, say) reaches the
        # user as this project's one-sentence error, not as a wall of library tracebacks.
        record.exc_info, record.exc_text, record.stack_info = None, None, None
    return record.levelno >= py_logging.WARNING or own


def quiet_libraries() -> None:
    """Keeps the console to this project's lines: libraries speak only for warnings and errors."""
    logging.get_absl_handler().addFilter(_own_or_important)
    # What is logged after the handlers are gone (at interpreter exit) goes here: the same rule.
    py_logging.lastResort.addFilter(_own_or_important)


class _Short(py_logging.Formatter):
    """ "HH:MM:SS message" for this project's lines; warnings and errors say so."""

    def format(self, record: py_logging.LogRecord) -> str:
        clock = self.formatTime(record, "%H:%M:%S")
        level = "" if record.levelno < py_logging.WARNING else record.levelname.lower() + ": "
        return f"{clock} {level}{record.getMessage()}"


def readable_lines() -> None:
    """Short console lines instead of absl's (level, date, microseconds, thread id, file:line)."""
    logging.get_absl_handler().setFormatter(_Short())


def startup_lines(
    config,
    task,
    workdir: str,
    first_step: int,
    mesh_shape: dict,
    num_params: int,
    num_processes: int = 1,
) -> list[str]:
    """What a person needs at start-up: what trains on what, how long, where it goes, and how to
    watch it. The whole config is in the workdir's config.json."""
    bert = task.model_config
    what = "pretraining" if task.name == "pretraining" else f"fine-tuning {task.name}"
    if task.name == "pretraining":
        corpus = config.data.corpus
        source = "the embedded default corpus" if corpus == "default" else corpus
        objective = "MLM" + (
            "" if config.sentence_task == "none" else f" + {config.sentence_task.upper()}"
        )
        what += f" ({objective}) on {source}"
    elif "tasks" in config:  # multi-task: each task names its own data
        what += " (" + ", ".join(config.tasks.keys()) + ")"
    else:
        what += f" on {config.data.train}"
    if config.get("init_from"):
        what += f", starting from {config.init_from}"
    if config.get("teacher"):
        what += f", distilled from {config.teacher}"
    accum = config.optimizer.grad_accum_steps
    micro = f" in {accum} micro-batches" if accum > 1 else ""
    count = math.prod(mesh_shape.values())
    axes = " × ".join(f"{axis} {size}" for axis, size in mesh_shape.items() if size > 1)
    devices = f"{count} device{'s' if count > 1 else ''}" + (f" ({axes})" if axes else "")
    if num_processes > 1:
        devices += f" in {num_processes} processes"
    start = "from the start" if first_step == 0 else f"resuming after step {first_step}"
    return [
        f"{what}: BERT {bert.num_layers} layers, hidden {bert.hidden_size}, "
        f"{num_params:,} parameters.",
        f"Steps {first_step + 1}..{config.num_train_steps} ({start}), batches of "
        f"{config.batch_size} × {config.data.max_seq_length} tokens{micro}, on {devices}.",
        f"Workdir {workdir}: config.json, checkpoints/, best/ and TensorBoard events; "
        f"watch with: tensorboard --logdir {workdir}",
    ]
