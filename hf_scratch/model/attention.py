"""Attention, book chapter 3, from the simplest form to the one the model uses.

``SelfAttention`` -> ``CausalAttention`` -> ``MultiHeadAttentionWrapper`` are the chapter's teaching steps, kept as
working classes with the book's constructor arguments. ``MultiHeadAttention`` is the efficient version the GPT uses:
all heads in one batched matmul, an eager path that materialises the attention weights, a
``scaled_dot_product_attention`` path, and transformers' ``Cache`` for key/value caching.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn


class SelfAttention(nn.Module):
    """Scaled dot-product self-attention with trainable query/key/value projections (no mask)."""

    def __init__(self, d_in: int, d_out: int, qkv_bias: bool = False):
        super().__init__()
        self.d_out = d_out
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)

    def attention_scores(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        queries, keys, values = self.W_query(x), self.W_key(x), self.W_value(x)  # [..., T, d_out] each
        scores = queries @ keys.transpose(-2, -1) / math.sqrt(self.d_out)  # [..., T, T]
        return scores, values

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [..., T, d_in]
        scores, values = self.attention_scores(x)
        return torch.softmax(scores, dim=-1) @ values  # [..., T, d_out]


class CausalAttention(SelfAttention):
    """Self-attention where token t sees only tokens <= t, with dropout on the attention weights."""

    def __init__(self, d_in: int, d_out: int, context_length: int, dropout: float, qkv_bias: bool = False):
        super().__init__(d_in, d_out, qkv_bias)
        self.dropout = nn.Dropout(dropout)
        # True above the diagonal: the future positions to hide.
        future = torch.triu(torch.ones(context_length, context_length, dtype=torch.bool), diagonal=1)
        self.register_buffer("mask", future, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, T, d_in]
        num_tokens = x.shape[-2]
        scores, values = self.attention_scores(x)
        scores = scores.masked_fill(self.mask[:num_tokens, :num_tokens], float("-inf"))
        weights = self.dropout(torch.softmax(scores, dim=-1))
        return weights @ values  # [B, T, d_out]


class MultiHeadAttentionWrapper(nn.Module):
    """Several independent causal heads run one after another; their outputs are concatenated."""

    def __init__(
        self, d_in: int, d_out: int, context_length: int, dropout: float, num_heads: int, qkv_bias: bool = False
    ):
        super().__init__()
        self.heads = nn.ModuleList(
            CausalAttention(d_in, d_out, context_length, dropout, qkv_bias) for _ in range(num_heads)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, T, d_in]
        return torch.cat([head(x) for head in self.heads], dim=-1)  # [B, T, num_heads * d_out]


class MultiHeadAttention(nn.Module):
    """Causal multi-head attention computed for all heads at once, as the GPT block uses it.

    The projections are ``emb_dim -> emb_dim`` and split into ``n_heads`` heads of ``head_dim``; ``out_proj`` mixes
    the concatenated heads. ``config._attn_implementation`` picks ``"eager"`` (weights materialised, as in the
    book) or ``"sdpa"`` (``torch.nn.functional.scaled_dot_product_attention``).
    """

    def __init__(self, config, layer_idx: int = 0):
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.n_heads = config.n_heads
        self.head_dim = config.emb_dim // config.n_heads
        self.W_query = nn.Linear(config.emb_dim, config.emb_dim, bias=config.qkv_bias)
        self.W_key = nn.Linear(config.emb_dim, config.emb_dim, bias=config.qkv_bias)
        self.W_value = nn.Linear(config.emb_dim, config.emb_dim, bias=config.qkv_bias)
        self.out_proj = nn.Linear(config.emb_dim, config.emb_dim)
        self.dropout = nn.Dropout(config.drop_rate)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, cache=None) -> torch.Tensor:
        """``x``: [B, T, emb_dim]. ``attn_mask``: additive float mask broadcastable to [B, H, T, T_past + T], or
        ``None`` for the plain causal case (no earlier tokens, or a single new token that may see all of them)."""
        batch, num_tokens, emb_dim = x.shape

        def split_heads(t: torch.Tensor) -> torch.Tensor:  # [B, T, emb_dim] -> [B, H, T, head_dim]
            return t.view(batch, num_tokens, self.n_heads, self.head_dim).transpose(1, 2)

        queries = split_heads(self.W_query(x))
        keys = split_heads(self.W_key(x))
        values = split_heads(self.W_value(x))
        if cache is not None:
            keys, values = cache.update(keys, values, self.layer_idx)  # [B, H, T_past + T, head_dim]

        is_causal = attn_mask is None and num_tokens > 1
        if self.config._attn_implementation == "sdpa":
            context = F.scaled_dot_product_attention(
                queries,
                keys,
                values,
                attn_mask=attn_mask,
                dropout_p=self.dropout.p if self.training else 0.0,
                is_causal=is_causal,
            )  # [B, H, T, head_dim]
        else:
            scores = queries @ keys.transpose(-2, -1) / math.sqrt(self.head_dim)  # [B, H, T, T_past + T]
            if is_causal:
                future = torch.ones(num_tokens, num_tokens, dtype=torch.bool, device=x.device).triu(1)
                scores = scores.masked_fill(future, float("-inf"))
            elif attn_mask is not None:
                scores = scores + attn_mask
            weights = self.dropout(torch.softmax(scores, dim=-1))
            context = weights @ values  # [B, H, T, head_dim]

        context = context.transpose(1, 2).reshape(batch, num_tokens, emb_dim)  # [B, T, H * head_dim]
        return self.out_proj(context)
