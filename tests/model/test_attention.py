import pytest
import torch
import torch.nn.functional as F

from hf_scratch.model import (
    CausalAttention,
    MultiHeadAttention,
    MultiHeadAttentionWrapper,
    ScratchGPTForCausalLM,
    SelfAttention,
)

EMB, HEADS, HEAD_DIM = 48, 4, 12


def reference(mha: MultiHeadAttention, x: torch.Tensor, is_causal: bool = True) -> torch.Tensor:
    """PyTorch's own scaled_dot_product_attention on the same projection weights."""
    batch, tokens, _ = x.shape

    def heads(linear):
        return linear(x).view(batch, tokens, HEADS, HEAD_DIM).transpose(1, 2)

    out = F.scaled_dot_product_attention(heads(mha.W_query), heads(mha.W_key), heads(mha.W_value), is_causal=is_causal)
    return mha.out_proj(out.transpose(1, 2).reshape(batch, tokens, EMB))


def wrapper_from(mha: MultiHeadAttention, context_length: int) -> MultiHeadAttentionWrapper:
    """The chapter's one-head-at-a-time wrapper holding the same weights, row block h for head h."""
    wrapper = MultiHeadAttentionWrapper(EMB, HEAD_DIM, context_length, 0.0, HEADS, qkv_bias=True)
    with torch.no_grad():
        for h, head in enumerate(wrapper.heads):
            rows = slice(h * HEAD_DIM, (h + 1) * HEAD_DIM)
            for name in ("W_query", "W_key", "W_value"):
                getattr(head, name).weight.copy_(getattr(mha, name).weight[rows])
                getattr(head, name).bias.copy_(getattr(mha, name).bias[rows])
    return wrapper


@pytest.fixture(params=[0, 1, 2])
def mha_and_input(request, tiny_config):
    torch.manual_seed(request.param)
    config = tiny_config(qkv_bias=True)
    mha = MultiHeadAttention(config).eval()
    return config, mha, torch.randn(3, 11, EMB)


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_efficient_attention_matches_sdpa_reference(mha_and_input, implementation):
    config, mha, x = mha_and_input
    config._attn_implementation = implementation
    torch.testing.assert_close(mha(x), reference(mha, x), rtol=1e-5, atol=1e-5)


def test_wrapper_of_single_heads_matches_efficient_attention(mha_and_input):
    config, mha, x = mha_and_input
    wrapper = wrapper_from(mha, config.context_length).eval()
    torch.testing.assert_close(mha.out_proj(wrapper(x)), mha(x), rtol=1e-5, atol=1e-5)


def test_causal_attention_is_one_head_of_the_reference(mha_and_input):
    config, mha, x = mha_and_input
    head = wrapper_from(mha, config.context_length).heads[0]
    q, k, v = (getattr(head, n)(x) for n in ("W_query", "W_key", "W_value"))
    torch.testing.assert_close(head(x), F.scaled_dot_product_attention(q, k, v, is_causal=True), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(
        CausalAttention(EMB, HEAD_DIM, 4, 0.0).mask, torch.triu(torch.ones(4, 4, dtype=torch.bool), 1)
    )


def test_self_attention_sees_every_token():
    torch.manual_seed(0)
    attention = SelfAttention(EMB, 16)
    x = torch.randn(5, EMB)  # the chapter's unbatched form
    q, k, v = attention.W_query(x), attention.W_key(x), attention.W_value(x)
    torch.testing.assert_close(attention(x), F.scaled_dot_product_attention(q, k, v), rtol=1e-5, atol=1e-5)
    changed = x.clone()
    changed[-1] += 1
    assert not torch.allclose(attention(changed)[0], attention(x)[0])  # no mask: the future leaks


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_future_tokens_do_not_change_the_past(tiny_config, implementation):
    torch.manual_seed(0)
    model = ScratchGPTForCausalLM(tiny_config()).eval()
    model.config._attn_implementation = implementation
    ids = torch.randint(0, 97, (2, 20))
    t = 9
    changed = ids.clone()
    changed[:, t + 1 :] = torch.randint(0, 97, (2, 20 - t - 1))
    logits, changed_logits = model(ids).logits, model(changed).logits
    torch.testing.assert_close(logits[:, : t + 1], changed_logits[:, : t + 1], rtol=0, atol=1e-6)
    assert not torch.allclose(logits[:, t + 1 :], changed_logits[:, t + 1 :])


def test_eager_and_sdpa_models_agree_with_padding(tiny_config):
    torch.manual_seed(0)
    model = ScratchGPTForCausalLM(tiny_config()).eval()
    ids = torch.randint(0, 97, (2, 12))
    mask = torch.ones(2, 12, dtype=torch.long)
    mask[1, :4] = 0  # left padding
    outputs = {}
    for implementation in ("eager", "sdpa"):
        model.config._attn_implementation = implementation
        outputs[implementation] = model(ids, attention_mask=mask).logits
    torch.testing.assert_close(outputs["eager"], outputs["sdpa"], rtol=1e-5, atol=1e-5)
    assert torch.isfinite(outputs["sdpa"]).all()
    # Padded positions are invisible: changing them leaves the real tokens' logits alone.
    other = ids.clone()
    other[1, :4] = (other[1, :4] + 1) % 97
    torch.testing.assert_close(model(other, attention_mask=mask).logits[1, 4:], outputs["sdpa"][1, 4:])


def test_attention_dropout_is_applied_to_weights_in_training(tiny_config):
    torch.manual_seed(0)
    config = tiny_config(drop_rate=0.5)
    config._attn_implementation = "eager"
    mha = MultiHeadAttention(config)
    x = torch.randn(2, 8, EMB)
    assert not torch.equal(mha.train()(x), mha(x))
    torch.testing.assert_close(mha.eval()(x), reference(mha, x), rtol=1e-5, atol=1e-5)
