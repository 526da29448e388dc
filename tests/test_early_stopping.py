"""Early stopping: when it stops, what it keeps, and that a rerun does not train further."""

import os

import numpy as np
import pytest
from test_finetune import SST2, finetune, read_tsv, write_vocab

from conftest import TINY_FINETUNE, final_params, read_scalars


def test_counts_evaluations_without_an_improvement_beyond_min_delta():
    from bert_jax.early_stopping import EarlyStopping

    stopper = EarlyStopping(2, 0.01, "max", "eval/accuracy")
    decisions = [
        stopper.update(step, {"eval/accuracy": value})
        for step, value in enumerate([0.5, 0.6, 0.605, 0.609, 0.7, 0.705, float("nan")])
    ]
    # 0.605 and 0.609 are within min_delta of 0.6, 0.705 of 0.7, and NaN never improves.
    assert decisions == [False, False, False, True, False, False, True]
    assert stopper.state() == {"best": 0.7, "evals_without_improvement": 2}

    resumed = EarlyStopping(2, 0.01, "max", "eval/accuracy")
    resumed.load(stopper.state())
    assert resumed.stopped
    more_patient = EarlyStopping(3, 0.01, "max", "eval/accuracy")
    more_patient.load(stopper.state())
    assert not more_patient.stopped  # a larger patience lets the run continue

    lower = EarlyStopping(1, 0.0, "min", "eval/loss")
    assert [lower.update(s, {"eval/loss": v}) for s, v in enumerate([3.0, 2.0, 2.0])] == [
        False,
        False,
        True,
    ]
    off = EarlyStopping(None, 0.0, "max", "eval/accuracy")
    assert not any(off.update(s, {"eval/accuracy": 0.0}) for s in range(10)) and not off.stopped


def test_bad_settings_are_refused():
    from bert_jax.early_stopping import EarlyStopping
    from bert_jax.errors import UserError

    with pytest.raises(UserError, match="early_stopping_patience=0 must be a positive"):
        EarlyStopping(0, 0.0, "max", "eval/accuracy")
    with pytest.raises(UserError, match="early_stopping_min_delta=-0.1 must be"):
        EarlyStopping(2, -0.1, "max", "eval/accuracy")


def _steps(directory: str) -> list[int]:
    return sorted(int(name) for name in os.listdir(directory) if name.isdigit())


@pytest.mark.slow
def test_stops_after_patience_keeps_best_and_a_rerun_trains_no_further(tmp_path):
    rows = read_tsv(os.path.join(SST2, "train.tsv"))[:256]
    train = tmp_path / "train.tsv"
    train.write_text("sentence\tlabel\n" + "".join(f"{s}\t{y}\n" for s, y in rows))
    vocab = write_vocab(tmp_path / "vocab.txt", [w for s, _ in rows for w in s.split()])
    workdir = str(tmp_path / "run")
    settings = TINY_FINETUNE | {
        "data.tokenizer": vocab,
        "data.train": str(train),
        "data.validation": os.path.join(SST2, "dev.tsv"),
        "batch_size": 8,
        "num_train_steps": 40,
        "log_every_steps": 2,
        "eval_every_steps": 2,
        "checkpoint_every_steps": 100,
        # Accuracy never beats its first value by more than 1: evaluations 2 and 3 count.
        "early_stopping_patience": 2,
        "early_stopping_min_delta": 1.0,
    }
    result = finetune("finetune_glue", workdir, **settings)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Early stopping at step 6" in result.stderr
    assert _steps(os.path.join(workdir, "checkpoints")) == [6]
    assert _steps(os.path.join(workdir, "best")) != []
    scalars = read_scalars(workdir)
    assert sorted(scalars["eval/accuracy"]) == [2, 4, 6]
    assert max(scalars["train/loss"]) == 6
    before = final_params(workdir)

    rerun = finetune("finetune_glue", workdir, **settings)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "The run stopped early at step 6; nothing to do." in rerun.stderr
    assert _steps(os.path.join(workdir, "checkpoints")) == [6]
    assert read_scalars(workdir) == scalars
    after = final_params(workdir)
    assert all(np.array_equal(before[k], after[k]) for k in before)
