import pytest

from hf_scratch.training import PretrainConfig


@pytest.fixture
def tiny_run(tmp_path):
    """A pretraining config that runs in a second or two on the embedded corpus (byte tokenizer)."""

    def make(**overrides):
        settings = dict(n_layers=2, emb_dim=32, n_heads=2, context_length=33, batch_size=4, max_steps=12,
                        warmup_steps=3, lr=3e-3, min_lr=3e-4, eval_every=4, eval_batches=2, sample_tokens=8,
                        output_dir=str(tmp_path / "run"), progress=False, drop_rate=0.1, seed=7)
        settings.update(overrides)
        return PretrainConfig(**settings)

    return make
