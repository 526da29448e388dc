"""The launchers in launch/: what they print with --dry-run, what they really run (gcloud, sbatch
and srun are fakes that record their arguments), their errors, and a real two-process run."""

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import CONFIG, REPO, TINY, read_scalars

LAUNCH = os.path.join(REPO, "launch")
TPU = {"TPU_PROJECT": "proj", "TPU_ZONE": "us-central2-b", "TPU_NAME": "tpu1", "TPU_BUCKET": "bk"}
SSH = ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "tpu1", "--project=proj",
       "--zone=us-central2-b"]  # fmt: skip
STOP_PATTERN = "'^[^ ]*python[^ ]* -m bert_jax[.]main'"


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


# --- launch/slurm_submit.sh and launch/slurm.sbatch ---------------------------------------------

SBATCH = [
    "sbatch", "--job-name=bert_jax-base", "--nodes=2", "--ntasks-per-node=4",
    "--gpus-per-node=4", "--partition=gpu", "--time=2:00:00", f"{LAUNCH}/slurm.sbatch",
    "--config=configs/pretrain.py", "--workdir=/shared/runs/base", "--config.model.preset=base",
]  # fmt: skip
SUBMIT = ["--nodes=2", "--gpus-per-node", "4", "--partition=gpu", "--time=2:00:00",
          "--workdir=/shared/runs/base", "--", "--config.model.preset=base"]  # fmt: skip


def test_slurm_submit_dry_run_prints_the_sbatch_command():
    assert dry_run("slurm_submit.sh", *SUBMIT, cwd=REPO) == [SBATCH]


def test_slurm_submit_calls_sbatch_as_printed(tmp_path):
    env, calls = fake_tools(tmp_path, "sbatch")
    result = launch("slurm_submit.sh", *SUBMIT, env=env, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert recorded(calls) == [SBATCH]


def test_slurm_submit_refuses_without_a_workdir(tmp_path):
    env, calls = fake_tools(tmp_path, "sbatch")
    result = launch("slurm_submit.sh", "--nodes=2", "--", "--config.seed=1", env=env)
    assert result.returncode == 2
    assert result.stderr.startswith("slurm_submit.sh: error: missing --workdir")
    assert result.stderr.count("\n") == 1
    assert recorded(calls) == []


def test_slurm_batch_script_runs_one_task_per_gpu(tmp_path):
    env, calls = fake_tools(tmp_path, "srun")
    with open(os.path.join(LAUNCH, "slurm.sbatch")) as f:
        directives = dict(re.findall(r"^#SBATCH (--[\w-]+)=(\S+)", f.read(), re.M))
    assert directives["--ntasks-per-node"] == directives["--gpus-per-node"]
    # To the batch script (B:), with time to save before the time limit; and requeue allowed.
    assert directives["--signal"] == "B:USR1@120"
    assert "#SBATCH --requeue\n" in open(os.path.join(LAUNCH, "slurm.sbatch")).read()
    result = launch("slurm.sbatch", "--config=c.py", "--workdir=w", env=env | {"PYTHON": "py"})
    assert result.returncode == 0, result.stderr
    expected = ["srun", "--kill-on-bad-exit=1", "py", "-m", "bert_jax.main", "--config=c.py"]
    assert recorded(calls) == [expected + ["--workdir=w"]]


# The fake srun runs its command in place (exec, so its pid is the task's, which it notes in
# tasks.txt); the fake scancel --signal=SIG sends SIG to those tasks, as SLURM signals every step
# but the batch script; the fake scontrol also notes the checkpoints that exist when it is called.
SLURM_FAKES = {
    "srun": "with open(os.environ['FAKE_TASKS'], 'a') as f:\n"
    "    f.write(f'{os.getpid()}\\n')\n"
    "command = [arg for arg in sys.argv[1:] if not arg.startswith('--kill-on-bad-exit')]\n"
    "os.execvp(command[0], command)\n",
    "scancel": "(name,) = [a.split('=')[1] for a in sys.argv[1:] if a.startswith('--signal=')]\n"
    "for pid in open(os.environ['FAKE_TASKS']).read().split():\n"
    "    os.kill(int(pid), getattr(signal, 'SIG' + name))\n",
    "scontrol": "steps = os.environ.get('FAKE_CHECKPOINTS', '')\n"
    "with open(os.environ['FAKE_TASKS'] + '.scontrol', 'w') as f:\n"
    "    f.write(' '.join(sorted(os.listdir(steps))) if os.path.isdir(steps) else '')\n",
}


def slurm_job(tmp_path) -> tuple[dict, str]:
    env, calls = fake_tools(tmp_path, *SLURM_FAKES, then=SLURM_FAKES)
    return env | {"SLURM_JOB_ID": "4242", "FAKE_TASKS": str(tmp_path / "tasks.txt")}, calls


@pytest.mark.parametrize(
    "task_status, requeued, job_status",
    [(75, True, 0), (0, False, 0), (1, False, 1), (143, False, 143)],
)
def test_slurm_requeues_a_run_that_stopped_before_its_end_and_nothing_else(
    tmp_path, task_status, requeued, job_status
):
    """The exit-status contract: 75 (EX_TEMPFAIL) means stopped early, rerun to continue."""
    task = tmp_path / "task"
    task.write_text(f"#!/bin/sh\nexit {task_status}\n")
    task.chmod(0o755)
    env, calls = slurm_job(tmp_path)
    result = launch("slurm.sbatch", "--workdir=w", env=env | {"PYTHON": str(task)})
    assert result.returncode == job_status, result.stderr
    requeue = [["scontrol", "requeue", "4242"]]
    assert [c for c in recorded(calls) if c[0] != "srun"] == (requeue if requeued else [])


@pytest.mark.slow
def test_slurm_time_limit_saves_requeues_and_the_requeued_job_resumes(tmp_path):
    """A real tiny run under the fake srun: SLURM's time-limit warning (SIGUSR1 to the batch
    script) makes the task save and stop, the job requeues itself, and its rerun continues."""
    workdir = tmp_path / "run"
    settings = TINY | {"num_train_steps": 200, "log_every_steps": 2, "eval_every_steps": 1000,
                       "checkpoint_every_steps": 1000, "histogram_every_steps": 1000}  # fmt: skip
    flags = [f"--config={CONFIG}", f"--workdir={workdir}"]
    flags += [f"--config.{key}={value}" for key, value in settings.items()]
    env, calls = slurm_job(tmp_path)
    env |= {"PYTHON": sys.executable, "FAKE_CHECKPOINTS": str(workdir / "checkpoints")}
    log = tmp_path / "slurm.out"
    script = ["bash", os.path.join(LAUNCH, "slurm.sbatch"), *flags]
    with open(log, "w") as out:
        job = subprocess.Popen(script, cwd=REPO, env=os.environ | env, stdout=out, stderr=out)
        try:
            deadline = time.time() + 600
            while "step 4/200" not in log.read_text():
                assert job.poll() is None and time.time() < deadline, log.read_text()[-3000:]
                time.sleep(0.2)
            job.send_signal(signal.SIGUSR1)  # what --signal=B:USR1@120 sends
            assert job.wait(timeout=300) == 0, log.read_text()[-3000:]
        finally:
            job.kill()
    text = log.read_text()
    assert re.search(
        r"SIGTERM received after the device finished step \d+: saving a checkpoint", text
    )
    (stopped,) = os.listdir(workdir / "checkpoints")  # the checkpoint of the stop, no other
    assert 4 <= int(stopped) < 200
    srun = ["srun", "--kill-on-bad-exit=1", sys.executable, "-m", "bert_jax.main", *flags]
    assert recorded(calls) == [
        srun, ["scancel", "--signal=TERM", "4242"], ["scontrol", "requeue", "4242"]
    ]  # fmt: skip
    # The requeue came after the checkpoint was committed.
    assert (tmp_path / "tasks.txt.scontrol").read_text() == stopped

    # SLURM starts the requeued job: the same script and arguments.
    rerun = launch("slurm.sbatch", *flags, env=env | {"SLURM_RESTART_COUNT": "1"}, cwd=REPO)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"Resuming from the checkpoint at step {stopped}." in rerun.stderr
    assert "200" in os.listdir(workdir / "checkpoints")
    assert recorded(calls)[3:] == [srun]  # finished: no second requeue


# --- launch/local_multiprocess.sh ---------------------------------------------------------------


def test_local_multiprocess_dry_run_prints_one_command_per_process():
    result = launch(
        "local_multiprocess.sh", "--dry-run", "--devices-per-process=4", "--port", "1234",
        "--log-dir=out", "2", "--config=configs/pretrain.py", "--workdir=runs/two",
        env={"PYTHON": "python3", "XLA_FLAGS": "", "JAX_PLATFORMS": ""},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "XLA_FLAGS=--xla_force_host_platform_device_count=4 JAX_PLATFORMS=cpu python3 -m "
        "bert_jax.main --config=configs/pretrain.py --workdir=runs/two "
        f"--coordinator_address=localhost:1234 --num_processes=2 --process_id={i} "
        f"> out/process-{i}.log 2>&1 &"
        for i in range(2)
    ] + ["wait"]


def stopped_now(pid: int) -> bool:
    """Kills a process of this test that should no longer exist; True if it did exist."""
    try:
        os.kill(pid, signal.SIGKILL)
        return True
    except ProcessLookupError:
        return False


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "missing N, the number of processes"),
        (["0"], "N must be a positive number of processes, not '0'"),
        (["--devices-per-process=x", "2"], "--devices-per-process must be positive, not 'x'"),
        (["--bogus", "2"], "unknown option '--bogus' before N"),
    ],
)
def test_local_multiprocess_usage_errors(args, message):
    result = launch("local_multiprocess.sh", *args)
    assert result.returncode == 2
    assert result.stderr.startswith(f"local_multiprocess.sh: error: {message}")


def test_local_multiprocess_stops_the_others_when_one_fails(tmp_path):
    """A process that fails leaves the others waiting for it: the script must end them."""
    python, waiting = tmp_path / "python", tmp_path / "waiting"
    python.write_text(
        "#!/bin/bash\n"
        'case " $* " in *" --process_id=1 "*) echo "process 1 breaks" >&2; exit 3 ;; esac\n'
        f"echo $$ >> {waiting}\n"
        "exec sleep 600\n"
    )
    python.chmod(0o755)
    try:
        result = launch(
            "local_multiprocess.sh", f"--log-dir={tmp_path}/logs", "--port=1", "3", "--workdir=x",
            env={"PYTHON": str(python)}, timeout=60,
        )  # fmt: skip
    finally:
        pids = [int(pid) for pid in waiting.read_text().split()]
        alive = [pid for pid in pids if stopped_now(pid)]
    assert len(pids) == 2 and alive == []
    assert result.returncode == 1
    assert "process 1 failed with status 3" in result.stderr
    assert "process 1 breaks" in result.stderr  # the end of its log
    assert "1 of 3 processes failed" in result.stderr


@pytest.mark.slow
def test_local_multiprocess_trains_two_processes_of_two_devices(tmp_path):
    workdir, logs = tmp_path / "run", tmp_path / "logs"
    settings = TINY | {
        "num_train_steps": 8,
        "eval_every_steps": 8,
        "checkpoint_every_steps": 4,
        "histogram_every_steps": 1000,
    }
    flags = [f"--config.{key}={value}" for key, value in settings.items()]
    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = str(s.getsockname()[1])
    result = launch(
        "local_multiprocess.sh", "--devices-per-process=2", f"--port={port}",
        f"--log-dir={logs}", "2", f"--config={CONFIG}", f"--workdir={workdir}", *flags,
        env={"PYTHON": sys.executable}, cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + (logs / "process-0.log").read_text()[-3000:]
    assert sorted(os.listdir(workdir / "checkpoints")) == ["4", "8"]
    for i in range(2):
        log = (logs / f"process-{i}.log").read_text()
        assert (
            "Steps 1..8 (from the start), batches of 8 × 32 tokens, on 4 devices (data 4) "
            "in 2 processes." in log
        )
    assert list(read_scalars(str(workdir))["eval/mlm_loss"]) == [8]
    assert "all 2 processes finished" in result.stdout


@pytest.mark.parametrize(
    "name", ["tpu_vm.sh", "slurm_submit.sh", "slurm.sbatch", "local_multiprocess.sh"]
)
def test_launch_scripts_are_executable(name):
    assert os.access(os.path.join(LAUNCH, name), os.X_OK)
