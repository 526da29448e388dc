"""With BERT_JAX_MALLOC=jemalloc the jobs re-execute under jemalloc, once; otherwise never."""

import os
import subprocess
import sys

import pytest

from bert_jax import allocator

LIBRARY = "/opt/lib/libjemalloc.so.2"


def test_preload_environment_applies_only_when_asked_for():
    asked = {"PATH": "/bin", allocator.ENV_SWITCH: "jemalloc"}
    assert allocator.preload_environment(asked, LIBRARY) == asked | {
        "LD_PRELOAD": LIBRARY,  # so the re-executed process does not do it again
        "MALLOC_CONF": allocator.JEMALLOC_CONF,
    }
    assert allocator.preload_environment({"PATH": "/bin"}, LIBRARY) is None  # the default
    assert allocator.preload_environment({allocator.ENV_SWITCH: "system"}, LIBRARY) is None
    preloaded = asked | {"LD_PRELOAD": "/x/libtcmalloc.so"}
    assert allocator.preload_environment(preloaded, LIBRARY) is None
    with pytest.raises(SystemExit, match="BERT_JAX_MALLOC=jemalloc, but no libjemalloc"):
        allocator.preload_environment(asked, None)


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


def test_a_process_reexecutes_under_jemalloc_only_when_asked_to():
    assert _allocator_after_reexec() == "system"
    if allocator.find_jemalloc():
        assert _allocator_after_reexec(**{allocator.ENV_SWITCH: "jemalloc"}) == "jemalloc"
    else:
        with pytest.raises(subprocess.CalledProcessError):
            _allocator_after_reexec(**{allocator.ENV_SWITCH: "jemalloc"})
