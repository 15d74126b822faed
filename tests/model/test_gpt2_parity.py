"""The from-scratch GPT against stock transformers GPT2LMHeadModel: same weights, same numbers."""

import pytest
import torch
from stock_gpt2 import random_gpt2
from transformers import GPT2LMHeadModel

from hf_scratch.model import ScratchGPTForCausalLM

TINY_SHAPES = [
    dict(vocab_size=101, n_positions=40, n_embd=48, n_layer=2, n_head=4),
    dict(vocab_size=257, n_positions=64, n_embd=64, n_layer=3, n_head=2),
    dict(vocab_size=64, n_positions=24, n_embd=30, n_layer=1, n_head=5, tie_word_embeddings=False),
]


@pytest.fixture(scope="module")
def gpt2_124m():
    return random_gpt2(seed=0)  # GPT2Config() is the real 124M shape


@pytest.fixture(params=[(shape, seed) for seed in (1, 2) for shape in TINY_SHAPES], ids=lambda p: f"seed{p[1]}")
def tiny_gpt2(request):
    shape, seed = request.param
    return random_gpt2(seed, **shape)


def batch_for(gpt2, length=16, batch=2, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, gpt2.config.vocab_size, (batch, length), generator=generator)


def check_forward_and_loss(gpt2, ids):
    ours = ScratchGPTForCausalLM.from_gpt2(gpt2).eval()
    labels = ids.clone()
    labels[:, :3] = -100  # ignored positions count for neither side
    with torch.no_grad():
        theirs_out = gpt2(ids, labels=labels)
        ours_out = ours(ids, labels=labels)
    assert ours_out.logits.shape == theirs_out.logits.shape
    torch.testing.assert_close(ours_out.logits, theirs_out.logits, rtol=0, atol=1e-4)
    torch.testing.assert_close(ours_out.loss, theirs_out.loss, rtol=1e-5, atol=1e-6)
    return ours


def check_gradients(gpt2, ours, ids):
    gpt2.zero_grad()
    ours.zero_grad()
    gpt2(ids, labels=ids).loss.backward()
    ours(ids, labels=ids).loss.backward()
    # Map GPT-2's gradients through the same weight conversion, then compare tensor by tensor.
    grads_as_gpt2 = GPT2LMHeadModel(gpt2.config)
    with torch.no_grad():
        for param, grad_holder in zip(gpt2.parameters(), grads_as_gpt2.parameters(), strict=True):
            grad_holder.copy_(param.grad)
    expected = dict(ScratchGPTForCausalLM.from_gpt2(grads_as_gpt2).named_parameters())
    for name, param in ours.named_parameters():
        # Key biases have an exactly zero true gradient (softmax ignores a per-row constant): there both sides
        # are rounding noise around 1e-10, hence the small absolute floor.
        assert (param.grad - expected[name]).norm() <= 1e-4 * expected[name].norm() + 1e-7, name


def check_round_trip(gpt2):
    back = ScratchGPTForCausalLM.from_gpt2(gpt2).to_gpt2()
    theirs, exported = gpt2.state_dict(), back.state_dict()
    assert theirs.keys() == exported.keys()
    for name in theirs:
        assert torch.equal(theirs[name], exported[name]), name


def test_124m_logits_loss_gradients_generation(gpt2_124m):
    ids = batch_for(gpt2_124m, length=12)
    ours = check_forward_and_loss(gpt2_124m, ids)
    check_gradients(gpt2_124m, ours, ids[:1, :8])
    prompt = ids[:1, :6]
    kwargs = dict(max_new_tokens=8, do_sample=False, pad_token_id=50256)
    assert torch.equal(ours.generate(prompt, **kwargs), gpt2_124m.generate(prompt, **kwargs))


def test_124m_round_trip_is_exact(gpt2_124m):
    check_round_trip(gpt2_124m)


def test_tiny_shapes_match_stock(tiny_gpt2):
    ids = batch_for(tiny_gpt2, length=min(20, tiny_gpt2.config.n_positions))
    ours = check_forward_and_loss(tiny_gpt2, ids)
    check_gradients(tiny_gpt2, ours, ids)
    check_round_trip(tiny_gpt2)
    prompt = ids[:, :4]
    kwargs = dict(max_new_tokens=10, do_sample=False)
    assert torch.equal(ours.generate(prompt, **kwargs), tiny_gpt2.generate(prompt, **kwargs))


def test_config_is_carried_over(tiny_gpt2):
    ours = ScratchGPTForCausalLM.from_gpt2(tiny_gpt2, drop_rate=0.0)
    c, g = ours.config, tiny_gpt2.config
    assert (c.vocab_size, c.context_length, c.emb_dim, c.n_layers, c.n_heads) == (
        g.vocab_size, g.n_positions, g.n_embd, g.n_layer, g.n_head)
    assert c.qkv_bias and c.drop_rate == 0.0 and c.tie_word_embeddings == g.tie_word_embeddings
    assert (ours.out_head.weight is ours.model.tok_emb.weight) == g.tie_word_embeddings


def test_exported_model_trained_without_qkv_bias_is_the_same_function(tiny_config):
    torch.manual_seed(0)
    ours = ScratchGPTForCausalLM(tiny_config(qkv_bias=False)).eval()
    ids = torch.randint(0, 97, (2, 10))
    exported = ours.to_gpt2().eval()
    torch.testing.assert_close(exported(ids).logits, ours(ids).logits, rtol=0, atol=1e-5)
    assert isinstance(exported, GPT2LMHeadModel) and exported.config.model_type == "gpt2"


def test_from_gpt2_loads_a_local_folder(tmp_path):
    gpt2 = random_gpt2(3, **TINY_SHAPES[0])
    gpt2.save_pretrained(tmp_path)
    ours = ScratchGPTForCausalLM.from_gpt2(str(tmp_path)).eval()
    ids = batch_for(gpt2)
    torch.testing.assert_close(ours(ids).logits, gpt2(ids).logits, rtol=0, atol=1e-4)


def test_shape_mismatch_names_the_tensor_and_both_shapes():
    broken = random_gpt2(4, **TINY_SHAPES[0])
    broken.transformer.h[1].mlp.c_fc.weight = torch.nn.Parameter(torch.zeros(48, 100))
    expected = r"trf_blocks\.1\.ff\.layers\.0\.weight.*\(192, 48\).*mlp\.c_fc\.weight.*\(100, 48\)"
    with pytest.raises(ValueError, match=expected):
        ScratchGPTForCausalLM.from_gpt2(broken)


def test_unsupported_gpt2_variants_and_sources_are_refused(tmp_path):
    gpt2 = random_gpt2(5, **TINY_SHAPES[0], activation_function="relu")
    with pytest.raises(ValueError, match="activation_function"):
        ScratchGPTForCausalLM.from_gpt2(gpt2)
    with pytest.raises(TypeError, match="GPT2LMHeadModel"):
        ScratchGPTForCausalLM.from_gpt2(42)
    with pytest.raises(OSError):
        ScratchGPTForCausalLM.from_gpt2(str(tmp_path / "missing"))
