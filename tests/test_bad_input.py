"""Bad input: one sentence naming what is wrong, a non-zero exit, and the workdir left as it was."""

import os

import pytest
import sentencepiece as spm

from conftest import run_main, snapshot


def assert_clean_failure(result, *words: str) -> None:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    message = lines[-1]
    assert message.startswith("error: "), result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    for word in words:
        assert word in message, message


@pytest.mark.parametrize(
    "overrides, words",
    [
        ({"model.hiden_size": 64}, ["hiden_size"]),
        ({"batch_size": "eight"}, ["batch_size"]),
        ({"sentence_task": "mlm"}, ["sentence_task"]),
        ({"data.max_seq_length": 1024}, ["data.max_seq_length", "max_position_embeddings"]),
        ({"model.preset": "huge"}, ["model.preset"]),
        ({"data.corpus": "/no/corpus-*.txt"}, ["data.corpus", "/no/corpus-*.txt"]),
        ({"optimizer.name": "sgdx"}, ["optimizer.name"]),
        # Settings that would have no effect are refused, not ignored.
        ({"optimizer.name": "adam"}, ["optimizer.weight_decay=0.01", "optimizer.name=adamw"]),
        ({"dtype": "float16"}, ["dtype='float16'", "loss scaling", "dtype=bfloat16"]),
        ({"best_metric": "eval/accuracy"}, ["best_metric='eval/accuracy'", "'eval/mlm_loss'"]),
        # A train step that cannot fit is refused after compiling it, before training.
        (
            {"device_memory_limit_bytes": 2**20},
            [
                "1.0 MiB (device_memory_limit_bytes)",
                "temporaries",
                "model.remat=true",
                "mesh.fsdp",
                "grad_accum_steps",
            ],
        ),  # fmt: skip
    ],
)
def test_bad_setting_fails_before_touching_the_workdir(tmp_path, overrides, words):
    workdir = tmp_path / "run"
    assert_clean_failure(run_main(str(workdir), **overrides), *words)
    assert not workdir.exists()


def test_unknown_config_variant_is_one_line_not_the_config_files_traceback(tmp_path):
    result = run_main(str(tmp_path / "run"), config="configs/pretrain.py:quick")
    assert_clean_failure(result, "could not be loaded", "no variant 'quick'", ":standard")
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "run").exists()


def test_empty_corpus(tmp_path):
    corpus = tmp_path / "empty.txt"
    corpus.write_text("\n\n  \n")
    result = run_main(str(tmp_path / "run"), **{"data.corpus": str(corpus)})
    assert_clean_failure(result, "data.corpus", str(corpus))
    assert not (tmp_path / "run").exists()


def test_tokenizer_without_the_special_tokens(tmp_path, tiny_corpus):
    prefix = str(tmp_path / "plain")
    spm.SentencePieceTrainer.train(input=tiny_corpus, model_prefix=prefix, vocab_size=100)
    result = run_main(str(tmp_path / "run"), **{"data.tokenizer": prefix + ".model"})
    assert_clean_failure(result, prefix + ".model")
    assert not (tmp_path / "run").exists()


def test_batch_size_the_devices_cannot_split(tmp_path):
    env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
    result = run_main(str(tmp_path / "run"), env=env, batch_size=12)
    assert_clean_failure(result, "batch_size=12", "8 devices")
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_incompatible_checkpoint_in_workdir_is_left_alone(tmp_path, tiny_corpus):
    workdir = str(tmp_path / "run")
    first = run_main(workdir, num_train_steps=4, **{"data.corpus": tiny_corpus})
    assert first.returncode == 0, first.stderr[-3000:]
    before = snapshot(workdir)
    result = run_main(
        workdir, num_train_steps=8, **{"data.corpus": tiny_corpus, "model.hidden_size": 64}
    )
    assert_clean_failure(result, os.path.join(workdir, "checkpoints"), "--workdir")
    assert snapshot(workdir) == before
