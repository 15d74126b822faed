"""Shared by the LoRA tests (imported by name: pytest puts this folder on sys.path)."""

import torch

from hf_scratch.model import ScratchGPTConfig, ScratchGPTForCausalLM, ScratchGPTForSequenceClassification


def tiny_config(**overrides) -> ScratchGPTConfig:
    fields = dict(vocab_size=60, context_length=16, emb_dim=16, n_heads=2, n_layers=2, drop_rate=0.0,
                  eos_token_id=59, pad_token_id=59)
    fields.update(overrides)
    return ScratchGPTConfig(**fields)


def tiny_classifier(seed=0, **overrides) -> ScratchGPTForSequenceClassification:
    torch.manual_seed(seed)
    return ScratchGPTForSequenceClassification(tiny_config(**overrides)).eval()


def tiny_lm(seed=0, **overrides) -> ScratchGPTForCausalLM:
    torch.manual_seed(seed)
    return ScratchGPTForCausalLM(tiny_config(**overrides)).eval()


def randomise_adapters(model, scale=0.5, seed=1):
    """Give every LoRA B (and A) random values: at initialisation B is 0, so an untrained adapter changes nothing
    and a test of loading, merging or copying would pass even if the adapter were lost."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if ".lora" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * scale)
    return model


def batch(n=3, length=7, vocab=59, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, (n, length), generator=generator)
