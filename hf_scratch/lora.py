"""LoRA from scratch (book appendix E): a trainable low-rank update next to frozen linear layers.

A linear layer computes ``x W^T + b`` with ``W`` of shape [out, in]. LoRA freezes ``W`` and adds
``(alpha / rank) * x A^T B^T`` with ``A`` [rank, in] and ``B`` [out, rank]: ``rank * (in + out)`` trainable numbers
instead of ``in * out``. ``B`` starts at zero, so training starts from the unchanged model; after training,
``W + (alpha / rank) B A`` folds the update into the weight (merge) and the model is a plain one again.
The layout, initialisation and scaling are peft's, so the two implementations are interchangeable tensor for tensor
(``hf_scratch.training.lora_setup`` drives either; ``tests/lora/`` checks they agree).
"""

import json
import math
import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ADAPTER_WEIGHTS = "lora_adapter.safetensors"
ADAPTER_CONFIG = "lora_config.json"


def check_rank_alpha(rank, alpha):
    if isinstance(rank, bool) or not isinstance(rank, int) or rank <= 0:
        raise ValueError(f"LoRA rank must be a positive integer, got {rank!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < math.inf:
        raise ValueError(f"LoRA alpha must be a positive number, got {alpha!r}")


class LoRALayer(nn.Module):
    """The update ``(alpha / rank) * B A`` applied to ``x`` [..., in] -> [..., out]."""

    def __init__(self, in_features: int, out_features: int, rank: int, alpha: float, device=None, dtype=None):
        super().__init__()
        check_rank_alpha(rank, alpha)
        self.rank, self.alpha, self.scaling = rank, alpha, alpha / rank
        # A is laid out and initialised as the weight of nn.Linear(in, rank): Kaiming-uniform over fan-in `in`.
        self.A = nn.Parameter(torch.empty(rank, in_features, device=device, dtype=dtype))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))
        self.B = nn.Parameter(torch.zeros(out_features, rank, device=device, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(F.linear(x, self.A), self.B) * self.scaling  # [..., in] -> [..., rank] -> [..., out]

    def delta_weight(self) -> torch.Tensor:
        return (self.B @ self.A) * self.scaling  # [out, in], the wrapped weight's shape


class LinearWithLoRA(nn.Module):
    """An existing ``nn.Linear`` (kept as ``.linear``, not copied) plus a ``LoRALayer`` (``.lora``)."""

    def __init__(self, linear: nn.Linear, rank: int, alpha: float):
        super().__init__()
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"LinearWithLoRA wraps an nn.Linear, got {type(linear).__name__}")
        self.linear = linear
        self.lora = LoRALayer(linear.in_features, linear.out_features, rank, alpha, linear.weight.device,
                              linear.weight.dtype)
        self.merged = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.linear(x)
        return out if self.merged else out + self.lora(x)

    @torch.no_grad()
    def merge(self):
        if not self.merged:
            self.linear.weight += self.lora.delta_weight().to(self.linear.weight.dtype)
            self.merged = True

    @torch.no_grad()
    def unmerge(self):
        if self.merged:  # restores the weight up to float rounding (one subtraction of what was added)
            self.linear.weight -= self.lora.delta_weight().to(self.linear.weight.dtype)
            self.merged = False


def find_targets(model: nn.Module, targets) -> list[str]:
    """Names of the modules ``targets`` selects, by peft's rule: a string is a regular expression the whole name must
    match; a list holds names, each selecting the modules whose name is it or ends with ``"." + name``. A target that
    selects nothing is an error, not a silent no-op."""
    names = [name for name, _ in model.named_modules() if name]
    if isinstance(targets, str):
        chosen = [name for name in names if re.fullmatch(targets, name)]
        unmatched = [] if chosen else [targets]
    else:
        targets = list(targets)
        if not targets:
            raise ValueError("no LoRA targets given")
        hits = {t: [n for n in names if n == t or n.endswith("." + t)] for t in targets}
        unmatched = [t for t, found in hits.items() if not found]
        chosen = [n for n in names if any(n in found for found in hits.values())]
    if unmatched:
        linear = sorted({re.sub(r"(?<=\.)\d+(?=\.)", "*", n) for n, m in model.named_modules()
                         if isinstance(m, nn.Linear) and not n.endswith(".linear")})
        raise ValueError(f"LoRA target {', '.join(map(repr, unmatched))} matches no module of "
                         f"{type(model).__name__}; its linear layers are {', '.join(linear)}")
    return chosen


def check_linear_targets(model: nn.Module, names: list[str]):
    """Each selected module must be a plain ``nn.Linear`` whose weight no other module shares."""
    counts = {}
    for _, param in model.named_parameters(remove_duplicate=False):
        counts[id(param)] = counts.get(id(param), 0) + 1
    for name in names:
        module = model.get_submodule(name)
        if isinstance(module, LinearWithLoRA):
            raise ValueError(f"{name} already has a LoRA adapter")
        if type(module) is not nn.Linear:
            raise ValueError(f"LoRA target {name} is a {type(module).__name__}, not a linear layer")
        if counts[id(module.weight)] > 1:  # e.g. out_head tied to tok_emb: merging would change the embedding too
            raise ValueError(f"LoRA target {name} shares its weight with another module (tied weights); "
                             f"merging an update into it would change both")


def apply_lora(model: nn.Module, targets, rank: int, alpha: float, trainable=()) -> list[str]:
    """Replace the selected linear layers of ``model`` by ``LinearWithLoRA`` in place and freeze everything but the
    adapters and the modules named in ``trainable`` (same matching, e.g. ``("score",)``; a module that is itself a
    target stays frozen and learns through its adapter). Returns the names of the adapted layers."""
    check_rank_alpha(rank, alpha)
    names = find_targets(model, targets)
    check_linear_targets(model, names)
    full = find_targets(model, trainable) if trainable else []
    model.requires_grad_(False)
    for name in names:
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent), child, LinearWithLoRA(model.get_submodule(name), rank, alpha))
    for name in full:
        if name not in names:
            model.get_submodule(name).requires_grad_(True)
    return names


def lora_layers(model: nn.Module) -> dict[str, LinearWithLoRA]:
    return {name: m for name, m in model.named_modules() if isinstance(m, LinearWithLoRA)}


def merge_lora(model: nn.Module) -> nn.Module:
    for layer in lora_layers(model).values():
        layer.merge()
    return model


def unmerge_lora(model: nn.Module) -> nn.Module:
    for layer in lora_layers(model).values():
        layer.unmerge()
    return model


def unwrap_lora(model: nn.Module) -> nn.Module:
    """Merge every adapter and put the plain ``nn.Linear`` back: the model saves and loads as if LoRA never was."""
    for name, layer in lora_layers(model).items():
        layer.merge()
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent), child, layer.linear)
    return model


def save_lora_adapter(model: nn.Module, folder, full=(), metadata: dict | None = None) -> Path:
    """Write ``A`` and ``B`` of every adapter (``<layer>.lora_A``, ``<layer>.lora_B``) and the parameters of the
    modules named in ``full`` (under their plain names, e.g. ``score.weight``) to ``lora_adapter.safetensors``, and
    rank, alpha and the shape of each adapted layer to ``lora_config.json``. Nothing else of the model is saved."""
    from safetensors.torch import save_file

    layers = lora_layers(model)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no LoRA adapters to save")
    tensors = {}
    for name, layer in layers.items():
        if layer.merged:
            raise ValueError(f"{name} is merged; unmerge before saving the adapter")
        tensors[f"{name}.lora_A"], tensors[f"{name}.lora_B"] = layer.lora.A, layer.lora.B
    for name in full:
        module = model.get_submodule(name)
        module = module.linear if isinstance(module, LinearWithLoRA) else module
        tensors.update({f"{name}.{key}": value for key, value in module.state_dict().items()})
    first = next(iter(layers.values())).lora
    config = {**(metadata or {}), "format": "hf_scratch-lora", "rank": first.rank, "alpha": first.alpha,
              "layers": {n: [layer.linear.out_features, layer.linear.in_features] for n, layer in layers.items()},
              "full": {k: list(v.shape) for k, v in tensors.items() if not k.endswith((".lora_A", ".lora_B"))}}
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous() for k, v in tensors.items()}, folder / ADAPTER_WEIGHTS)
    (folder / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    return folder


def load_lora_adapter(model: nn.Module, folder) -> list[str]:
    """Add the adapters saved in ``folder`` to ``model`` (a plain model of the shape they were trained on) and load
    them, with the saved full modules; every shape is checked first. Returns the adapted layers' names."""
    from safetensors.torch import load_file

    folder = Path(folder)
    if not (folder / ADAPTER_CONFIG).is_file() or not (folder / ADAPTER_WEIGHTS).is_file():
        raise FileNotFoundError(f"{folder} holds no from-scratch LoRA adapter ({ADAPTER_CONFIG}, {ADAPTER_WEIGHTS})")
    config = json.loads((folder / ADAPTER_CONFIG).read_text())
    tensors = load_file(folder / ADAPTER_WEIGHTS)
    modules, params = dict(model.named_modules()), dict(model.state_dict())
    for name, (out_features, in_features) in config["layers"].items():
        module = modules.get(name)
        if not isinstance(module, nn.Linear):
            raise ValueError(f"adapter {folder} adapts {name}, which this {type(model).__name__} lacks or which is "
                             f"not a linear layer (saved for a model of another architecture?)")
        here = (module.out_features, module.in_features)
        saved = [tuple(tensors[f"{name}.lora_A"].shape), tuple(tensors[f"{name}.lora_B"].shape)]
        expected = [(config["rank"], in_features), (out_features, config["rank"])]
        if here != (out_features, in_features) or saved != expected:
            raise ValueError(f"adapter {folder} does not fit this model: {name} is {here[0]}x{here[1]} here but "
                             f"{out_features}x{in_features} in the adapter (trained on a model of another shape)")
    for key in config["full"]:
        if key not in params or params[key].shape != tensors[key].shape:
            here = tuple(params[key].shape) if key in params else "missing"
            raise ValueError(f"adapter {folder} does not fit this model: {key} is {here} here but "
                             f"{tuple(tensors[key].shape)} in the adapter")
    with torch.no_grad():
        for key in config["full"]:
            params[key].copy_(tensors[key])
    names = apply_lora(model, list(config["layers"]), config["rank"], config["alpha"])
    with torch.no_grad():
        for name, layer in lora_layers(model).items():
            layer.lora.A.copy_(tensors[f"{name}.lora_A"])
            layer.lora.B.copy_(tensors[f"{name}.lora_B"])
    return names
