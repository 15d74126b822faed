"""Freezing policies leave exactly the intended parameters trainable, and the report counts them."""

import pytest
import torch
from classification_helpers import tiny_config

from hf_scratch.classification import FREEZING_POLICIES, apply_freezing
from hf_scratch.model import ScratchGPTForSequenceClassification

# Parameter-name prefixes each policy trains, for a 3-block model, written out independently of the code.
EXPECTED = {
    "all": ("",),
    "head_only": ("score.",),
    "last_block": ("score.", "model.final_norm.", "model.trf_blocks.2."),
    "last_two_blocks": ("score.", "model.final_norm.", "model.trf_blocks.2.", "model.trf_blocks.1."),
}


@pytest.mark.parametrize("policy", FREEZING_POLICIES)
def test_policy_trains_exactly_the_intended_parameters(policy):
    model = ScratchGPTForSequenceClassification(tiny_config(n_layers=3))
    report = apply_freezing(model, policy)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    expected = {n for n, _ in model.named_parameters() if n.startswith(EXPECTED[policy])}
    assert trainable == expected
    assert report.trainable == sum(p.numel() for n, p in model.named_parameters() if n in expected)
    assert report.total == sum(p.numel() for p in model.parameters())
    if policy != "all":
        assert "model.tok_emb.weight" not in trainable and report.trainable < report.total
    # the frozen parts get no gradient
    ids = torch.randint(0, 49, (2, 5))
    model(ids, labels=torch.tensor([0, 1])).loss.backward()
    assert all((p.grad is not None) == (n in expected) for n, p in model.named_parameters())


def test_policy_after_another_resets_everything():
    model = ScratchGPTForSequenceClassification(tiny_config(n_layers=3))
    apply_freezing(model, "all")
    apply_freezing(model, "head_only")
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {"score.weight", "score.bias"}


def test_bad_policy():
    model = ScratchGPTForSequenceClassification(tiny_config(n_layers=1))
    with pytest.raises(ValueError, match="unknown freezing policy"):
        apply_freezing(model, "some")
    with pytest.raises(ValueError, match="needs 2 transformer blocks"):
        apply_freezing(model, "last_two_blocks")
