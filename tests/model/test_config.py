import pytest

from hf_scratch.model import ScratchGPTConfig


def test_book_names_and_hf_aliases_are_one_value():
    config = ScratchGPTConfig(emb_dim=64, n_heads=4, n_layers=3, context_length=128)
    assert (config.hidden_size, config.num_attention_heads, config.num_hidden_layers) == (64, 4, 3)
    assert config.max_position_embeddings == 128
    config.hidden_size = 96
    assert config.emb_dim == 96
    by_alias = ScratchGPTConfig(hidden_size=32, num_attention_heads=2, num_hidden_layers=1, max_position_embeddings=8)
    assert (by_alias.emb_dim, by_alias.n_heads, by_alias.n_layers, by_alias.context_length) == (32, 2, 1, 8)


def test_defaults_are_the_books_124m_config():
    config = ScratchGPTConfig()
    assert (config.vocab_size, config.context_length, config.emb_dim, config.n_heads, config.n_layers) == (
        50257, 1024, 768, 12, 12)
    assert config.drop_rate == 0.1 and config.qkv_bias is False and config.use_cache is True


@pytest.mark.parametrize(
    "preset, dims",
    [("gpt2", (768, 12, 12)), ("355M", (1024, 24, 16)), ("gpt2-large", (1280, 36, 20)), ("1558M", (1600, 48, 25))],
)
def test_presets_have_the_books_dimensions(preset, dims):
    config = ScratchGPTConfig.from_preset(preset)
    assert (config.emb_dim, config.n_layers, config.n_heads) == dims
    assert config.qkv_bias and config.eos_token_id == 50256 and config.context_length == 1024


def test_preset_overrides_and_unknown_preset():
    assert ScratchGPTConfig.from_preset("gpt2", context_length=256).context_length == 256
    with pytest.raises(ValueError, match="unknown preset 'gpt3'"):
        ScratchGPTConfig.from_preset("gpt3")


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(emb_dim=100, n_heads=12), "emb_dim"),
        (dict(emb_dim=0), "emb_dim"),
        (dict(n_heads=-1), "n_heads"),
        (dict(n_layers=0), "n_layers"),
        (dict(vocab_size=0), "vocab_size"),
        (dict(context_length=2.5), "context_length"),
        (dict(drop_rate=1.0), "drop_rate"),
        (dict(drop_rate=-0.1), "drop_rate"),
        (dict(hidden_size=-8), "emb_dim"),
        (dict(layer_norm_eps=0), "layer_norm_eps"),
    ],
)
def test_invalid_values_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        ScratchGPTConfig(**kwargs)


def test_round_trip_through_json(tmp_path):
    config = ScratchGPTConfig(emb_dim=64, n_heads=4, n_layers=3, drop_rate=0.0, qkv_bias=True, eos_token_id=5)
    config.save_pretrained(tmp_path)
    loaded = ScratchGPTConfig.from_pretrained(tmp_path)
    assert loaded.to_dict() == config.to_dict()
