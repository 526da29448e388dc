"""Model FLOPs of a pretraining step and the peak FLOP/s they are compared with (MFU).

Counts only the work the model needs: 6 FLOPs per parameter per token for the matmuls that
token uses (2 forward, 4 backward), the attention term 12·L·H·S per token, and the MLM head only
at the gathered positions. Embedding lookups, padding and recomputation (remat) are not counted.
"""

import time

import jax
import jax.numpy as jnp

from bert_jax.model import BertConfig

# Dense bf16 peak FLOP/s per device (per chip for TPUs), from the vendors' data sheets.
PEAK_FLOPS = {
    "TPU v4": 275e12,
    "TPU v5 lite": 197e12,  # v5e
    "TPU v5e": 197e12,
    "TPU v5p": 459e12,
    "TPU v5": 459e12,
    "TPU v6 lite": 918e12,  # v6e (Trillium)
    "TPU v6e": 918e12,
    "NVIDIA A100-SXM4-40GB": 312e12,
    "NVIDIA A100-SXM4-80GB": 312e12,
    "NVIDIA A100 80GB PCIe": 312e12,
    "NVIDIA H100 80GB HBM3": 989e12,
    "NVIDIA H100 PCIe": 756e12,
    "NVIDIA H200": 989e12,
}


def train_flops_per_step(
    bert: BertConfig, batch_size: int, seq_len: int, max_predictions: int, sentence_head: bool
) -> float:
    """Model FLOPs of one training step (forward and backward) on a full batch."""
    h, i, v, layers = bert.hidden_size, bert.intermediate_size, bert.vocab_size, bert.num_layers
    tokens = batch_size * seq_len
    encoder_params = layers * (4 * h * h + 2 * h * i)  # q, k, v, output; two MLP matmuls
    encoder = 6 * encoder_params * tokens + 12 * layers * h * seq_len * tokens
    mlm = 6 * (h * h + h * v) * batch_size * max_predictions  # transform + tied output matmul
    pooled = 6 * (h * h + (2 * h if sentence_head else 0)) * batch_size  # pooler + NSP/SOP
    return float(encoder + mlm + pooled)


def measured_matmul_peak(size: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of a large float32 matmul on device 0: the practical peak of a CPU."""
    x = jnp.ones((size, size), jnp.float32)
    matmul = jax.jit(lambda a: a @ a)
    matmul(x).block_until_ready()
    start = time.perf_counter()
    for _ in range(repeats):
        matmul(x).block_until_ready()
    return 2 * size**3 * repeats / (time.perf_counter() - start)


def peak_flops_per_device(configured: float | None) -> float:
    """The configured figure, else the device table, else a matmul measurement."""
    if configured:
        return configured
    kind = jax.devices()[0].device_kind
    return PEAK_FLOPS.get(kind) or measured_matmul_peak()
