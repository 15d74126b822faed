"""AdamW, its learning-rate schedule and clipping (book ch. 5 and appendix D), shared by both training paths."""

import math

import torch
from torch import nn


def warmup_cosine_lr(step: int, *, peak_lr: float, warmup_steps: int, total_steps: int, min_lr: float = 0.0) -> float:
    """Learning rate before optimizer step ``step`` (0-based), appendix D's schedule.

    Linear warmup from ``peak_lr / warmup_steps`` at step 0 to ``peak_lr`` at step ``warmup_steps - 1``, then a
    half cosine from ``peak_lr`` down to ``min_lr`` at the last step (``total_steps - 1``).
    """
    if step < warmup_steps:
        return peak_lr * (step + 1) / warmup_steps
    decay_steps = max(total_steps - 1 - warmup_steps, 1)
    progress = min((step - warmup_steps) / decay_steps, 1.0)
    return min_lr + (peak_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_cosine_schedule(optimizer, *, warmup_steps: int, total_steps: int, min_lr: float = 0.0):
    """``warmup_cosine_lr`` as a ``LambdaLR`` on ``optimizer`` (whose ``lr`` is the peak): what Trainer steps."""
    peak_lr = optimizer.defaults["lr"]

    def factor(step: int) -> float:
        return warmup_cosine_lr(
            step, peak_lr=peak_lr, warmup_steps=warmup_steps, total_steps=total_steps, min_lr=min_lr
        ) / peak_lr

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def build_optimizer(
    model: nn.Module, *, lr: float, weight_decay: float = 0.1, betas: tuple[float, float] = (0.9, 0.95)
) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices (linear weights, embeddings) only; biases and LayerNorm scale/shift
    are not decayed, since pulling them toward zero only hurts."""
    decay, no_decay = [], []
    for param in {id(p): p for p in model.parameters() if p.requires_grad}.values():  # tied weights once
        (decay if param.dim() >= 2 else no_decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=betas)
