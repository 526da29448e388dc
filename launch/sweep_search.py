"""sweep.py --search=optuna: Optuna's TPE sampler picks each trial's point from --space, a pruner
stops runs whose eval values fall behind, and the study lives in WORKDIR_ROOT/study.db (SQLite).

Each trial is one run, in WORKDIR_ROOT/trial=<number>,<its point>. While it trains, its event
files are read every --poll_seconds and each new value of --metric is reported to the trial at its
step; when the pruner says so, the run gets SIGTERM (it saves a checkpoint and exits) and the trial
is marked pruned. A finished run's trial gets the best value of --metric.

A killed search continues where it stopped: its running trial stays RUNNING in the study, and its
run is stopped by SIGTERM with a checkpoint (sweep_runs.start). The next search resumes that trial
first, with the same point and workdir, its run continued from its checkpoint and the values
reported before kept; then it asks for new trials until the study holds --trials. Failed trials
count towards --trials and are not retried. One search process per study at a time.
"""

import argparse
import os
import sys
import time

from sweep_runs import (
    STOPPED_EARLY,
    Space,
    best_step,
    check_config,
    command,
    finished,
    print_ranking,
    read_metric,
    run_name,
    start,
    stop,
)

STUDY_NAME = "sweep"


def storage_url(args: argparse.Namespace) -> str:
    if args.storage:
        return args.storage
    if "://" in args.workdir_root:
        sys.exit(
            f"sweep.py: error: --workdir_root={args.workdir_root} is remote and the study's "
            "SQLite file must be local; give --storage=URL (e.g. sqlite:///study.db)"
        )
    os.makedirs(args.workdir_root, exist_ok=True)
    return f"sqlite:///{os.path.abspath(os.path.join(args.workdir_root, 'study.db'))}"


def make_pruner(args: argparse.Namespace):
    import optuna

    if args.pruner == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=args.pruner_startup_trials, n_warmup_steps=args.pruner_warmup_steps
        )
    if args.pruner == "successive_halving":
        first_rung = args.pruner_warmup_steps or "auto"  # auto: from the first finished trial
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=first_rung)
    return optuna.pruners.NopPruner()


def open_study(args: argparse.Namespace):
    """The study of this search, created or continued; refused if it was made by other flags."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # this module prints its own lines
    study = optuna.create_study(
        storage=optuna.storages.RDBStorage(storage_url(args)),
        study_name=STUDY_NAME,
        direction="minimize" if args.mode == "min" else "maximize",
        pruner=make_pruner(args),
        load_if_exists=True,
    )
    search = {"config": args.config, "space": args.space, "fixed": args.fixed,
              "metric": args.metric, "mode": args.mode}  # fmt: skip
    saved = study.user_attrs.get("search")
    if saved is None:
        study.set_user_attr("search", search)
    elif saved != search:
        changed = sorted(key for key in search if saved.get(key) != search[key])
        sys.exit(
            f"sweep.py: error: the study in {args.storage or args.workdir_root} was started with "
            f"other {', '.join(changed)} ({saved}); rerun it with those, or use a new "
            "--workdir_root"
        )
    # Seeded by the trials so far: a continued search draws new points, not the first ones again.
    study.sampler = optuna.samplers.TPESampler(seed=args.sweep_seed + len(study.trials))
    return study


def suggest(trial, spaces: list[Space]) -> tuple[dict[str, str], dict[str, str]]:
    """The trial's point as exact override values and as short ones for its directory name.
    A resumed trial gets back the values it was given."""
    point, shown = {}, {}
    for space in spaces:
        if space.kind == "choice":
            value = trial.suggest_categorical(space.key, list(space.choices))
        elif space.kind == "randint":
            value = trial.suggest_int(space.key, space.low, space.high)
        else:
            log = space.kind == "loguniform"
            value = trial.suggest_float(space.key, space.low, space.high, log=log)
        point[space.key] = str(value)
        shown[space.key] = f"{value:.3g}" if isinstance(value, float) else str(value)
    return point, shown


def trials_to_run(study, count: int):
    """(trial, the values it reported before, whether it is resumed): first the trials a killed
    search left running, then new trials until the study holds `count`."""
    from optuna.trial import Trial, TrialState

    for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        # Trial() takes the storage's id, which FrozenTrial keeps private.
        yield Trial(study, frozen._trial_id), dict(frozen.intermediate_values), True
    while len(study.get_trials(deepcopy=False)) < count:
        yield study.ask(), {}, False


class Reporter:
    """Reports a run's new metric values to its trial in step order; True when it should stop."""

    def __init__(self, trial, metric: str, reported: dict[int, float]):
        self.trial, self.metric, self.reported = trial, metric, dict(reported)

    def __call__(self, values: dict[int, float]) -> bool:
        for step in sorted(set(values) - set(self.reported)):
            self.trial.report(values[step], step)
            self.reported[step] = values[step]
            print(f"    trial {self.trial.number} at step {step}: {self.metric} "
                  f"{values[step]:.6g}", flush=True)  # fmt: skip
            if self.trial.should_prune():
                return True
        return False


def watch(argv: list[str], workdir: str, report: Reporter, args: argparse.Namespace) -> int | None:
    """Runs the command, feeding `report` the values of --metric as its event files get them;
    stops the run (SIGTERM: a checkpoint, then exit) and returns None when `report` says prune,
    else the run's exit status."""
    process = start(argv)
    try:
        while True:
            status = process.poll()  # before reading: values written before an exit are read
            try:
                values = read_metric(workdir, args.metric)
            except Exception:  # noqa: BLE001 - a file being written can end mid-record: next poll
                values = {}
            if report(values):
                stop(process)
                return None
            if status is not None:
                return status
            time.sleep(args.poll_seconds)
    except BaseException:
        stop(process)  # e.g. Ctrl-C: the run saves and stops; the trial stays RUNNING
        raise


def run_trial(args, trial, reported: dict[int, float], resumed: bool, label: str) -> str:
    """Runs (or continues) one trial and tells the study how it ended; returns its table note."""
    from optuna.trial import TrialState

    point, shown = suggest(trial, args.spaces)
    name = trial.user_attrs.get("run") or f"trial={trial.number}," + run_name(shown)
    trial.set_user_attr("run", name)
    workdir, argv = os.path.join(args.workdir_root, name), command(args, name, point)
    check_config(name, argv)
    print(f"{label} {name}: {'resumed: ' if resumed else ''}{' '.join(argv)}", flush=True)
    report = Reporter(trial, args.metric, reported)
    if reported and trial.should_prune():  # killed after the values that prune it
        status = None
    else:
        status = 0 if finished(workdir) else watch(argv, workdir, report, args)
    if status is None:
        step = max(report.reported)
        print(f"    trial {trial.number} pruned at step {step}", flush=True)
        trial.study.tell(trial, state=TrialState.PRUNED)
        return f"  (pruned at step {step})"
    if status in (0, STOPPED_EARLY) and not finished(workdir):
        print(f"    trial {trial.number}: its run stopped before its end; it stays RUNNING and the "
              "next search continues it", flush=True)  # fmt: skip
        return "  (stopped before its end: rerun the sweep to continue)"
    if status != 0:
        trial.set_user_attr("failure", f"exit status {status}")
        trial.study.tell(trial, state=TrialState.FAIL)
        return f"  (failed: exit status {status})"
    values = read_metric(workdir, args.metric)
    report(values)  # the values written after the last poll
    if not values:
        trial.set_user_attr("failure", f"no {args.metric} values")
        trial.study.tell(trial, state=TrialState.FAIL)
        return f"  (failed: no {args.metric} values)"
    trial.study.tell(trial, values[best_step(values, args.mode)])
    return ""


def notes_of(study) -> dict[str, str]:
    """Table notes for the trials of earlier searches: pruned, failed or still running."""
    from optuna.trial import TrialState

    notes = {}
    for trial in study.get_trials(deepcopy=False):
        name = trial.user_attrs.get("run")
        if trial.state == TrialState.PRUNED:
            notes[name] = f"  (pruned at step {trial.last_step})"
        elif trial.state == TrialState.FAIL:
            notes[name] = f"  (failed: {trial.user_attrs.get('failure', 'unknown')})"
        elif trial.state == TrialState.RUNNING:
            notes[name] = "  (stopped before its end: rerun the sweep to continue)"
    return notes


def run_search(args: argparse.Namespace) -> int:
    """The search: continue or start the study, run trials until it holds --trials, rank them."""
    try:
        import optuna  # noqa: F401 - an optional dependency: say how to get it
    except ImportError:
        sys.exit("sweep.py: error: --search=optuna needs Optuna; pip install -e '.[sweep]'")
    probe = {s.key: s.choices[0] if s.kind == "choice" else str(s.low) for s in args.spaces}
    check_config("trial=0", command(args, "trial=0", probe))  # before anything is written
    study = open_study(args)
    if study.get_trials(deepcopy=False):
        print(f"Continuing the study in {args.storage or args.workdir_root}: "
              f"{len(study.get_trials(deepcopy=False))} trials so far.", flush=True)  # fmt: skip
    interrupted = False
    for trial, reported, resumed in trials_to_run(study, args.trials):
        label = f"[{trial.number + 1}/{args.trials}]"
        note = run_trial(args, trial, reported, resumed, label)
        if note.startswith("  (stopped"):
            interrupted = True  # the run was stopped from outside: so is this search, likely
            break
    notes = notes_of(study)
    names = [t.user_attrs["run"] for t in study.get_trials(deepcopy=False) if "run" in t.user_attrs]
    print_ranking(args, names, notes)
    if any("(failed" in note for note in notes.values()):
        return 1
    return STOPPED_EARLY if interrupted else 0
