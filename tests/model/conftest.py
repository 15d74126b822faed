import pytest

from hf_scratch.model import ScratchGPTConfig

TINY = dict(vocab_size=97, context_length=32, emb_dim=48, n_heads=4, n_layers=2)


@pytest.fixture
def tiny_config():
    """A config small enough to run anything in milliseconds; keyword overrides allowed."""

    def make(**overrides):
        return ScratchGPTConfig(**{**TINY, "drop_rate": 0.0, **overrides})

    return make
