"""The console speaks for this project: libraries' INFO lines are filtered out."""

import logging as py_logging

from absl import logging


def _own_or_important(record: py_logging.LogRecord) -> bool:
    own = "/bert_jax/" in record.pathname
    if not own:
        # A library's error is one line here: a fault it hit (a full disk, say) reaches the
        # user as this project's one-sentence error, not as a wall of library tracebacks.
        record.exc_info, record.exc_text, record.stack_info = None, None, None
    return record.levelno >= py_logging.WARNING or own


def quiet_libraries() -> None:
    """Keeps the console to this project's lines: libraries speak only for warnings and errors."""
    logging.get_absl_handler().addFilter(_own_or_important)
