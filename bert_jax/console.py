"""The console speaks for this project: libraries' start-up noise and INFO lines are filtered out.

Keep this module's imports light: `silence_startup_noise` must run before TensorFlow, JAX or
XLA are first imported, since they read these settings when they load.
"""

import logging as py_logging
import os

from absl import logging

# TensorFlow's C++ log (oneDNN notices, CPU feature lines, "All log messages before
# absl::InitializeLog()"), and XLA/abseil's own C++ log: errors only.
_QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3", "GRPC_VERBOSITY": "ERROR", "GLOG_minloglevel": "2"}


def silence_startup_noise() -> None:
    """Sets the libraries' log levels in the environment, unless the user set them."""
    for key, value in _QUIET_ENV.items():
        os.environ.setdefault(key, value)


def _own_or_important(record: py_logging.LogRecord) -> bool:
    return record.levelno >= py_logging.WARNING or "/bert_jax/" in record.pathname


def quiet_libraries() -> None:
    """Keeps the console to this project's lines: libraries speak only for warnings and errors."""
    logging.get_absl_handler().addFilter(_own_or_important)
