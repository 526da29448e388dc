"""BERT hyperparameters, the standard size presets, and the parameter factories they imply."""

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx
from flax.typing import Initializer

from bert_jax.errors import UserError

# name -> (num_layers, hidden_size); heads = hidden / 64 and intermediate = 4 * hidden, as in BERT.
PRESETS: dict[str, tuple[int, int]] = {
    "tiny": (2, 128),
    "mini": (4, 256),
    "small": (4, 512),
    "medium": (8, 512),
    "base": (12, 768),
    "large": (24, 1024),
}

_COMPUTE_DTYPES = ("float32", "bfloat16", "float16")
# What a rematerialised layer keeps for the backward pass: nothing but its input ("full"), or
# also the outputs of its weight matmuls ("dots": only the cheap elementwise work and the
# attention-score matmuls are recomputed).
REMAT_POLICIES = {"full": None, "dots": jax.checkpoint_policies.dots_with_no_batch_dims_saveable}


@dataclasses.dataclass(frozen=True)
class BertConfig:
    """Architecture and numerics of a BERT encoder; frozen so it hashes as static jit data."""

    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1
    layer_norm_eps: float = 1e-12
    initializer_range: float = 0.02
    local_init_layers: int = 0  # first layers whose heads start at fixed offsets (local_init.py)
    dtype: str = "float32"  # compute dtype of the matmuls; parameters are always float32
    remat: bool = False  # recompute each layer in the backward pass to save activation memory
    remat_policy: str = "full"  # with remat: "full" recomputes all, "dots" keeps matmul outputs
    scan_layers: bool = True  # scan over layers (depth-independent compile) or unroll them

    def __post_init__(self):
        if self.hidden_size % self.num_heads:
            raise UserError(
                f"model.num_heads={self.num_heads} does not divide "
                f"model.hidden_size={self.hidden_size}; choose a divisor."
            )
        if self.remat_policy not in REMAT_POLICIES:
            raise UserError(
                f"model.remat_policy={self.remat_policy!r} is not one of "
                f"{', '.join(REMAT_POLICIES)}."
            )
        if not 0 <= self.local_init_layers <= self.num_layers:
            raise UserError(
                f"model.local_init_layers={self.local_init_layers} is outside 0.."
                f"{self.num_layers} (the model's layers); choose one in that range."
            )
        if self.dtype not in _COMPUTE_DTYPES:
            raise UserError(
                f"model.dtype={self.dtype!r} is not one of {', '.join(_COMPUTE_DTYPES)}."
            )

    @property
    def head_dim(self) -> int:
        """Width of one attention head."""
        return self.hidden_size // self.num_heads

    @property
    def compute_dtype(self) -> jnp.dtype:
        """`dtype` as a NumPy dtype, for the `dtype=` argument of Flax layers."""
        return jnp.dtype(self.dtype)


def bert_config(preset: str, vocab_size: int, **overrides) -> BertConfig:
    """The config of a named size preset; an override set to None keeps the preset's value."""
    if preset not in PRESETS:
        raise UserError(f"model.preset={preset!r} is unknown; choose one of {', '.join(PRESETS)}.")
    num_layers, hidden_size = PRESETS[preset]
    values = {
        "num_layers": num_layers,
        "hidden_size": hidden_size,
        "num_heads": hidden_size // 64,
        "intermediate_size": 4 * hidden_size,
    }
    values |= {key: value for key, value in overrides.items() if value is not None}
    return BertConfig(vocab_size=vocab_size, **values)


# Keys of a run config's `model` section that override a preset (None keeps the preset's value).
RUN_CONFIG_OVERRIDES = (
    "num_layers", "hidden_size", "num_heads", "intermediate_size", "max_position_embeddings",
    "hidden_dropout", "attention_dropout", "initializer_range", "local_init_layers", "remat",
    "remat_policy", "scan_layers",
)  # fmt: skip


def from_run_config(config, vocab_size: int) -> BertConfig:
    """The architecture a run config (its `model` section and `dtype`) asks for."""
    overrides = {key: config.model[key] for key in RUN_CONFIG_OVERRIDES}
    return bert_config(config.model.preset, vocab_size, dtype=config.dtype, **overrides)


def partitioned(init: Initializer, *names: str | None) -> Initializer:
    """`init` whose parameter carries one logical axis name per dimension, for sharding rules."""
    # Not placed eagerly: the model builds without a mesh; sharding.py maps names to mesh axes.
    return nnx.with_partitioning(init, names, eager_sharding=False)


def weight_init(config: BertConfig, *names: str | None) -> Initializer:
    """BERT's weight initialiser (truncated normal, stddev initializer_range) with axis names."""
    return partitioned(nnx.initializers.truncated_normal(config.initializer_range), *names)


def dense(
    config: BertConfig,
    inputs: int,
    outputs: int,
    in_axis: str | None,
    out_axis: str | None,
    *,
    rngs: nnx.Rngs,
) -> nnx.Linear:
    """A dense layer as BERT initialises it (truncated-normal kernel, zero bias), computing in the
    config's dtype, with logical axis names on the kernel and bias."""
    return nnx.Linear(
        inputs,
        outputs,
        dtype=config.compute_dtype,
        kernel_init=weight_init(config, in_axis, out_axis),
        bias_init=partitioned(nnx.initializers.zeros_init(), out_axis),
        rngs=rngs,
    )


def layer_norm(config: BertConfig, *, rngs: nnx.Rngs) -> nnx.LayerNorm:
    """The LayerNorm over the hidden axis used throughout BERT, computed in float32."""
    return nnx.LayerNorm(
        config.hidden_size,
        epsilon=config.layer_norm_eps,
        dtype=jnp.float32,
        use_fast_variance=False,  # mean((x - mean)^2), exact even when the mean is large
        scale_init=partitioned(nnx.initializers.ones_init(), "embed"),
        bias_init=partitioned(nnx.initializers.zeros_init(), "embed"),
        rngs=rngs,
    )
