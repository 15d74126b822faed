"""Weight exchange with OpenAI's GPT-2 as packaged by transformers (book ch. 5, "load_weights_into_gpt").

GPT-2 stores its linear layers as ``Conv1D`` with weights ``(in, out)`` and fuses query/key/value into one
``c_attn``; the book's GPT uses ``nn.Linear`` ``(out, in)`` and three separate projections. Everything else is a
renaming. Both directions check every shape and account for every tensor.
"""

import os

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from .configuration_scratch_gpt import ScratchGPTConfig


def load_gpt2_model(source) -> GPT2LMHeadModel:
    """A ``GPT2LMHeadModel`` as is, or loaded from a local folder or a Hub id (needs network for the latter)."""
    if isinstance(source, GPT2LMHeadModel):
        return source
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"expected a GPT2LMHeadModel, a folder or a Hub id, got {type(source).__name__}")
    config = GPT2Config.from_pretrained(source)  # raises a clear error for a missing folder or unknown id
    if config.model_type != "gpt2":
        raise ValueError(f"{source} holds a {config.model_type!r} model, not GPT-2")
    return GPT2LMHeadModel.from_pretrained(source, config=config)


def config_from_gpt2(gpt2_config: GPT2Config, **overrides) -> ScratchGPTConfig:
    unsupported = {
        "activation_function": (gpt2_config.activation_function, "gelu_new"),
        "n_inner": (gpt2_config.n_inner, None),
        "scale_attn_weights": (gpt2_config.scale_attn_weights, True),
        "scale_attn_by_inverse_layer_idx": (gpt2_config.scale_attn_by_inverse_layer_idx, False),
        "add_cross_attention": (gpt2_config.add_cross_attention, False),
    }
    for name, (value, expected) in unsupported.items():
        if value != expected and not (name == "n_inner" and value == 4 * gpt2_config.n_embd):
            raise ValueError(f"GPT-2 config has {name}={value!r}; the book's GPT needs {name}={expected!r}")
    fields = dict(
        vocab_size=gpt2_config.vocab_size,
        context_length=gpt2_config.n_positions,
        emb_dim=gpt2_config.n_embd,
        n_heads=gpt2_config.n_head,
        n_layers=gpt2_config.n_layer,
        # GPT-2 has three dropout rates (all 0.1 in OpenAI's configs); the book uses one.
        drop_rate=gpt2_config.resid_pdrop,
        qkv_bias=True,
        layer_norm_eps=gpt2_config.layer_norm_epsilon,
        initializer_range=gpt2_config.initializer_range,
        tie_word_embeddings=gpt2_config.tie_word_embeddings,
        bos_token_id=gpt2_config.bos_token_id,
        eos_token_id=gpt2_config.eos_token_id,
        pad_token_id=gpt2_config.pad_token_id,
    )
    fields.update(overrides)
    return ScratchGPTConfig(**fields)


def _block_pairs(i: int):
    """(scratch name, GPT-2 name, transpose) for the tensors of block i that map one to one."""
    ours, theirs = f"model.trf_blocks.{i}", f"transformer.h.{i}"
    return [
        (f"{ours}.norm1.scale", f"{theirs}.ln_1.weight", False),
        (f"{ours}.norm1.shift", f"{theirs}.ln_1.bias", False),
        (f"{ours}.att.out_proj.weight", f"{theirs}.attn.c_proj.weight", True),
        (f"{ours}.att.out_proj.bias", f"{theirs}.attn.c_proj.bias", False),
        (f"{ours}.norm2.scale", f"{theirs}.ln_2.weight", False),
        (f"{ours}.norm2.shift", f"{theirs}.ln_2.bias", False),
        (f"{ours}.ff.layers.0.weight", f"{theirs}.mlp.c_fc.weight", True),
        (f"{ours}.ff.layers.0.bias", f"{theirs}.mlp.c_fc.bias", False),
        (f"{ours}.ff.layers.2.weight", f"{theirs}.mlp.c_proj.weight", True),
        (f"{ours}.ff.layers.2.bias", f"{theirs}.mlp.c_proj.bias", False),
    ]


_TOP_PAIRS = [
    ("model.tok_emb.weight", "transformer.wte.weight", False),
    ("model.pos_emb.weight", "transformer.wpe.weight", False),
    ("model.final_norm.scale", "transformer.ln_f.weight", False),
    ("model.final_norm.shift", "transformer.ln_f.bias", False),
]
_QKV = ("W_query", "W_key", "W_value")


def _load_checked(module: torch.nn.Module, tensors: dict, sources: dict, direction: str):
    """Copy ``tensors`` into ``module``'s parameters; every parameter must be given with its exact shape."""
    target = module.state_dict()
    for name, value in tensors.items():
        if name not in target:
            raise ValueError(f"{direction}: no tensor {name!r} in the target model (from {sources[name]!r})")
        if tuple(target[name].shape) != tuple(value.shape):
            raise ValueError(
                f"{direction}: shape mismatch for {name!r}: target has {tuple(target[name].shape)}, "
                f"{sources[name]!r} gives {tuple(value.shape)}"
            )
    missing = [name for name in target if name not in tensors and not _is_tied(module, name)]
    if missing:
        raise ValueError(f"{direction}: no source tensor for {missing}")
    module.load_state_dict(tensors, strict=False)


def _is_tied(module, name: str) -> bool:
    return module.config.tie_word_embeddings and name in ("out_head.weight", "lm_head.weight")


def from_gpt2_model(cls, gpt2: GPT2LMHeadModel, **config_overrides):
    config = config_from_gpt2(gpt2.config, **config_overrides)
    state = gpt2.state_dict()
    tensors, sources = {}, {}

    def take(ours, theirs, transpose):
        if theirs not in state:
            raise ValueError(f"GPT-2 -> scratch: the GPT-2 state dict has no tensor {theirs!r}")
        tensors[ours] = state[theirs].t() if transpose else state[theirs]
        sources[ours] = theirs

    for ours, theirs, transpose in _TOP_PAIRS:
        take(ours, theirs, transpose)
    for i in range(config.n_layers):
        for ours, theirs, transpose in _block_pairs(i):
            take(ours, theirs, transpose)
        # c_attn: weight (emb, 3 * emb) and bias (3 * emb) hold query | key | value side by side.
        for kind in ("weight", "bias"):
            fused_name = f"transformer.h.{i}.attn.c_attn.{kind}"
            fused = state[fused_name]
            if fused.shape[-1] % 3:
                raise ValueError(f"GPT-2 -> scratch: {fused_name!r} has shape {tuple(fused.shape)}, not 3 parts")
            for proj, part in zip(_QKV, fused.chunk(3, dim=-1), strict=True):
                ours = f"model.trf_blocks.{i}.att.{proj}.{kind}"
                tensors[ours], sources[ours] = (part.t() if kind == "weight" else part), fused_name
    if not config.tie_word_embeddings:
        take("out_head.weight", "lm_head.weight", False)

    model = cls(config)
    _load_checked(model, tensors, sources, "GPT-2 -> scratch")
    model.tie_weights()
    return model.to(gpt2.dtype).train(gpt2.training)


def to_gpt2_model(model) -> GPT2LMHeadModel:
    config = model.config
    gpt2_config = GPT2Config(
        vocab_size=config.vocab_size,
        n_positions=config.context_length,
        n_embd=config.emb_dim,
        n_layer=config.n_layers,
        n_head=config.n_heads,
        resid_pdrop=config.drop_rate,
        embd_pdrop=config.drop_rate,
        attn_pdrop=config.drop_rate,
        layer_norm_epsilon=config.layer_norm_eps,
        initializer_range=config.initializer_range,
        tie_word_embeddings=config.tie_word_embeddings,
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
    )
    state = model.state_dict()
    tensors, sources = {}, {}
    for ours, theirs, transpose in _TOP_PAIRS + [p for i in range(config.n_layers) for p in _block_pairs(i)]:
        tensors[theirs] = state[ours].t().contiguous() if transpose else state[ours]
        sources[theirs] = ours
    for i in range(config.n_layers):
        att = f"model.trf_blocks.{i}.att"
        weights = [state[f"{att}.{proj}.weight"].t() for proj in _QKV]
        # A model trained without qkv bias exports as zero bias: the same function.
        biases = [state.get(f"{att}.{proj}.bias", torch.zeros(config.emb_dim, dtype=weights[0].dtype)) for proj in _QKV]
        tensors[f"transformer.h.{i}.attn.c_attn.weight"] = torch.cat(weights, dim=1)
        tensors[f"transformer.h.{i}.attn.c_attn.bias"] = torch.cat(biases)
        sources[f"transformer.h.{i}.attn.c_attn.weight"] = f"{att}.W_query/W_key/W_value.weight"
        sources[f"transformer.h.{i}.attn.c_attn.bias"] = f"{att}.W_query/W_key/W_value.bias"
    if not config.tie_word_embeddings:
        tensors["lm_head.weight"], sources["lm_head.weight"] = state["out_head.weight"], "out_head.weight"

    gpt2 = GPT2LMHeadModel(gpt2_config).to(model.dtype)
    _load_checked(gpt2, tensors, sources, "scratch -> GPT-2")
    gpt2.tie_weights()
    return gpt2.train(model.training)
