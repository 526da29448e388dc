"""Framework-neutral measurement helpers, shared by the JAX benchmark and the PyTorch baseline."""

import dataclasses
import json
import math
import os
import re
import resource
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np

# BERT's WordPiece vocabulary: the benchmark models use it whatever tokenizer the config trains.
BERT_VOCAB_SIZE = 30522
MIN_INPUT_TO_STEP_RATIO = 10.0

_SHAPE = re.compile(r"\[(\d+(?:,\d+)*)\]")


def cpu_count() -> int:
    """Cores this process may run on (the affinity mask, not the machine's total)."""
    return len(os.sched_getaffinity(0))


@dataclasses.dataclass(frozen=True)
class Timing:
    """Median wall time of one call, and how busy this process kept the cores meanwhile."""

    median_sec: float
    cpu_utilization: float  # process CPU time / (wall time x cores): near 1 = had every core


def time_calls(run_once: Callable[[], object], warmup: int, repeats: int) -> Timing:
    """Times `run_once` (which must block until its work is done) `repeats` times after warm-up.

    A low `cpu_utilization` means other processes took cores, or the work ran serially.
    """
    for _ in range(warmup):
        run_once()
    times = []
    cpu_start = os.times()
    for _ in range(repeats):
        start = time.perf_counter()
        run_once()
        times.append(time.perf_counter() - start)
    cpu_end = os.times()
    cpu = cpu_end.user + cpu_end.system - cpu_start.user - cpu_start.system
    return Timing(statistics.median(times), cpu / (sum(times) * cpu_count()))


def synthetic_batch(
    batch: int, seq_len: int, max_predictions: int, vocab_size: int, seed: int = 0
) -> dict[str, np.ndarray]:
    """A batch with the keys, shapes and dtypes the pretraining input yields, random contents."""
    rng = np.random.default_rng(seed)
    second_segment = np.arange(seq_len) >= seq_len // 2
    positions = np.sort(rng.random((batch, seq_len)).argsort(axis=1)[:, :max_predictions], axis=1)
    return {
        "input_ids": rng.integers(0, vocab_size, (batch, seq_len), dtype=np.int32),
        "token_type_ids": np.broadcast_to(second_segment, (batch, seq_len)).astype(np.int32),
        "attention_mask": np.ones((batch, seq_len), np.int32),
        "next_sentence_labels": rng.integers(0, 2, (batch,), dtype=np.int32),
        "masked_lm_positions": positions.astype(np.int32),
        "masked_lm_ids": rng.integers(0, vocab_size, (batch, max_predictions), dtype=np.int32),
        "masked_lm_weights": np.ones((batch, max_predictions), np.float32),
    }


def peak_rss_bytes() -> int:
    """Peak resident memory of this process so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def throughput(timing: Timing, batch: int, seq_len: int) -> dict[str, float]:
    """Step figures from the median step time."""
    return {
        "step_time_sec": timing.median_sec,
        "sequences_per_sec": batch / timing.median_sec,
        "tokens_per_sec": batch * seq_len / timing.median_sec,
        "cpu_utilization": timing.cpu_utilization,
    }


def full_vocab_shapes(hlo_text: str, batch: int, seq_len: int, vocab_size: int) -> list[str]:
    """Array shapes in `hlo_text` holding a vocab-sized axis at every one of batch×seq positions.

    Matches `[32,128,30522]`, `[4096,30522]` and their transposes: the shape without its vocab
    axis must be exactly (batch, seq_len), (seq_len, batch) or (batch·seq_len,). The word
    embedding table [vocab, hidden] would match too if batch·seq_len equalled the hidden size:
    benchmark other shapes.
    """
    positions = {(batch, seq_len), (seq_len, batch), (batch * seq_len,)}
    found = set()
    for match in _SHAPE.finditer(hlo_text):
        dims = [int(d) for d in match.group(1).split(",")]
        if vocab_size in dims:
            dims.remove(vocab_size)
            if tuple(dims) in positions:
                found.add(match.group(0))
    return sorted(found)


def input_check(input_per_sec: float | None, step_per_sec: float | None) -> dict:
    """The input-to-step ratio, with a warning when the pipeline could starve the step."""
    if not input_per_sec or not step_per_sec:
        return {"input_to_step_ratio": None}
    ratio = input_per_sec / step_per_sec
    result: dict = {"input_to_step_ratio": ratio}
    if ratio < MIN_INPUT_TO_STEP_RATIO:
        result["warning"] = (
            f"input pipeline produces only {ratio:.1f}x the examples the step consumes "
            f"(need >= {MIN_INPUT_TO_STEP_RATIO:g}x)"
        )
    return result


def print_json(record: dict) -> None:
    """One JSON line on stdout; non-finite floats become null so any JSON reader accepts it."""

    def clean(value):
        return None if isinstance(value, float) and not math.isfinite(value) else value

    print(json.dumps({key: clean(value) for key, value in record.items()}), flush=True)
    if "warning" in record:
        print(f"warning: {record['warning']}", file=sys.stderr)
