"""Where a compiled step's time goes: a JAX profiler trace, summed per XLA op, grouped by kind.

The trace holds one event per executed op (per thread); each op is classified by what its HLO
(fused) computation does, read from the compiled module's text. Shares are of the summed op
time of all threads, so they say what the cores were busy with.
"""

import collections
import glob
import gzip
import json
import os
import re
import tempfile
from collections.abc import Callable

# First match wins: a fusion that multiplies matrices is "matmul" whatever else it fuses.
_KINDS = (
    ("matmul", re.compile(r"\b(dot|convolution)\(")),
    ("random bits (dropout)", re.compile(r"threefry|rng-bit-generator|shift-right-logical")),
    ("scatter / gather", re.compile(r"\b(scatter|gather|dynamic-update-slice)\(")),
    ("exp / erf / tanh (softmax, GELU, pooler)", re.compile(r"\b(exponential|erf|tanh)\(")),
    ("reductions (LayerNorm, softmax sums, norms)", re.compile(r"\breduce(-window)?\(")),
    ("copies / transposes", re.compile(r"\b(copy|transpose|bitcast-convert)\(")),
)
_OTHER = "elementwise and the rest"


def _computations(hlo_text: str) -> dict[str, str]:
    """Computation name -> its body text."""
    bodies, name, lines = {}, None, []
    for line in hlo_text.splitlines():
        header = re.match(r"^(?:ENTRY )?%?([\w.\-]+) .*\{$", line)
        if header and not line.startswith(" "):
            name, lines = header[1], []
        elif line.startswith("}") and name:
            bodies[name] = "\n".join(lines)
            name = None
        elif name:
            lines.append(line)
    return bodies


def _op_kinds(hlo_text: str) -> dict[str, str]:
    """Instruction name -> kind, looking through fusions (and their nested calls)."""
    bodies = _computations(hlo_text)

    def text_of(body: str, depth: int = 0) -> str:
        called = re.findall(r"(?:calls|to_apply)=%?([\w.\-]+)", body)
        if depth > 3:
            return body
        return body + "".join(text_of(bodies.get(c, ""), depth + 1) for c in called)

    kinds = {}
    for body in bodies.values():
        for line in body.splitlines():
            match = re.match(r"\s*(?:ROOT )?%?([\w.\-]+) = [^=]*?\b([\w\-]+)\(", line)
            if not match:
                continue
            text = text_of(line)
            kinds[match[1]] = next(
                (kind for kind, pattern in _KINDS if pattern.search(text)), _OTHER
            )
    return kinds


def profile_calls(run_once: Callable[[], None], hlo_text: str, calls: int = 2) -> dict:
    """Traces `calls` calls of an already warm step; the time share of each kind of op."""
    import jax

    directory = tempfile.mkdtemp(prefix="bert_jax_profile_")
    jax.profiler.start_trace(directory)
    for _ in range(calls):
        run_once()
    jax.profiler.stop_trace()
    [path] = glob.glob(os.path.join(directory, "plugins", "profile", "*", "*.trace.json.gz"))
    with gzip.open(path) as file:
        events = json.load(file)["traceEvents"]
    kinds = _op_kinds(hlo_text)
    per_kind: collections.Counter = collections.Counter()
    per_op: collections.Counter = collections.Counter()
    for event in events:
        if event.get("ph") == "X" and event["name"] in kinds:
            per_kind[kinds[event["name"]]] += event["dur"]
            per_op[event["name"]] += event["dur"]
    total = sum(per_kind.values())
    return {
        "op_seconds_per_step": total / 1e6 / calls,
        "share_by_kind": {k: round(v / total, 4) for k, v in per_kind.most_common()},
        "top_ops": {
            f"{name} ({kinds[name]})": round(v / total, 4) for name, v in per_op.most_common(8)
        },
    }
