"""The GPT block's parts, book chapter 4: LayerNorm, GELU, feed-forward, and the pre-LayerNorm block."""

import torch
import torch.nn.functional as F
from torch import nn
from transformers.modeling_layers import GradientCheckpointingLayer

from .attention import MultiHeadAttention


class LayerNorm(nn.Module):
    """Normalise each vector to zero mean and unit (biased) variance, then apply a learned scale and shift.

    ``scale * (x - mean) / sqrt(var + eps) + shift``; computed by ``F.layer_norm``, which evaluates exactly this
    formula in one fused kernel (``tests/model/test_layers.py`` checks it against the formula written out).
    """

    def __init__(self, config):
        super().__init__()
        self.eps = config.layer_norm_eps
        self.scale = nn.Parameter(torch.ones(config.emb_dim))
        self.shift = nn.Parameter(torch.zeros(config.emb_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.scale.shape, self.scale, self.shift, self.eps)


class GELU(nn.Module):
    """GPT-2's GELU, the tanh approximation ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``.

    ``F.gelu(approximate="tanh")`` evaluates the same formula in one kernel instead of seven element-wise passes.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(x, approximate="tanh")


class FeedForward(nn.Module):
    """Position-wise MLP: expand to 4 x emb_dim, GELU, project back."""

    def __init__(self, config):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(config.emb_dim, 4 * config.emb_dim),
            GELU(),
            nn.Linear(4 * config.emb_dim, config.emb_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class TransformerBlock(GradientCheckpointingLayer):
    """Pre-LayerNorm block: ``x + drop(att(norm1(x)))`` then ``x + drop(ff(norm2(x)))``."""

    def __init__(self, config, layer_idx: int = 0):
        super().__init__()
        self.norm1 = LayerNorm(config)
        self.att = MultiHeadAttention(config, layer_idx)
        self.norm2 = LayerNorm(config)
        self.ff = FeedForward(config)
        self.drop_shortcut = nn.Dropout(config.drop_rate)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, cache=None) -> torch.Tensor:
        x = x + self.drop_shortcut(self.att(self.norm1(x), attn_mask, cache))
        return x + self.drop_shortcut(self.ff(self.norm2(x)))
