"""Corpus scale: prepare corpora of several sizes and print one JSON line per size.

    python benchmarks/corpus_scale.py --workdir=/tmp/scale [--sizes=5,100,1000] [--num_shards=8]
        [--workers=1,2] [--tokenizer=MODEL]

Each corpus (MB of text) repeats the default corpus's documents; one SentencePiece model, trained
by preparing the first size, tokenizes every size. Per size: the tokenizer's own batch-encode
rate on that text, preparation MB/s per worker with each `--workers` count of local workers,
the time from process start to the first train step and that process's peak RSS when training
from the prepared directory, streamed masked sequences/s at 128 tokens (in this process, one
Grain worker, two workers), and the records each process of a 2-process job reads.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, _REPO)
_CONFIG = os.path.join(_REPO, "configs", "pretrain.py")
_SEQUENCES_BATCH = 256  # rows per batch when timing the streamed input
_READS_SCRIPT = """
import sys
from bert_jax.data.manifest import read_manifest
from bert_jax.data.pipeline import masking_options
from bert_jax.data.pair_records import RowLayout, record_dtype
from bert_jax.data.prepared_records import PreparedRecords
from bert_jax.data.streaming import StreamedBatches
from bert_jax.data.tokenizer_choice import load_saved_tokenizer
import os, ml_collections
directory, index, batches = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
manifest = read_manifest(directory)
info = manifest.tokenizer
tokenizer = load_saved_tokenizer(os.path.join(directory, info["file"]), info["kind"], None)
config = ml_collections.ConfigDict({"data": {"masked_lm_prob": 0.15, "max_seq_length": 128,
                                             "whole_word_masking": False}})
layout = RowLayout(record_dtype(tokenizer.vocab_size).str, 128, info["cls_id"], info["sep_id"],
                   info["pad_id"])
records = PreparedRecords(manifest.split_files("train"))
stream = StreamedBatches(records, layout, masking_options(config, tokenizer), global_batch_size=64,
                         seed=0, process_index=index, process_count=2, num_workers=0, prefetch=0)
for _ in range(batches):
    next(stream)
print(records.records_read)
"""


def build_corpus(path: str, megabytes: float) -> int:
    """A BERT-format file of about `megabytes` MB: the default corpus's documents, repeated."""
    from bert_jax.data.corpus import default_corpus

    text = ("\n\n".join("\n".join(doc) for doc in default_corpus()) + "\n\n").encode("utf-8")
    target = int(megabytes * 1e6)
    with open(path, "wb") as file:
        for _ in range(target // len(text)):
            file.write(text)
        file.write(text[: target % len(text)].rsplit(b"\n\n", 1)[0] + b"\n")
    return os.path.getsize(path)


def config_for(corpus: str, **data):
    import importlib.util

    from ml_collections import config_flags  # noqa: F401 - the config file imports it

    spec = importlib.util.spec_from_file_location("pretrain_config", _CONFIG)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config()
    config.data.corpus = corpus
    for key, value in data.items():
        config.data[key] = value
    return config


def tokenizer_rate(tokenizer_path: str, corpus: str, limit_mb: float = 50) -> float:
    """MB/s of SentencePiece's batch encode (one thread) on the corpus's first sentences."""
    from bert_jax.data.sentencepiece import SentencePiece

    sentences, size = [], 0
    with open(corpus, "rb") as file:
        for line in file:
            sentence = " ".join(line.decode("utf-8", "replace").split())
            if sentence:
                sentences.append(sentence)
                size += len(sentence.encode("utf-8"))
                if size >= limit_mb * 1e6:
                    break
    tokenizer = SentencePiece.load(tokenizer_path)
    start = time.perf_counter()
    tokenizer.encode_batch(sentences)
    return size / 1e6 / (time.perf_counter() - start)


def prepare_seconds(corpus: str, output: str, tokenizer: str, workers: int, shards: int) -> float:
    """Wall time of `bert_jax.prepare` with a given tokenizer (so only the shards are timed)."""
    shutil.rmtree(output, ignore_errors=True)
    command = [
        sys.executable, "-m", "bert_jax.prepare", f"--config={_CONFIG}", f"--output={output}",
        f"--config.data.corpus={corpus}", f"--config.data.tokenizer={tokenizer}",
        f"--workers={workers}", f"--num_shards={shards}",
    ]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(command, cwd=_REPO, check=True, capture_output=True)
    return time.perf_counter() - start


def first_step(prepared: str, workdir: str) -> tuple[float, int]:
    """(seconds from process start to the first train step's log line, peak RSS in bytes)."""
    shutil.rmtree(workdir, ignore_errors=True)
    command = [
        sys.executable, "-m", "bert_jax.main", f"--config={_CONFIG}", f"--workdir={workdir}",
        f"--config.data.corpus=prepared:{prepared}", "--config.num_train_steps=1",
        "--config.log_every_steps=1", "--config.warmup_steps=0", "--config.data.max_eval_batches=1",
    ]  # fmt: skip
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=_REPO, stderr=subprocess.PIPE, text=True)
    seconds = None
    for line in process.stderr:
        if seconds is None and re.search(r"step 1/1 ", line):
            seconds = time.perf_counter() - start
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode or seconds is None:
        raise RuntimeError(f"training from {prepared} failed ({process.returncode})")
    return seconds, usage.ru_maxrss * 1024


def sequences_per_sec(prepared: str, workers: int, batches: int) -> float:
    """Masked sequences/s of the streamed input (`workers` 0: in this process, no prefetch)."""
    from bert_jax.data.pipeline import build_pretraining_data

    config = config_for(
        f"prepared:{prepared}", num_workers=workers, prefetch=0 if not workers else 4
    )
    config.batch_size, config.data.eval_batch_size = _SEQUENCES_BATCH, 8
    data = build_pretraining_data(config, "/nonexistent")
    next(data.train)  # worker start-up is not counted
    start = time.perf_counter()
    for _ in range(batches):
        next(data.train)
    rate = batches * _SEQUENCES_BATCH / (time.perf_counter() - start)
    data.train.close()
    return rate


def records_read_per_process(prepared: str, batches: int) -> list[int]:
    """Records each of two processes reads for `batches` global batches of 64 rows."""
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _READS_SCRIPT, prepared, str(index), str(batches)],
            cwd=_REPO,
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for index in range(2)
    ]
    return [int(process.communicate()[0].split()[-1]) for process in processes]


def train_tokenizer(size_mb: float, workdir: str) -> str:
    """The SentencePiece model every size is prepared with, trained once by a real preparation
    of the first size (its sample of the same repeated documents is the same at any size)."""
    from bert_jax.data.prepare_runners import prepare_directory

    corpus = os.path.join(workdir, f"corpus-{size_mb:g}MB.txt")
    build_corpus(corpus, size_mb)
    output = os.path.join(workdir, "tokenizer-prepared")
    shutil.rmtree(output, ignore_errors=True)
    prepare_directory(config_for(corpus), output, num_shards=4)
    return os.path.join(output, "tokenizer.model")


def measure(
    size_mb: float,
    workdir: str,
    shards: int | None,
    tokenizer: str,
    workers: list[int],
    reuse: bool = False,
) -> dict:
    corpus = os.path.join(workdir, f"corpus-{size_mb:g}MB.txt")
    size = (
        os.path.getsize(corpus)
        if reuse and os.path.exists(corpus)
        else build_corpus(corpus, size_mb)
    )
    shards = shards or max(4, -(-size // (64 << 20)))
    record = {"corpus_mb": round(size / 1e6, 2), "num_shards": shards}
    seconds = {}
    for count in workers:
        output = os.path.join(workdir, f"prepared-{size_mb:g}MB-w{count}")
        if reuse and os.path.exists(os.path.join(output, "manifest.json")):
            continue  # prepared by an earlier run: only the training-side figures are taken
        seconds[count] = prepare_seconds(corpus, output, tokenizer, count, shards)
        record[f"prepare_mb_per_sec_per_worker_{count}"] = round(
            size / 1e6 / seconds[count] / count, 3
        )
    if 1 in seconds and 2 in seconds:
        record["prepare_speedup_2_vs_1"] = round(seconds[1] / seconds[2], 3)
    prepared = output  # the last one prepared: all are byte-identical
    to_step, rss = first_step(prepared, os.path.join(workdir, "train"))
    return record | {
        "tokenizer_batch_encode_mb_per_sec": round(tokenizer_rate(tokenizer, corpus), 3),
        "start_to_first_step_sec": round(to_step, 2),
        "train_peak_rss_bytes": rss,
        "masked_sequences_per_sec_in_process": round(sequences_per_sec(prepared, 0, 40)),
        "masked_sequences_per_sec_1_worker": round(sequences_per_sec(prepared, 1, 40)),
        "masked_sequences_per_sec_2_workers": round(sequences_per_sec(prepared, 2, 40)),
        "records_read_per_process_2_processes_20_batches_of_64": records_read_per_process(
            prepared, batches=20
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--sizes", default="5,100,1000", help="Corpus sizes in MB.")
    parser.add_argument("--num_shards", type=int, help="Default: one per 64 MiB, at least 4.")
    parser.add_argument(
        "--workers", default="1,2", help="Local preparation workers to time, e.g. 2 alone at 1 GB."
    )
    parser.add_argument("--tokenizer", help="A SentencePiece .model; default: trained once here.")
    parser.add_argument(
        "--reuse", action="store_true", help="Keep corpora and prepared directories already here."
    )
    args = parser.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    from absl import logging

    logging.set_verbosity(logging.WARNING)
    sizes = [float(size) for size in args.sizes.split(",")]
    workers = [int(count) for count in args.workers.split(",")]
    tokenizer = args.tokenizer or train_tokenizer(sizes[0], args.workdir)
    for size in sizes:
        record = measure(size, args.workdir, args.num_shards, tokenizer, workers, args.reuse)
        print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
