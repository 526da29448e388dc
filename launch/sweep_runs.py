"""What every sweep strategy shares: the --space syntax, a run's workdir name and command, starting
it so it stops with the sweep, whether it finished, its metric, and the ranked table."""

import json
import os
import re
import signal
import subprocess
import sys
from typing import NamedTuple

KEY = re.compile(r"[A-Za-z_][\w.]*")
DISTRIBUTION = re.compile(r"(uniform|loguniform|randint|choice)\((.*)\)")
UNSAFE = re.compile(r"[^\w.+-]")  # replaced by _ in directory names
# The exit status of a run stopped before its end by SIGTERM (EX_TEMPFAIL): rerun to continue.
STOPPED_EARLY = 75


class Space(NamedTuple):
    """One --space axis: uniform/loguniform (floats), randint (ints, inclusive) or choice."""

    key: str
    kind: str
    low: float = 0
    high: float = 0
    choices: tuple[str, ...] = ()


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


def parse_space(spec: str) -> Space:
    """KEY=DIST(...) -> its Space; ValueError naming the spec if it is not one."""
    key, text = key_and_rest(spec, "--space")
    match = DISTRIBUTION.fullmatch(text.replace(" ", ""))
    if not match:
        raise ValueError(f"--space {spec!r}: expected uniform, loguniform, randint or choice(...)")
    kind, values = match[1], split_values(match[2])
    if kind == "choice":
        return Space(key, kind, choices=tuple(values))
    try:
        low, high = (int(v) if kind == "randint" else float(v) for v in values)
    except ValueError:
        raise ValueError(f"--space {spec!r}: {kind} takes two numbers, low and high") from None
    if not low < high or (kind == "loguniform" and low <= 0):
        raise ValueError(f"--space {spec!r}: needs low < high, and 0 < low for loguniform")
    return Space(key, kind, low, high)


def run_name(point: dict[str, str]) -> str:
    """learning_rate=1e-3,seed=0: readable in TensorBoard, safe as a directory name."""
    return ",".join(f"{key}={UNSAFE.sub('_', value)}" for key, value in point.items())


def command(args, name: str, point: dict[str, str]) -> list[str]:
    """The training command of one point, in WORKDIR_ROOT/name."""
    overrides = [f"--config.{key}={value}" for key, value in point.items()]
    workdir = os.path.join(args.workdir_root, name)
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


def check_config(name: str, argv: list[str]) -> None:
    """Exits with one line if the run's config does not load, before anything runs."""
    try:
        load_config(argv)
    except Exception as error:  # noqa: BLE001 - any failure is the point's bad setting
        reason = str(error).strip().splitlines()[-1]
        sys.exit(f"sweep.py: error: the config of run {name} does not load: {reason}")


# Started through this, a run gets SIGTERM when the sweep dies, even by SIGKILL (Linux's
# parent-death signal): it saves a checkpoint and stops instead of training on unwatched.
_STOP_WITH_PARENT = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG\n"
    "if os.getppid() != int(sys.argv[1]):\n"
    "    sys.exit(143)  # the sweep died before prctl\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


def start(argv: list[str]) -> subprocess.Popen:
    """Starts a run's command; on Linux it is stopped (SIGTERM) if the sweep process dies."""
    if sys.platform.startswith("linux"):
        argv = [sys.executable, "-c", _STOP_WITH_PARENT, str(os.getpid()), *argv]
    return subprocess.Popen(argv)


def stop(process: subprocess.Popen, grace_seconds: float = 300) -> int:
    """SIGTERM (the run saves a checkpoint and exits), SIGKILL if it takes too long."""
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def finished(workdir: str) -> bool:
    """Whether the run reached its last step, from what the run itself recorded: its newest
    checkpoint is at the num_train_steps of its own resolved config (so fine-tuning runs that
    count epochs are judged right too)."""
    from bert_jax.checkpoint_reads import newest_step_dir, read_meta
    from bert_jax.errors import UserError
    from bert_jax.workdir import is_workdir

    if not is_workdir(workdir):
        return False
    try:
        step_dir = newest_step_dir(workdir)
        config = json.loads(read_meta(step_dir)["config"])
    except (UserError, OSError, ValueError, KeyError):
        return False  # no checkpoint, or a damaged newest one: the rerun decides
    return int(os.path.basename(step_dir)) >= config["num_train_steps"]


def read_metric(workdir: str, metric: str) -> dict[int, float]:
    """step -> value of one scalar; a step logged again after a resume keeps its newest value."""
    from bert_jax.events import read_scalars

    return read_scalars(workdir).get(metric, {})


def best_step(values: dict[int, float], mode: str) -> int:
    """The step of the best value: the lowest for mode "min", the highest for "max"."""
    pick = min if mode == "min" else max
    return pick(values, key=values.get)


def ranking(args, names: list[str], notes: dict[str, str]) -> list[str]:
    """The table's lines: runs with a value best first, then the others with why they have none."""
    rows = []
    for name in names:
        values = read_metric(os.path.join(args.workdir_root, name), args.metric)
        if values:
            step = best_step(values, args.mode)
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


def print_ranking(args, names: list[str], notes: dict[str, str]) -> None:
    mode = "lowest" if args.mode == "min" else "highest"
    print(f"\nRuns in {args.workdir_root} by their {mode} {args.metric}:")
    print("\n".join(ranking(args, names, notes)))
