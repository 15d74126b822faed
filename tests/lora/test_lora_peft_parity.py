"""From-scratch LoRA side by side with peft: the same trainable parameters, the same outputs with the same A and B,
the same losses over 20 training steps; peft works on both model classes with LORA_TARGET_MODULES, its adapters
reload and merge into plain hf_scratch models; the book's 2,666,528 trainable parameters."""

import copy

import pytest
import torch
from lora_helpers import batch, randomise_adapters, tiny_classifier, tiny_lm
from peft import LoraConfig, PeftModel, get_peft_model

from hf_scratch.lora import lora_layers
from hf_scratch.model import LORA_TARGET_MODULES, ScratchGPTConfig, ScratchGPTForSequenceClassification
from hf_scratch.training.lora_setup import LoRASettings, apply_adapter_merged, wrap_with_lora

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # peft calls a deprecated transformers method


def settings(impl, rank=4, alpha=8, targets=None):
    return LoRASettings(lora=True, lora_impl=impl, lora_rank=rank, lora_alpha=alpha, lora_targets=targets)


def trainable_count(model):
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values() if p.requires_grad)


def copy_adapters(peft_model, scratch_model):
    """peft's lora_A / lora_B weights into the from-scratch A / B (the same [rank, in] / [out, rank] layouts)."""
    base = peft_model.get_base_model()
    with torch.no_grad():
        for name, layer in lora_layers(scratch_model).items():
            peft_layer = base.get_submodule(name)
            layer.lora.A.copy_(peft_layer.lora_A["default"].weight)
            layer.lora.B.copy_(peft_layer.lora_B["default"].weight)
    return scratch_model


@pytest.mark.parametrize("make, targets", [
    (tiny_classifier, None), (tiny_classifier, "W_query,W_value"),
    (tiny_classifier, "W_key,out_proj,ff.layers.2,score"), (tiny_lm, None), (tiny_lm, "W_query,W_value"),
    (tiny_lm, "W_key,out_proj,ff.layers.2"),
], ids=["classifier-default", "classifier-qv", "classifier-head-adapted", "lm-default", "lm-qv", "lm-mixed"])
def test_same_trainable_parameters(make, targets):
    trainable = ("score",) if make is tiny_classifier else ()
    scratch, scratch_report = wrap_with_lora(make(), settings("scratch", 3, 6, targets), trainable)
    peft_model, peft_report = wrap_with_lora(make(), settings("peft", 3, 6, targets), trainable)
    assert isinstance(peft_model, PeftModel)
    assert trainable_count(scratch) == trainable_count(peft_model) == scratch_report.trainable
    assert scratch_report == peft_report
    assert scratch.hf_scratch_lora["layers"] == peft_model.hf_scratch_lora["layers"]


def test_the_books_trainable_parameter_count():
    """Appendix E: GPT-2 124M classifier, rank 16 on every linear layer of the 12 blocks and on the 768 -> 2 head,
    every base weight (head included) frozen: 2,666,528 trainable parameters. Counted on the meta device."""
    config = ScratchGPTConfig.from_preset("gpt2", num_labels=2)
    targets = ",".join([*LORA_TARGET_MODULES, "score"])
    counts = []
    for impl in ("scratch", "peft"):
        with torch.device("meta"):
            model = ScratchGPTForSequenceClassification(config)
        wrapped, report = wrap_with_lora(model, settings(impl, 16, 16, targets), trainable=("score",))
        counts += [report.trainable, trainable_count(wrapped)]
    assert counts == [2_666_528] * 4


def test_peft_out_of_the_box_on_both_model_classes():
    ids = batch()
    for model, labels in ((tiny_classifier(), torch.tensor([0, 1, 0])), (tiny_lm(), ids)):
        peft_model = get_peft_model(model, LoraConfig(r=2, target_modules=list(LORA_TARGET_MODULES)))
        adapted = [n for n, m in peft_model.named_modules() if hasattr(m, "lora_A")]
        assert len(adapted) == 2 * 6
        assert torch.isfinite(peft_model(input_ids=ids, labels=labels).loss)
    generated = peft_model.generate(input_ids=batch(1, 4), max_new_tokens=3, do_sample=False)
    assert generated.shape == (1, 7)


@pytest.mark.parametrize("make", [tiny_classifier, tiny_lm], ids=["classifier", "causal_lm"])
def test_outputs_agree_with_the_same_a_and_b(make):
    peft_model, _ = wrap_with_lora(make(), settings("peft"), ())
    randomise_adapters(peft_model)
    scratch, _ = wrap_with_lora(make(), settings("scratch"), ())
    copy_adapters(peft_model, scratch)
    ids = batch()
    with torch.no_grad():
        expected, got, base = peft_model(input_ids=ids).logits, scratch(ids).logits, make()(ids).logits
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    assert not torch.allclose(base, expected, atol=1e-3)  # the adapters do change the outputs


def test_twenty_training_steps_agree():
    """Same seed for the base, the same A (peft and hf_scratch draw A in different orders, so A is copied; B starts
    at 0 in both), the same batches, AdamW with the same settings, dropout off. Both compute the same operations
    in the same order, so fp32 losses should agree to rounding (here they are bitwise equal). The tolerance, 1e-5
    relative, allows a few hundred float32 ulps (should a kernel or peft reorder a sum) and is still 10,000 times
    smaller than the loss changes from step to step, so a real difference (a wrong scaling, a missed layer, an
    adapter left untrained) fails it."""
    peft_model, _ = wrap_with_lora(tiny_classifier(seed=3), settings("peft", 4, 8), ("score",))
    scratch, _ = wrap_with_lora(tiny_classifier(seed=3), settings("scratch", 4, 8), ("score",))
    copy_adapters(peft_model, scratch)
    generator = torch.Generator().manual_seed(0)
    inputs = [torch.randint(0, 59, (8, 9), generator=generator) for _ in range(2)]
    batches = [(ids, (ids[:, -1] < 30).long()) for ids in inputs] * 10  # 20 steps over two batches
    losses = {}
    for name, model in (("peft", peft_model), ("scratch", scratch)):
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=1e-2, weight_decay=0.1)
        losses[name] = []
        for ids, labels in batches:
            loss = model(input_ids=ids, labels=labels).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses[name].append(loss.item())
    peft_losses, scratch_losses = torch.tensor(losses["peft"]), torch.tensor(losses["scratch"])
    assert peft_losses.std() > 0.05 and peft_losses.min() < 0.5 * peft_losses[0]  # it learns: not constants
    torch.testing.assert_close(scratch_losses, peft_losses, rtol=1e-5, atol=0)


def test_peft_adapter_reloads_and_merges_into_a_plain_model(tmp_path):
    base = tiny_classifier(seed=4)
    base.save_pretrained(tmp_path / "base")
    peft_model, _ = wrap_with_lora(copy.deepcopy(base), settings("peft"), ("score",))
    randomise_adapters(peft_model)
    with torch.no_grad():
        peft_model.get_base_model().score.modules_to_save["default"].weight.add_(1.0)
    ids = batch()
    expected = peft_model(input_ids=ids).logits.detach()
    peft_model.save_pretrained(tmp_path / "adapter")

    reloaded = PeftModel.from_pretrained(ScratchGPTForSequenceClassification.from_pretrained(tmp_path / "base"),
                                         tmp_path / "adapter").eval()
    torch.testing.assert_close(reloaded(input_ids=ids).logits, expected, rtol=0, atol=1e-6)
    merged = reloaded.merge_and_unload()
    assert type(merged) is ScratchGPTForSequenceClassification
    assert not any("lora" in n or "modules_to_save" in n for n, _ in merged.named_parameters())
    torch.testing.assert_close(merged(ids).logits, expected, rtol=1e-5, atol=1e-6)


def test_peft_errors_are_clear():
    # peft itself ignores a target that matches nothing when another one matches; the glue refuses it.
    with pytest.raises(ValueError, match="'W_qeury' matches no module"):
        wrap_with_lora(tiny_classifier(), settings("peft", targets="W_query,W_qeury"))
    with pytest.raises(ValueError, match="out_head shares its weight"):
        wrap_with_lora(tiny_lm(), settings("peft", targets="W_query,out_head"), ())
    with pytest.raises(ValueError, match="rank must be a positive integer"):
        settings("peft", rank=0)
    with pytest.raises(ValueError, match="alpha must be a positive number"):
        settings("peft", alpha=-1.0)
    with pytest.raises(ValueError, match="lora_impl must be one of scratch, peft"):
        settings("loralib")


def test_peft_adapter_onto_another_shape(tmp_path):
    peft_model, _ = wrap_with_lora(tiny_lm(), settings("peft"), ())
    peft_model.save_pretrained(tmp_path / "adapter")
    with pytest.raises(ValueError, match=r"does not fit this model: model.trf_blocks.0.att.W_\w+ is 32x32 here, "
                                         r"the adapter's lora_A is \[4, 16\]"):
        apply_adapter_merged(tiny_lm(emb_dim=32), tmp_path / "adapter")
