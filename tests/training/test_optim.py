import math

import pytest
import torch

from hf_scratch.model import ScratchGPTConfig, ScratchGPTForCausalLM
from hf_scratch.training import build_optimizer, warmup_cosine_lr, warmup_cosine_schedule

PEAK, MIN, WARMUP, TOTAL = 1e-3, 1e-4, 10, 110


@pytest.mark.parametrize(
    "step, expected",
    [
        (0, PEAK * 1 / WARMUP),  # warmup starts above zero: step 0 already learns
        (4, PEAK * 5 / WARMUP),
        (WARMUP - 1, PEAK),  # warmup ends at the peak
        (WARMUP, PEAK),  # cosine starts at the peak
        (WARMUP + 49, MIN + (PEAK - MIN) * 0.5 * (1 + math.cos(math.pi * 49 / 99))),
        (TOTAL - 1, MIN),  # and ends at the minimum on the last step
        (TOTAL + 50, MIN),  # and stays there
    ],
)
def test_warmup_cosine_matches_its_formula(step, expected):
    lr = warmup_cosine_lr(step, peak_lr=PEAK, warmup_steps=WARMUP, total_steps=TOTAL, min_lr=MIN)
    assert lr == pytest.approx(expected, rel=1e-12)


def test_schedule_object_follows_the_formula_step_by_step():
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=PEAK)
    scheduler = warmup_cosine_schedule(optimizer, warmup_steps=WARMUP, total_steps=TOTAL, min_lr=MIN)
    for step in range(TOTAL):
        assert optimizer.param_groups[0]["lr"] == pytest.approx(
            warmup_cosine_lr(step, peak_lr=PEAK, warmup_steps=WARMUP, total_steps=TOTAL, min_lr=MIN), rel=1e-12)
        optimizer.step()
        scheduler.step()


def test_weight_decay_only_on_matrices():
    model = ScratchGPTForCausalLM(ScratchGPTConfig(vocab_size=50, context_length=16, emb_dim=16, n_heads=2,
                                                   n_layers=2, qkv_bias=True))
    decay, no_decay = build_optimizer(model, lr=1e-3, weight_decay=0.1).param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() == 2 for p in decay["params"]) and all(p.dim() == 1 for p in no_decay["params"])
    # Every trainable parameter once; the tied head is the embedding.
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))
    assert sum(p is model.model.tok_emb.weight for p in decay["params"]) == 1
