"""Orbax and TensorStore failures, made readable: a short reason, and no late tracebacks."""

import os
import re
import sys
import warnings


def reason(error: BaseException) -> str:
    """The root cause of an Orbax/TensorStore error, short enough for one sentence: the
    operating system's words where there are some (TensorStore appends the errno)."""
    while error.__cause__ is not None:
        error = error.__cause__
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    text = str(error)
    if code := re.search(r"os_error_code='?(\d+)", text):
        return os.strerror(int(code.group(1)))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    text = lines[0] if lines else type(error).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def quiet_late_callbacks() -> None:
    """A failed read leaves TensorStore callbacks aimed at Orbax's closed event loop; Python
    reports each as an 'unraisable' traceback. They carry no information beyond the error
    already raised, so they are dropped (every other unraisable report still goes through)."""
    previous = sys.unraisablehook
    if getattr(previous, "_bert_jax", False):
        return

    def hook(report):
        value = report.exc_value
        if isinstance(value, RuntimeError) and str(value) == "Event loop is closed":
            return
        previous(report)

    hook._bert_jax = True
    sys.unraisablehook = hook


def quiet_abandoned_writes() -> None:
    """After a failed save, Orbax leaves the writes it had not started as coroutines that are
    never awaited; at exit Python warns about each, below the one-sentence error that says why."""
    warnings.filterwarnings(
        "ignore", message=r"coroutine '.*' was never awaited", category=RuntimeWarning
    )
