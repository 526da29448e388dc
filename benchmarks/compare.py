"""bert_jax against Hugging Face's PyTorch BERT: same machine, sizes, batch and settings.

    python benchmarks/compare.py --preset=small,base --seq-len=128 --batch=32 --steps=5

Runs `python -m bert_jax.benchmark` and `benchmarks/hf_pytorch.py` one after the other (never
at once, so neither steals the other's cores), in fresh processes so each reports its own peak
memory, alternating which goes first from round to round, both under the same memory allocator
(`--allocator`: glibc's, or jemalloc as BERT_JAX_MALLOC=jemalloc gives bert_jax's commands).
Prints every JSON line of both, then one summary line per preset with
`ratio = jax_tokens_per_sec / hf_tokens_per_sec` (medians over rounds).
"""

import json
import os
import statistics
import subprocess
import sys

from absl import app, flags

from bert_jax import allocator
from bert_jax.benchmark import measure

_HERE = os.path.dirname(os.path.abspath(__file__))

FLAGS = flags.FLAGS
flags.DEFINE_list("preset", ["small"], "Model size presets, comma-separated.")
flags.DEFINE_integer("seq-len", 128, "Tokens per sequence.")
flags.DEFINE_integer("batch", 32, "Sequences per step.")
flags.DEFINE_integer("steps", 5, "Timed steps after warm-up.")
flags.DEFINE_integer("warmup", 2, "Untimed steps before timing.")
flags.DEFINE_integer("rounds", 1, "Runs of each framework per preset.")
flags.DEFINE_enum(
    "allocator", "system", ["system", "jemalloc"], "Memory allocator of both processes."
)
flags.DEFINE_string("config", None, "Config file for both (default: configs/pretrain.py:standard).")


def _environment() -> dict[str, str]:
    """Both frameworks' processes start with this: the chosen allocator already preloaded."""
    environ = dict(os.environ) | {allocator.ENV_SWITCH: FLAGS.allocator}
    return allocator.preload_environment(environ, allocator.find_jemalloc()) or environ


def _run(command: list[str]) -> dict:
    """The last JSON line a benchmark process prints (its stderr passes through)."""
    result = subprocess.run(
        command, stdout=subprocess.PIPE, text=True, check=True, env=_environment()
    )
    record = json.loads(result.stdout.strip().splitlines()[-1])
    print(json.dumps(record), flush=True)
    return record


def _commands(preset: str) -> dict[str, list[str]]:
    common = [
        f"--preset={preset}",
        f"--seq-len={FLAGS['seq-len'].value}",
        f"--batch={FLAGS.batch}",
        f"--steps={FLAGS.steps}",
        f"--warmup={FLAGS.warmup}",
    ] + ([f"--config={FLAGS.config}"] if FLAGS.config else [])
    return {
        "jax": [sys.executable, "-m", "bert_jax.benchmark", *common],
        "hf": [sys.executable, os.path.join(_HERE, "hf_pytorch.py"), *common],
    }


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    for preset in FLAGS.preset:
        commands = _commands(preset)
        rates: dict[str, list[float]] = {"jax": [], "hf": []}
        for round_ in range(FLAGS.rounds):
            order = ("jax", "hf") if round_ % 2 == 0 else ("hf", "jax")
            for name in order:
                rates[name].append(_run(commands[name])["tokens_per_sec"])
        jax_rate, hf_rate = (statistics.median(rates[name]) for name in ("jax", "hf"))
        measure.print_json(
            {
                "summary": "jax_vs_hf",
                "preset": preset,
                "seq_len": FLAGS["seq-len"].value,
                "batch": FLAGS.batch,
                "rounds": FLAGS.rounds,
                "allocator": FLAGS.allocator,
                "jax_tokens_per_sec": jax_rate,
                "hf_tokens_per_sec": hf_rate,
                "ratio": jax_rate / hf_rate,
            }
        )


if __name__ == "__main__":
    app.run(main)
