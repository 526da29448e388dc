"""Multi-task fine-tuning: the task sampler's proportions and position, and an SST-2 + NER run
through `bert_jax.main` that resumes exactly and predicts with the head `--task` names."""

import os
import subprocess
import sys

import numpy as np
import pytest
from test_finetune import SST2, predict, read_tsv, tagged_sentences, write_conll, write_vocab

from conftest import REPO, TINY_FINETUNE, final_params, read_scalars


def _mixture(probabilities: dict[str, float], seed: int = 0):
    from bert_jax.data.batches import array_batches
    from bert_jax.data.task_mixture import TaskMixture

    tasks = {
        name: array_batches(
            {"x": np.arange(10 * (i + 1), dtype=np.int32) + 1000 * i},
            global_batch_size=2,
            seed=seed,
        )
        for i, name in enumerate(probabilities)
    }
    return TaskMixture(tasks, probabilities, seed)


def test_probabilities_by_size_temperature_and_weights():
    from bert_jax.data.task_mixture import task_probabilities
    from bert_jax.errors import UserError

    sizes = {"a": 900, "b": 100}
    assert task_probabilities(sizes, "size") == pytest.approx({"a": 0.9, "b": 0.1})
    # T=2: square roots 30 and 10.
    assert task_probabilities(sizes, "temperature", temperature=2.0) == pytest.approx(
        {"a": 0.75, "b": 0.25}
    )
    weights = task_probabilities(sizes, "weights", weights={"a": 1.0, "b": 3.0})
    assert weights == pytest.approx({"a": 0.25, "b": 0.75})
    with pytest.raises(UserError, match="sampling='uniform' is unknown"):
        task_probabilities(sizes, "uniform")
    with pytest.raises(UserError, match="not all 0"):
        task_probabilities(sizes, "weights", weights={"a": 0.0, "b": 0.0})


def test_sampled_tasks_follow_the_probabilities_and_each_batch_is_its_tasks():
    from bert_jax.data.task_mixture import task_of

    probabilities = {"a": 0.5, "b": 0.3, "c": 0.2}
    mixture = _mixture(probabilities)
    counts = dict.fromkeys(probabilities, 0)
    for _ in range(6000):
        name, batch = task_of(next(mixture))
        counts[name] += 1
        assert batch["x"].min() // 1000 == "abc".index(name)  # rows of that task's data
    for name, p in probabilities.items():  # 4 standard deviations of a binomial share
        assert abs(counts[name] / 6000 - p) < 4 * np.sqrt(p * (1 - p) / 6000), counts


def test_sampler_position_is_small_and_resumes_the_same_batches():
    import json

    from bert_jax.errors import UserError

    probabilities = {"a": 0.5, "b": 0.3, "c": 0.2}
    mixture = _mixture(probabilities)
    for _ in range(37):
        next(mixture)
    state = mixture.get_state()
    assert len(json.dumps(state)) < 200  # integers, not a list of draws
    expected = [next(mixture) for _ in range(25)]
    resumed = _mixture(probabilities)
    resumed.set_state(json.loads(json.dumps(state)))
    for want in expected:
        got = next(resumed)
        assert want.keys() == got.keys() and np.array_equal(want["x"], got["x"])
    with pytest.raises(UserError, match="resume with the tasks the run started with"):
        _mixture({"a": 0.5, "b": 0.5}).set_state(state)


# End to end: SST-2 (a subset) and a synthetic NER task on one tiny encoder.

STEPS = 8
RUN = TINY_FINETUNE | {
    "batch_size": 8,
    "num_train_steps": STEPS,
    "warmup_steps": 0,
    "optimizer.schedule": "constant",  # the rate does not depend on num_train_steps
    "log_every_steps": 2,
    "eval_every_steps": 4,
    "checkpoint_every_steps": 4,
    "learning_rate": 1e-3,
    "sampling": "weights",
    "tasks.sst2.weight": 1.0,
    "tasks.ner.weight": 1.0,
}


def multitask(workdir: str, settings: dict) -> subprocess.CompletedProcess:
    command = [
        sys.executable,
        "-m",
        "bert_jax.main",
        "--config=configs/finetune_multitask.py:sst2,ner",
        f"--workdir={workdir}",
        *(f"--config.{key}={value}" for key, value in settings.items()),
    ]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("multitask")
    rows = read_tsv(os.path.join(SST2, "train.tsv"))
    train, dev = rows[:256], rows[-64:]
    ner_train, ner_dev = tagged_sentences(128, seed=0), tagged_sentences(32, seed=1)
    words = [w for s, _ in train for w in s.split()] + [w for s, _ in ner_train for w in s]
    paths = {}
    for name, chosen in [("train", train), ("dev", dev)]:
        path = root / f"{name}.tsv"
        path.write_text("sentence\tlabel\n" + "".join(f"{s}\t{y}\n" for s, y in chosen))
        paths[f"tasks.sst2.data.{'train' if name == 'train' else 'validation'}"] = str(path)
    paths["tasks.ner.data.train"] = write_conll(root / "ner_train.txt", ner_train)
    paths["tasks.ner.data.validation"] = write_conll(root / "ner_dev.txt", ner_dev)
    paths["data.tokenizer"] = write_vocab(root / "vocab.txt", words)
    return paths


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, data) -> str:
    workdir = str(tmp_path_factory.mktemp("straight") / "run")
    result = multitask(workdir, RUN | data)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


@pytest.mark.slow
def test_stopped_and_rerun_matches_uninterrupted_and_sampled_both_tasks(
    uninterrupted, data, tmp_path
):
    workdir = str(tmp_path / "resumed")
    first = multitask(workdir, RUN | data | {"num_train_steps": 6})  # between checkpoints
    assert first.returncode == 0, first.stderr[-3000:]
    second = multitask(workdir, RUN | data)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "Resuming from the checkpoint at step 6" in second.stderr

    reference, resumed = final_params(uninterrupted), final_params(workdir)
    assert reference.keys() == resumed.keys()
    for name in reference:
        assert np.array_equal(reference[name], resumed[name]), name
    assert any("heads" in name and "ner" in name for name in reference)

    scalars = read_scalars(uninterrupted)
    for tag in ("eval/sst2/accuracy", "eval/ner/f1", "eval/average"):
        assert set(scalars[tag]) == {4, 8}, tag
    for step in (4, 8):
        mean = (scalars["eval/sst2/accuracy"][step] + scalars["eval/ner/f1"][step]) / 2
        assert scalars["eval/average"][step] == pytest.approx(mean)
    shares = [sum(scalars[f"train/{task}/share"].values()) for task in ("sst2", "ner")]
    assert sum(shares) == pytest.approx(STEPS / 2) and min(shares) > 0  # both tasks trained
    resumed_scalars = read_scalars(workdir)
    assert resumed_scalars["train/loss"] == scalars["train/loss"]


@pytest.mark.slow
def test_predict_uses_the_head_task_names(uninterrupted):
    from bert_jax.errors import UserError
    from bert_jax.inference import Predictor

    sentiment = predict(uninterrupted, ["a gorgeous , witty film"], "--task=sst2")
    assert sentiment[0]["label"] in {"0", "1"} and "probabilities" in sentiment[0]
    tagger = Predictor.from_workdir(uninterrupted, task="ner")
    tags = tagger.predict_lines(["alice smith visited paris"])
    assert tags[0]["words"] == ["alice", "smith", "visited", "paris"] and len(tags[0]["tags"]) == 4
    with pytest.raises(UserError, match="has the tasks ner, sst2; no --task given"):
        Predictor.from_workdir(uninterrupted)
    with pytest.raises(UserError, match="--task=squad given"):
        Predictor.from_workdir(uninterrupted, task="squad")
