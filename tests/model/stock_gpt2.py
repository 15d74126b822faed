import torch
from transformers import GPT2Config, GPT2LMHeadModel


def random_gpt2(seed: int, **shape) -> GPT2LMHeadModel:
    """A stock GPT-2 with random weights (no pretrained weights exist offline), biases and norms perturbed too."""
    torch.manual_seed(seed)
    end_of_text = shape.get("vocab_size", 50257) - 1
    shape = dict(bos_token_id=end_of_text, eos_token_id=end_of_text, pad_token_id=end_of_text, **shape)
    model = GPT2LMHeadModel(GPT2Config(**shape)).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("bias") or ".ln_" in name:  # initialised to 0/1: make them matter
                param.add_(torch.randn_like(param) * 0.02)
    return model
