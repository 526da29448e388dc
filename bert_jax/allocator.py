"""Runs the command-line jobs under jemalloc when the machine has it.

XLA's CPU runtime allocates each step's temporaries afresh (1.5 GB for BERT-small at batch 32),
and glibc maps such blocks from the kernel and unmaps them on free, so every step page-faults
its whole working set in again: about 380,000 faults and a tenth of the step time. jemalloc,
told to keep what it frees, hands the same pages back step after step. The library must be
loaded before the process starts, so the job re-executes itself once with it preloaded.

BERT_JAX_MALLOC=system turns this off; an LD_PRELOAD set by the user is left alone.
"""

import ctypes.util
import os
import sys

ENV_SWITCH = "BERT_JAX_MALLOC"
# Keep freed memory (no decay) and serve large blocks from the normal arenas, whose pages are
# reused, instead of the dedicated "oversize" arena, which returns them to the kernel.
JEMALLOC_CONF = "oversize_threshold:0,dirty_decay_ms:-1,muzzy_decay_ms:-1"
_CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2",
    "/usr/lib/aarch64-linux-gnu/libjemalloc.so.2",
    "/usr/lib64/libjemalloc.so.2",
    "/usr/local/lib/libjemalloc.so.2",
)


def find_jemalloc() -> str | None:
    """The path of the jemalloc shared library, or None when it is not installed."""
    for path in _CANDIDATES:
        if os.path.exists(path):
            return path
    name = ctypes.util.find_library("jemalloc")
    return name or None


def preload_environment(environ: dict[str, str], library: str | None) -> dict[str, str] | None:
    """The environment to re-execute with, or None to run as is."""
    if sys.platform != "linux" or library is None:
        return None
    if environ.get(ENV_SWITCH, "jemalloc") == "system" or environ.get("LD_PRELOAD"):
        return None
    return environ | {"LD_PRELOAD": library, "MALLOC_CONF": JEMALLOC_CONF, ENV_SWITCH: "system"}


def in_use() -> str:
    """ "jemalloc" when this process has it loaded, else "system"."""
    try:
        with open("/proc/self/maps") as maps:
            return "jemalloc" if "libjemalloc" in maps.read() else "system"
    except OSError:
        return "system"


def reexec_with_jemalloc() -> None:
    """Replaces this process with the same command under jemalloc, when that applies.

    The child sees BERT_JAX_MALLOC=system, so it never re-executes again.
    """
    environment = preload_environment(dict(os.environ), find_jemalloc())
    if environment is not None:
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, sys.orig_argv, environment)
