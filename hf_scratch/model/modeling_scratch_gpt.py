"""The book's GPT (ch. 4) as a transformers model: base class, backbone, causal-LM head.

Module names follow the book (``tok_emb``, ``pos_emb``, ``trf_blocks``, ``final_norm``, ``out_head``), so its
figures and code map one to one. Only relative imports inside this folder: ``save_pretrained`` ships these files
with every checkpoint, and they must load where ``hf_scratch`` is not installed.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.cache_utils import DynamicCache
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast

from .attention import MultiHeadAttention
from .configuration_scratch_gpt import ScratchGPTConfig
from .gpt2_interop import from_gpt2_model, load_gpt2_model, to_gpt2_model
from .layers import FeedForward, LayerNorm, TransformerBlock


class ScratchGPTPreTrainedModel(PreTrainedModel):
    config: ScratchGPTConfig
    config_class = ScratchGPTConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["TransformerBlock"]
    _supports_sdpa = True

    def _init_weights(self, module):
        # transformers' init helpers skip tensors that were loaded from a checkpoint.
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=self.config.embedding_init_std or std)
        elif isinstance(module, LayerNorm):
            init.ones_(module.scale)
            init.zeros_(module.shift)
        # GPT-2 scales the projections that write into the residual stream by 1/sqrt(2 * n_layers).
        if isinstance(module, MultiHeadAttention):
            init.normal_(module.out_proj.weight, mean=0.0, std=std / math.sqrt(2 * self.config.n_layers))
        elif isinstance(module, FeedForward):
            init.normal_(module.layers[-1].weight, mean=0.0, std=std / math.sqrt(2 * self.config.n_layers))


class ScratchGPTModel(ScratchGPTPreTrainedModel):
    """Embeddings, ``n_layers`` transformer blocks and the final LayerNorm; returns hidden states."""

    def __init__(self, config: ScratchGPTConfig):
        super().__init__(config)
        self.tok_emb = nn.Embedding(config.vocab_size, config.emb_dim)
        self.pos_emb = nn.Embedding(config.context_length, config.emb_dim)
        self.drop_emb = nn.Dropout(config.drop_rate)
        self.trf_blocks = nn.ModuleList(TransformerBlock(config, layer_idx=i) for i in range(config.n_layers))
        self.final_norm = LayerNorm(config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.tok_emb

    def set_input_embeddings(self, value: nn.Embedding):
        self.tok_emb = value

    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache=None,
        use_cache: bool | None = None,
        return_dict: bool = True,
    ) -> BaseModelOutputWithPast | tuple:
        """``input_ids``: [B, T] token ids. ``attention_mask``: [B, T_past + T], 1 for tokens to attend to and 0
        for padding. ``cache``: a transformers ``Cache`` holding the keys/values of the T_past earlier tokens."""
        self._check_input_ids(input_ids)
        if use_cache is None:
            use_cache = self.config.use_cache and not self.training
        if use_cache and cache is None:
            cache = DynamicCache(config=self.config)
        past_len = cache.get_seq_length() if cache is not None else 0
        batch, num_tokens = input_ids.shape
        if past_len + num_tokens > self.config.context_length:
            raise ValueError(
                f"sequence length {past_len + num_tokens} ({past_len} cached + {num_tokens} new tokens) exceeds "
                f"the model's context_length {self.config.context_length}; crop the input to the last "
                f"{self.config.context_length} tokens"
            )
        if attention_mask is not None and tuple(attention_mask.shape) != (batch, past_len + num_tokens):
            raise ValueError(
                f"attention_mask has shape {tuple(attention_mask.shape)}, expected ({batch}, {past_len + num_tokens}) "
                f"for {past_len} cached and {num_tokens} new tokens"
            )
        padded = attention_mask is not None and not bool(attention_mask.all())
        if position_ids is None and padded:
            # Count only real tokens, so a left-padded prompt gets the positions it would have alone.
            position_ids = (attention_mask.long().cumsum(-1) - 1).clamp_min(0)[:, -num_tokens:]  # [B, T]
        elif position_ids is None:
            position_ids = torch.arange(past_len, past_len + num_tokens, device=input_ids.device)[None]  # [1, T]

        x = self.tok_emb(input_ids) + self.pos_emb(position_ids)  # [B, T, emb_dim]
        x = self.drop_emb(x)
        attn_mask = self._additive_mask(attention_mask if padded else None, num_tokens, past_len, x.dtype)
        for block in self.trf_blocks:
            x = block(x, attn_mask, cache)
        x = self.final_norm(x)

        output = BaseModelOutputWithPast(last_hidden_state=x, cache=cache if use_cache else None)
        return output if return_dict else output.to_tuple()

    def _check_input_ids(self, input_ids):
        if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2:
            shape = tuple(input_ids.shape) if isinstance(input_ids, torch.Tensor) else type(input_ids).__name__
            raise ValueError(f"input_ids must be a 2-D tensor [batch, seq_len], got {shape}")
        if input_ids.dtype.is_floating_point or input_ids.dtype == torch.bool:
            raise ValueError(f"input_ids must hold integer token ids, got dtype {input_ids.dtype}")
        if input_ids.shape[1] == 0:
            raise ValueError("input_ids is empty: at least one token is needed")
        low, high = torch.aminmax(input_ids)
        if low < 0 or high >= self.config.vocab_size:
            bad = int(high) if high >= self.config.vocab_size else int(low)
            raise ValueError(f"token id {bad} is outside the vocabulary [0, {self.config.vocab_size})")

    @staticmethod
    def _additive_mask(attention_mask, num_tokens, past_len, dtype):
        """[B, 1, T, T_past + T] additive mask (0 keep, dtype min drop), or None when plain causal attention
        is enough: no padding (``attention_mask`` None), and either no cached tokens or a single new one."""
        total = past_len + num_tokens
        if attention_mask is None and (past_len == 0 or num_tokens == 1):
            return None
        device = attention_mask.device if attention_mask is not None else None
        # Query i (absolute position past_len + i) may see keys 0 .. past_len + i.
        keep = torch.ones(num_tokens, total, dtype=torch.bool, device=device).tril(diagonal=past_len)[None, None]
        if attention_mask is not None:
            keep = keep & attention_mask.bool()[:, None, None, :]
        # The dtype's minimum rather than -inf keeps fully padded rows finite (uniform weights, never read).
        return torch.zeros(keep.shape, dtype=dtype, device=device).masked_fill(~keep, torch.finfo(dtype).min)


class ScratchGPTForCausalLM(ScratchGPTPreTrainedModel, GenerationMixin):
    """The GPT with its output head: next-token logits, and the loss when ``labels`` are given."""

    _tied_weights_keys = {"out_head.weight": "model.tok_emb.weight"}
    # forward takes num_items_in_batch, so Trainer's gradient accumulation averages over tokens, not micro-batches.
    accepts_loss_kwargs = True

    def __init__(self, config: ScratchGPTConfig):
        super().__init__(config)
        self.model = ScratchGPTModel(config)
        self.out_head = nn.Linear(config.emb_dim, config.vocab_size, bias=False)
        self.post_init()

    def get_output_embeddings(self) -> nn.Linear:
        return self.out_head

    def set_output_embeddings(self, value: nn.Linear):
        self.out_head = value

    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache=None,
        use_cache: bool | None = None,
        labels: torch.LongTensor | None = None,
        num_items_in_batch: int | torch.Tensor | None = None,
        logits_to_keep: int = 0,
        return_dict: bool = True,
    ) -> CausalLMOutputWithPast | tuple:
        """``labels``: [B, T], normally ``input_ids`` itself; the model shifts them so position t is scored on
        token t + 1, and ignores -100. ``logits_to_keep``: if > 0, only the last that many positions get logits
        (``generate`` uses 1)."""
        outputs = self.model(input_ids, attention_mask, position_ids, cache=cache, use_cache=use_cache)
        hidden = outputs.last_hidden_state  # [B, T, emb_dim]
        if logits_to_keep:
            hidden = hidden[:, -logits_to_keep:]
        logits = self._output_logits(hidden)  # [B, T, vocab_size]

        loss = None
        if labels is not None:
            loss = self.next_token_loss(logits, labels, num_items_in_batch)
        output = CausalLMOutputWithPast(loss=loss, logits=logits, cache=outputs.cache)
        return output if return_dict else output.to_tuple()

    def _output_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """``out_head(hidden)``, with a fast path for decoding one position on the CPU without gradients.

        There the head is a matrix-vector product bound by memory traffic (vocab x emb_dim floats per token), and
        MKL reads the matrix about 2.7x faster laid out [emb_dim, vocab] than in ``nn.Linear``'s [vocab, emb_dim].
        So inference keeps a transposed copy of the weight, rebuilt whenever the weight is replaced or modified
        in place (its version counter moves). The copy costs one more head's worth of memory.
        """
        weight = self.out_head.weight
        decoding = hidden.shape[1] == 1 and weight.device.type == "cpu" and type(self.out_head) is nn.Linear
        if not decoding or (torch.is_grad_enabled() and weight.requires_grad):
            return self.out_head(hidden)
        key = (weight.data_ptr(), weight._version, weight.dtype)
        if getattr(self, "_head_transposed_key", None) != key:
            self._head_transposed = weight.detach().t().contiguous()  # [emb_dim, vocab]
            self._head_transposed_key = key
        return hidden @ self._head_transposed

    def next_token_loss(self, logits, labels, num_items_in_batch=None) -> torch.Tensor:
        """Mean cross-entropy of logits[:, t] against labels[:, t + 1], skipping -100; summed and divided by
        ``num_items_in_batch`` instead when given (token-weighted gradient accumulation)."""
        if labels.shape != logits.shape[:2]:
            raise ValueError(f"labels have shape {tuple(labels.shape)}, expected {tuple(logits.shape[:2])}")
        valid = (labels == -100) | ((labels >= 0) & (labels < self.config.vocab_size))
        if not bool(valid.all()):
            raise ValueError(f"labels must be -100 or token ids in [0, {self.config.vocab_size})")
        # Shifting the labels (not the logits) avoids copying the [B, T, vocab] tensor.
        targets = F.pad(labels, (0, 1), value=-100)[:, 1:]  # [B, T]
        loss = F.cross_entropy(
            logits.flatten(0, 1).float(),
            targets.flatten().to(logits.device),
            ignore_index=-100,
            reduction="mean" if num_items_in_batch is None else "sum",
        )
        if num_items_in_batch is not None:
            loss = loss / num_items_in_batch
        return loss

    @classmethod
    def from_gpt2(cls, source, **config_overrides) -> "ScratchGPTForCausalLM":
        """Copy OpenAI GPT-2 weights (book ch. 5) from a ``GPT2LMHeadModel``, a local folder of one, or a Hub id
        (``gpt2``, ``gpt2-medium``, ``gpt2-large``, ``gpt2-xl``, fetched by transformers). Every tensor is shape
        checked; ``config_overrides`` (e.g. ``drop_rate=0.0``) change non-shape fields."""
        return from_gpt2_model(cls, load_gpt2_model(source), **config_overrides)

    def to_gpt2(self):
        """A stock ``transformers.GPT2LMHeadModel`` with this model's weights, loadable with no remote code."""
        return to_gpt2_model(self)


ScratchGPTConfig.register_for_auto_class()
ScratchGPTModel.register_for_auto_class("AutoModel")
ScratchGPTForCausalLM.register_for_auto_class("AutoModelForCausalLM")
