"""The training loop of every task: build everything, run steps, log, evaluate, checkpoint, stop
cleanly.

Resume order: the workdir's newest checkpoint, else the task's starting weights (`init_from`),
else a fresh initialisation. A rerun of the same command
continues exactly where the last one stopped (bitwise on CPU): the data position and pending
metric sums travel in the checkpoint, and dropout keys derive from (seed, step).
"""

import signal

import jax
from absl import logging
from etils import epath
from ml_collections import ConfigDict

from bert_jax import flops, sharding, train_metrics
from bert_jax import workdir as workdir_lib
from bert_jax.config_checks import resolve_derived, validate_config
from bert_jax.data.any_tokenizer import tokenizer_from_meta
from bert_jax.early_stopping import EarlyStopping
from bert_jax.optim import build_optimizer
from bert_jax.tasks.base import Task
from bert_jax.tasks.registry import build_task
from bert_jax.train_state import StateSpec, load_matching_params, state_spec
from bert_jax.train_step import make_eval_step, make_loss_and_grad, make_train_step
from bert_jax.workdir import Checkpoints, encode_meta


class _StopFlag:
    """Set by SIGTERM (preemption): the loop saves at the next step boundary and exits."""

    def __init__(self):
        self.raised = False
        signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum, frame):
        logging.warning("SIGTERM received: saving a checkpoint and stopping.")
        self.raised = True


def train_and_evaluate(config: ConfigDict, workdir: str) -> dict:
    """Runs (or continues) the config's task in `workdir`; returns the final train state."""
    validate_config(config)
    mesh = sharding.make_mesh(config)
    sharding.check_batch_split(config.batch_size, mesh, config, "batch_size")
    sharding.check_batch_split(config.data.eval_batch_size, mesh, config, "data.eval_batch_size")
    resumed_meta = workdir_lib.latest_meta(workdir)
    saved_tokenizer = tokenizer_from_meta(resumed_meta) if resumed_meta else None
    task = build_task(config, workdir, saved_tokenizer)
    config = resolve_derived(config, task.train.batches_per_epoch, task.main_metric)
    tx, schedule = build_optimizer(config)
    spec = state_spec(config, task.model_config, task.build_model, tx, mesh)

    # Nothing has been written so far; from here on the workdir is ours.
    epath.Path(workdir).mkdir(parents=True, exist_ok=True)
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
        loop = _Loop(config, workdir, mesh, task, checkpoints, spec, tx, schedule)
        return loop.run(state, progress)
    finally:
        checkpoints.wait()
        checkpoints.close()


class _Loop:
    """The step loop with its periodic actions; owns the metric writer and the metric window."""

    def __init__(
        self, config, workdir, mesh, task: Task, checkpoints, spec: StateSpec, tx, schedule,
    ):  # fmt: skip
        self.config, self.workdir, self.mesh, self.task = config, workdir, mesh, task
        self.checkpoints, self.schedule = checkpoints, schedule
        self.meta = encode_meta(config.to_json(), task.tokenizer, task.model_config, task.info)
        self.window = train_metrics.MetricWindow()
        self.batch_sharding = sharding.batch_sharding(mesh, config)
        replicated = sharding.replicated(mesh)
        # Parameters the loss reads but never trains (a distillation teacher): placed by the task,
        # passed to every step, never in the state, the optimizer or a checkpoint.
        frozen_sharding = jax.tree.map(lambda x: x.sharding, task.frozen)
        self.train_step = jax.jit(
            make_train_step(spec.graphdef, tx, config.seed, task.loss),
            in_shardings=(spec.shardings, self.batch_sharding, frozen_sharding),
            out_shardings=(spec.shardings, replicated),
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
        accum = config.optimizer.grad_accum_steps
        self.tokens_per_step = config.batch_size * config.data.max_seq_length * accum
        self.flops_per_step = accum * task.flops_per_step
        self.peak_flops = flops.peak_flops_per_device(config.peak_flops_per_device)

    def progress_state(self) -> dict:
        return {
            "data": self.task.train.get_state(),
            "metrics": self.window.state(),
            "early_stopping": self.early_stopping.state(),
        }

    def run(self, state: dict, progress: dict | None) -> dict:
        config, accum = self.config, self.config.optimizer.grad_accum_steps
        if progress is not None:
            self.task.train.set_state(progress["data"])
            self.window.load(progress["metrics"])
            self.early_stopping.load(progress.get("early_stopping"))
        first_step = int(state["micro_step"]) // accum
        if self.early_stopping.stopped:
            logging.info("The run stopped early at step %d; nothing to do.", first_step)
            return state
        writer = train_metrics.create_writer(self.workdir)
        if first_step == 0:
            writer.write_hparams(train_metrics.flat_config(config))
        self.progress = train_metrics.Progress(
            first_step, config.num_train_steps, self.task.console_metric
        )
        logging.info(
            "Steps %d..%d on mesh %s (%d processes): global batch %d, %d per batch shard, "
            "x %d micro-batches; %.3g model FLOPs per step, peak %.3g FLOP/s per device.",
            first_step, config.num_train_steps, dict(self.mesh.shape), jax.process_count(),
            config.batch_size, config.batch_size // sharding.batch_shards(self.mesh, config),
            accum, self.flops_per_step,
            self.peak_flops,
        )  # fmt: skip
        stop = _StopFlag()
        try:
            for step in range(first_step + 1, config.num_train_steps + 1):
                for _ in range(accum):
                    batch = sharding.put_batch(next(self.task.train), self.batch_sharding)
                    state, step_metrics = self.train_step(state, batch, self.task.frozen)
                    self.window.add(step, step_metrics)
                # Read once: a later signal is handled at the next step. On TPU pods Orbax
                # also tells every host that one of them is being preempted.
                stopping = stop.raised or self.checkpoints.reached_preemption(step)
                if self.periodic_actions(step, state, batch, writer, stopping):
                    break  # early stopping: saved, best/ kept
                if stopping:
                    logging.warning("Stopped at step %d; rerun the same command to continue.", step)
                    break
        finally:
            writer.close()
        return state

    def evaluate(self, params) -> dict[str, float]:
        outputs = [
            jax.device_get(self.eval_step(params, sharding.put_batch(batch, self.batch_sharding)))
            for batch in self.task.eval_batches
        ]
        return self.task.evaluate(outputs)

    def throughput(self, step: int) -> dict[str, float]:
        steps_per_sec = self.progress.steps_per_sec(step)
        tokens_per_sec = steps_per_sec * self.tokens_per_step
        devices = jax.device_count()
        return {
            "tokens_per_sec": tokens_per_sec,
            "tokens_per_sec_per_device": tokens_per_sec / devices,
            "mfu": steps_per_sec * self.flops_per_step / (devices * self.peak_flops),
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
            early_stop = self.early_stopping.update(step, summary)
            self.checkpoints.save_best(step, state, self.progress_state(), self.meta, summary)
        if step % config.checkpoint_every_steps == 0 or last or stopping or early_stop:
            # progress_state() drains the window first: a non-finite step stops before the save.
            self.checkpoints.save(step, state, self.progress_state(), self.meta)
        return early_stop


def _format(summary: dict[str, float]) -> str:
    return ", ".join(f"{k.split('/')[-1]}={v:.4f}" for k, v in sorted(summary.items()))
