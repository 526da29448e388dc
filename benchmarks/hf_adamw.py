"""The optimizer of the Hugging Face baselines, as the Trainer builds it by default."""

import torch


def adamw(
    model: torch.nn.Module, *, lr: float, weight_decay: float, b1: float, b2: float, eps: float
) -> torch.optim.Optimizer:
    """Fused AdamW with no weight decay on biases and LayerNorm weights (as ours: optim.py)."""
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        (no_decay if "bias" in name or "LayerNorm" in name else decay).append(parameter)
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr, betas=(b1, b2), eps=eps, fused=True)
