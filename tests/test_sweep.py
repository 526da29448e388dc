"""launch/sweep.py: the points and commands of a sweep, its errors, a real two-run sweep ranked
by values read back from the runs' event files, a fine-tuning run known to be finished, and an
Optuna search that prunes, is killed and continues."""

import glob
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import time

import pytest

from conftest import CONFIG, REPO, TINY, read_scalars, write_vocab

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
        (["--config=c", "--workdir_root=r", "--search=optuna", "--space=a=uniform(0,1)"],
         "--search=optuna needs --trials N (N >= 1) and at least one --space"),
        (["--config=c", "--workdir_root=r", "--search=optuna", "--trials=2", "--grid=seed=1"],
         "--search=optuna draws every point from --space: give a grid axis as --space"),
        (["--config=c", "--workdir_root=r", "--search=optuna", "--trials=2",
          "--space=a=uniform(0,1)", "--emit"], "--search=optuna picks each point from the runs"),
        (["--config=c", "--workdir_root=r", "--search=optuna", "--trials=2",
          "--space=a=uniform(0,1)", "--space=a=randint(0,1)"],
         "a key appears in more than one --space"),
        (["--config=c", "--workdir_root=r", "--grid=seed=1", "--trials=3"],
         "--trials is for --search=optuna"),
        (["--config=c", "--workdir_root=r", "--grid=seed=1", "--pruner=median"],
         "--pruner is for --search=optuna"),
        (["--config=c", "--workdir_root=r", "--search=random", "--grid=seed=1"],
         "--search=random needs --random N and --space"),
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


# --- finished runs: what the run itself recorded ------------------------------------------------


@pytest.fixture(scope="module")
def launch_modules():
    """launch/sweep.py and the modules beside it, imported as the script imports them."""
    sys.path.insert(0, os.path.join(REPO, "launch"))
    try:
        import sweep
        import sweep_runs
        import sweep_search

        yield sweep, sweep_runs, sweep_search
    finally:
        sys.path.remove(os.path.join(REPO, "launch"))


@pytest.mark.slow
def test_a_finished_fine_tuning_run_counting_epochs_is_skipped(tmp_path, launch_modules):
    """num_train_steps is unset (it comes from num_epochs): "finished" is read from the run's own
    newest checkpoint and the resolved config in its meta, not from the overrides."""
    _, sweep_runs, _ = launch_modules
    sentences = [(f"a {word} movie", label) for word, label in [("good", 1), ("bad", 0)] * 12]
    train = tmp_path / "train.tsv"
    train.write_text("sentence\tlabel\n" + "".join(f"{s}\t{y}\n" for s, y in sentences))
    settings = {
        "model.preset": "tiny", "data.tokenizer": write_vocab(tmp_path / "vocab.txt",
                                                              ["a", "good", "bad", "movie"]),
        "data.train": train, "data.validation": train, "data.max_seq_length": 16,
        "batch_size": 8, "num_epochs": 1, "log_every_steps": 1, "eval_every_steps": 1000,
        "checkpoint_every_steps": 1,
    }  # fmt: skip
    root = tmp_path / "sweep"
    args = [f"--config={REPO}/configs/finetune_glue.py", f"--workdir_root={root}",
            "--grid=learning_rate=1e-3", "--metric=eval/accuracy", "--mode=max"]  # fmt: skip
    args += [f"--config.{key}={value}" for key, value in settings.items()]
    first = sweep(*args)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    workdir = str(root / "learning_rate=1e-3")
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["2", "3"]  # 24 / 8
    again = sweep(*args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "[1/1] learning_rate=1e-3: finished before, skipped" in again.stdout
    assert sweep_runs.finished(workdir)
    shutil.rmtree(os.path.join(workdir, "checkpoints", "3"))  # as if stopped at step 2
    assert not sweep_runs.finished(workdir)
    assert not sweep_runs.finished(str(tmp_path / "no_such_run"))


# --- --search=optuna ----------------------------------------------------------------------------


def search_args(root, *extra: str) -> list[str]:
    return [f"--config={CONFIG}", f"--workdir_root={root}", "--search=optuna",
            "--space=learning_rate=choice(1e-9,1e-2)", "--pruner_startup_trials=1",
            *extra]  # fmt: skip


@pytest.mark.parametrize("pruner", ["median", "successive_halving"])
@pytest.mark.parametrize("mode, sign", [("min", 1), ("max", -1)])
def test_the_pruner_stops_trials_that_fall_behind_and_a_reopened_study_resumes_its_trial(
    tmp_path, launch_modules, pruner, mode, sign
):
    """The study, pruner and reporting of a search, without training: values reported as a run
    would write them; a trial left RUNNING (a killed search) is resumed first."""
    from optuna.trial import TrialState

    cli, _, sweep_search = launch_modules
    flags = search_args(tmp_path, f"--pruner={pruner}", "--pruner_warmup_steps=4", f"--mode={mode}")
    args = cli.parse_args([*flags, "--trials=3"])
    study = sweep_search.open_study(args)
    trials = sweep_search.trials_to_run(study, args.trials)
    first, reported, resumed = next(trials)
    assert (reported, resumed) == ({}, False)
    report = sweep_search.Reporter(first, args.metric, reported)
    assert not report({4: sign * 5.0, 8: sign * 4.0})
    study.tell(first, sign * 4.0)
    second, _, _ = next(trials)
    report = sweep_search.Reporter(second, args.metric, {})
    assert not report({2: sign * 9.0})  # before the warm-up's end: never pruned
    assert report({2: sign * 9.0, 4: sign * 6.0})  # behind the first trial at step 4
    study.tell(second, state=TrialState.PRUNED)
    third, _, _ = next(trials)
    assert not sweep_search.Reporter(third, args.metric, {})({4: sign * 4.5})
    del study, trials  # the search is killed here: the third trial stays RUNNING

    args = cli.parse_args([*flags, "--trials=4"])
    study = sweep_search.open_study(args)
    assert os.path.exists(tmp_path / "study.db")
    resumed = list(sweep_search.trials_to_run(study, args.trials))
    (trial, reported, again), (new, _, fresh) = resumed  # then new ones up to --trials
    assert (trial.number, reported, again) == (2, {4: sign * 4.5}, True)  # the killed one first
    assert (new.number, fresh) == (3, False)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "PRUNED", "RUNNING", "RUNNING"]


def test_a_study_is_continued_only_by_the_search_that_started_it(tmp_path, launch_modules):
    cli, _, sweep_search = launch_modules
    sweep_search.open_study(cli.parse_args([*search_args(tmp_path), "--trials=2"]))
    other = cli.parse_args([*search_args(tmp_path), "--trials=2", "--metric=eval/mlm_accuracy"])
    with pytest.raises(SystemExit, match=r"^sweep.py: error: the study in .* was started with "
                       r"other metric \("):  # fmt: skip
        sweep_search.open_study(other)


def children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(child) for child in f.read().split()]


def gone(pid: int) -> bool:
    """The process has exited (an orphan left unreaped by the container's init counts)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def study_trials(root) -> list:
    import optuna

    return optuna.load_study(study_name="sweep", storage=f"sqlite:///{root}/study.db").trials


STEPS = 100  # per trial: the third is killed at step 8, with steps to spare for the delay


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_optuna_search_prunes_a_run_is_killed_and_continues_where_it_stopped(tmp_path):
    """Three trials of learning_rate 1e-2 or 1e-9 (TPE's seeded start draws 1e-2, 1e-9, 1e-2):
    the 1e-9 run falls behind at its first eval and is stopped; the sweep is SIGKILLed during the
    third trial, whose run then saves and stops; the rerun resumes that trial and ends it."""
    root = tmp_path / "root"
    fixed = TINY | {"num_train_steps": STEPS, "eval_every_steps": 4, "log_every_steps": 2,
                    "checkpoint_every_steps": 1000, "histogram_every_steps": 1000}  # fmt: skip
    args = search_args(root, "--trials=3", "--poll_seconds=0.5")
    args += [f"--config.{key}={value}" for key, value in fixed.items()]
    log = tmp_path / "first.log"
    with open(log, "w") as out:
        first = subprocess.Popen([sys.executable, SWEEP, *args], cwd=REPO, stdout=out,
                                 stderr=subprocess.STDOUT)  # fmt: skip
        try:
            deadline = time.time() + 900
            while "trial 2 at step 8:" not in log.read_text():
                assert first.poll() is None and time.time() < deadline, log.read_text()[-5000:]
                time.sleep(0.2)
            runs = children(first.pid)
        finally:
            first.kill()
            first.wait()
    deadline = time.time() + 300
    while not all(gone(pid) for pid in runs):  # the run got SIGTERM: it saves and stops
        assert time.time() < deadline, "the run of the killed sweep did not stop"
        time.sleep(0.2)
    text = log.read_text()
    assert "[1/3] trial=0,learning_rate=1e-2: " in text
    assert "[2/3] trial=1,learning_rate=1e-9: " in text
    assert "trial 1 pruned at step 4" in text
    before = study_trials(root)
    assert [t.state.name for t in before] == ["COMPLETE", "PRUNED", "RUNNING"]
    assert [t.params["learning_rate"] for t in before] == ["1e-2", "1e-9", "1e-2"]
    assert before[1].intermediate_values[4] > before[0].intermediate_values[4]
    stopped = max(int(s) for s in os.listdir(root / "trial=2,learning_rate=1e-2" / "checkpoints"))
    assert 8 <= stopped < STEPS
    pruned = root / "trial=1,learning_rate=1e-9"
    assert max(read_scalars(str(pruned))["eval/mlm_loss"]) < STEPS  # stopped early
    assert os.listdir(pruned / "checkpoints")  # with a checkpoint, like any SIGTERM

    second = sweep(*args)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "Continuing the study in " in second.stdout and ": 3 trials so far." in second.stdout
    assert "[3/3] trial=2,learning_rate=1e-2: resumed: " in second.stdout
    assert f"Resuming from the checkpoint at step {stopped}." in second.stderr
    after = study_trials(root)
    assert [t.state.name for t in after] == ["COMPLETE", "PRUNED", "COMPLETE"]
    for old, new in zip(
        before[:2], after[:2], strict=True
    ):  # the first part's trials, as they were
        assert (old.params, old.value, old.intermediate_values) == (
            new.params, new.value, new.intermediate_values
        )  # fmt: skip
    resumed = after[2].intermediate_values
    assert before[2].intermediate_values.items() <= resumed.items()
    assert sorted(resumed) == list(range(4, STEPS + 1, 4))
    # The killed and resumed trial ends exactly as the uninterrupted one of the same point.
    assert resumed == after[0].intermediate_values and after[2].value == after[0].value
    losses = read_scalars(str(root / "trial=2,learning_rate=1e-2"))["eval/mlm_loss"]
    assert after[2].value == pytest.approx(min(losses.values()), rel=1e-6)

    rows = second.stdout[second.stdout.index("\nRuns in ") :].splitlines()[3:]
    assert len(rows) == 3
    assert rows[-1].split()[3:] == ["trial=1,learning_rate=1e-9", "(pruned", "at", "step", "4)"]
