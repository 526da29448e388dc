"""The console speaks for this project: libraries' INFO lines are filtered out."""

import logging as py_logging

from absl import logging


def _own_or_important(record: py_logging.LogRecord) -> bool:
    return record.levelno >= py_logging.WARNING or "/bert_jax/" in record.pathname


def quiet_libraries() -> None:
    """Keeps the console to this project's lines: libraries speak only for warnings and errors."""
    logging.get_absl_handler().addFilter(_own_or_important)
