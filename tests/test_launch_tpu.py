"""launch/tpu_vm.sh: what it prints with --dry-run, what it runs (gcloud is a fake that records
its arguments), its errors, and the worker commands it starts."""

import os
import re
import shlex
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO
from launch_tools import dry_run, fake_tools, launch, recorded, remote_command

TPU = {"TPU_PROJECT": "proj", "TPU_ZONE": "us-central2-b", "TPU_NAME": "tpu1", "TPU_BUCKET": "bk"}
SSH = ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "tpu1", "--project=proj",
       "--zone=us-central2-b"]  # fmt: skip
STOP_PATTERN = "'^[^ ]*python[^ ]* -m bert_jax[.]main'"


# --- launch/tpu_vm.sh --------------------------------------------------------------------------

TPU_CASES = {
    "create --accelerator-type=v4-8 --runtime-version=tpu-ubuntu2204-base --spot": [
        ["gcloud", "compute", "tpus", "tpu-vm", "create", "tpu1", "--project=proj",
         "--zone=us-central2-b", "--accelerator-type=v4-8", "--version=tpu-ubuntu2204-base",
         "--spot"],
    ],
    "create --accelerator-type v5litepod-16 --runtime-version rv --queued": [
        ["gcloud", "compute", "tpus", "queued-resources", "create", "tpu1", "--node-id=tpu1",
         "--project=proj", "--zone=us-central2-b", "--accelerator-type=v5litepod-16",
         "--runtime-version=rv"],
    ],
    "status": [
        ["gcloud", "compute", "tpus", "tpu-vm", "describe", "tpu1", "--project=proj",
         "--zone=us-central2-b", "--format=value(state,health,acceleratorType)"],
        SSH + ["--worker=all", f"--command=if pgrep -f {STOP_PATTERN} >/dev/null; then "
               's=training; else s=stopped; fi; echo "$(hostname): $s | $(tail -n 1 '
               '~/bert_jax_logs/worker-$(hostname).log 2>/dev/null)"'],
    ],
    "logs": [SSH + ["--worker=all", "--command=tail -n 50 ~/bert_jax_logs/worker-$(hostname).log"]],
    "logs --worker=1 --lines 5 --follow": [
        SSH + ["--worker=1", "--command=tail -n 5 -f ~/bert_jax_logs/worker-$(hostname).log"]
    ],
    "delete": [
        ["gcloud", "compute", "tpus", "tpu-vm", "delete", "tpu1", "--project=proj",
         "--zone=us-central2-b", "--quiet"],
    ],
    "delete --queued": [
        ["gcloud", "compute", "tpus", "queued-resources", "delete", "tpu1", "--project=proj",
         "--zone=us-central2-b", "--force", "--quiet"],
    ],
}  # fmt: skip


@pytest.mark.parametrize("args", TPU_CASES)
def test_tpu_dry_run_prints_the_gcloud_commands(args):
    assert dry_run("tpu_vm.sh", *args.split(), env=TPU) == TPU_CASES[args]


def test_tpu_run_starts_the_same_command_on_every_worker_after_cleaning_up():
    (argv,) = dry_run(
        "tpu_vm.sh", "run", "--run=r1", "--bucket=gs://bk/",
        "--", "--config.learning_rate=1e-3", "--config.data.corpus=it's.txt",
        env=TPU,
    )  # fmt: skip
    assert argv[:-1] == SSH + ["--worker=all"]
    command = remote_command(argv)
    training = (
        "cd ~/bert_jax && exec ~/bert_jax_venv/bin/python -m bert_jax.main "
        "--config=configs/pretrain.py --workdir=gs://bk/r1 --config.learning_rate=1e-3 "
        "'--config.data.corpus=it'\\''s.txt'"
    )
    saved = re.match(r"mkdir -p ~/bert_jax_logs && printf '%s\\n' (.*) > ~/bert_jax_logs/", command)
    assert shlex.split(saved[1]) == [training]
    steps = [
        "> ~/bert_jax_logs/command.sh;",
        f"pkill -f {STOP_PATTERN}",
        f"pkill -9 -f {STOP_PATTERN}",
        "sudo rm -f /tmp/libtpu_lockfile",
        "nohup bash ~/bert_jax_logs/command.sh >> ~/bert_jax_logs/worker-$(hostname).log 2>&1 "
        "< /dev/null &",
    ]
    positions = [command.find(step) for step in steps]
    assert -1 not in positions, (steps, command)
    assert positions == sorted(positions), command
    # resume repeats the saved command after the same clean-up.
    (resume,) = dry_run("tpu_vm.sh", "resume", env=TPU)
    assert remote_command(resume).endswith(command[command.index("; pkill") :])


def test_tpu_setup_copies_the_checkout_and_installs_it_on_every_worker(tmp_path):
    archive = f"{tmp_path}/bert_jax-tpu1.tgz"
    tar, scp, ssh = dry_run("tpu_vm.sh", "setup", env=TPU | {"TMPDIR": str(tmp_path)})
    assert tar[:5] == ["tar", "-czf", archive, "-C", REPO] and tar[-1] == "."
    assert "--exclude=.git" in tar and "--exclude=runs" in tar
    assert scp == ["gcloud", "compute", "tpus", "tpu-vm", "scp", archive, "tpu1:bert_jax.tgz",
                   "--project=proj", "--zone=us-central2-b", "--worker=all"]  # fmt: skip
    assert ssh[:-1] == SSH + ["--worker=all"]
    command = remote_command(ssh)
    assert "tar -xzf ~/bert_jax.tgz -C ~/bert_jax" in command
    assert "python3.11 -m venv ~/bert_jax_venv" in command
    assert command.endswith("~/bert_jax_venv/bin/pip install -q -e ~/bert_jax 'jax[tpu]'")


@pytest.mark.parametrize(
    "args",
    [*TPU_CASES, "setup", "run --run=r1 -- --config.seed=3", "resume"],
)
def test_tpu_commands_run_gcloud_exactly_as_printed(tmp_path, args):
    env, calls = fake_tools(tmp_path, "gcloud")
    env |= TPU | {"TMPDIR": str(tmp_path)}
    expected = dry_run("tpu_vm.sh", *shlex.split(args), env=env)
    assert recorded(calls) == []
    result = launch("tpu_vm.sh", *shlex.split(args), env=env)
    assert result.returncode == 0, result.stderr
    assert recorded(calls) == [c for c in expected if c[0] == "gcloud"]
    if args == "setup":  # the archive really holds the package
        listing = subprocess.run(
            ["tar", "-tzf", f"{tmp_path}/bert_jax-tpu1.tgz"], capture_output=True, text=True
        ).stdout.split()
        assert "./bert_jax/main.py" in listing and "./pyproject.toml" in listing
        assert not [name for name in listing if name.startswith("./.git/")]


@pytest.mark.parametrize(
    "args, missing",
    [
        ("status", "--project (or TPU_PROJECT), --zone (or TPU_ZONE), --name (or TPU_NAME)"),
        ("create --project=p --zone=z --name=n", "--accelerator-type (or TPU_ACCELERATOR_TYPE), "
         "--runtime-version (or TPU_RUNTIME_VERSION)"),
        ("run --project=p --zone=z --name=n", "--bucket (or TPU_BUCKET)"),
    ],
)  # fmt: skip
def test_tpu_missing_settings_are_named_on_one_line(tmp_path, args, missing):
    env, calls = fake_tools(tmp_path, "gcloud")
    result = launch("tpu_vm.sh", *args.split(), env=env)
    assert result.returncode == 2
    assert result.stderr == f"tpu_vm.sh: error: missing {missing}\n"
    assert recorded(calls) == []


@pytest.mark.parametrize(
    "args, message",
    [
        ("", "Usage: launch/tpu_vm.sh COMMAND"),
        ("start", "tpu_vm.sh: error: unknown command 'start'; see --help\n"),
        ("logs --lines", "tpu_vm.sh: error: --lines needs a value\n"),
        ("status --bogus", "tpu_vm.sh: error: unknown option '--bogus'"),
        ("resume -- --config.seed=1", "tpu_vm.sh: error: only run takes training flags"),
    ],
)
def test_tpu_usage_errors(args, message):
    result = launch("tpu_vm.sh", *args.split(), env=TPU)
    assert result.returncode == 2
    assert result.stderr.startswith(message)


def test_tpu_help_lists_every_command_and_setting():
    result = launch("tpu_vm.sh", "--help")
    assert result.returncode == 0
    for word in ["create", "setup", "run", "resume", "status", "logs", "delete", "--dry-run",
                 "TPU_PROJECT", "TPU_ZONE", "TPU_NAME", "TPU_BUCKET", "TPU_ACCELERATOR_TYPE",
                 "TPU_RUNTIME_VERSION", "--spot", "--queued"]:  # fmt: skip
        assert word in result.stdout


def test_tpu_worker_commands_start_and_restart_training_in_the_background(tmp_path):
    """The remote commands of run and resume, executed here in a stand-in home directory."""
    home, record = tmp_path / "home", tmp_path / "python_calls"
    (home / "bert_jax").mkdir(parents=True)
    (home / "bert_jax_venv" / "bin").mkdir(parents=True)
    python = home / "bert_jax_venv" / "bin" / "python"
    python.write_text(f'#!/bin/sh\necho "$(pwd) $*" >> {record}\necho "training output"\n')
    python.chmod(0o755)
    env, calls = fake_tools(tmp_path, "pkill", "sudo")
    (tmp_path / "fakebin" / "pgrep").symlink_to("/bin/false")  # nothing left to wait for
    env |= {"HOME": str(home)}

    def on_worker(argv: list[str], runs: int) -> None:
        (ssh,) = dry_run("tpu_vm.sh", *argv, env=TPU)
        subprocess.run(["bash", "-c", remote_command(ssh)], env=os.environ | env, check=True)
        deadline = time.time() + 30
        while not (record.exists() and len(record.read_text().splitlines()) == runs):
            assert time.time() < deadline, "the training command did not start"
            time.sleep(0.1)

    on_worker(["run", "--", "--config.seed=3"], runs=1)
    on_worker(["resume"], runs=2)
    expected = f"{home}/bert_jax -m bert_jax.main --config=configs/pretrain.py "
    expected += "--workdir=gs://bk/tpu1 --config.seed=3"
    assert record.read_text().splitlines() == [expected, expected]
    hostname = subprocess.run(["hostname"], capture_output=True, text=True).stdout.strip()
    log = (home / "bert_jax_logs" / f"worker-{hostname}.log").read_text()
    assert log.count("starting cd ~/bert_jax && exec") == 2
    assert log.count("training output") == 2
    pattern = STOP_PATTERN.strip("'")
    cleanup = [["pkill", "-f", pattern], ["pkill", "-9", "-f", pattern],
               ["sudo", "rm", "-f", "/tmp/libtpu_lockfile"]]  # fmt: skip
    assert recorded(calls) == cleanup + cleanup


def test_tpu_stop_pattern_finds_training_but_not_the_remote_shell(tmp_path):
    """The pattern must match `python -m bert_jax.main ...` processes and not the shell running
    the ssh command, whose command line names bert_jax.main too (pgrep only reads)."""
    (status,) = dry_run("tpu_vm.sh", "status", env=TPU)[-1:]
    pattern = re.search(r"pgrep -f '([^']+)'", remote_command(status))[1]
    package = tmp_path / "bert_jax"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "main.py").write_text("import time\ntime.sleep(120)\n")
    training = subprocess.Popen(
        [sys.executable, "-m", "bert_jax.main", "--workdir=gs://b/r"], cwd=tmp_path
    )
    # Not ending in `sleep`, which bash would exec, replacing its own command line.
    shell = subprocess.Popen(
        ["bash", "-c", "echo python -m bert_jax.main; sleep 120; true"],
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        time.sleep(1)
        assert training.poll() is None and shell.poll() is None
        found = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True)
        found = found.stdout.split()
        assert str(training.pid) in found
        assert str(shell.pid) not in found
    finally:
        training.kill()
        os.killpg(shell.pid, signal.SIGKILL)  # the shell and its sleep
        training.wait()
        shell.wait()
