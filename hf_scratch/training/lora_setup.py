"""LoRA in the finetuning commands (book appendix E): the ``--lora`` options, wrapping a model with the from-scratch
(``hf_scratch.lora``) or peft implementation, saving a LoRA run, and ``hf-scratch merge-lora``.

A LoRA run folder holds the merged full model at its root (so every loader, ``classify``, pipelines and
``trust_remote_code`` loading work unchanged) and the adapter alone in ``adapter/``: ``lora_config.json`` (ours, in
both formats: rank, alpha, targets, adapted layers and their shapes, the model class, the base) plus either
``lora_adapter.safetensors`` (from scratch) or peft's own ``adapter_config.json`` + ``adapter_model.safetensors``
(so ``PeftModel.from_pretrained`` loads it), and a model card of kind ``lora-adapter``.

Which parameters train: the adapters, plus the modules named in ``trainable`` (the classifier's new head ``score``)
in full, unless such a module is itself a LoRA target: then its weight stays frozen and it learns through its
adapter, as in the book (which adapts every linear layer, head included). Either way the adapter folder carries
the whole head, since a base checkpoint (a causal LM, GPT-2) has none.
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import dataclass, fields
from pathlib import Path

from torch import nn

from ..lora import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    apply_lora,
    check_linear_targets,
    check_rank_alpha,
    find_targets,
    load_lora_adapter,
    save_lora_adapter,
    unwrap_lora,
)
from ..model import CLASSIFIER_HEAD, LORA_TARGET_MODULES, ParameterReport, parameter_report
from .finetuning import GPT2_IDS, invoked_command

LORA_IMPLS = ("scratch", "peft")
DEFAULT_RANK, DEFAULT_ALPHA = 16, 16.0  # the book's appendix E setting
ADAPTER_DIR = "adapter"
PEFT_CONFIG, PEFT_WEIGHTS = "adapter_config.json", "adapter_model.safetensors"
# peft format only: frozen weights of a head that is a LoRA target, which neither the base nor peft's file holds.
HEAD_WEIGHTS = "head_weights.safetensors"
CLASSIFIER_FIELDS = ("num_labels", "id2label", "label2id", "classifier_pooling")

LORA_HELP = {
    "lora": "train low-rank adapters (LoRA, book appendix E) on a frozen base instead of the weights themselves; "
            "the run folder holds the merged model and the adapter alone in adapter/",
    "lora_impl": "scratch (hf_scratch.lora, default) or peft",
    "lora_rank": f"rank r of each adapter (default {DEFAULT_RANK})",
    "lora_alpha": f"scaling numerator: updates are scaled by alpha / rank (default {DEFAULT_ALPHA:g})",
    "lora_targets": "comma-separated module names to adapt, each matching a module whose name is it or ends with "
                    f"'.' + it (default: every linear layer of the blocks, {','.join(LORA_TARGET_MODULES)}); "
                    "add 'score' to adapt the classifier head too (the book), which then is not trained in full",
}


@dataclass(frozen=True)
class LoRASettings:
    """The ``--lora*`` options; a config dataclass holding fields of these names passes them with
    :meth:`from_config`."""

    lora: bool = False
    lora_impl: str = "scratch"
    lora_rank: int = DEFAULT_RANK
    lora_alpha: float = DEFAULT_ALPHA
    lora_targets: str | None = None  # comma-separated; None: LORA_TARGET_MODULES

    def __post_init__(self):
        if not self.lora:
            changed = [f"--{f.name.replace('_', '-')}" for f in fields(self)
                       if f.name != "lora" and getattr(self, f.name) != f.default]
            if changed:
                raise ValueError(f"{', '.join(changed)} given without --lora")
        if self.lora_impl not in LORA_IMPLS:
            raise ValueError(f"lora_impl must be one of {', '.join(LORA_IMPLS)}, got {self.lora_impl!r}")
        check_rank_alpha(self.lora_rank, self.lora_alpha)
        if self.lora_targets is not None and not all(self.lora_targets.split(",")):
            raise ValueError(f"lora_targets must be comma-separated module names, got {self.lora_targets!r}")

    @classmethod
    def from_config(cls, config) -> LoRASettings:
        return cls(**{f.name: getattr(config, f.name) for f in fields(cls)})

    @property
    def targets(self) -> list[str]:
        if self.lora_targets is None:
            return list(LORA_TARGET_MODULES)
        return [name.strip() for name in self.lora_targets.split(",")]

    def describe(self) -> dict:
        return {"impl": self.lora_impl, "rank": self.lora_rank, "alpha": self.lora_alpha, "targets": self.targets}


def _is_lora_parameter(name: str) -> bool:
    return ".lora.A" in name or ".lora.B" in name or ".lora_A." in name or ".lora_B." in name


def wrap_with_lora(model: nn.Module, settings: LoRASettings, trainable=(CLASSIFIER_HEAD,)):
    """``(model_to_train, report)``: ``model`` with adapters on ``settings.targets`` and every other parameter
    frozen except the modules in ``trainable`` (names as for targets; ``()`` for a causal LM). The from-scratch
    implementation changes ``model`` in place and returns it; peft returns a ``PeftModel`` around it. Both check
    first that every target matches a plain, untied linear layer. ``report.trainable`` counts what trains,
    ``report.total`` the base's parameters plus the adapters."""
    if not settings.lora:
        raise ValueError("wrap_with_lora needs settings with lora=True")
    targets = settings.targets
    adapted = find_targets(model, targets)
    check_linear_targets(model, adapted)
    trainable = [name for name in trainable if name]
    names = [n for n, _ in model.named_modules()]
    for t in trainable:
        if not any(n == t or n.endswith("." + t) for n in names):
            raise ValueError(f"trainable module {t!r} matches no module of {type(model).__name__} (a causal LM has "
                             f"no head to train in full: pass trainable=())")
    # A trainable module that is also a target learns through its adapter; the others train in full.
    in_full = [t for t in trainable if not set(find_targets(model, [t])) <= set(adapted)]
    before = parameter_report(model).total
    if settings.lora_impl == "scratch":
        apply_lora(model, targets, settings.lora_rank, settings.lora_alpha, trainable)
        wrapped = model
    else:
        from peft import LoraConfig, get_peft_model

        from ..model import ScratchGPTForSequenceClassification

        # SEQ_CLS makes peft train and save a head named score; any other model gets no task type, since peft's
        # CAUSAL_LM forward passes inputs_embeds and other arguments ScratchGPTForCausalLM does not take.
        seq_cls = isinstance(model, ScratchGPTForSequenceClassification) and CLASSIFIER_HEAD in in_full
        config = LoraConfig(r=settings.lora_rank, lora_alpha=settings.lora_alpha, lora_dropout=0.0,
                            target_modules=targets, modules_to_save=list(in_full) or None,
                            task_type="SEQ_CLS" if seq_cls else None)
        wrapped = get_peft_model(model, config)
    wrapped.hf_scratch_lora = {**settings.describe(), "layers": adapted, "trainable": trainable, "in_full": in_full}
    params = {id(p): (n, p) for n, p in wrapped.named_parameters()}.values()
    adapters = sum(p.numel() for n, p in params if _is_lora_parameter(n))
    report = ParameterReport(total=before + adapters, trainable=sum(p.numel() for _, p in params if p.requires_grad),
                             output_head=0)
    return wrapped, report


def _lora_info(model) -> dict:
    info = getattr(model, "hf_scratch_lora", None)
    if info is None:
        raise ValueError("the model carries no LoRA settings: wrap it with wrap_with_lora first")
    return info


def save_lora_run(model, run_dir, settings: LoRASettings, *, base: str | None = None, card: dict | None = None):
    """Write the adapter to ``run_dir/adapter/`` (format of ``settings.lora_impl``, with its card) and the merged
    full model to ``run_dir``; returns the merged plain model (``requires_grad`` back on). ``base``: the
    checkpoint the run started from (a folder or Hub id; None for random weights). ``card``: extra arguments of
    ``hub.write_model_card`` for the adapter's card (``datasets``, ``metrics``, ``command``, ``training_data``)."""
    from safetensors.torch import save_file

    info = _lora_info(model)
    run_dir = Path(run_dir)
    adapter_dir = run_dir / ADAPTER_DIR
    adapter_dir.mkdir(parents=True, exist_ok=True)
    plain = model if settings.lora_impl == "scratch" else model.get_base_model()
    classifier = type(plain).__name__ == "ScratchGPTForSequenceClassification"
    metadata = {"impl": settings.lora_impl, "targets": info["targets"], "trainable": info["trainable"],
                "in_full": info["in_full"], "base_model": base, "model_class": type(plain).__name__,
                # What a classifier built on a causal-LM base needs besides the base's config (merge-lora).
                "model_fields": {k: getattr(plain.config, k, None) for k in CLASSIFIER_FIELDS} if classifier else {}}
    full = [name for t in info["trainable"] for name in find_targets(plain, [t])]
    if settings.lora_impl == "scratch":
        save_lora_adapter(model, adapter_dir, full=full, metadata=metadata)
    else:
        if base is not None:
            model.peft_config["default"].base_model_name_or_path = base
        model.save_pretrained(adapter_dir)
        frozen = {}
        for name in full:
            module = plain.get_submodule(name)
            if hasattr(module, "base_layer"):  # a peft LoRA layer: its frozen base is the head's weight
                frozen.update({f"{name}.{k}": v.detach().contiguous()
                               for k, v in module.base_layer.state_dict().items()})
        if frozen:
            save_file(frozen, adapter_dir / HEAD_WEIGHTS)
        layers = {n: [m.base_layer.out_features, m.base_layer.in_features] for n, m in plain.named_modules()
                  if hasattr(m, "lora_A") and hasattr(m, "base_layer")}
        record = {**metadata, "format": "peft", "rank": settings.lora_rank, "alpha": settings.lora_alpha,
                  "layers": layers, "full": {k: list(v.shape) for k, v in frozen.items()}}
        (adapter_dir / ADAPTER_CONFIG).write_text(json.dumps(record, indent=2) + "\n")

    merged = unwrap_lora(model) if settings.lora_impl == "scratch" else model.merge_and_unload()
    if hasattr(merged, "hf_scratch_lora"):
        del merged.hf_scratch_lora
    merged.requires_grad_(True)
    merged.save_pretrained(run_dir)
    write_adapter_card(adapter_dir, metadata, settings, **(card or {}))
    return merged


def write_adapter_card(adapter_dir, metadata: dict, settings: LoRASettings, **card):
    from ..hub import write_model_card

    classifier = metadata["model_class"] == "ScratchGPTForSequenceClassification"
    base = metadata.get("base_model")
    hyperparameters = {"lora_impl": settings.lora_impl, "lora_rank": settings.lora_rank,
                       "lora_alpha": settings.lora_alpha, "lora_targets": ",".join(settings.targets),
                       "trained_in_full": ",".join(metadata["in_full"]) or "none", "base": base,
                       "model_class": metadata["model_class"], **card.pop("hyperparameters", {})}
    hub_base = base if base is not None and not Path(base).exists() else None  # card metadata wants a Hub id
    return write_model_card(adapter_dir, kind="lora-adapter", hyperparameters=hyperparameters, base_model=hub_base,
                            pipeline_tag="text-classification" if classifier else "text-generation",
                            library_name="peft" if settings.lora_impl == "peft" else "hf_scratch", **card)


# ---------------------------------------------------------------------------------------------------- loading
def adapter_format(adapter_dir) -> str:
    """``"scratch"`` or ``"peft"``: which format the adapter folder holds."""
    adapter_dir = Path(adapter_dir)
    if (adapter_dir / ADAPTER_WEIGHTS).is_file():
        return "scratch"
    if (adapter_dir / PEFT_CONFIG).is_file():
        return "peft"
    raise FileNotFoundError(f"{adapter_dir} holds no LoRA adapter: expected {ADAPTER_CONFIG} + {ADAPTER_WEIGHTS} "
                            f"(hf_scratch) or {PEFT_CONFIG} + {PEFT_WEIGHTS} (peft)")


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None


def check_peft_adapter_fits(model: nn.Module, adapter_dir) -> None:
    """Compare the shapes in peft's adapter file with ``model``'s layers before peft loads it, so a mismatch names
    the layer and both shapes instead of failing inside ``load_state_dict``."""
    from safetensors import safe_open

    adapter_dir = Path(adapter_dir)
    modules, params = dict(model.named_modules()), model.state_dict()
    with safe_open(adapter_dir / PEFT_WEIGHTS, "pt") as file:
        for key in file.keys():
            shape = tuple(file.get_slice(key).get_shape())
            name = key.removeprefix("base_model.model.")
            for part, axis in ((".lora_A.weight", 1), (".lora_B.weight", 0)):
                if name.endswith(part):
                    layer = name.removesuffix(part)
                    module = modules.get(layer)
                    if not isinstance(module, nn.Linear):
                        raise ValueError(f"adapter {adapter_dir} adapts {layer}, which this {type(model).__name__} "
                                         f"lacks or which is not a linear layer")
                    want = module.in_features if axis == 1 else module.out_features
                    if shape[axis] != want:
                        raise ValueError(f"adapter {adapter_dir} does not fit this model: {layer} is "
                                         f"{module.out_features}x{module.in_features} here, the adapter's "
                                         f"{part.strip('.').removesuffix('.weight')} is {list(shape)} (trained on "
                                         f"a model of another shape)")
                    break
            else:
                if name not in params or tuple(params[name].shape) != shape:
                    here = list(params[name].shape) if name in params else "missing"
                    raise ValueError(f"adapter {adapter_dir} does not fit this model: {name} is {here} here but "
                                     f"{list(shape)} in the adapter")


def apply_adapter_merged(model: nn.Module, adapter_dir) -> nn.Module:
    """Load the adapter in ``adapter_dir`` (either format) onto the plain ``model`` and fold it in: returns a
    plain model of the same class."""
    adapter_dir = Path(adapter_dir)
    if adapter_format(adapter_dir) == "scratch":
        load_lora_adapter(model, adapter_dir)
        return unwrap_lora(model)
    from peft import PeftModel
    from safetensors.torch import load_file

    check_peft_adapter_fits(model, adapter_dir)
    if (adapter_dir / HEAD_WEIGHTS).is_file():
        head = load_file(adapter_dir / HEAD_WEIGHTS)
        params = model.state_dict()
        for key, value in head.items():
            if key not in params or params[key].shape != value.shape:
                raise ValueError(f"adapter {adapter_dir} does not fit this model: {key} is "
                                 f"{list(params[key].shape) if key in params else 'missing'} here but "
                                 f"{list(value.shape)} in {HEAD_WEIGHTS}")
            params[key].copy_(value)
    return PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()


def load_base_for_adapter(base: str, adapter_dir):
    """The plain model the adapter in ``adapter_dir`` belongs on, with ``base``'s weights: a classifier built on a
    causal-LM or GPT-2 base gets the adapter's label fields (its head then comes from the adapter)."""
    from ..model import ScratchGPTConfig, ScratchGPTForCausalLM, ScratchGPTForSequenceClassification

    adapter_dir = Path(adapter_dir)
    fmt = adapter_format(adapter_dir)
    record = _read_json(adapter_dir / ADAPTER_CONFIG) if (adapter_dir / ADAPTER_CONFIG).is_file() else {}
    model_class = record.get("model_class")
    fields_ = dict(record.get("model_fields") or {})
    if model_class is None and fmt == "peft":  # a folder peft wrote by itself: its task type and head shape
        if _read_json(adapter_dir / PEFT_CONFIG).get("task_type") == "SEQ_CLS":
            from safetensors import safe_open

            model_class = ScratchGPTForSequenceClassification.__name__
            with safe_open(adapter_dir / PEFT_WEIGHTS, "pt") as file:
                heads = [k for k in file.keys() if k.endswith(f"{CLASSIFIER_HEAD}.weight")]
                if heads:
                    fields_["num_labels"] = file.get_slice(heads[0]).get_shape()[0]
    base_path = Path(base).expanduser()
    is_gpt2 = base in GPT2_IDS
    if not is_gpt2:
        if not (base_path / "config.json").is_file():
            raise FileNotFoundError(f"base {base!r}: not a GPT-2 Hub id or a folder with a config.json")
        base_config = _read_json(base_path / "config.json")
        is_gpt2 = base_config.get("model_type") == "gpt2"
        if not is_gpt2 and base_config.get("model_type") != ScratchGPTConfig.model_type:
            raise ValueError(f"base {base}: a {base_config.get('model_type')!r} checkpoint; expected hf_scratch's "
                             f"or GPT-2")
        if model_class is None:
            model_class = (base_config.get("architectures") or [ScratchGPTForCausalLM.__name__])[0]
    classes = {c.__name__: c for c in (ScratchGPTForCausalLM, ScratchGPTForSequenceClassification)}
    if model_class not in classes:
        raise ValueError(f"adapter {adapter_dir} is for a {model_class}; merge-lora handles "
                         f"{', '.join(classes)}")
    cls = classes[model_class]
    if cls is ScratchGPTForCausalLM:
        fields_ = {}
    if is_gpt2:
        return cls.from_gpt2(str(base_path) if base_path.exists() else base, **fields_)
    config = ScratchGPTConfig.from_pretrained(base_path)
    for key, value in fields_.items():
        if key in ("id2label", "label2id") and value is not None:
            value = {int(k) if key == "id2label" else k: v for k, v in value.items()}
        setattr(config, key, value)
    return cls.from_pretrained(base_path, config=config)


def fetch_adapter(adapter) -> Path:
    """A local adapter folder as it is; a Hub repo id (``owner/name``, as ``hf-scratch push`` uploads an adapter)
    downloaded into the Hugging Face cache, file by file, whichever of the adapter files the repo has."""
    path = Path(adapter).expanduser()
    if path.exists():
        return path
    from ..hub import ADAPTER_FILES, check_repo_id

    try:
        repo_id = check_repo_id(str(adapter))
        if repo_id.count("/") != 1:  # a bare NAME is more likely a mistyped folder than a repo
            raise ValueError(repo_id)
    except ValueError:
        raise FileNotFoundError(f"adapter {adapter}: no such folder, and not a Hub repo id (OWNER/NAME)") from None
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    folder = None
    for name in ADAPTER_FILES:
        try:
            folder = Path(hf_hub_download(repo_id, name)).parent
        except EntryNotFoundError:
            continue
    if folder is None or not any((folder / n).is_file() for n in (ADAPTER_WEIGHTS, PEFT_WEIGHTS)):
        raise FileNotFoundError(f"the Hub repo {repo_id} holds no LoRA adapter weights ({ADAPTER_WEIGHTS} or "
                                f"{PEFT_WEIGHTS})")
    return folder


def merge_lora_checkpoint(base: str, adapter_dir, output, *, overwrite: bool = False,
                          command: str | None = None) -> Path:
    """``hf-scratch merge-lora``: the base's weights with the adapter folded in, saved to ``output`` as a full
    checkpoint, with the base's tokenizer (if it has one) and a model card. A non-empty ``output`` is refused
    unless ``overwrite``; it may never be the base or the adapter folder."""
    from ..hub import write_model_card

    source = str(adapter_dir)  # as the user named it (a folder or a Hub repo), for the card
    adapter_dir, output = fetch_adapter(adapter_dir), Path(output)
    fmt = adapter_format(adapter_dir)
    protected = [Path(base).expanduser().resolve(), adapter_dir.resolve()]
    target = output.resolve()
    for path in protected:
        if path.exists() and (target == path or path.is_relative_to(target) or target.is_relative_to(path)):
            raise ValueError(f"output {output} overlaps {path}: choose a separate folder")
    if output.exists() and (not output.is_dir() or any(output.iterdir())) and not overwrite:
        raise FileExistsError(f"output {output} is not empty; pass --overwrite to replace it")
    model = apply_adapter_merged(load_base_for_adapter(base, adapter_dir), adapter_dir)
    if output.exists():
        shutil.rmtree(output) if output.is_dir() else output.unlink()
    output.mkdir(parents=True)
    model.save_pretrained(output)
    base_path = Path(base).expanduser()
    if (base_path / "tokenizer.json").is_file() or (base_path / "tokenizer_config.json").is_file():
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(base_path).save_pretrained(output)
    record = _read_json(adapter_dir / ADAPTER_CONFIG) if (adapter_dir / ADAPTER_CONFIG).is_file() else {}
    peft_config = _read_json(adapter_dir / PEFT_CONFIG) if fmt == "peft" else {}
    classifier = type(model).__name__ == "ScratchGPTForSequenceClassification"
    hyperparameters = {"lora_impl": fmt, "lora_rank": record.get("rank", peft_config.get("r")),
                       "lora_alpha": record.get("alpha", peft_config.get("lora_alpha")),
                       "lora_targets": record.get("targets", peft_config.get("target_modules")),
                       "base": base, "adapter": source}
    write_model_card(output, kind="text-classification" if classifier else "causal-lm",
                     hyperparameters=hyperparameters, base_model=None if base_path.exists() else base,
                     command=command or f"hf-scratch merge-lora {base} {source} {output}",
                     description=f"The LoRA adapter `{source}` ({fmt} format) folded into the weights of "
                                 f"`{base}` with `hf-scratch merge-lora`: a full checkpoint, no adapter needed.")
    return output


def _merge_command(args):
    from transformers.utils import logging

    logging.disable_progress_bar()
    command = invoked_command("merge-lora")
    out = merge_lora_checkpoint(args.base, args.adapter, args.output, overwrite=args.overwrite, command=command)
    print(f"merged {args.adapter} into {args.base}: {out}")


def add_merge_lora_command(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "merge-lora", help="fold a LoRA adapter (hf_scratch or peft format) into a full checkpoint",
        description="Load BASE, apply the adapter in ADAPTER (a run's adapter/ folder, from-scratch or peft "
                    "format), fold it into the weights and save a full checkpoint to OUTPUT, with BASE's "
                    "tokenizer and a model card.")
    parser.add_argument("base", help="the checkpoint the adapter was trained on (a folder, or a GPT-2 Hub id)")
    parser.add_argument("adapter", help="the adapter folder (e.g. RUN/adapter), or the Hub repo it was pushed to")
    parser.add_argument("output", help="where to write the merged checkpoint")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty OUTPUT")
    parser.set_defaults(func=_merge_command)
    return parser
