"""The training loop of every task: build everything, run steps, log, evaluate, checkpoint, stop
cleanly.

Resume order: the workdir's newest checkpoint, else the task's starting weights (`init_from`),
else a fresh initialisation. A rerun of the same command
continues exactly where the last one stopped (bitwise on CPU): the data position and pending
metric sums travel in the checkpoint, and dropout keys derive from (seed, step).

Before the first step: the workdir is locked (one run per workdir), the train step is compiled
ahead of time and refused if it cannot fit the device's memory. During the loop the host runs
at most two steps ahead of the device, so SIGTERM is honoured within a few step times, and in a
multi-process job every process votes on stopping at every step, so all stop at the same step.
"""

import collections
import math
import signal
import time
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from etils import epath
from ml_collections import ConfigDict

from bert_jax import console, flops, run_lock, sharding, train_metrics
from bert_jax import workdir as workdir_lib
from bert_jax.checkpoint_reads import latest_meta
from bert_jax.checkpoints import Checkpoints, check_same_data, encode_meta
from bert_jax.config_checks import check_best_metric, resolve_derived, validate_config
from bert_jax.early_stopping import EarlyStopping
from bert_jax.errors import UserError
from bert_jax.optim import build_optimizer
from bert_jax.tasks.base import Task
from bert_jax.tasks.registry import build_task
from bert_jax.train_state import StateSpec, load_matching_params, state_spec
from bert_jax.train_step import make_eval_step, make_loss_and_grad, make_train_step

# Stop votes, combined over processes by max: continue, stop after saving, stop without saving.
CONTINUE, STOP, LOCK_LOST = 0, 1, 2
# The host waits for step n-2 before dispatching step n: the device always has the next step
# queued, and a stop never waits for more than a couple of steps already dispatched.
MAX_STEPS_AHEAD = 2


class _StopFlag:
    """Set by SIGTERM (preemption): the loop saves at a step boundary and exits."""

    def __init__(self, done_step):
        self.raised = False
        self._done_step = done_step
        signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum, frame):
        logging.warning(
            "SIGTERM received after the device finished step %d: saving a checkpoint and "
            "stopping.", self._done_step(),
        )  # fmt: skip
        self.raised = True


def train_and_evaluate(config: ConfigDict, workdir: str) -> dict:
    """Runs (or continues) the config's task in `workdir`; returns the final train state."""
    validate_config(config)
    mesh = sharding.make_mesh(config)
    sharding.check_batch_split(config.batch_size, mesh, config, "batch_size")
    sharding.check_batch_split(config.data.eval_batch_size, mesh, config, "data.eval_batch_size")
    fresh = not epath.Path(workdir).exists()
    try:
        # Before anything else is written: the workdir is this run's or the run stops here.
        with run_lock.hold(workdir) as lock:
            return _train(config, workdir, mesh, lock)
    except UserError:
        if fresh:  # refused after preparing the corpus into it: leave no workdir behind
            workdir_lib.remove_unstarted(workdir)
        raise


def _train(config: ConfigDict, workdir: str, mesh, lock) -> dict:
    task = build_task(config, workdir)
    check_same_data(latest_meta(workdir), task.data_fingerprint, workdir)
    config = resolve_derived(config, task.train.batches_per_epoch, task.main_metric)
    tx, schedule = build_optimizer(config)
    spec = state_spec(config, task.model_config, task.build_model, tx, mesh)
    loop = _Loop(config, workdir, mesh, task, spec, tx, schedule, lock)
    loop.compile()  # a step that cannot fit stops here, with nothing written

    checkpoints = Checkpoints(
        workdir,
        max_to_keep=config.max_checkpoints_to_keep,
        best_metric=config.best_metric,
        best_mode=config.best_mode,
    )
    try:
        restored = checkpoints.restore_latest(spec.abstract, config.to_json())
        if restored is None:
            state, progress = spec.init(), None
            if task.pretrained is not None:
                state["params"] = load_matching_params(
                    state["params"], task.pretrained.params, config.init_from
                )
        else:
            step, state, progress, _ = restored
            logging.info("Resuming from the checkpoint at step %d.", step)
        workdir_lib.write_config(workdir, config)  # the run starts: its checkpoints fit
        state, step = loop.run(state, progress, checkpoints)
        checkpoints.wait()
        if step == config.num_train_steps or loop.early_stopping.stopped:
            workdir_lib.mark_done(workdir, step)  # scripts tell "finished" from "stopped" by it
        return state
    finally:
        try:
            checkpoints.wait()
        finally:
            checkpoints.close()


def _with_stop_votes(train_step):
    """The step also returns the max over processes of their stop votes (one per batch row),
    so agreeing on a stop costs no extra collective."""

    def step(state, batch, votes, frozen):
        state, metrics = train_step(state, batch, frozen)
        return state, metrics, jnp.max(votes)

    return step


class _Loop:
    """The step loop with its periodic actions; owns the metric writer and the metric window."""

    def __init__(
        self, config, workdir, mesh, task: Task, spec: StateSpec, tx, schedule, lock,
    ):  # fmt: skip
        self.config, self.workdir, self.mesh, self.task = config, workdir, mesh, task
        self.spec, self.schedule, self.lock = spec, schedule, lock
        self.checkpoints: Checkpoints | None = None
        self.meta = encode_meta(
            config.to_json(), task.tokenizer, task.model_config, task.info, task.data_fingerprint
        )
        self.window = train_metrics.MetricWindow()
        self.batch_sharding = sharding.batch_sharding(mesh, config)
        replicated = sharding.replicated(mesh)
        # Parameters the loss reads but never trains (a distillation teacher): placed by the task,
        # passed to every step, never in the state, the optimizer or a checkpoint.
        frozen_sharding = jax.tree.map(lambda x: x.sharding, task.frozen)
        self.train_step = jax.jit(
            _with_stop_votes(make_train_step(spec.graphdef, tx, config.seed, task.loss)),
            in_shardings=(
                spec.shardings,
                self.batch_sharding,
                self.batch_sharding,
                frozen_sharding,
            ),
            out_shardings=(spec.shardings, replicated, replicated),
            donate_argnums=0,
        )
        params_sharding = spec.shardings["params"]
        self.eval_step = jax.jit(
            make_eval_step(spec.graphdef, task.eval_outputs),
            in_shardings=(params_sharding, self.batch_sharding),
            out_shardings=replicated,
        )
        self.loss_and_grad = jax.jit(
            make_loss_and_grad(spec.graphdef, task.loss),
            in_shardings=(params_sharding, self.batch_sharding, None, frozen_sharding),
            out_shardings=(replicated, params_sharding),
        )
        self.early_stopping = EarlyStopping(
            config.get("early_stopping_patience"),
            config.get("early_stopping_min_delta", 0.0),
            config.best_mode,
            config.best_metric,
        )
        # Throughput counts the positions the step computed (packed and length-bucketed
        # batches have fewer than batch_size x max_seq_length), so MFU is the hardware's use.
        self.flops_per_position = task.flops_per_step / (
            config.batch_size * config.data.max_seq_length
        )
        self.positions = 0  # computed since the last log line
        self.peak_flops = flops.peak_flops_per_device(config.peak_flops_per_device)
        self.num_params = sum(x.size for x in jax.tree.leaves(spec.abstract["params"]))
        self.done_step = 0  # the newest step the host has seen the device finish
        self.compiled_steps: dict[tuple, Any] = {}  # batch shapes -> the compiled train step

    def compile(self) -> None:
        """Compiles the train step for the first batch's shapes ahead of time (logging XLA's
        memory plan and refusing a step too large for a device), before anything is written."""
        position = self.task.train.get_state()
        sample = next(self.task.train)  # only its shapes; the position is put back
        self.task.train.set_state(position)
        self.check_best_metric()
        rows = len(next(iter(sample.values()))) * jax.process_count()
        self.step_for(
            {key: ((rows, *value.shape[1:]), value.dtype) for key, value in sample.items()}
        )

    def step_for(self, shapes: dict) -> Any:
        """The train step compiled for a global batch of these shapes ({key: (shape, dtype)}),
        compiled and memory-checked the first time they appear: packed and length-bucketed
        fine-tuning batches come in a few shapes, pretraining batches in one."""
        signature = tuple(
            sorted((key, tuple(shape), str(dtype)) for key, (shape, dtype) in shapes.items())
        )
        if signature in self.compiled_steps:
            return self.compiled_steps[signature]
        batch = {
            key: jax.ShapeDtypeStruct(shape, dtype, sharding=self.batch_sharding)
            for key, (shape, dtype) in shapes.items()
        }
        # One stop vote per row of a full batch, whatever the rows of this one (the loop's).
        votes = jax.ShapeDtypeStruct(
            (self.config.batch_size,), np.int32, sharding=self.batch_sharding
        )
        start = time.perf_counter()
        compiled = self.train_step.lower(
            self.spec.abstract, batch, votes, self.task.frozen
        ).compile()
        memory = compiled.memory_analysis()
        first = not self.compiled_steps
        self.compiled_steps[signature] = compiled
        if memory is None:
            if first:
                logging.info("Train step compiled in %.1f s.", time.perf_counter() - start)
            return compiled
        if first:
            logging.info(
                "Train step compiled in %.1f s; XLA's plan per device: %s arguments, %s outputs "
                "(%s aliased to the arguments), %s temporaries.",
                time.perf_counter() - start, _gb(memory.argument_size_in_bytes),
                _gb(memory.output_size_in_bytes), _gb(memory.alias_size_in_bytes),
                _gb(memory.temp_size_in_bytes),
            )  # fmt: skip
        limit, source = device_memory_limit(self.config)
        needed = memory.temp_size_in_bytes + memory.argument_size_in_bytes
        if limit is not None and needed > limit:
            raise UserError(
                f"The train step needs about {_gb(needed)} per device (XLA's estimate: "
                f"{_gb(memory.temp_size_in_bytes)} temporaries + "
                f"{_gb(memory.argument_size_in_bytes)} arguments) but a device has "
                f"{_gb(limit)} ({source}); set model.remat=true, shard the parameters and "
                "optimizer state with mesh.fsdp, or lower batch_size and raise "
                "optimizer.grad_accum_steps to match."
            )
        return compiled

    def check_best_metric(self) -> None:
        """Refuses a `best_metric` the task never logs now, not at the first evaluation: the
        task's metrics of one eval batch of outputs all 1 name every metric it reports."""
        batch = self.task.eval_batches[0]
        params = jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), self.spec.abstract["params"]
        )
        shapes = jax.eval_shape(
            make_eval_step(self.spec.graphdef, self.task.eval_outputs),
            params,
            {key: jax.ShapeDtypeStruct(value.shape, value.dtype) for key, value in batch.items()},
        )
        outputs = {
            key: batch[key] if key in batch else np.ones(shape.shape, shape.dtype)
            for key, shape in shapes.items()
        }
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                names = [f"eval/{name}" for name in self.task.evaluate([outputs])]
        except Exception as error:  # noqa: BLE001 - a task that needs every batch: check later
            logging.info("best_metric is checked at the first evaluation (%s).", error)
            return
        check_best_metric(self.config.best_metric, names)

    def progress_state(self) -> dict:
        return {
            "data": self.task.train.get_state(),
            "metrics": self.window.state(),
            "early_stopping": self.early_stopping.state(),
        }

    def local_vote(self, stop: _StopFlag) -> int:
        if self.lock is not None and self.lock.lost is not None:
            return LOCK_LOST
        return STOP if stop.raised else CONTINUE

    def run(self, state: dict, progress: dict | None, checkpoints: Checkpoints):
        """Trains to `num_train_steps` or a stop; returns (state, last step)."""
        config, accum = self.config, self.config.optimizer.grad_accum_steps
        self.checkpoints = checkpoints
        if progress is not None:
            self.task.train.set_state(progress["data"])
            self.window.load(progress["metrics"])
            self.early_stopping.load(progress.get("early_stopping"))
        first_step = int(state["micro_step"]) // accum
        self.done_step = first_step
        if self.early_stopping.stopped:
            logging.info("The run stopped early at step %d; nothing to do.", first_step)
            return state, first_step
        if first_step < config.num_train_steps:
            workdir_lib.clear_done(self.workdir)  # continued past an earlier end
        writer = train_metrics.create_writer(self.workdir)
        if first_step == 0:
            writer.write_hparams(train_metrics.flat_config(config))
        self.progress = train_metrics.Progress(
            first_step, config.num_train_steps, self.task.console_metric
        )
        lines = console.startup_lines(
            config, self.task, self.workdir, first_step, dict(self.mesh.shape), self.num_params,
            jax.process_count(),
        )  # fmt: skip
        for line in lines:
            logging.info("%s", line)
        stop = _StopFlag(lambda: self.done_step)
        in_flight: collections.deque = collections.deque()  # (step, its agreed vote)
        agreed, step = CONTINUE, first_step
        local_rows = config.batch_size // jax.process_count()
        try:
            for step in range(first_step + 1, config.num_train_steps + 1):
                while len(in_flight) >= MAX_STEPS_AHEAD:
                    done, vote = in_flight.popleft()
                    agreed = int(vote)  # waits for that step: the host stays close behind
                    self.done_step = done
                # Read once per step: a later signal is handled at the next one.
                vote = self.local_vote(stop)
                votes = sharding.put_batch(
                    {"votes": np.full(local_rows, vote, np.int32)}, self.batch_sharding
                )["votes"]
                for _ in range(accum):
                    batch = sharding.put_batch(next(self.task.train), self.batch_sharding)
                    step_fn = self.step_for({k: (v.shape, v.dtype) for k, v in batch.items()})
                    self.positions += math.prod(batch["input_ids"].shape)
                    state, step_metrics, step_vote = step_fn(state, batch, votes, self.task.frozen)
                    self.window.add(step, step_metrics)
                in_flight.append((step, step_vote))
                # One process acts on its own vote; several act on the vote they all saw
                # (step n-2's), so they stop at the same step. On TPU pods Orbax's preemption
                # sync point also tells every host that one of them is being preempted.
                decision = vote if jax.process_count() == 1 else agreed
                if self.checkpoints.reached_preemption(step):
                    decision = max(decision, STOP)
                if decision == LOCK_LOST:
                    raise UserError(_lock_lost_message(self.lock, self.workdir))
                self.checkpoints.check()  # a failed save (disk full) stops the run here
                if self.periodic_actions(step, state, batch, writer, decision == STOP):
                    break  # early stopping: saved, best/ kept
                if decision == STOP:
                    logging.warning("Stopped at step %d; rerun the same command to continue.", step)
                    break
        finally:
            writer.close()
        return state, step

    def evaluate(self, params) -> dict[str, float]:
        outputs = [
            jax.device_get(self.eval_step(params, sharding.put_batch(batch, self.batch_sharding)))
            for batch in self.task.eval_batches
        ]
        return self.task.evaluate(outputs)

    def throughput(self, step: int) -> dict[str, float]:
        steps, seconds = self.progress.elapsed(step)
        accum = self.config.optimizer.grad_accum_steps
        tokens_per_sec, self.positions = self.positions / seconds, 0
        devices = jax.device_count()
        return {
            "examples_per_sec": steps / seconds * self.config.batch_size * accum,
            "tokens_per_sec": tokens_per_sec,
            "tokens_per_sec_per_device": tokens_per_sec / devices,
            "mfu": tokens_per_sec * self.flops_per_position / (devices * self.peak_flops),
        }

    def periodic_actions(
        self, step: int, state: dict, batch: dict, writer, stopping: bool
    ) -> bool:  # fmt: skip
        """Log, evaluate and checkpoint as due; True when early stopping ends the run here."""
        config = self.config
        early_stop = False
        last = step == config.num_train_steps
        if step % config.log_every_steps == 0 or last:
            summary = self.window.pop_summary(self.task.summarize)
            summary["learning_rate"] = float(self.schedule(step - 1))  # rate of this update
            summary |= self.throughput(step)
            writer.write_scalars(step, {f"train/{k}": v for k, v in summary.items()})
            self.progress.log(step, summary)
            self.done_step = step  # the summary waited for this step's metrics
        if step % config.histogram_every_steps == 0:
            _, grads = self.loss_and_grad(state["params"], batch, None, self.task.frozen)
            writer.write_histograms(
                step,
                train_metrics.param_histograms(state["params"], "params")
                | train_metrics.param_histograms(grads, "grads"),
            )
        if step % config.eval_every_steps == 0 or last:
            self.window.drain()  # never keep a non-finite state as "best"
            summary = {f"eval/{k}": v for k, v in self.evaluate(state["params"]).items()}
            writer.write_scalars(step, summary)
            logging.info("eval at step %d: %s", step, _format(summary))
            self.done_step = step
            early_stop = self.early_stopping.update(step, summary)
            self.checkpoints.save_best(step, state, self.progress_state(), self.meta, summary)
        if step % config.checkpoint_every_steps == 0 or last or stopping or early_stop:
            # progress_state() drains the window first: a non-finite step stops before the save.
            progress = self.progress_state()
            # Every figure up to this step is on disk before its checkpoint can be: a run killed
            # after the save resumes without a gap in its event files.
            writer.flush()
            self.checkpoints.save(step, state, progress, self.meta)
        return early_stop


def device_memory_limit(config: ConfigDict) -> tuple[int | None, str]:
    """Bytes one device may use: `device_memory_limit_bytes`, else what the device reports
    (GPU and TPU do; CPU does not, and is then not checked)."""
    if config.get("device_memory_limit_bytes"):
        return int(config.device_memory_limit_bytes), "device_memory_limit_bytes"
    try:
        stats = jax.local_devices()[0].memory_stats() or {}
    except Exception:  # noqa: BLE001 - a backend without memory statistics
        stats = {}
    limit = stats.get("bytes_limit")
    return (int(limit), f"{jax.local_devices()[0].device_kind} memory_stats") if limit else (
        None, "unknown"
    )  # fmt: skip


def _lock_lost_message(lock, workdir: str) -> str:
    holder = lock.lost.describe() if lock is not None and lock.lost else "another run"
    return (
        f"{workdir} was taken over by the run of {holder} while this one trained; it stopped "
        "without saving, so as not to overwrite that run's checkpoints."
    )


def _gb(size: int) -> str:
    return f"{size / 2**30:.2f} GiB" if size >= 2**27 else f"{size / 2**20:.1f} MiB"


def _format(summary: dict[str, float]) -> str:
    return ", ".join(f"{k.split('/')[-1]}={v:.4f}" for k, v in sorted(summary.items()))
