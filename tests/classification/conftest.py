import pytest
import torch
from classification_helpers import tiny_config

from hf_scratch.model import ScratchGPTForCausalLM


@pytest.fixture
def causal_lm_dir(tmp_path):
    """A tiny causal LM with weights moved off their initial values, saved: a re-initialisation cannot pass."""
    torch.manual_seed(0)
    model = ScratchGPTForCausalLM(tiny_config()).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.5)
    model.save_pretrained(tmp_path / "lm")
    return tmp_path / "lm", model
