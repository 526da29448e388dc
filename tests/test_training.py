"""End to end on the embedded default corpus: it learns, logs every promised tag, keeps the best."""

import json
import math
import os

import numpy as np
import pytest

from bert_jax.checkpoint_reads import newest_step_dir, read_meta
from bert_jax.data.any_tokenizer import tokenizer_from_meta
from conftest import event_tags, final_params, read_scalars, run_main

pytestmark = pytest.mark.slow

TRAIN_TAGS = {
    "train/loss",
    "train/mlm_loss",
    "train/mlm_accuracy",
    "train/nsp_accuracy",
    "train/learning_rate",
    "train/grad_norm",
    "train/param_norm",
    "train/tokens_per_sec",
    "train/tokens_per_sec_per_device",
    "train/examples_per_sec",
    "train/mfu",
}
EVAL_TAGS = {
    "eval/mlm_loss",
    "eval/mlm_accuracy",
    "eval/nsp_accuracy",
    "eval/nsp_majority",
    "eval/mlm_perplexity",
}


PEAK = 1e11  # FLOP/s: given, so that MFU can be checked against it


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("default"))
    result = run_main(
        workdir,
        num_train_steps=150,
        warmup_steps=10,
        learning_rate=3e-3,
        log_every_steps=10,
        eval_every_steps=50,
        checkpoint_every_steps=50,
        histogram_every_steps=50,
        max_checkpoints_to_keep=2,
        batch_size=16,
        peak_flops_per_device=PEAK,
        **{
            "data.vocab_size": 1000,
            "model.hidden_size": 64,
            "model.intermediate_size": 256,
            "optimizer.schedule": "warmup_cosine",
            "optimizer.end_learning_rate": 1e-3,
        },
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir, result


def test_loss_goes_down_on_the_default_corpus(default_run):
    scalars = read_scalars(default_run[0])
    train = [scalars["train/mlm_loss"][s] for s in sorted(scalars["train/mlm_loss"])]
    # From ln(1000) = 6.9 (uniform guessing) to below 6.4: the unigram statistics are learnt.
    assert train[-1] < train[0] - 0.5, train
    evals = [scalars["eval/mlm_loss"][s] for s in sorted(scalars["eval/mlm_loss"])]
    assert evals[-1] < evals[0], evals


def test_tensorboard_holds_every_promised_tag(default_run):
    tags = event_tags(default_run[0])
    assert TRAIN_TAGS | EVAL_TAGS <= tags["scalars"], tags["scalars"]
    histograms = tags["histograms"]
    assert any(t.startswith("params/") for t in histograms), histograms
    assert any(t.startswith("grads/") for t in histograms), histograms
    assert "hparams" in tags


def test_throughput_and_mfu_are_positive_and_agree_with_the_clock(default_run):
    workdir, result = default_run
    scalars, written = read_scalars(workdir), read_scalars(workdir, wall_time=True)
    tokens_per_sec, mfu = scalars["train/tokens_per_sec"], scalars["train/mfu"]
    steps = sorted(tokens_per_sec)
    assert steps == list(range(10, 151, 10))
    assert all(0 < tokens_per_sec[s] < 1e8 and 0 < mfu[s] < 1 for s in steps)
    per_device = scalars["train/tokens_per_sec_per_device"]
    assert all(per_device[s] == pytest.approx(tokens_per_sec[s]) for s in steps)  # 1 device
    with open(os.path.join(workdir, "config.json")) as file:
        config = json.load(file)
    batch, seq = config["batch_size"], config["data"]["max_seq_length"]
    # Each window's rate is its 10 steps of batch x seq tokens over the time between its log
    # lines, which is (within the writer's delay) the time between their events.
    clock = [
        10 * batch * seq / (written["train/loss"][s] - written["train/loss"][s - 10])
        for s in steps[1:]
    ]
    ratios = sorted(tokens_per_sec[s] / rate for s, rate in zip(steps[1:], clock, strict=True))
    assert 0.67 < ratios[len(ratios) // 2] < 1.5, ratios
    # MFU is the same rate in model FLOPs (of this model, batch and masking) over the peak.
    from bert_jax.checkpoint_reads import model_config_of, newest_step_dir, read_checkpoint
    from bert_jax.data.sentence_pairs import max_predictions_per_seq
    from bert_jax.flops import train_flops_per_step

    meta, params = read_checkpoint(newest_step_dir(workdir))
    predictions = max_predictions_per_seq(seq, config["data"]["masked_lm_prob"])
    flops = train_flops_per_step(model_config_of(meta, params), batch, seq, predictions, True)
    for s in steps:
        expected = tokens_per_sec[s] / (batch * seq) * flops / PEAK
        assert mfu[s] == pytest.approx(expected, rel=0.01)


def test_progress_line_and_learning_rate(default_run):
    workdir, result = default_run
    assert "step 150/150 | loss" in result.stderr and "tokens/s | MFU" in result.stderr
    assert "| ETA 0m00s" in result.stderr
    lr = read_scalars(workdir)["train/learning_rate"]
    assert lr[10] == pytest.approx(3e-3 * 9 / 10)  # the rate of update 10 (count 9) in warmup
    assert lr[80] == pytest.approx(1e-3 + 2e-3 * 0.5 * (1 + math.cos(math.pi * 69 / 140)))


def test_checkpoints_latest_n_and_best_kept_apart(default_run):
    workdir, _ = default_run
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["100", "150"]
    best = [name for name in os.listdir(os.path.join(workdir, "best")) if name.isdigit()]
    evals = read_scalars(workdir)["eval/mlm_loss"]
    assert best == [str(min(evals, key=evals.get))]
    # The run's tokenizer travels in every checkpoint, which a resume reads it back from.
    meta = read_meta(newest_step_dir(workdir))
    run_config = json.loads(meta["config"])
    assert tokenizer_from_meta(meta).vocab_size == run_config["data"]["vocab_size"]


def test_non_finite_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    workdir = str(tmp_path / "nan")
    # The rate jumps by 1e30 at step 8: the run blows up right after the checkpoint at step 8.
    result = run_main(
        workdir,
        **{
            "optimizer.schedule": "step",
            "optimizer.step_boundaries": "(0.5,)",
            "optimizer.decay_rate": 1e30,
            "optimizer.clip_norm": 0.0,
            "checkpoint_every_steps": 2,
        },
    )
    assert result.returncode == 1, result.stderr[-3000:]
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("error: ") and "at step" in message, message
    steps = sorted(int(s) for s in os.listdir(os.path.join(workdir, "checkpoints")) if s.isdigit())
    assert steps and steps[-1] <= 9
    assert all(np.isfinite(v).all() for v in final_params(workdir).values())


NOISE = ("oneDNN", "absl::InitializeLog", "cpu_feature_guard", "Config:", "!!python")


def test_start_up_says_what_trains_where_and_the_config_is_a_file(default_run):
    workdir, result = default_run
    lines = result.stderr.strip().splitlines()
    first_progress = next(i for i, line in enumerate(lines) if " step 10/150 " in line)
    start_up = lines[:first_progress]

    # Preparation (3 lines: start, progress, what it made), the compiled step, the 3 lines.
    assert len(start_up) <= 7, start_up
    assert not [line for line in lines if any(word in line for word in NOISE)]
    text = "\n".join(start_up)
    assert "pretraining (MLM + NSP) on the embedded default corpus: BERT 2 layers" in text
    assert "Steps 1..150 (from the start), batches of 16 × 32 tokens" in text
    assert f"tensorboard --logdir {workdir}" in text
    with open(os.path.join(workdir, "config.json")) as file:
        config = json.load(file)
    assert config["num_train_steps"] == 150 and config["model"]["hidden_size"] == 64
