"""Runs a preparation: the plan (settings + tokenizer), the shards over a runner (this process, a
local process pool, a slice of shards per `--task_index`, or Apache Beam), then the manifest.

Every runner calls the same `write_shard`, so every runner writes the same bytes. A finished
shard is one whose done-record and files are all in place; a rerun skips those.
"""

import functools
import multiprocessing
import os
import time
from collections.abc import Iterable, Sequence

from absl import logging
from ml_collections import ConfigDict

from bert_jax.data import manifest as manifests
from bert_jax.data.corpus_slices import corpus_layout
from bert_jax.data.preparation import Plan, example_settings, prepare_shard
from bert_jax.data.shard_files import file_sha256, remove_temporaries, write_records
from bert_jax.data.tokenizer_choice import (
    build_tokenizer,
    load_saved_tokenizer,
    save_tokenizer,
)
from bert_jax.errors import UserError

RUNNERS = ("local", "beam")


def prepare_directory(
    config: ConfigDict,
    directory: str,
    *,
    num_shards: int | None = None,
    workers: int = 1,
    task_index: int = 0,
    num_tasks: int = 1,
    runner: str = "local",
    beam_options: Sequence[str] = (),
) -> manifests.Manifest | None:
    """Prepares `config.data.corpus` into `directory` (or the part of task `task_index`); returns
    the manifest once every shard is done. Nothing is written before the inputs are checked."""
    if "://" in directory:
        raise UserError(
            f"--output={directory} is remote; ArrayRecord shards are written to local disk, so "
            "prepare to a local directory (and copy it where training runs)."
        )
    if runner not in RUNNERS:
        raise UserError(f"--runner={runner!r} is unknown; use one of {', '.join(RUNNERS)}.")
    if not 0 <= task_index < num_tasks:
        raise UserError(f"--task_index={task_index} must lie in [0, --num_tasks={num_tasks}).")
    data = config.data
    layout = corpus_layout(
        data.corpus, data_dir=data.data_dir, split=data.split, text_key=data.text_key
    )
    settings = example_settings(config, layout, num_shards)
    plan = _plan(config, directory, settings, layout)

    shards = task_shards(plan.num_shards, task_index, num_tasks)
    pending = [shard for shard in shards if finished_shard(directory, plan, shard) is None]
    remove_temporaries(directory)
    if pending:
        logging.info(
            "Preparing %d of %d shards of %s into %s (%s runner, %d workers).",
            len(pending), plan.num_shards, data.corpus, directory, runner, workers,
        )  # fmt: skip
        progress = Progress(plan, pending)
        if runner == "beam":
            run_beam(plan, directory, pending, workers, beam_options, progress)
        else:
            run_local(plan, directory, pending, workers, progress)
    return finish(directory, plan)


def _plan(config: ConfigDict, directory: str, settings: dict, layout) -> Plan:
    """The plan of `directory`: checked against an earlier one, else written with its tokenizer."""
    for name in (manifests.MANIFEST_FILE, manifests.PLAN_FILE):
        earlier = manifests.read_json(os.path.join(directory, name))
        if earlier is not None:
            manifests.check_settings(os.path.join(directory, name), earlier["settings"], settings)
            info = earlier["tokenizer"]
            path = os.path.join(directory, info["file"])
            if not os.path.isfile(path) or file_sha256(path) != info["sha256"]:
                raise UserError(
                    f"{path} is missing or is not the tokenizer {name} records; delete "
                    f"{directory} and prepare it again."
                )
            tokenizer = load_saved_tokenizer(path, info["kind"], info.get("do_lower_case"))
            return Plan.create(settings, layout, tokenizer)
    tokenizer = build_tokenizer(config, layout)  # may fail: nothing is written before this
    os.makedirs(directory, exist_ok=True)
    name = save_tokenizer(tokenizer, directory)
    info = {
        "file": name,
        "sha256": file_sha256(os.path.join(directory, name)),
        "kind": settings["tokenizer"]["kind"],
        "do_lower_case": settings["tokenizer"].get("do_lower_case"),
        "vocab_size": tokenizer.vocab_size,
        "cls_id": tokenizer.cls_id,
        "sep_id": tokenizer.sep_id,
        "pad_id": tokenizer.pad_id,
    }
    manifests.write_json(
        os.path.join(directory, manifests.PLAN_FILE), {"settings": settings, "tokenizer": info}
    )
    return Plan.create(settings, layout, tokenizer)


def task_shards(num_shards: int, task_index: int, num_tasks: int) -> list[int]:
    """The shards of task `task_index` of `num_tasks` (a SLURM array, several VMs): every
    `num_tasks`-th one, so the tasks share big and small slices alike."""
    return list(range(task_index, num_shards, num_tasks))


def write_shard(plan: Plan, directory: str, shard: int) -> dict:
    """Prepares one shard and writes its files, then its done-record (each atomically)."""
    names = manifests.shard_files(shard, plan.num_shards)
    records = prepare_shard(plan, shard)
    entry = {
        "shard": shard,
        "documents": records.documents,
        "sentences": records.sentences,
        "text_bytes": records.text_bytes,
    }
    for split in ("train", "eval"):
        path = os.path.join(directory, names[split])
        count = write_records(path, getattr(records, split))
        entry[split] = {
            "file": names[split],
            "records": count,
            "bytes": os.path.getsize(path),
            "sha256": file_sha256(path),
        }
    manifests.write_json(os.path.join(directory, names["done"]), entry)
    return entry


def finished_shard(directory: str, plan: Plan, shard: int) -> dict | None:
    """A shard's done-record if the shard and its files are complete, else None."""
    names = manifests.shard_files(shard, plan.num_shards)
    entry = manifests.read_json(os.path.join(directory, names["done"]))
    if entry is None:
        return None
    for split in ("train", "eval"):
        path = os.path.join(directory, entry[split]["file"])
        if not os.path.isfile(path) or os.path.getsize(path) != entry[split]["bytes"]:
            return None
    return entry


def finish(directory: str, plan: Plan) -> manifests.Manifest | None:
    """Writes the manifest once every shard is done (by whichever task gets there)."""
    entries = [finished_shard(directory, plan, shard) for shard in range(plan.num_shards)]
    missing = sum(entry is None for entry in entries)
    if missing:
        logging.info(
            "%d of %d shards are still to be prepared (by other tasks); the manifest is "
            "written when all are done.", missing, plan.num_shards,
        )  # fmt: skip
        return None
    planned = manifests.read_json(os.path.join(directory, manifests.PLAN_FILE))
    content = planned | {
        "shards": entries,
        "train_records": sum(entry["train"]["records"] for entry in entries),
        "eval_records": sum(entry["eval"]["records"] for entry in entries),
    }
    path = os.path.join(directory, manifests.MANIFEST_FILE)
    if manifests.read_json(path) != content:
        manifests.write_json(path, content)
    return manifests.read_manifest(directory)


class Progress:
    """Logs shards, documents and text done, the rate and the time left."""

    def __init__(self, plan: Plan, pending: Sequence[int]):
        self._plan, self._total = plan, len(pending)
        self._units_total = sum(map(plan.shard_text_size, pending))
        self._units = self._documents = self._text_bytes = self._done = 0
        self._start = time.monotonic()

    def shard_done(self, entry: dict) -> None:
        self._done += 1
        self._units += self._plan.shard_text_size(entry["shard"])
        self._documents += entry["documents"]
        self._text_bytes += entry["text_bytes"]
        elapsed = time.monotonic() - self._start
        left = elapsed * (self._units_total - self._units) / max(self._units, 1)
        logging.info(
            "prepare: %d/%d shards, %s documents, %.1f MB of text, %.2f MB/s, ETA %dm%02ds",
            self._done, self._total, f"{self._documents:,}", self._text_bytes / 1e6,
            self._text_bytes / 1e6 / max(elapsed, 1e-9), left // 60, left % 60,
        )  # fmt: skip


def run_local(
    plan: Plan, directory: str, shards: Sequence[int], workers: int, progress: Progress
) -> None:
    """The shards in this process (one worker) or a pool of fresh worker processes."""
    if workers <= 1 or len(shards) == 1:
        entries: Iterable[dict] = (write_shard(plan, directory, shard) for shard in shards)
        for entry in entries:
            progress.shard_done(entry)
        return
    # Spawned, not forked: the caller may hold threads (JAX, TensorFlow) a fork would break.
    context = multiprocessing.get_context("spawn")
    with context.Pool(min(workers, len(shards))) as pool:
        task = functools.partial(write_shard, plan, directory)
        for entry in pool.imap_unordered(task, shards):
            progress.shard_done(entry)


def run_beam(
    plan: Plan,
    directory: str,
    shards: Sequence[int],
    workers: int,
    options: Sequence[str],
    progress: Progress,
) -> None:
    """The shards as an Apache Beam pipeline (DirectRunner unless `options` name another)."""
    try:
        import apache_beam as beam
        from apache_beam.options.pipeline_options import PipelineOptions
    except ImportError:
        raise UserError(
            "--runner=beam needs Apache Beam; install it with pip install 'bert_jax[beam]'."
        ) from None
    flags = list(options) or ["--runner=DirectRunner"]
    if workers > 1 and not any(flag.startswith("--direct_num_workers") for flag in flags):
        flags += [f"--direct_num_workers={workers}", "--direct_running_mode=multi_processing"]
    with beam.Pipeline(options=PipelineOptions(flags)) as pipeline:
        _ = (
            pipeline
            | "Shards" >> beam.Create(list(shards))
            | "Spread" >> beam.Reshuffle()
            | "Prepare" >> beam.Map(lambda shard: write_shard(plan, directory, shard))
        )
    for shard in shards:
        progress.shard_done(finished_shard(directory, plan, shard))
