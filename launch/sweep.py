"""Hyperparameter sweeps: each point of a grid, or of random draws from a space, is its own run.

    python launch/sweep.py --config=configs/pretrain.py --workdir_root=runs/sweep \\
        --grid learning_rate=1e-3,3e-3 --grid seed=0,1 --config.num_train_steps=2000

runs `python -m bert_jax.main` for each point, one after the other, in WORKDIR_ROOT/<its
overrides> (e.g. runs/sweep/learning_rate=1e-3,seed=0), then prints a table ranking the runs by the
best value of --metric read back from their TensorBoard event files. Seeds are just another grid
axis. Running the same sweep again skips finished runs and continues unfinished ones from their
checkpoints. --emit prints the commands instead, e.g. for a cluster's job array.
"""

import argparse
import itertools
import math
import os
import random
import re
import shlex
import subprocess
import sys

KEY = re.compile(r"[A-Za-z_][\w.]*")
DISTRIBUTION = re.compile(r"(uniform|loguniform|randint|choice)\((.*)\)")
UNSAFE = re.compile(r"[^\w.+-]")  # replaced by _ in directory names


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
        "choice(v1,v2,...); each draw is crossed with the grid",
    )
    parser.add_argument("--sweep_seed", type=int, default=0, help="seed of the random draws")
    parser.add_argument("--metric", default="eval/mlm_loss", help="the scalar ranking the runs")
    parser.add_argument("--mode", choices=("min", "max"), default="min", help="which is best")
    parser.add_argument("--emit", action="store_true", help="print the commands, run nothing")
    args, fixed = parser.parse_known_args(argv)
    for flag in fixed:
        if not re.fullmatch(r"--config\.[\w.]+=.*", flag):
            parser.error(f"unknown argument {flag!r}; fixed overrides look like --config.KEY=VALUE")
    args.fixed = fixed
    if args.space and not args.random:
        parser.error("--space needs --random N, the number of draws")
    if args.random is not None and (args.random < 1 or not args.space):
        parser.error("--random N needs N >= 1 and at least one --space")
    if not args.grid and not args.random:
        parser.error("give the points to run: --grid KEY=V1,V2 and/or --random N --space ...")
    try:
        args.points = points(args.grid, args.space, args.random or 0, args.sweep_seed)
    except ValueError as error:
        parser.error(str(error))
    fixed_keys = {flag.split("=")[0].removeprefix("--config.") for flag in fixed}
    for key in fixed_keys & set(args.points[0]):
        parser.error(f"{key} is both swept and fixed by --config.{key}")
    return args


def split_values(text: str) -> list[str]:
    """Splits at commas outside brackets, so a tuple value like (0.5,0.75) stays whole."""
    values, depth, current = [], 0, ""
    for char in text:
        depth += {"(": 1, "[": 1, ")": -1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            values.append(current)
            current = ""
        else:
            current += char
    return [value.strip() for value in values + [current]]


def key_and_rest(spec: str, flag: str) -> tuple[str, str]:
    key, equals, rest = spec.partition("=")
    if not equals or not KEY.fullmatch(key) or not rest:
        raise ValueError(f"{flag} {spec!r} is not KEY=...")
    return key, rest


def sampler(spec: str):
    """KEY=DIST(...) -> (key, function of a random.Random returning the value as text)."""
    key, text = key_and_rest(spec, "--space")
    match = DISTRIBUTION.fullmatch(text.replace(" ", ""))
    if not match:
        raise ValueError(f"--space {spec!r}: expected uniform, loguniform, randint or choice(...)")
    kind, values = match[1], split_values(match[2])
    if kind == "choice":
        return key, lambda rng: rng.choice(values)
    try:
        low, high = (int(v) if kind == "randint" else float(v) for v in values)
    except ValueError:
        raise ValueError(f"--space {spec!r}: {kind} takes two numbers, low and high") from None
    if not low < high or (kind == "loguniform" and low <= 0):
        raise ValueError(f"--space {spec!r}: needs low < high, and 0 < low for loguniform")
    if kind == "randint":
        return key, lambda rng: str(rng.randint(low, high))
    if kind == "uniform":
        return key, lambda rng: f"{rng.uniform(low, high):.3g}"
    return key, lambda rng: f"{math.exp(rng.uniform(math.log(low), math.log(high))):.3g}"


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


def run_name(point: dict[str, str]) -> str:
    """learning_rate=1e-3,seed=0: readable in TensorBoard, safe as a directory name."""
    return ",".join(f"{key}={UNSAFE.sub('_', value)}" for key, value in point.items())


def command(args: argparse.Namespace, point: dict[str, str]) -> list[str]:
    overrides = [f"--config.{key}={value}" for key, value in point.items()]
    workdir = os.path.join(args.workdir_root, run_name(point))
    return [sys.executable, "-m", "bert_jax.main", f"--config={args.config}",
            f"--workdir={workdir}", *args.fixed, *overrides]  # fmt: skip


def load_config(argv: list[str]):
    """The config exactly as bert_jax.main builds it from these flags (a bad key fails here)."""
    from absl import flags
    from ml_collections import config_flags

    argv = ["sweep"] + [flag for flag in argv if flag.startswith("--config")]
    values = flags.FlagValues()
    # sys_argv: the override flags are found in these flags, not in this process's own.
    config_flags.DEFINE_config_file("config", flag_values=values, lock_config=True, sys_argv=argv)
    values(argv)
    return values.config


def finished(workdir: str, num_train_steps: int) -> bool:
    """The last step's checkpoint exists: rerunning the sweep skips this run."""
    from etils import epath

    return (epath.Path(workdir) / "checkpoints" / str(num_train_steps)).exists()


def read_metric(workdir: str, metric: str) -> dict[int, float]:
    """step -> value of one scalar; a step logged again after a resume keeps its newest value."""
    from bert_jax.events import read_scalars

    return read_scalars(workdir).get(metric, {})


def ranking(args, names: list[str], notes: dict[str, str]) -> list[str]:
    """The table's lines: runs with a value best first, then the others with why they have none."""
    rows = []
    for name in names:
        values = read_metric(os.path.join(args.workdir_root, name), args.metric)
        if values:
            pick = min if args.mode == "min" else max
            step = pick(values, key=values.get)
            rows.append((values[step], step, name))
    rows.sort(reverse=args.mode == "max")
    width = max(len(args.metric), 10)
    lines = [f"{'rank':>4}  {args.metric:>{width}}  {'step':>7}  run"]
    for rank, (value, step, name) in enumerate(rows, 1):
        lines.append(f"{rank:>4}  {value:>{width}.6g}  {step:>7}  {name}{notes.get(name, '')}")
    for name in names:
        if name not in {row[2] for row in rows}:
            note = notes.get(name, "  (no values yet)")
            lines.append(f"{'-':>4}  {'-':>{width}}  {'-':>7}  {name}{note}")
    return lines


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    commands = {run_name(point): command(args, point) for point in args.points}
    if args.emit:
        print("\n".join(shlex.join(argv) for argv in commands.values()))
        return 0
    configs = {}
    for name, argv_ in commands.items():
        try:
            configs[name] = load_config(argv_)
        except Exception as error:  # noqa: BLE001 - any failure is the point's bad setting
            reason = str(error).strip().splitlines()[-1]
            sys.exit(f"sweep.py: error: the config of run {name} does not load: {reason}")
    notes = {}
    for i, (name, argv_) in enumerate(commands.items(), 1):
        workdir = os.path.join(args.workdir_root, name)
        if finished(workdir, configs[name].num_train_steps):
            print(f"[{i}/{len(commands)}] {name}: finished before, skipped", flush=True)
            continue
        print(f"[{i}/{len(commands)}] {name}: {shlex.join(argv_)}", flush=True)
        status = subprocess.run(argv_).returncode
        if status != 0:
            notes[name] = f"  (failed: exit status {status})"
    mode = "lowest" if args.mode == "min" else "highest"
    print(f"\nRuns in {args.workdir_root} by their {mode} {args.metric}:")
    print("\n".join(ranking(args, list(commands), notes)))
    return 1 if notes else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
