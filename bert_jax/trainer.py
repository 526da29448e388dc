"""The pretraining loop: build everything, run steps, log, evaluate, checkpoint, stop cleanly.

Resume order: the workdir's newest checkpoint, else a fresh start. A rerun of the same command
continues exactly where the last one stopped (bitwise on CPU): the data position and pending
metric sums travel in the checkpoint, and dropout keys derive from (seed, step).
"""

import os
import signal

import jax
import jax.numpy as jnp
from absl import logging
from flax import nnx
from ml_collections import ConfigDict

from bert_jax import metrics as metrics_lib
from bert_jax.checkpoint import Checkpoints, abstract_like, encode_meta
from bert_jax.config_checks import validate_config
from bert_jax.data.pipeline import TOKENIZER_FILE, PretrainingData, build_pretraining_data
from bert_jax.model import BertForPreTraining, bert_config
from bert_jax.optim import build_optimizer
from bert_jax.sharding import check_batch_size, make_mesh, put_batch, replicated
from bert_jax.train_step import make_eval_step, make_loss_and_grad, make_train_step

MODEL_OVERRIDES = (
    "num_layers",
    "hidden_size",
    "num_heads",
    "intermediate_size",
    "max_position_embeddings",
    "hidden_dropout",
    "attention_dropout",
    "dtype",
    "remat",
)


class _StopFlag:
    """Set by SIGTERM (preemption): the loop saves at the next step boundary and exits."""

    def __init__(self):
        self.raised = False
        signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum, frame):
        logging.warning("SIGTERM received: saving a checkpoint and stopping.")
        self.raised = True


def build_model(config: ConfigDict, vocab_size: int) -> BertForPreTraining:
    model_config = bert_config(
        config.model.preset, vocab_size, **{k: config.model[k] for k in MODEL_OVERRIDES}
    )
    return BertForPreTraining(
        model_config, sentence_task=config.sentence_task, rngs=nnx.Rngs(config.seed)
    )


def evaluate(eval_step, params, batches, mesh, sentence_task: str) -> dict[str, float]:
    sums: dict[str, float] = {}
    for batch in batches:
        for key, value in jax.device_get(eval_step(params, put_batch(batch, mesh))).items():
            sums[key] = sums.get(key, 0.0) + float(value)
    return metrics_lib.summarize(sums, len(batches), sentence_task)


def train_and_evaluate(config: ConfigDict, workdir: str) -> dict:
    """Runs (or continues) pretraining in `workdir`; returns the final train state."""
    validate_config(config)
    mesh = make_mesh()
    check_batch_size(config.batch_size, mesh)
    check_batch_size(config.data.eval_batch_size, mesh, key="data.eval_batch_size")
    data = build_pretraining_data(config, workdir)
    vocab_size = data.tokenizer.vocab_size
    tx, schedule = build_optimizer(config)

    def init_state():
        params = nnx.to_pure_dict(nnx.state(build_model(config, vocab_size), nnx.Param))
        return {"step": jnp.zeros((), jnp.int32), "params": params, "opt_state": tx.init(params)}

    graphdef = nnx.graphdef(nnx.eval_shape(lambda: build_model(config, vocab_size)))
    state_sharding = replicated(mesh)

    # Nothing has been written so far; from here on the workdir is ours.
    os.makedirs(workdir, exist_ok=True)
    checkpoints = Checkpoints(
        workdir,
        max_to_keep=config.max_checkpoints_to_keep,
        best_metric=config.best_metric,
        best_mode=config.best_mode,
    )
    try:
        abstract_state = abstract_like(jax.eval_shape(init_state), state_sharding)
        restored = checkpoints.restore_latest(abstract_state, config.to_json())
        if restored is None:
            state, progress = jax.jit(init_state, out_shardings=state_sharding)(), None
        else:
            step, state, progress, _ = restored
            logging.info("Resuming from the checkpoint at step %d.", step)
        tokenizer_path = os.path.join(workdir, TOKENIZER_FILE)
        if jax.process_index() == 0 and not os.path.exists(tokenizer_path):
            data.tokenizer.save(tokenizer_path)
        loop = _Loop(config, workdir, mesh, data, checkpoints, graphdef, tx, schedule)
        return loop.run(state, progress)
    finally:
        checkpoints.wait()
        checkpoints.close()


class _Loop:
    """The step loop with its periodic actions; owns the metric writer and the metric window."""

    def __init__(
        self, config, workdir, mesh, data: PretrainingData, checkpoints, graphdef, tx, schedule
    ):
        self.config, self.workdir, self.mesh, self.data = config, workdir, mesh, data
        self.checkpoints, self.schedule = checkpoints, schedule
        self.meta = encode_meta(config.to_json(), data.tokenizer.to_bytes())
        self.window = metrics_lib.MetricWindow()
        state_sharding = replicated(mesh)
        self.train_step = jax.jit(
            make_train_step(graphdef, tx, config.seed),
            in_shardings=(state_sharding, None),
            out_shardings=(state_sharding, state_sharding),
            donate_argnums=0,
        )
        self.eval_step = jax.jit(make_eval_step(graphdef))
        self.loss_and_grad = jax.jit(make_loss_and_grad(graphdef))

    def progress_state(self) -> dict:
        return {"data": self.data.train.get_state(), "metrics": self.window.state()}

    def run(self, state: dict, progress: dict | None) -> dict:
        config, accum = self.config, self.config.optimizer.grad_accum_steps
        if progress is not None:
            self.data.train.set_state(progress["data"])
            self.window.load(progress["metrics"])
        first_step = int(state["step"]) // accum
        writer = metrics_lib.create_writer(self.workdir)
        if first_step == 0:
            writer.write_hparams(metrics_lib.flat_config(config))
        tokens_per_step = config.batch_size * config.data.max_seq_length * accum
        self.progress = metrics_lib.Progress(first_step, config.num_train_steps, tokens_per_step)
        devices = self.mesh.devices.size
        logging.info(
            "Steps %d..%d: global batch %d (%d per device, %d devices) x %d micro-batches.",
            first_step,
            config.num_train_steps,
            config.batch_size,
            config.batch_size // devices,
            devices,
            accum,
        )
        stop = _StopFlag()
        try:
            for step in range(first_step + 1, config.num_train_steps + 1):
                for _ in range(accum):
                    batch = put_batch(next(self.data.train), self.mesh)
                    state, step_metrics = self.train_step(state, batch)
                    self.window.add(step, step_metrics)
                stopping = stop.raised  # read once: a later signal is handled at the next step
                self.periodic_actions(step, state, batch, writer, stopping)
                if stopping:
                    logging.warning("Stopped at step %d; rerun the same command to continue.", step)
                    break
        finally:
            writer.close()
        return state

    def periodic_actions(self, step: int, state: dict, batch: dict, writer, stopping: bool):
        config = self.config
        last = step == config.num_train_steps
        if step % config.log_every_steps == 0 or last:
            summary = self.window.pop_summary(config.sentence_task)
            summary["learning_rate"] = float(self.schedule(step - 1))  # rate of this update
            summary["tokens_per_sec"] = self.progress.update(step)
            writer.write_scalars(step, {f"train/{k}": v for k, v in summary.items()})
            self.progress.log(step, summary, summary["tokens_per_sec"])
        if step % config.histogram_every_steps == 0:
            _, grads = self.loss_and_grad(state["params"], batch, None)
            writer.write_histograms(
                step,
                metrics_lib.param_histograms(state["params"], "params")
                | metrics_lib.param_histograms(grads, "grads"),
            )
        if step % config.eval_every_steps == 0 or last:
            self.window.drain()  # never keep a non-finite state as "best"
            summary = evaluate(
                self.eval_step,
                state["params"],
                self.data.eval_batches,
                self.mesh,
                config.sentence_task,
            )
            summary = {f"eval/{k}": v for k, v in summary.items()}
            writer.write_scalars(step, summary)
            logging.info("eval at step %d: %s", step, _format(summary))
            self.checkpoints.save_best(step, state, self.progress_state(), self.meta, summary)
        if step % config.checkpoint_every_steps == 0 or last or stopping:
            # progress_state() drains the window first: a non-finite step stops before the save.
            self.checkpoints.save(step, state, self.progress_state(), self.meta)


def _format(summary: dict[str, float]) -> str:
    return ", ".join(f"{k.split('/')[-1]}={v:.4f}" for k, v in sorted(summary.items()))
