"""Shared by the classification tests (imported by name: pytest puts this folder on sys.path)."""

from hf_scratch.model import ScratchGPTConfig


def tiny_config(**overrides) -> ScratchGPTConfig:
    fields = dict(vocab_size=50, context_length=16, emb_dim=16, n_heads=2, n_layers=3, drop_rate=0.0,
                  eos_token_id=49, pad_token_id=49)
    fields.update(overrides)
    return ScratchGPTConfig(**fields)
