"""The benchmark and the PyTorch baseline on a tiny case; the full-vocabulary-logits detector."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

from bert_jax.benchmark import measure
from bert_jax.flops import train_flops_per_step
from bert_jax.model import bert_config
from conftest import REPO

# batch x seq_len must differ from tiny's hidden size (128), or the [vocab, hidden] embedding
# table would look like logits at every position.
CASE = {"preset": "tiny", "seq-len": 32, "batch": 2, "steps": 2, "warmup": 1}
KEYS = {
    "preset", "seq_len", "batch", "dtype", "device_kind", "num_devices", "tokens_per_sec",
    "sequences_per_sec", "step_time_sec", "compile_time_sec", "peak_memory_bytes",
    "flops_per_step", "achieved_flops_per_sec", "matmul_peak_flops_per_sec", "mfu",
    "input_examples_per_sec", "input_to_step_ratio", "full_vocab_logits",
}  # fmt: skip
POSITIVE = [
    "tokens_per_sec", "sequences_per_sec", "step_time_sec", "compile_time_sec",
    "peak_memory_bytes", "flops_per_step", "achieved_flops_per_sec",
    "matmul_peak_flops_per_sec", "mfu", "input_examples_per_sec", "input_to_step_ratio",
]  # fmt: skip


def test_benchmark_and_hf_baseline_on_a_tiny_case():
    """One run of benchmarks/compare.py: our benchmark, the PyTorch baseline, and their ratio."""
    pytest.importorskip("transformers")
    script = os.path.join(REPO, "benchmarks", "compare.py")
    command = [sys.executable, script, *(f"--{key}={value}" for key, value in CASE.items())]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    ours, hf, summary = (json.loads(line) for line in result.stdout.splitlines())

    assert KEYS <= ours.keys()
    assert (ours["framework"], ours["preset"], ours["seq_len"], ours["batch"]) == (
        "jax", "tiny", 32, 2,
    )  # fmt: skip
    for key in POSITIVE:
        assert ours[key] > 0, key
    assert ours["full_vocab_logits"] is False
    tiny = bert_config("tiny", measure.BERT_VOCAB_SIZE)
    # 15% of 32 tokens: 5 masked positions per sequence; NSP head on in the default config.
    assert ours["max_predictions_per_seq"] == 5
    assert ours["flops_per_step"] == train_flops_per_step(tiny, 2, 32, 5, sentence_head=True)
    assert ours["achieved_flops_per_sec"] == pytest.approx(
        ours["flops_per_step"] / ours["step_time_sec"]
    )
    assert ours["tokens_per_sec"] == pytest.approx(2 * 32 / ours["step_time_sec"])

    assert hf["framework"] == "pytorch"
    assert (hf["num_layers"], hf["hidden_size"], hf["vocab_size"]) == (2, 128, 30522)
    assert hf["tokens_per_sec"] > 0
    assert summary["ratio"] == pytest.approx(ours["tokens_per_sec"] / hf["tokens_per_sec"])


@pytest.mark.parametrize("full", [True, False])
def test_full_vocab_detector_on_compiled_hlo(full):
    batch, seq_len, hidden, vocab, picked = 2, 8, 24, 1000, 3
    hidden_states = jnp.ones((batch, seq_len, hidden))
    table = jnp.ones((vocab, hidden))

    def logits(x, table):
        if not full:
            x = x[:, :picked]  # gathered positions, as the MLM head does
        return jnp.einsum("bsh,vh->bsv", x, table).max()

    hlo = jax.jit(logits).lower(hidden_states, table).compile().as_text()
    found = measure.full_vocab_shapes(hlo, batch, seq_len, vocab)
    assert bool(found) == full, found


def test_input_check_warns_below_ten_times():
    assert "warning" not in measure.input_check(100.0, 10.0)
    slow = measure.input_check(90.0, 10.0)
    assert slow["input_to_step_ratio"] == pytest.approx(9.0)
    assert "9.0x" in slow["warning"]


def test_profile_attributes_op_time_to_kinds_of_ops():
    from bert_jax.benchmark.profile import _op_kinds, profile_calls

    step = jax.jit(lambda a, b: jnp.tanh(a @ b).sum(axis=0))
    a = jnp.arange(512 * 512, dtype=jnp.float32).reshape(512, 512) / 1e6
    compiled = step.lower(a, a).compile()
    kinds = _op_kinds(compiled.as_text())
    assert "matmul" in kinds.values()
    profile = profile_calls(lambda: compiled(a, a).block_until_ready(), compiled.as_text())
    shares = profile["share_by_kind"]
    assert abs(sum(shares.values()) - 1) < 1e-3
    assert shares["matmul"] > 0 and profile["op_seconds_per_step"] > 0
    assert all(name.split(" (")[0] in kinds for name in profile["top_ops"])
