"""Configuration of the from-scratch GPT (book ch. 4, ``GPT_CONFIG_124M``) as a transformers config."""

from transformers import PreTrainedConfig

# The four GPT-2 sizes with the book's dimensions (ch. 5, "Loading pretrained weights from OpenAI").
# Keys are the Hub ids of OpenAI's checkpoints; the parameter counts are the usual names.
GPT2_PRESETS = {
    "gpt2": dict(emb_dim=768, n_layers=12, n_heads=12),  # 124M
    "gpt2-medium": dict(emb_dim=1024, n_layers=24, n_heads=16),  # 355M
    "gpt2-large": dict(emb_dim=1280, n_layers=36, n_heads=20),  # 774M
    "gpt2-xl": dict(emb_dim=1600, n_layers=48, n_heads=25),  # 1558M
}
PRESET_ALIASES = {"124M": "gpt2", "355M": "gpt2-medium", "774M": "gpt2-large", "1558M": "gpt2-xl", "gpt2-small": "gpt2"}
GPT2_EOS_TOKEN_ID = 50256


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


class ScratchGPTConfig(PreTrainedConfig):
    """Hyperparameters of the book's GPT, with the book's field names.

    The transformers-standard names (``hidden_size``, ``num_attention_heads``, ``num_hidden_layers``,
    ``max_position_embeddings``) are aliases of the book's (``emb_dim``, ``n_heads``, ``n_layers``,
    ``context_length``), so both read and write the same value.

    Args:
        vocab_size: number of token ids (50,257 for GPT-2's BPE).
        context_length: longest sequence the positional embedding covers.
        emb_dim: width of token/position embeddings and of every block.
        n_heads: attention heads; ``emb_dim`` must be divisible by it.
        n_layers: transformer blocks.
        drop_rate: dropout on embeddings, attention weights and residual branches, in [0, 1).
        qkv_bias: bias in the query/key/value projections (the book trains without; GPT-2 has one).
        layer_norm_eps: epsilon of every LayerNorm (GPT-2: 1e-5).
        initializer_range: standard deviation of the normal initialisation (GPT-2: 0.02).
        embedding_init_std: standard deviation of the token and position embeddings at initialisation; None uses
            ``initializer_range`` (GPT-2), 1.0 is PyTorch's ``nn.Embedding`` default, which the book's GPTModel has.
        tie_word_embeddings: share the output head's weight with the token embedding, as GPT-2 does.
        use_cache: return a key/value cache from ``forward`` by default (used by ``generate``).
        bos_token_id, eos_token_id, pad_token_id: special ids (GPT-2 uses ``<|endoftext|>`` = 50256 for all).
    """

    model_type = "hf_scratch_gpt"
    attribute_map = {
        "hidden_size": "emb_dim",
        "num_attention_heads": "n_heads",
        "num_hidden_layers": "n_layers",
        "max_position_embeddings": "context_length",
    }

    def __init__(
        self,
        vocab_size: int = 50257,
        context_length: int = 1024,
        emb_dim: int = 768,
        n_heads: int = 12,
        n_layers: int = 12,
        drop_rate: float = 0.1,
        qkv_bias: bool = False,
        layer_norm_eps: float = 1e-5,
        initializer_range: float = 0.02,
        embedding_init_std: float | None = None,
        tie_word_embeddings: bool = True,
        use_cache: bool = True,
        bos_token_id: int | None = None,
        eos_token_id: int | None = None,
        pad_token_id: int | None = None,
        **kwargs,
    ):
        sizes = dict(
            vocab_size=vocab_size, context_length=context_length, emb_dim=emb_dim, n_heads=n_heads, n_layers=n_layers
        )
        # transformers code (and users) may pass the standard names instead of the book's.
        for alias, name in self.attribute_map.items():
            if alias in kwargs:
                sizes[name] = kwargs.pop(alias)
        for name, value in sizes.items():
            _check_positive_int(name, value)
        if sizes["emb_dim"] % sizes["n_heads"]:
            raise ValueError(f"emb_dim ({sizes['emb_dim']}) must be divisible by n_heads ({sizes['n_heads']})")
        if isinstance(drop_rate, bool) or not isinstance(drop_rate, (int, float)) or not 0 <= drop_rate < 1:
            raise ValueError(f"drop_rate must be a number in [0, 1), got {drop_rate!r}")
        if not isinstance(layer_norm_eps, (int, float)) or layer_norm_eps <= 0:
            raise ValueError(f"layer_norm_eps must be positive, got {layer_norm_eps!r}")
        if not isinstance(initializer_range, (int, float)) or initializer_range <= 0:
            raise ValueError(f"initializer_range must be positive, got {initializer_range!r}")
        if embedding_init_std is not None and (not isinstance(embedding_init_std, (int, float))
                                               or embedding_init_std <= 0):
            raise ValueError(f"embedding_init_std must be positive or None, got {embedding_init_std!r}")

        for name, value in sizes.items():
            setattr(self, name, value)
        self.drop_rate = float(drop_rate)
        self.qkv_bias = bool(qkv_bias)
        self.layer_norm_eps = float(layer_norm_eps)
        self.initializer_range = float(initializer_range)
        self.embedding_init_std = embedding_init_std
        self.use_cache = use_cache
        self.bos_token_id = bos_token_id
        self.eos_token_id = eos_token_id
        self.pad_token_id = pad_token_id
        super().__init__(tie_word_embeddings=tie_word_embeddings, **kwargs)

    @property
    def head_dim(self) -> int:
        return self.emb_dim // self.n_heads

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "ScratchGPTConfig":
        """A GPT-2 size (``gpt2``, ``gpt2-medium``, ``gpt2-large``, ``gpt2-xl`` or ``124M`` ... ``1558M``).

        Presets carry GPT-2's vocabulary, context, query/key/value bias and end-of-text id; anything else can be
        overridden, e.g. ``from_preset("gpt2", context_length=256, drop_rate=0.0)``.
        """
        key = PRESET_ALIASES.get(name, name)
        if key not in GPT2_PRESETS:
            known = ", ".join([*GPT2_PRESETS, *PRESET_ALIASES])
            raise ValueError(f"unknown preset {name!r}; known presets: {known}")
        kwargs = dict(
            vocab_size=50257,
            context_length=1024,
            qkv_bias=True,
            bos_token_id=GPT2_EOS_TOKEN_ID,
            eos_token_id=GPT2_EOS_TOKEN_ID,
            **GPT2_PRESETS[key],
        )
        kwargs.update(overrides)
        return cls(**kwargs)
