"""The from-scratch LoRA of hf_scratch.lora: initialisation, wrapping and freezing, merge/unmerge, adapter files,
and a clear error for each bad input."""

import json
import math

import pytest
import torch
from lora_helpers import batch, randomise_adapters, tiny_classifier, tiny_lm
from torch import nn

from hf_scratch.lora import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    LinearWithLoRA,
    LoRALayer,
    apply_lora,
    load_lora_adapter,
    lora_layers,
    merge_lora,
    save_lora_adapter,
    unmerge_lora,
    unwrap_lora,
)
from hf_scratch.model import LORA_TARGET_MODULES


def test_lora_layer_initialisation_and_shapes():
    torch.manual_seed(0)
    layer = LoRALayer(in_features=300, out_features=40, rank=8, alpha=32)
    assert layer.A.shape == (8, 300) and layer.B.shape == (40, 8) and layer.scaling == 4.0
    assert torch.equal(layer.B, torch.zeros(40, 8))  # the update starts at zero
    # nn.Linear(300, 8)'s Kaiming-uniform with a = sqrt(5): U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = 300.
    bound = 1 / math.sqrt(300)
    assert layer.A.abs().max() <= bound and layer.A.abs().max() > 0.9 * bound
    assert abs(layer.A.std().item() - bound / math.sqrt(3)) < 0.1 * bound
    with torch.no_grad():
        layer.B.normal_()
    x = torch.randn(2, 5, 300)
    torch.testing.assert_close(layer(x), 4.0 * x @ layer.A.T @ layer.B.T)
    torch.testing.assert_close(layer.delta_weight(), 4.0 * layer.B @ layer.A)


def test_wrapping_keeps_the_linear_and_starts_unchanged():
    linear = nn.Linear(12, 7)
    wrapped = LinearWithLoRA(linear, rank=2, alpha=4)
    assert wrapped.linear is linear  # wrapped, not copied
    x = torch.randn(3, 12)
    torch.testing.assert_close(wrapped(x), linear(x), rtol=0, atol=0)


def test_apply_lora_replaces_targets_and_freezes_the_rest():
    model = tiny_classifier()
    before = model(batch()).logits
    names = apply_lora(model, LORA_TARGET_MODULES, rank=4, alpha=8, trainable=["score"])
    assert len(names) == 2 * 6 and all(isinstance(m, LinearWithLoRA) for m in lora_layers(model).values())
    assert set(lora_layers(model)) == set(names)
    assert "model.trf_blocks.1.ff.layers.2" in names and "score" not in names
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {n for n in trainable if ".lora." in n} | {"score.weight", "score.bias"}
    assert all(not p.requires_grad for n, p in model.named_parameters() if ".linear." in n or "tok_emb" in n)
    torch.testing.assert_close(model(batch()).logits, before, rtol=0, atol=0)  # B = 0: nothing changed yet
    counted = sum(p.numel() for p in model.parameters() if p.requires_grad)
    # Per block: 4 attention layers of 16x16, and 16->64, 64->16; each rank 4 adapter has 4 * (in + out).
    assert counted == 2 * (4 * 4 * 32 + 2 * 4 * 80) + (16 * 2 + 2)


def test_head_as_a_target_learns_through_its_adapter_only():
    model = tiny_classifier()
    apply_lora(model, [*LORA_TARGET_MODULES, "score"], rank=16, alpha=16, trainable=["score"])
    assert isinstance(model.score, LinearWithLoRA)
    assert not model.score.linear.weight.requires_grad and model.score.lora.B.requires_grad


def test_regex_targets_as_peft_reads_them():
    model = tiny_classifier()
    names = apply_lora(model, r".*\.att\.W_(query|value)", rank=2, alpha=2)
    assert names == ["model.trf_blocks.0.att.W_query", "model.trf_blocks.0.att.W_value",
                     "model.trf_blocks.1.att.W_query", "model.trf_blocks.1.att.W_value"]


def test_merge_then_unmerge_restores_the_base_weights_and_merged_outputs_match():
    model = tiny_classifier()
    base = {k: v.clone() for k, v in model.state_dict().items()}
    apply_lora(model, LORA_TARGET_MODULES, rank=4, alpha=8, trainable=["score"])
    randomise_adapters(model)
    ids = batch()
    unmerged = model(ids).logits
    merge_lora(model)
    assert all(layer.merged for layer in lora_layers(model).values())
    merged_weight = model.model.trf_blocks[0].att.W_query.linear.weight.clone()
    assert not torch.allclose(merged_weight, base["model.trf_blocks.0.att.W_query.weight"])
    torch.testing.assert_close(model(ids).logits, unmerged, rtol=1e-5, atol=1e-6)
    unmerge_lora(model)
    # W + d - d equals W up to one float32 rounding of the sum.
    for name, layer in lora_layers(model).items():
        torch.testing.assert_close(layer.linear.weight, base[f"{name}.weight"], rtol=0, atol=1e-6)
        if layer.linear.bias is not None:
            assert torch.equal(layer.linear.bias, base[f"{name}.bias"])
    torch.testing.assert_close(model(ids).logits, unmerged, rtol=1e-5, atol=1e-6)


def test_unwrap_gives_a_plain_model_that_saves_and_reloads(tmp_path):
    model = tiny_classifier()
    apply_lora(model, LORA_TARGET_MODULES, rank=4, alpha=8)
    randomise_adapters(model)
    ids = batch()
    expected = model(ids).logits
    plain = unwrap_lora(model)
    assert not lora_layers(plain) and type(plain.model.trf_blocks[0].ff.layers[0]) is nn.Linear
    plain.save_pretrained(tmp_path / "merged")
    reloaded = type(plain).from_pretrained(tmp_path / "merged").eval()
    torch.testing.assert_close(reloaded(ids).logits, expected, rtol=1e-5, atol=1e-6)


def test_adapter_round_trip_is_exact(tmp_path):
    model = tiny_classifier(seed=0)
    apply_lora(model, LORA_TARGET_MODULES, rank=4, alpha=8, trainable=["score"])
    randomise_adapters(model)
    with torch.no_grad():
        model.score.weight.add_(1.0)  # the head trains in full: it must travel with the adapter
    save_lora_adapter(model, tmp_path / "adapter", full=["score"], metadata={"note": "test"})
    saved = json.loads((tmp_path / "adapter" / ADAPTER_CONFIG).read_text())
    assert saved["rank"] == 4 and saved["alpha"] == 8 and saved["note"] == "test"
    assert saved["layers"]["model.trf_blocks.0.ff.layers.0"] == [64, 16]
    assert set(saved["full"]) == {"score.weight", "score.bias"}
    from safetensors.torch import load_file

    stored = load_file(tmp_path / "adapter" / ADAPTER_WEIGHTS)
    assert not any("tok_emb" in k or k.endswith(".linear.weight") for k in stored)  # only the adapter and head

    fresh = tiny_classifier(seed=0)  # the same base weights, a new head would come from the adapter
    with torch.no_grad():
        fresh.score.weight.zero_()
    load_lora_adapter(fresh, tmp_path / "adapter")
    want = dict(model.named_parameters())
    for name, param in fresh.named_parameters():
        assert torch.equal(param, want[name]), name
    ids = batch()
    assert torch.equal(fresh(ids).logits, model(ids).logits)


def test_bad_rank_and_alpha():
    for rank in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="rank must be a positive integer"):
            LoRALayer(4, 4, rank=rank, alpha=1)
    for alpha in (0, -2.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="alpha must be a positive number"):
            apply_lora(tiny_classifier(), ["W_query"], rank=2, alpha=alpha)


def test_targets_that_match_nothing_or_the_wrong_module():
    model = tiny_classifier()
    with pytest.raises(ValueError, match=r"'W_qeury' matches no module of ScratchGPTForSequenceClassification; its "
                                         r"linear layers are .*att\.W_query"):
        apply_lora(model, ["W_query", "W_qeury"], rank=2, alpha=2)
    with pytest.raises(ValueError, match="matches no module"):
        apply_lora(model, r"trf_blocks\.9\..*", rank=2, alpha=2)
    with pytest.raises(ValueError, match="no LoRA targets"):
        apply_lora(model, [], rank=2, alpha=2)
    with pytest.raises(ValueError, match="is a FeedForward, not a linear layer"):
        apply_lora(model, ["ff"], rank=2, alpha=2)
    assert not lora_layers(model)  # nothing was half-applied
    with pytest.raises(ValueError, match="out_head shares its weight"):
        apply_lora(tiny_lm(), ["out_head"], rank=2, alpha=2)
    apply_lora(model, ["W_query"], rank=2, alpha=2)
    with pytest.raises(ValueError, match="already has a LoRA adapter"):
        apply_lora(model, ["W_query"], rank=2, alpha=2)


def test_loading_an_adapter_onto_another_shape(tmp_path):
    model = tiny_classifier()
    apply_lora(model, LORA_TARGET_MODULES, rank=2, alpha=2)
    save_lora_adapter(model, tmp_path / "a")
    with pytest.raises(ValueError, match=r"does not fit this model: model.trf_blocks.0.att.W_query is 32x32 here "
                                         r"but 16x16 in the adapter"):
        load_lora_adapter(tiny_classifier(emb_dim=32), tmp_path / "a")
    with pytest.raises(ValueError, match="trf_blocks.1.att.W_query, which this ScratchGPTForSequenceClassification "
                                         "lacks"):
        load_lora_adapter(tiny_classifier(n_layers=1), tmp_path / "a")
    with pytest.raises(FileNotFoundError, match="holds no from-scratch LoRA adapter"):
        load_lora_adapter(tiny_classifier(), tmp_path / "missing")
    with pytest.raises(ValueError, match="score.weight is \\(3, 16\\) here but \\(2, 16\\)"):
        other = tiny_classifier()
        apply_lora(other, ["W_query"], rank=2, alpha=2, trainable=["score"])
        save_lora_adapter(other, tmp_path / "b", full=["score"])
        load_lora_adapter(tiny_classifier(num_labels=3), tmp_path / "b")
