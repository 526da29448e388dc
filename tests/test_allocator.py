"""The jobs re-execute under jemalloc when it is installed, once, and only when asked to."""

import os
import subprocess
import sys

from bert_jax import allocator

LIBRARY = "/opt/lib/libjemalloc.so.2"


def test_preload_environment_applies_only_when_wanted_and_possible():
    environment = allocator.preload_environment({"PATH": "/bin"}, LIBRARY)
    assert environment == {
        "PATH": "/bin",
        "LD_PRELOAD": LIBRARY,
        "MALLOC_CONF": allocator.JEMALLOC_CONF,
        allocator.ENV_SWITCH: "system",  # so the re-executed process does not do it again
    }
    assert allocator.preload_environment({}, None) is None  # not installed
    assert allocator.preload_environment({allocator.ENV_SWITCH: "system"}, LIBRARY) is None
    assert allocator.preload_environment({"LD_PRELOAD": "/x/libtcmalloc.so"}, LIBRARY) is None
    assert allocator.preload_environment({allocator.ENV_SWITCH: "jemalloc"}, LIBRARY)


def _allocator_after_reexec(**environ: str) -> str:
    script = (
        "from bert_jax import allocator\n"
        "allocator.reexec_with_jemalloc()\n"
        "print(allocator.in_use())"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", allocator.ENV_SWITCH)}
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=env | environ,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def test_a_process_reexecutes_under_jemalloc_when_the_machine_has_it():
    expected = "jemalloc" if allocator.find_jemalloc() else "system"
    assert _allocator_after_reexec() == expected
    assert _allocator_after_reexec(**{allocator.ENV_SWITCH: "system"}) == "system"
