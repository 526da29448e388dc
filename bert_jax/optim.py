"""The optax chain from config: schedule, clipping, AdamW/Adam/LAMB, decay mask, MultiSteps."""

import jax
import jax.numpy as jnp
import optax
from ml_collections import ConfigDict

from bert_jax.errors import UserError

# Parameters whose last path entry is one of these never get weight decay (biases, LayerNorm).
NO_DECAY_NAMES = ("bias", "scale")


def build_schedule(config: ConfigDict) -> optax.Schedule:
    """Learning rate as a function of the optimizer-update count (not of micro-batches)."""
    opt, peak, total = config.optimizer, config.learning_rate, config.num_train_steps
    warmup, name = config.warmup_steps, opt.schedule
    if name == "warmup_linear":
        return optax.join_schedules(
            [
                optax.linear_schedule(0.0, peak, warmup),
                optax.linear_schedule(peak, opt.end_learning_rate, total - warmup),
            ],
            [warmup],
        )
    if name == "warmup_cosine":
        return optax.warmup_cosine_decay_schedule(
            0.0, peak, warmup, max(total, 1), end_value=opt.end_learning_rate
        )
    if name == "exponential":
        return optax.warmup_exponential_decay_schedule(
            0.0, peak, warmup, opt.decay_steps, opt.decay_rate
        )
    if name == "step":
        boundaries = {int(f * total): opt.decay_rate for f in opt.step_boundaries}
        return _with_warmup(optax.piecewise_constant_schedule(peak, boundaries), warmup)
    if name == "constant":
        return _with_warmup(optax.constant_schedule(peak), warmup)
    raise UserError(
        f"optimizer.schedule={name!r} is unknown; use warmup_linear, warmup_cosine, "
        "exponential, step or constant."
    )


def _with_warmup(schedule: optax.Schedule, warmup: int) -> optax.Schedule:
    """`schedule` scaled linearly from 0 over the first `warmup` updates (as warmup_linear
    starts), its own step boundaries unchanged, so `warmup_steps` is never ignored."""
    if not warmup:
        return schedule
    return lambda count: schedule(count) * jnp.minimum(count / warmup, 1.0)


def decay_mask(params) -> object:
    """True for every parameter that gets weight decay: all but biases and LayerNorm parameters."""

    def decays(path, _):
        return getattr(path[-1], "key", None) not in NO_DECAY_NAMES

    return jax.tree_util.tree_map_with_path(decays, params)


def build_optimizer(config: ConfigDict) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """The full update rule; accumulation wraps everything so the schedule counts real updates."""
    opt, schedule = config.optimizer, build_schedule(config)
    moments = dict(b1=opt.b1, b2=opt.b2, eps=opt.eps)  # by keyword: eps_root follows eps
    decay = dict(weight_decay=opt.weight_decay, mask=decay_mask)
    if opt.name == "adamw":
        base = optax.adamw(schedule, **moments, **decay)
    elif opt.name == "lamb":
        base = optax.lamb(schedule, **moments, **decay)
    elif opt.name == "adam":
        base = optax.adam(schedule, **moments)
    else:
        raise UserError(f"optimizer.name={opt.name!r} is unknown; use adamw, adam or lamb.")
    if opt.clip_norm < 0:
        raise UserError(f"optimizer.clip_norm={opt.clip_norm} must be >= 0 (0 disables clipping).")
    if opt.clip_norm > 0:
        base = optax.chain(optax.clip_by_global_norm(opt.clip_norm), base)
    if opt.grad_accum_steps < 1:
        raise UserError(f"optimizer.grad_accum_steps={opt.grad_accum_steps} must be >= 1.")
    if opt.grad_accum_steps > 1:
        base = optax.MultiSteps(base, every_k_schedule=opt.grad_accum_steps)
    return base, schedule
