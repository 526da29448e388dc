"""The launchers' test tools: fake executables that record their arguments, and running a
script of launch/ as a user would."""

import json
import os
import shlex
import subprocess
import sys

from conftest import REPO

LAUNCH = os.path.join(REPO, "launch")


def fake_tools(directory, *names: str, then: dict[str, str] | None = None) -> tuple[dict, str]:
    """Executables that append [name, *argv] as a JSON line to calls.jsonl, first on PATH, and
    then run the Python code `then[name]`, if any (with os, signal and sys imported)."""
    bin_dir, calls = directory / "fakebin", directory / "calls.jsonl"
    bin_dir.mkdir(exist_ok=True)
    for name in names:
        path = bin_dir / name
        path.write_text(
            f"#!{sys.executable}\nimport json, os, signal, sys\n"
            f"with open({str(calls)!r}, 'a') as f:\n"
            f"    f.write(json.dumps([{name!r}] + sys.argv[1:]) + '\\n')\n"
            + (then or {}).get(name, "")
        )
        path.chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}, str(calls)


def recorded(calls: str) -> list[list[str]]:
    if not os.path.exists(calls):
        return []
    with open(calls) as f:
        return [json.loads(line) for line in f]


def launch(script: str, *args: str, env: dict | None = None, timeout: float = 600, **kwargs):
    base = {k: v for k, v in os.environ.items() if not k.startswith("TPU_")}
    return subprocess.run(
        ["bash", os.path.join(LAUNCH, script), *args],
        env=base | (env or {}),
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )


def dry_run(script: str, *args: str, **kwargs) -> list[list[str]]:
    """The commands the script prints with --dry-run, given after the first argument."""
    return printed_commands(launch(script, *args[:1], "--dry-run", *args[1:], **kwargs))


def printed_commands(result) -> list[list[str]]:
    assert result.returncode == 0, result.stderr
    return [shlex.split(line) for line in result.stdout.splitlines()]


def remote_command(argv: list[str]) -> str:
    (command,) = [arg.removeprefix("--command=") for arg in argv if arg.startswith("--command=")]
    return command
