"""The book's decoding loop (ch. 5.3): crop to the context, pick the next token, append, repeat.

``generate_tokens`` is that loop with temperature, top-k and an end-of-text stop, plus a KV-cache fast path: the
prompt is encoded once and each new token costs one single-position forward. It drives ``ScratchGPTForCausalLM``
(with a preallocated cache) or any transformers causal LM whose ``forward`` takes ``cache`` and
``logits_to_keep``, such as stock ``GPT2LMHeadModel`` (with transformers' ``DynamicCache``). For the full range of
strategies (top-p, beams, streaming) use ``model.generate()``.
"""

import torch
from transformers.cache_utils import DynamicCache


class PreallocatedKVCache:
    """Keys and values of every layer, written into tensors sized for the whole generation.

    Implements the two methods the model calls on a cache (``get_seq_length`` and ``update``). Unlike
    ``DynamicCache``, which concatenates per token, nothing is re-allocated while decoding.
    """

    def __init__(self, n_layers: int, max_length: int):
        self.max_length = max_length
        self.keys: list[torch.Tensor | None] = [None] * n_layers
        self.values: list[torch.Tensor | None] = [None] * n_layers
        self.length = 0  # tokens already stored (the same in every layer once a forward pass ends)

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.length

    def update(self, keys: torch.Tensor, values: torch.Tensor, layer_idx: int):
        """Store [B, H, T, head_dim] keys/values after the earlier ones; return all of them for this layer."""
        if self.keys[layer_idx] is None:
            batch, heads, _, head_dim = keys.shape
            shape = (batch, heads, self.max_length, head_dim)
            self.keys[layer_idx] = keys.new_empty(shape)
            self.values[layer_idx] = values.new_empty(shape)
        start, end = self.length, self.length + keys.shape[2]
        if end > self.max_length:
            raise ValueError(f"cache holds {self.max_length} positions, {end} requested")
        self.keys[layer_idx][:, :, start:end] = keys
        self.values[layer_idx][:, :, start:end] = values
        if layer_idx == len(self.keys) - 1:
            self.length = end
        return self.keys[layer_idx][:, :, :end], self.values[layer_idx][:, :, :end]


def next_token(logits: torch.Tensor, temperature: float = 0.0, top_k: int | None = None, generator=None):
    """[B, vocab] logits -> [B, 1] token ids: keep the top k (others to -inf), then sample at ``temperature``,
    or take the argmax when ``temperature`` is 0."""
    if top_k is not None:
        kth_best = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]  # [B, 1]
        logits = logits.masked_fill(logits < kth_best, float("-inf"))
    if temperature > 0:
        probs = torch.softmax(logits / temperature, dim=-1)
        return torch.multinomial(probs, num_samples=1, generator=generator)
    return logits.argmax(dim=-1, keepdim=True)


@torch.no_grad()
def generate_tokens(
    model,
    idx: torch.Tensor,
    max_new_tokens: int,
    context_size: int | None = None,
    temperature: float = 0.0,
    top_k: int | None = None,
    eos_id: int | None = None,
    use_cache: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Extend ``idx`` ([B, T] token ids) by up to ``max_new_tokens`` tokens; returns [B, T + new].

    Each step sees at most the last ``context_size`` tokens (default: the model's ``context_length``). With
    ``eos_id``, a row that produced it keeps producing it, and decoding stops once every row has (the end-of-text
    token is kept, as ``model.generate()`` keeps it). ``use_cache`` changes speed, never the result: once the
    text outgrows the context, the window slides and every step recomputes it, as without cache.
    """
    if idx.dim() != 2:
        raise ValueError(f"idx must be [batch, seq_len] token ids, got shape {tuple(idx.shape)}")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be a non-negative integer, got {max_new_tokens!r}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 is greedy), got {temperature}")
    if top_k is not None and top_k <= 0:
        raise ValueError(f"top_k must be a positive integer or None, got {top_k}")
    # The transformers-standard names, so stock GPT-2 works too (ours are aliases of the book's names).
    model_context = model.config.max_position_embeddings
    context_size = context_size or model_context
    if context_size > model_context:
        raise ValueError(f"context_size {context_size} exceeds the model's context_length {model_context}")

    was_training = model.training
    model.eval()
    cache = None
    if use_cache and model.config.model_type == "hf_scratch_gpt":
        cache = PreallocatedKVCache(model.config.num_hidden_layers, context_size)
    elif use_cache:  # another transformers model (stock GPT-2): the standard cache it knows
        cache = DynamicCache(config=model.config)
    finished = torch.zeros(idx.shape[0], dtype=torch.bool, device=idx.device)
    try:
        for _ in range(max_new_tokens):
            if cache is not None and idx.shape[1] <= context_size:
                new_tokens = idx[:, cache.get_seq_length() :]  # the whole prompt first, then one token per step
                logits = model(new_tokens, cache=cache, use_cache=True, logits_to_keep=1).logits[:, -1]
            else:
                logits = model(idx[:, -context_size:], use_cache=False, logits_to_keep=1).logits[:, -1]
            token = next_token(logits, temperature, top_k, generator)  # [B, 1]
            if eos_id is not None:
                token = token.masked_fill(finished[:, None], eos_id)
                finished |= token[:, 0] == eos_id
            idx = torch.cat([idx, token], dim=1)
            if eos_id is not None and bool(finished.all()):
                break
    finally:
        model.train(was_training)
    return idx
