"""Hyperparameter sweeps: each point of a grid, of random draws from a space, or of an Optuna
search is its own run.

    python launch/sweep.py --config=configs/pretrain.py --workdir_root=runs/sweep \\
        --grid learning_rate=1e-3,3e-3 --grid seed=0,1 --config.num_train_steps=2000

runs `python -m bert_jax.main` for each point, one after the other, in WORKDIR_ROOT/<its
overrides> (e.g. runs/sweep/learning_rate=1e-3,seed=0), then prints a table ranking the runs by the
best value of --metric read back from their TensorBoard event files. Seeds are just another grid
axis. Running the same sweep again skips finished runs and continues unfinished ones from their
checkpoints. --emit prints the commands instead, e.g. for a cluster's job array.

--search=optuna --trials=N draws the points from --space with Optuna's TPE sampler instead, stops
runs whose eval values fall behind (--pruner) and keeps the study in WORKDIR_ROOT/study.db, so a
killed search continues where it stopped (launch/sweep_search.py).
"""

import argparse
import itertools
import math
import os
import random
import re
import shlex
import sys

from sweep_runs import (
    STOPPED_EARLY,
    check_config,
    command,
    finished,
    key_and_rest,
    parse_space,
    print_ranking,
    run_name,
    split_values,
    start,
)


class Parser(argparse.ArgumentParser):
    def error(self, message):
        """One line naming the problem, instead of argparse's usage block."""
        self.exit(2, f"sweep.py: error: {message}; see --help\n")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = Parser(
        description=__doc__.split("\n\n")[0],
        epilog="Any --config.KEY=VALUE flag is passed unchanged to every run.",
    )
    parser.add_argument("--config", required=True, help="the experiment config file")
    parser.add_argument("--workdir_root", required=True, help="one workdir per point in here")
    parser.add_argument(
        "--search",
        choices=("grid", "random", "optuna"),
        help="grid (the default), random (with --random N) or optuna (with --trials N)",
    )
    parser.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=V1,V2,...",
        help="a grid axis: config key and its values (repeat for more axes)",
    )
    parser.add_argument("--random", type=int, metavar="N", help="draw N points from --space")
    parser.add_argument(
        "--space",
        action="append",
        default=[],
        metavar="KEY=DIST(...)",
        help="a random axis: uniform(a,b), loguniform(a,b), randint(a,b) (inclusive) or "
        "choice(v1,v2,...); each random draw is crossed with the grid",
    )
    parser.add_argument("--sweep_seed", type=int, default=0, help="seed of the random draws")
    parser.add_argument("--metric", default="eval/mlm_loss", help="the scalar ranking the runs")
    parser.add_argument("--mode", choices=("min", "max"), default="min", help="which is best")
    parser.add_argument("--emit", action="store_true", help="print the commands, run nothing")
    search = parser.add_argument_group("--search=optuna")
    search.add_argument("--trials", type=int, metavar="N", help="trials in the study, in all")
    search.add_argument(
        "--pruner",
        choices=("median", "successive_halving", "none"),
        help="stops a run whose eval values fall behind: below the median of the finished "
        "trials at the same step, or out of the top 1/4 at each rung (default: median)",
    )
    search.add_argument(
        "--pruner_startup_trials",
        type=int,
        default=5,
        metavar="K",
        help="median: prune only once K trials have finished (default: 5)",
    )
    search.add_argument(
        "--pruner_warmup_steps",
        type=int,
        default=0,
        metavar="S",
        help="never prune before training step S (successive halving: its first rung; "
        "default 0: the median prunes from the first eval, successive halving picks a rung)",
    )
    search.add_argument(
        "--poll_seconds",
        type=float,
        default=5,
        metavar="S",
        help="how often a trial's event files are read for new values (default: 5)",
    )
    search.add_argument(
        "--storage",
        metavar="URL",
        help="where the study lives (default: sqlite:///WORKDIR_ROOT/study.db)",
    )
    args, fixed = parser.parse_known_args(argv)
    for flag in fixed:
        if not re.fullmatch(r"--config\.[\w.]+=.*", flag):
            parser.error(f"unknown argument {flag!r}; fixed overrides look like --config.KEY=VALUE")
    args.fixed = fixed
    args.search = args.search or ("random" if args.random is not None else "grid")
    try:
        if args.search == "optuna":
            check_search_args(parser, args)
            args.spaces = [parse_space(spec) for spec in args.space]
            swept = [space.key for space in args.spaces]
            if len(set(swept)) < len(swept):
                raise ValueError("a key appears in more than one --space")
        else:
            check_point_args(parser, args)
            args.points = points(args.grid, args.space, args.random or 0, args.sweep_seed)
            swept = list(args.points[0])
    except ValueError as error:
        parser.error(str(error))
    fixed_keys = {flag.split("=")[0].removeprefix("--config.") for flag in fixed}
    for key in fixed_keys & set(swept):
        parser.error(f"{key} is both swept and fixed by --config.{key}")
    return args


def check_point_args(parser: Parser, args: argparse.Namespace) -> None:
    """The flags of a grid or random sweep: a grid, and/or N draws from a space."""
    for flag in ("trials", "pruner", "storage"):
        if getattr(args, flag) is not None:
            parser.error(f"--{flag} is for --search=optuna")
    if args.space and not args.random:
        parser.error("--space needs --random N, the number of draws")
    if args.random is not None and (args.random < 1 or not args.space):
        parser.error("--random N needs N >= 1 and at least one --space")
    if args.search == "random" and args.random is None:
        parser.error("--search=random needs --random N and --space")
    if args.search == "grid" and args.random is not None:
        parser.error("--random N is --search=random; drop --search=grid")
    if not args.grid and not args.random:
        parser.error("give the points to run: --grid KEY=V1,V2 and/or --random N --space ...")


def check_search_args(parser: Parser, args: argparse.Namespace) -> None:
    """The flags of an Optuna search: N trials over a space, nothing emitted."""
    if args.grid or args.random is not None:
        parser.error("--search=optuna draws every point from --space: give a grid axis as "
                     "--space KEY=choice(V1,V2) and the count as --trials N")  # fmt: skip
    if args.trials is None or args.trials < 1 or not args.space:
        parser.error("--search=optuna needs --trials N (N >= 1) and at least one --space")
    if args.emit:
        parser.error("--search=optuna picks each point from the runs before it; it cannot --emit")
    if args.pruner_startup_trials < 0 or args.pruner_warmup_steps < 0:
        parser.error("--pruner_startup_trials and --pruner_warmup_steps must be >= 0")
    args.pruner = args.pruner or "median"


def sampler(spec: str):
    """KEY=DIST(...) -> (key, function of a random.Random returning the value as text)."""
    space = parse_space(spec)
    low, high = space.low, space.high
    if space.kind == "choice":
        return space.key, lambda rng: rng.choice(space.choices)
    if space.kind == "randint":
        return space.key, lambda rng: str(rng.randint(low, high))
    if space.kind == "uniform":
        return space.key, lambda rng: f"{rng.uniform(low, high):.3g}"
    return space.key, lambda rng: f"{math.exp(rng.uniform(math.log(low), math.log(high))):.3g}"


def points(grid: list[str], space: list[str], draws: int, seed: int) -> list[dict[str, str]]:
    """Each random draw (or none) crossed with the whole grid, without repeats, in order."""
    axes = [key_and_rest(spec, "--grid") for spec in grid]
    samplers = [sampler(spec) for spec in space]
    keys = [key for key, _ in axes] + [key for key, _ in samplers]
    if len(set(keys)) < len(keys):
        raise ValueError("a key appears in more than one --grid/--space")
    rng = random.Random(seed)
    drawn_points = [{key: draw(rng) for key, draw in samplers} for _ in range(draws)] or [{}]
    grid_points = [dict(zip([k for k, _ in axes], combo, strict=True))
                   for combo in itertools.product(*(split_values(v) for _, v in axes))]  # fmt: skip
    unique = {}
    for drawn in drawn_points:
        for point in grid_points:
            combined = drawn | point
            unique.setdefault(run_name(combined), combined)
    return list(unique.values())


def run_points(args: argparse.Namespace) -> int:
    """Grid and random sweeps: every point in turn, unless it finished before; then the table."""
    commands = {run_name(point): command(args, run_name(point), point) for point in args.points}
    if args.emit:
        print("\n".join(shlex.join(argv) for argv in commands.values()))
        return 0
    for name, argv in commands.items():
        check_config(name, argv)
    notes = {}
    for i, (name, argv) in enumerate(commands.items(), 1):
        workdir = os.path.join(args.workdir_root, name)
        if finished(workdir):
            print(f"[{i}/{len(commands)}] {name}: finished before, skipped", flush=True)
            continue
        print(f"[{i}/{len(commands)}] {name}: {shlex.join(argv)}", flush=True)
        status = start(argv).wait()
        if status == STOPPED_EARLY or (status == 0 and not finished(workdir)):
            notes[name] = "  (stopped before its end: rerun the sweep to continue)"
        elif status != 0:
            notes[name] = f"  (failed: exit status {status})"
    print_ranking(args, list(commands), notes)
    return exit_status(notes)


def exit_status(notes: dict[str, str]) -> int:
    """1 if a run failed, else STOPPED_EARLY if one stopped before its end, else 0."""
    if any("(failed" in note for note in notes.values()):
        return 1
    return STOPPED_EARLY if any("(stopped" in note for note in notes.values()) else 0


def main(argv: list[str]) -> int:
    # The runs are `python -m bert_jax.main` started here, which imports bert_jax from the working
    # directory first; read their workdirs with that same bert_jax (a script's own directory, not
    # the working directory, heads sys.path).
    sys.path.insert(1, os.getcwd())
    args = parse_args(argv)
    if args.search == "optuna":
        from sweep_search import run_search

        return run_search(args)
    return run_points(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
