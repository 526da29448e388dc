"""BERT_JAX_MALLOC=jemalloc runs the command-line jobs under jemalloc (opt-in).

XLA's CPU runtime allocates each step's temporaries afresh (1.5 GB for BERT-small at batch 32),
and glibc maps such blocks from the kernel and unmaps them on free, so every step page-faults
its whole working set in again: about 380,000 faults and up to a tenth of a BERT-small step.
jemalloc, told to keep what it frees, hands the same pages back step after step, but it also
holds on to more memory (peak RSS of a BERT-base step 11-12 GB instead of 6.7 GB), which is why
it is not the default. The library must be loaded before the process starts, so the job
re-executes itself once with it preloaded; an LD_PRELOAD set by the user is left alone.
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
    """The environment to re-execute with, or None to run as is (the re-executed process has
    LD_PRELOAD set, so it never re-executes again)."""
    if environ.get(ENV_SWITCH, "system") != "jemalloc" or environ.get("LD_PRELOAD"):
        return None
    if sys.platform != "linux" or library is None:
        raise SystemExit(
            f"error: {ENV_SWITCH}=jemalloc, but no libjemalloc.so.2 was found; install it "
            f"(Debian/Ubuntu: apt install libjemalloc2) or unset {ENV_SWITCH}."
        )
    return environ | {"LD_PRELOAD": library, "MALLOC_CONF": JEMALLOC_CONF}


def in_use() -> str:
    """ "jemalloc" when this process has it loaded, else "system"."""
    try:
        with open("/proc/self/maps") as maps:
            return "jemalloc" if "libjemalloc" in maps.read() else "system"
    except OSError:
        return "system"


def reexec_with_jemalloc() -> None:
    """Replaces this process with the same command under jemalloc, when BERT_JAX_MALLOC asks."""
    environment = preload_environment(dict(os.environ), find_jemalloc())
    if environment is not None:
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, sys.orig_argv, environment)
