"""The real train step (config's optimizer, a task's model and loss, shardings) timed on
synthetic batches."""

import time

import jax
from ml_collections import ConfigDict

from bert_jax import flops, sharding
from bert_jax.benchmark import measure
from bert_jax.benchmark.task_cases import task_case
from bert_jax.model.config import from_run_config
from bert_jax.optim import build_optimizer
from bert_jax.train_state import state_spec
from bert_jax.train_step import make_train_step


def _memory_figures(compiled: jax.stages.Compiled) -> dict[str, int]:
    """What XLA planned for one step: temporaries, arguments, outputs, and donated aliases."""
    analysis = compiled.memory_analysis()
    if analysis is None:
        return {}
    return {
        f"compiled_{name}_bytes": int(getattr(analysis, f"{name}_size_in_bytes"))
        for name in ("temp", "argument", "output", "alias")
        if hasattr(analysis, f"{name}_size_in_bytes")
    }


def peak_flops(config: ConfigDict) -> tuple[float, str]:
    """Peak FLOP/s of one device and where it came from: config, device table, or measured.

    On CPU the best of three matmul measurements: other processes slow a single one down, which
    would make the MFU look better than it is.
    """
    if config.peak_flops_per_device:
        return config.peak_flops_per_device, "configured"
    kind = jax.devices()[0].device_kind
    if kind in flops.PEAK_FLOPS:
        return flops.PEAK_FLOPS[kind], "device_table"
    return max(flops.measured_matmul_peak() for _ in range(3)), "matmul"


def _peak_memory() -> dict:
    stats = jax.devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        return {"peak_memory_bytes": stats["peak_bytes_in_use"], "peak_memory_source": "device"}
    return {"peak_memory_bytes": measure.peak_rss_bytes(), "peak_memory_source": "process_rss"}


def measure_step(
    config: ConfigDict,
    vocab_size: int,
    steps: int,
    warmup: int,
    profile: bool = False,
    task: str = "pretraining",
) -> dict:
    """Compiles the train step of `task` (task_cases.TASKS) ahead of time, then times `steps`
    calls after `warmup` calls; with `profile`, traces two more calls and adds where their
    time went."""
    batch_size, seq_len = config.batch_size, config.data.max_seq_length
    mesh = sharding.make_mesh(config)
    tx, _ = build_optimizer(config)
    bert = from_run_config(config, vocab_size)
    case = task_case(task, bert, config, batch_size, seq_len)
    spec = state_spec(config, bert, case.build_model, tx, mesh)
    batch_sharding = sharding.batch_sharding(mesh, config)
    train_step = jax.jit(
        make_train_step(spec.graphdef, tx, config.seed, case.loss),
        in_shardings=(spec.shardings, batch_sharding),
        out_shardings=(spec.shardings, sharding.replicated(mesh)),
        donate_argnums=0,
    )
    batch = sharding.put_batch(case.batch, batch_sharding)

    start = time.perf_counter()
    lowered = train_step.lower(spec.abstract, batch)
    lowered_at = time.perf_counter()
    compiled = lowered.compile()
    compiled_at = time.perf_counter()
    vocab_shapes = measure.full_vocab_shapes(compiled.as_text(), batch_size, seq_len, vocab_size)
    record = {
        "num_layers": bert.num_layers,
        "hidden_size": bert.hidden_size,
        "vocab_size": vocab_size,
        "max_predictions_per_seq": case.max_predictions_per_seq,
        "lower_time_sec": lowered_at - start,
        "compile_time_sec": compiled_at - start,
        "full_vocab_logits": bool(vocab_shapes),
        "full_vocab_shapes": vocab_shapes,
        "flops_per_step": case.flops_per_step,
        **_memory_figures(compiled),
    }
    if steps <= 0:
        return record | _peak_memory()

    state = spec.init()

    def run_once() -> None:
        nonlocal state
        state, metrics = compiled(state, batch)
        jax.block_until_ready((state, metrics))

    timing = measure.time_calls(run_once, warmup, steps)
    if profile:
        from bert_jax.benchmark.profile import profile_calls

        record["profile"] = profile_calls(run_once, compiled.as_text())
    record |= measure.throughput(timing, batch_size, seq_len) | _peak_memory()
    peak, source = peak_flops(config)
    achieved = record["flops_per_step"] / timing.median_sec
    return record | {
        "achieved_flops_per_sec": achieved,
        "matmul_peak_flops_per_sec": peak,
        "peak_flops_source": source,
        "mfu": achieved / (peak * jax.device_count()),
    }
