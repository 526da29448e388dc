"""launch/sweep.py: the points and commands of a sweep, its errors, and a real two-run sweep ranked
by values read back from the runs' event files."""

import glob
import math
import os
import re
import shlex
import subprocess
import sys

import pytest

from conftest import CONFIG, REPO, TINY, read_scalars

SWEEP = os.path.join(REPO, "launch", "sweep.py")


def sweep(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, SWEEP, *args], cwd=REPO, capture_output=True, text=True, timeout=600
    )


def emitted(*args: str) -> list[list[str]]:
    result = sweep(f"--config={CONFIG}", "--workdir_root=runs/s", "--emit", *args)
    assert result.returncode == 0, result.stderr
    return [shlex.split(line) for line in result.stdout.splitlines()]


def test_grid_emits_one_command_per_point_with_its_own_workdir():
    commands = emitted("--grid", "learning_rate=1e-3,3e-3", "--grid=seed=0,1",
                       "--config.num_train_steps=50")  # fmt: skip
    start = [sys.executable, "-m", "bert_jax.main", f"--config={CONFIG}"]
    assert commands == [
        start
        + [
            f"--workdir=runs/s/learning_rate={lr},seed={seed}",
            "--config.num_train_steps=50",
            f"--config.learning_rate={lr}",
            f"--config.seed={seed}",
        ]  # fmt: skip
        for lr in ("1e-3", "3e-3")
        for seed in ("0", "1")
    ]


def test_values_with_commas_inside_brackets_stay_whole():
    commands = emitted("--grid", "optimizer.step_boundaries=(0.5,0.75),(0.25,0.5)")
    assert [c[-1] for c in commands] == [
        "--config.optimizer.step_boundaries=(0.5,0.75)",
        "--config.optimizer.step_boundaries=(0.25,0.5)",
    ]
    assert commands[0][4] == "--workdir=runs/s/optimizer.step_boundaries=_0.5_0.75_"


def random_points(seed: int) -> list[dict[str, str]]:
    commands = emitted(
        "--random=5", "--space", "learning_rate=loguniform(1e-4,1e-2)",
        "--space", "model.num_layers=randint(1,3)", "--space", "sentence_task=choice(nsp,sop)",
        "--grid", "seed=0,1", f"--sweep_seed={seed}",
    )  # fmt: skip
    return [dict(re.findall(r"--config\.([\w.]+)=(\S+)", " ".join(c))) for c in commands]


def test_random_search_is_reproducible_within_bounds_and_crossed_with_the_grid():
    points = random_points(seed=7)
    assert points == random_points(seed=7)
    assert points != random_points(seed=8)
    assert len(points) == 10  # 5 draws x 2 seeds
    assert [p["seed"] for p in points] == ["0", "1"] * 5
    assert points[0] | {"seed": "1"} == points[1]  # each draw is run with every seed
    for point in points:
        assert 1e-4 <= float(point["learning_rate"]) <= 1e-2
        assert point["model.num_layers"] in {"1", "2", "3"}
        assert point["sentence_task"] in {"nsp", "sop"}
    rates = [math.log10(float(p["learning_rate"])) for p in points[::2]]
    assert len(set(rates)) == 5


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "the following arguments are required: --config, --workdir_root"),
        (["--config=c", "--workdir_root=r"], "give the points to run"),
        (["--config=c", "--workdir_root=r", "--grid", "lr"], "--grid 'lr' is not KEY=..."),
        (["--config=c", "--workdir_root=r", "--random=2"], "--random N needs N >= 1 and at least"),
        (["--config=c", "--workdir_root=r", "--space=a=uniform(0,1)"], "--space needs --random N"),
        (["--config=c", "--workdir_root=r", "--random=1", "--space=a=normal(0,1)"],
         "--space 'a=normal(0,1)': expected uniform, loguniform, randint or choice(...)"),
        (["--config=c", "--workdir_root=r", "--random=1", "--space=a=loguniform(0,1)"],
         "--space 'a=loguniform(0,1)': needs low < high, and 0 < low for loguniform"),
        (["--config=c", "--workdir_root=r", "--grid=seed=1", "--config.seed=2"],
         "seed is both swept and fixed by --config.seed"),
        (["--config=c", "--workdir_root=r", "--grid=seed=1", "--seed=2"],
         "unknown argument '--seed=2'; fixed overrides look like --config.KEY=VALUE"),
    ],
)  # fmt: skip
def test_bad_arguments_fail_with_one_line(args, message):
    result = sweep(*args)
    assert result.returncode == 2
    assert result.stderr.startswith(f"sweep.py: error: {message}")
    assert result.stderr.count("\n") == 1


def test_a_bad_config_key_stops_the_sweep_before_any_run(tmp_path):
    result = sweep(f"--config={CONFIG}", f"--workdir_root={tmp_path}", "--grid=seed=0,1",
                   "--config.model.no_such_key=1")  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.startswith("sweep.py: error: the config of run seed=0 does not load")
    assert "no_such_key" in result.stderr
    assert os.listdir(tmp_path) == []


def table(stdout: str) -> list[tuple[int, float, int, str]]:
    """The ranking's rows: (rank, value, step, run)."""
    rows = stdout[stdout.index("\nRuns in ") :].splitlines()[3:]
    return [(int(r), float(v), int(s), name) for r, v, s, name in (row.split() for row in rows)]


@pytest.mark.slow
def test_sweep_runs_each_point_ranks_them_and_skips_finished_ones_when_rerun(tmp_path):
    fixed = TINY | {"num_train_steps": 8, "histogram_every_steps": 1000}
    args = [f"--config={CONFIG}", f"--workdir_root={tmp_path}", "--grid=learning_rate=1e-3,3e-2"]
    args += [f"--config.{key}={value}" for key, value in fixed.items()]
    result = sweep(*args)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    names = ["learning_rate=1e-3", "learning_rate=3e-2"]
    assert sorted(os.listdir(tmp_path)) == names

    best = {}  # run -> (lowest eval/mlm_loss, its step), as read back from the event files
    for name in names:
        losses = read_scalars(os.path.join(tmp_path, name))["eval/mlm_loss"]
        assert sorted(losses) == [4, 8]
        step = min(losses, key=losses.get)
        best[name] = (losses[step], step)
    assert best[names[0]][0] != best[names[1]][0]
    expected = sorted(names, key=lambda name: best[name][0])
    rows = table(result.stdout)
    assert [row[3] for row in rows] == expected
    assert [row[0] for row in rows] == [1, 2]
    for _, value, step, name in rows:
        assert value == pytest.approx(best[name][0], rel=1e-5)
        assert step == best[name][1]

    events = glob.glob(os.path.join(tmp_path, "*", "events.out.tfevents.*"))
    again = sweep(*args, "--metric=eval/mlm_loss", "--mode=max")
    assert again.returncode == 0, again.stderr[-3000:]
    for i, name in enumerate(names, 1):
        assert f"[{i}/2] {name}: finished before, skipped" in again.stdout
    assert glob.glob(os.path.join(tmp_path, "*", "events.out.tfevents.*")) == events
    highest = {n: max(read_scalars(os.path.join(tmp_path, n))["eval/mlm_loss"].values())
               for n in names}  # fmt: skip
    assert [row[3] for row in table(again.stdout)] == sorted(names, key=highest.get, reverse=True)
