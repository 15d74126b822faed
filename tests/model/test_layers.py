import math

import torch

from hf_scratch.model import GELU, FeedForward, LayerNorm, TransformerBlock


def test_layer_norm_is_the_books_formula(tiny_config):
    norm = LayerNorm(tiny_config())
    with torch.no_grad():
        norm.scale.uniform_(0.5, 1.5)
        norm.shift.uniform_(-1, 1)
    x = torch.randn(3, 5, 48) * 4 + 2
    mean = x.mean(dim=-1, keepdim=True)
    var = x.var(dim=-1, keepdim=True, unbiased=False)
    expected = norm.scale * (x - mean) / torch.sqrt(var + norm.eps) + norm.shift
    torch.testing.assert_close(norm(x), expected, rtol=1e-5, atol=1e-5)
    plain = LayerNorm(tiny_config())(x)
    torch.testing.assert_close(plain.mean(-1), torch.zeros(3, 5), atol=1e-5, rtol=0)
    torch.testing.assert_close(plain.var(-1, unbiased=False), torch.ones(3, 5), atol=1e-3, rtol=0)


def test_gelu_is_gpt2s_tanh_approximation():
    x = torch.linspace(-6, 6, 1001)
    expected = 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    torch.testing.assert_close(GELU()(x), expected, rtol=1e-6, atol=1e-6)
    assert not torch.allclose(GELU()(x), torch.nn.functional.gelu(x), atol=1e-4)  # not the exact erf GELU


def test_feed_forward_expands_four_times(tiny_config):
    ff = FeedForward(tiny_config())
    assert ff.layers[0].out_features == 4 * 48 and ff.layers[2].in_features == 4 * 48
    assert ff(torch.randn(2, 7, 48)).shape == (2, 7, 48)


def test_block_is_pre_norm_with_residuals(tiny_config):
    torch.manual_seed(0)
    block = TransformerBlock(tiny_config()).eval()
    x = torch.randn(2, 6, 48)
    shortcut = x + block.att(block.norm1(x))
    expected = shortcut + block.ff(block.norm2(shortcut))
    torch.testing.assert_close(block(x), expected)
    with torch.no_grad():  # zeroed output projections leave only the residual path
        for linear in (block.att.out_proj, block.ff.layers[2]):
            linear.weight.zero_()
            linear.bias.zero_()
    torch.testing.assert_close(block(x), x)


def test_dropout_is_active_only_in_training(tiny_config):
    torch.manual_seed(0)
    block = TransformerBlock(tiny_config(drop_rate=0.5))
    x = torch.randn(2, 6, 48)
    assert not torch.equal(block.train()(x), block.train()(x))
    assert torch.equal(block.eval()(x), block.eval()(x))
