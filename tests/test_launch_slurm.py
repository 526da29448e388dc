"""launch/slurm_submit.sh and launch/slurm.sbatch: the sbatch and srun commands (fakes that record
their arguments), requeueing, and a real run stopped by its time limit and requeued."""

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from conftest import CONFIG, REPO, TINY
from launch_tools import LAUNCH, dry_run, fake_tools, launch, recorded

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
