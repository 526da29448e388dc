"""Preparation: the same shards from every runner, the in-memory construction with one shard,
restartable after a kill, and one-sentence refusals of directories that do not fit."""

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from bert_jax.data.corpus import load_documents
from bert_jax.data.manifest import read_manifest
from bert_jax.data.pair_records import RowLayout, decode_pairs
from bert_jax.data.pipeline import build_pretraining_data
from bert_jax.data.preparation import held_out_split, tokenize_documents
from bert_jax.data.prepare_runners import prepare_directory
from bert_jax.data.prepared_records import PreparedRecords
from bert_jax.data.sentence_pairs import create_pair_examples
from bert_jax.data.tokenizer_choice import load_saved_tokenizer
from bert_jax.errors import UserError
from conftest import REPO, STANDARD, load_pretrain_config, snapshot

PREPARE = [sys.executable, "-m", "bert_jax.prepare", f"--config={STANDARD}"]
SMALL = {"data.vocab_size": 300, "data.max_seq_length": 32, "data.dupe_factor": 1}


def pretrain_config(**overrides):
    """configs/pretrain.py with small settings and `overrides` ({"data.corpus": ...})."""
    return load_pretrain_config(**(SMALL | overrides))


def prepare_command(output: str, corpus: str, *flags: str) -> list[str]:
    """The prepare command; `flags` come last, so they override the small settings."""
    settings = SMALL | {"data.corpus": corpus}
    config = [f"--config.{k}={v}" for k, v in settings.items()]
    return PREPARE + [f"--output={output}", *config, *flags]


def split_rows(directory: str, split: str) -> dict[str, np.ndarray]:
    """Every record of a prepared split, decoded into rows."""
    manifest = read_manifest(directory)
    info, records = manifest.tokenizer, PreparedRecords(manifest.split_files(split))
    layout = RowLayout(
        "<u2", manifest.settings["max_seq_length"], info["cls_id"], info["sep_id"], info["pad_id"]
    )
    return decode_pairs(records.read(np.arange(len(records))), layout)


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory) -> str:
    """120 documents of the default corpus in the BERT text format (about 170 kB)."""
    from bert_jax.data.corpus import default_corpus

    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text("\n\n".join("\n".join(doc) for doc in default_corpus()[:120]) + "\n")
    return str(path)


@pytest.fixture(scope="module")
def four_shards(tmp_path_factory, corpus_file) -> str:
    """The corpus prepared in this process into 4 shards: the reference for the runners."""
    directory = str(tmp_path_factory.mktemp("four") / "prepared")
    prepare_directory(pretrain_config(**{"data.corpus": corpus_file}), directory, num_shards=4)
    return directory


@pytest.mark.parametrize("task", ["nsp", "sop"])
def test_one_shard_gives_the_examples_of_the_in_memory_construction(tmp_path, corpus_file, task):
    config = pretrain_config(**{"data.corpus": corpus_file}, sentence_task=task)
    directory = str(tmp_path / "prepared")
    prepare_directory(config, directory, num_shards=1)
    info = read_manifest(directory).tokenizer
    tokenizer = load_saved_tokenizer(os.path.join(directory, info["file"]), info["kind"], None)

    train_docs, eval_docs = held_out_split(load_documents(corpus_file), 0.05, [0, 0, 2], True)
    assert len(eval_docs) == 6  # 5% of 120 documents, whole documents held out
    for split, docs, stream in (("train", train_docs, 0), ("eval", eval_docs, 1)):
        expected = create_pair_examples(
            tokenize_documents(tokenizer, docs),
            max_seq_length=32,
            short_seq_prob=0.1,
            sentence_task=task,
            cls_id=tokenizer.cls_id,
            sep_id=tokenizer.sep_id,
            pad_id=tokenizer.pad_id,
            seed=[0, 0, stream],
        )
        got = split_rows(directory, split)
        assert len(expected) > 10
        assert np.array_equal(got["input_ids"], expected.input_ids)
        assert np.array_equal(got["token_type_ids"], expected.token_type_ids)
        assert np.array_equal(got["next_sentence_labels"], expected.next_sentence_labels)


def test_many_shards_keep_the_label_balance_and_the_masking_statistics(tmp_path, corpus_file):
    one = str(tmp_path / "one")
    config = pretrain_config(**{"data.corpus": corpus_file, "data.max_seq_length": 128})
    prepare_directory(config, one, num_shards=1)
    sixteen = str(tmp_path / "sixteen")
    prepare_directory(config, sixteen, num_shards=16)
    counts = [len(split_rows(d, "train")["input_ids"]) for d in (one, sixteen)]
    assert abs(counts[0] - counts[1]) < 0.1 * counts[0]  # the same documents, paired per shard
    balance = [split_rows(d, "train")["next_sentence_labels"].mean() for d in (one, sixteen)]
    # Share of random next sentences; about 1,500 pairs each, so 0.02 is one standard error.
    assert abs(balance[0] - balance[1]) < 0.06, balance
    assert 0.4 < balance[0] < 0.7, balance

    def masking_statistics(directory):
        config.data.corpus, config.batch_size = f"prepared:{directory}", 32
        config.data.num_workers, config.data.eval_batch_size = 0, 8
        data = build_pretraining_data(config, str(tmp_path / "unused"))
        batches = [next(data.train) for _ in range(data.train.batches_per_epoch)]
        real = np.concatenate([b["masked_lm_weights"] for b in batches]) > 0
        ids = np.concatenate([b["input_ids"] for b in batches])
        positions = np.concatenate([b["masked_lm_positions"] for b in batches])
        now = np.take_along_axis(ids, positions, 1)[real]
        before = np.concatenate([b["masked_lm_ids"] for b in batches])[real]
        maskable = np.concatenate([b["attention_mask"] for b in batches]).sum(1) - 3
        return real.sum() / maskable.sum(), (now == 4).mean(), (now == before).mean()

    single, many = masking_statistics(one), masking_statistics(sixteen)
    assert abs(single[0] - 0.15) < 0.02 and abs(many[0] - 0.15) < 0.02  # share of tokens masked
    assert abs(single[1] - 0.8) < 0.03 and abs(many[1] - 0.8) < 0.03  # [MASK]
    assert abs(single[2] - 0.1) < 0.03 and abs(many[2] - 0.1) < 0.03  # kept


def test_local_workers_tasks_and_beam_write_the_same_bytes(tmp_path, corpus_file, four_shards):
    reference = snapshot(four_shards)
    assert sum(name.endswith(".array_record") for name in reference) == 8
    pooled = str(tmp_path / "pooled")
    subprocess.run(
        prepare_command(pooled, corpus_file, "--num_shards=4", "--workers=2"),
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    assert snapshot(pooled) == reference

    tasks = str(tmp_path / "tasks")
    for index in (1, 0):
        command = prepare_command(
            tasks,
            corpus_file,
            "--num_shards=4",
            f"--task_index={index}",
            "--num_tasks=2",
            "--workers=1",
        )
        result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-2000:]
        assert os.path.exists(os.path.join(tasks, "manifest.json")) == (index == 0)
    assert snapshot(tasks) == reference

    if importlib.util.find_spec("apache_beam") is None:
        pytest.skip("apache_beam is not installed (pip install -e '.[beam]')")
    beam = str(tmp_path / "beam")
    command = prepare_command(beam, corpus_file, "--num_shards=4", "--runner=beam", "--workers=1")
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert snapshot(beam) == reference


def test_preparation_killed_mid_shard_then_rerun_is_byte_identical(tmp_path, corpus_file):
    big = tmp_path / "big.txt"
    big.write_text(open(corpus_file).read() * 12)  # 12 shards of about 170 kB
    reference = str(tmp_path / "reference")
    flags = ("--num_shards=12", "--workers=1")
    subprocess.run(
        prepare_command(reference, str(big), *flags), cwd=REPO, check=True, capture_output=True
    )

    killed = str(tmp_path / "killed")
    process = subprocess.Popen(
        prepare_command(killed, str(big), *flags), cwd=REPO, stderr=subprocess.DEVNULL
    )
    first_done = os.path.join(killed, "shard-00000-of-00012.json")
    while not os.path.exists(first_done) and process.poll() is None:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    left = os.listdir(killed)
    assert "manifest.json" not in left and sum(n.startswith("shard-") for n in left) < 12
    # A shard written half-way: a file without its done-record, and a writer's temporary.
    with open(os.path.join(killed, "train-00011-of-00012.array_record"), "wb") as file:
        file.write(b"torn")
    ghost = f"eval-00011-of-00012.array_record.tmp-{socket.gethostname()}-999999-0"  # dead writer
    open(os.path.join(killed, ghost), "wb").close()

    result = subprocess.run(
        prepare_command(killed, str(big), *flags), cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Preparing" in result.stderr and "of 12 shards" in result.stderr
    assert snapshot(killed) == snapshot(reference)


def assert_refused(result, *words: str) -> None:
    assert result.returncode == 1, result.stderr[-2000:]
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("error: ") and "Traceback" not in result.stderr, result.stderr[-2000:]
    for word in words:
        assert word in message, message


def test_a_directory_of_other_settings_or_tokenizer_is_refused_untouched(
    tmp_path, corpus_file, four_shards
):
    before = snapshot(four_shards)
    other = subprocess.run(
        prepare_command(
            four_shards, corpus_file, "--num_shards=4", "--config.data.max_seq_length=64"
        ),
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert_refused(other, four_shards, "max_seq_length=32", "64")
    tokenizer = os.path.join(four_shards, "tokenizer.model")
    given = subprocess.run(
        prepare_command(
            four_shards, corpus_file, "--num_shards=4", f"--config.data.tokenizer={tokenizer}"
        ),
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert_refused(given, four_shards, "data.tokenizer")
    assert snapshot(four_shards) == before


def test_a_glob_matching_nothing_writes_nothing(tmp_path):
    output = str(tmp_path / "out")
    result = subprocess.run(
        prepare_command(output, str(tmp_path / "none-*.txt")),
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert_refused(result, "data.corpus", "none-*.txt")
    assert not os.path.exists(output)


def test_training_refuses_a_missing_or_truncated_shard_and_an_unprepared_directory(
    tmp_path, four_shards
):
    config = pretrain_config(**{"data.corpus": f"prepared:{tmp_path}"})
    with pytest.raises(UserError, match=f"{tmp_path} holds no manifest.json"):
        build_pretraining_data(config, str(tmp_path / "run"))

    damaged = tmp_path / "damaged"
    os.system(f"cp -r {four_shards} {damaged}")
    config.data.corpus = f"prepared:{damaged}"
    shard = damaged / "train-00002-of-00004.array_record"
    shard.write_bytes(shard.read_bytes()[:1000])
    with pytest.raises(UserError, match=f"{shard} has 1000 bytes.*truncated"):
        build_pretraining_data(config, str(tmp_path / "run"))
    shard.unlink()
    with pytest.raises(UserError, match=f"{shard} is missing"):
        build_pretraining_data(config, str(tmp_path / "run"))
    config.data.corpus, config.data.max_seq_length = f"prepared:{four_shards}", 64
    with pytest.raises(UserError, match="max_seq_length=32, but this config gives 64"):
        build_pretraining_data(config, str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_main_fails_in_one_line_on_prepared_without_a_manifest(tmp_path):
    from conftest import run_main

    result = run_main(str(tmp_path / "run"), **{"data.corpus": f"prepared:{tmp_path}"})
    assert_refused(result, str(tmp_path), "bert_jax.prepare")
    assert not (tmp_path / "run").exists()


def test_a_wordpiece_vocab_gives_the_ids_of_wordpiece_py(tmp_path, corpus_file):
    from bert_jax.data.wordpiece import WordPiece

    words = sorted({w for line in open(corpus_file) for w in line.lower().split()})[:2000]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [w for w in words if w.isalpha()]
    vocab += [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"] + list("abcdefghijklmnopqrstuvwxyz.,")
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(vocab) + "\n")
    directory = str(tmp_path / "prepared")
    config = pretrain_config(**{"data.corpus": corpus_file, "data.tokenizer": str(path)})
    prepare_directory(config, directory, num_shards=1)
    tokenizer = WordPiece.from_vocab_file(str(path))
    train_docs, _ = held_out_split(load_documents(corpus_file), 0.05, [0, 0, 2], True)
    expected = create_pair_examples(
        [[tokenizer.encode(s) for s in doc] for doc in train_docs],
        max_seq_length=32, short_seq_prob=0.1, sentence_task="nsp",
        cls_id=2, sep_id=3, pad_id=0, seed=[0, 0, 0],
    )  # fmt: skip
    assert np.array_equal(split_rows(directory, "train")["input_ids"], expected.input_ids)
    assert read_manifest(directory).tokenizer["kind"] == "wordpiece"
