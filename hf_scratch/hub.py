"""Hub-ready checkpoints: model cards rendered from templates, and ``hf-scratch push``.

Cards. :func:`write_model_card` renders a Jinja template from ``hf_scratch/model_cards/`` with
``huggingface_hub.ModelCard.from_template`` into a saved model folder as ``README.md``: Hub metadata (library,
pipeline tag, tags, datasets, license, base model, the run's metrics as ``model-index`` results), training data
and command, hyperparameters, intended use and limitations, and how to load the model. It also writes the inputs
to ``model_card.json`` so that :func:`push_run` can render the card again for the repo it is pushed to (with the
repo id in the loading snippet, or as the card of a stock GPT-2 export). Each model kind has its own template,
registered in :data:`CARD_KINDS`.

Push. :func:`push_run` (``hf-scratch push RUN REPO_ID``) stages exactly the files to upload in a temporary folder
(see :func:`stage_push` for what is uploaded and what is left out), then calls ``HfApi.create_repo`` and
``HfApi.upload_folder`` on it. ``--dry-run`` builds the same staging folder and prints it instead, so the listing
is the upload. ``--as-gpt2`` stages ``model.to_gpt2()`` instead of the model and its code.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import json
import math
import os
import shutil
import struct
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TEMPLATE_DIR = Path(__file__).resolve().parent / "model_cards"
CARD_FILE = "README.md"
CARD_INPUTS_FILE = "model_card.json"  # what write_model_card was given, so a push can render the card again


@dataclass(frozen=True)
class CardKind:
    """A kind of model that has a card template: ``template`` is a file name in ``hf_scratch/model_cards/``."""

    template: str
    pipeline_tag: str
    task_name: str
    library_name: str = "transformers"
    tags: tuple[str, ...] = ()


# Each model kind adds its template file and an entry here (classifier: "text-classification", LoRA: "peft", ...).
CARD_KINDS: dict[str, CardKind] = {
    "causal-lm": CardKind("causal_lm.md", "text-generation", "Text generation", tags=("text-generation",)),
    "text-classification": CardKind("classifier.md", "text-classification", "Text classification",
                                    tags=("text-classification",)),
    "instruction": CardKind("instruction.md", "text-generation", "Instruction following",
                            tags=("text-generation", "instruction-tuned", "alpaca")),
    # A LoRA adapter folder (hf_scratch.lora or peft format): pipeline_tag and library_name are given per adapter.
    "lora-adapter": CardKind("lora_adapter.md", "text-generation", "Text generation", library_name="peft",
                             tags=("lora",)),
}
# The kind of card a folder gets when it has none yet, from the `architectures` of its config.json.
ARCHITECTURE_KINDS = {"ScratchGPTForCausalLM": "causal-lm", "GPT2LMHeadModel": "causal-lm",
                      "ScratchGPTForSequenceClassification": "text-classification"}
BASE_TAGS = ("hf_scratch", "llms-from-scratch", "gpt")

# Metric names carry their split as a prefix, as Trainer's (eval_loss) and the book's (validation_loss) do.
_SPLIT_PREFIXES = {"validation": "validation", "valid": "validation", "val": "validation", "eval": "validation",
                   "test": "test", "train": "train", "training": "train"}


# ------------------------------------------------------------------------------------------------------ cards
def render_model_card(
    kind: str = "causal-lm",
    *,
    datasets: str | Sequence[str] = (),
    hyperparameters: Mapping[str, Any] | None = None,
    metrics: Mapping[str, float] | None = None,
    command: str | None = None,
    base_model: str | None = None,
    license: str | None = "apache-2.0",
    language: str | Sequence[str] | None = None,
    model_name: str | None = None,
    training_data: str | None = None,
    description: str | None = None,
    tags: Sequence[str] = (),
    folder: str | os.PathLike | None = None,
    repo_id: str | None = None,
    as_gpt2: bool = False,
    template: str | os.PathLike | None = None,
    pipeline_tag: str | None = None,
    library_name: str | None = None,
):
    """The ``huggingface_hub.ModelCard`` of a model of ``kind`` (a key of :data:`CARD_KINDS`).

    ``datasets``: dataset ids (Hub ids where the data is on the Hub, else the names the recipes use).
    ``hyperparameters``: name -> value, shown as a table. ``metrics``: name -> number from the run, such as
    ``{"validation_loss": 1.9, "validation_perplexity": 6.7}``; a ``validation_``/``eval_``/``test_``/``train_``
    prefix names the split, the rest the metric; each becomes a ``model-index`` result on the first dataset.
    ``command``: the command that made the run. ``base_model``: the Hub id a finetuned model started from.
    ``folder``: the saved model, read for its architecture (``config.json``), parameter count (safetensors
    headers) and whether it has tokenizer files. ``repo_id``: used in the loading snippet (else a placeholder).
    ``as_gpt2``: the card of the stock GPT-2 export (no remote code). ``template``: a template file to use instead
    of the kind's. The template gets these values, the card metadata, ``title``, ``architecture``,
    ``n_parameters``, ``has_tokenizer``, ``load_id``, ``hyperparameter_rows`` and ``metric_rows``.
    ``pipeline_tag``, ``library_name``: override the kind's (a LoRA adapter's task and format vary).
    """
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    card_kind = _card_kind(kind)
    datasets = _string_list(datasets, "datasets")
    tags = _string_list(tags, "tags")
    metrics = _check_metrics(metrics)
    hyperparameters = _check_hyperparameters(hyperparameters)
    for name, value in (("command", command), ("base_model", base_model), ("license", license),
                        ("model_name", model_name), ("training_data", training_data),
                        ("description", description), ("repo_id", repo_id), ("pipeline_tag", pipeline_tag),
                        ("library_name", library_name)):
        if value is not None and not isinstance(value, str):
            raise ValueError(f"model card: {name} must be a string, got {type(value).__name__} {value!r}")
    folder = Path(folder) if folder is not None else None
    template_path = Path(template) if template is not None else TEMPLATE_DIR / card_kind.template
    if not template_path.is_file():
        raise FileNotFoundError(f"model card template not found: {template_path}")

    name = repo_id or model_name or (folder.resolve().name if folder is not None else "hf-scratch-gpt")
    dataset_id = datasets[0] if datasets else "unspecified"
    task_name = card_kind.task_name if pipeline_tag is None else pipeline_tag.replace("-", " ").capitalize()
    pipeline_tag = pipeline_tag or card_kind.pipeline_tag
    eval_results = []
    for metric, value in metrics.items():
        split, metric_type = _split_metric(metric)
        eval_results.append(EvalResult(
            task_type=pipeline_tag, task_name=task_name,
            dataset_type=dataset_id, dataset_name=dataset_id, dataset_split=split,
            metric_type=metric_type, metric_name=f"{split.capitalize()} {metric_type}" if split else metric_type,
            metric_value=value,
        ))
    all_tags = [*BASE_TAGS, *card_kind.tags, *(("gpt2",) if as_gpt2 else ()), *tags]
    card_data = ModelCardData(
        library_name=library_name or card_kind.library_name,
        pipeline_tag=pipeline_tag,
        tags=list(dict.fromkeys(all_tags)),
        datasets=datasets or None,
        license=license,
        language=language,
        base_model=base_model,
        model_name=name if eval_results else None,
        eval_results=eval_results or None,
    )

    import transformers

    from . import __version__

    architecture, n_parameters, has_tokenizer = None, None, False
    if folder is not None:
        architecture = _architecture(folder)
        n_parameters = _count_parameters(folder)
        has_tokenizer = (folder / "tokenizer.json").is_file() or (folder / "tokenizer_config.json").is_file()
    return ModelCard.from_template(
        card_data=card_data,
        template_path=str(template_path),
        title=name,
        description=description,
        training_data=training_data,
        command=command,
        datasets=datasets,
        as_gpt2=as_gpt2,
        architecture=architecture,
        n_parameters=f"{n_parameters:,}" if n_parameters else None,
        has_tokenizer=has_tokenizer,
        load_id=repo_id or "path/to/this/folder",
        hyperparameter_rows=[(_cell(k), _cell(_format_value(v))) for k, v in hyperparameters.items()],
        metric_rows=[(_split_metric(k)[0] or "-", _split_metric(k)[1], f"{v:.6g}") for k, v in metrics.items()],
        hf_scratch_version=__version__,
        transformers_version=transformers.__version__,
    )


def write_model_card(
    folder: str | os.PathLike,
    kind: str = "causal-lm",
    *,
    datasets: str | Sequence[str] = (),
    hyperparameters: Mapping[str, Any] | None = None,
    metrics: Mapping[str, float] | None = None,
    command: str | None = None,
    base_model: str | None = None,
    license: str | None = "apache-2.0",
    language: str | Sequence[str] | None = None,
    model_name: str | None = None,
    training_data: str | None = None,
    description: str | None = None,
    tags: Sequence[str] = (),
    pipeline_tag: str | None = None,
    library_name: str | None = None,
) -> Path:
    """Render the card of the model saved in ``folder`` into ``folder/README.md`` and record its inputs in
    ``folder/model_card.json``; returns the README's path. Arguments as for :func:`render_model_card`. Call it
    after ``save_pretrained`` (and after saving the tokenizer), so the card sees the config and weights."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"model card: {folder} is a file, not a model folder")
    inputs = dict(kind=kind, datasets=_string_list(datasets, "datasets"),  # the keys of _CARD_INPUTS
                  hyperparameters=_check_hyperparameters(hyperparameters), metrics=_check_metrics(metrics),
                  command=command, base_model=base_model, license=license, language=language,
                  model_name=model_name, training_data=training_data, description=description,
                  tags=_string_list(tags, "tags"))
    if pipeline_tag is not None or library_name is not None:  # recorded only when set: older records stay valid
        inputs.update(pipeline_tag=pipeline_tag, library_name=library_name)
    card = render_model_card(**inputs, folder=folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / CARD_FILE
    _save_card(card, path)
    # Hyperparameters may hold paths or other objects: record them as the card shows them.
    (folder / CARD_INPUTS_FILE).write_text(json.dumps(inputs, indent=2, default=str) + "\n", encoding="utf-8")
    return path


# What write_model_card records in model_card.json: render_model_card's arguments that describe the model, not
# where or how it is rendered.
_CARD_INPUTS = ("kind", "datasets", "hyperparameters", "metrics", "command", "base_model", "license", "language",
                "model_name", "training_data", "description", "tags", "pipeline_tag", "library_name")


def _save_card(card, path: Path) -> None:
    # Jinja drops the template's final newline; a text file should end with one.
    path.write_text(str(card).rstrip("\n") + "\n", encoding="utf-8")


def _card_kind(kind: str) -> CardKind:
    if kind not in CARD_KINDS:
        raise ValueError(f"no model card template for kind {kind!r}; known kinds: {', '.join(CARD_KINDS)}")
    return CARD_KINDS[kind]


def _string_list(value, what: str) -> list[str]:
    values = [value] if isinstance(value, str) else list(value or ())
    for item in values:
        if not isinstance(item, str) or not item.strip():
            raise ValueError(f"model card: each of {what} must be a non-empty string, got {item!r}")
    return values


def _check_metrics(metrics) -> dict[str, float]:
    if metrics is None:
        return {}
    if not isinstance(metrics, Mapping):
        raise ValueError(f"model card: metrics must be a dict of name -> number, got {type(metrics).__name__}")
    checked = {}
    for name, value in metrics.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"model card: metric names must be non-empty strings, got {name!r}")
        if isinstance(value, (bool, str)) or not hasattr(value, "__float__"):
            raise ValueError(f"model card: metric {name!r} must be a number, got {value!r}")
        value = float(value)
        if not math.isfinite(value):  # the Hub's model-index takes numbers only
            raise ValueError(f"model card: metric {name!r} is {value}, not a finite number")
        checked[name] = value
    return checked


def _check_hyperparameters(hyperparameters) -> dict[str, Any]:
    if hyperparameters is None:
        return {}
    if not isinstance(hyperparameters, Mapping):
        raise ValueError(f"model card: hyperparameters must be a dict, got {type(hyperparameters).__name__}")
    for name in hyperparameters:
        if not isinstance(name, str) or not name:
            raise ValueError(f"model card: hyperparameter names must be non-empty strings, got {name!r}")
    return dict(hyperparameters)


def _split_metric(name: str) -> tuple[str | None, str]:
    head, _, rest = name.partition("_")
    if rest and head.lower() in _SPLIT_PREFIXES:
        return _SPLIT_PREFIXES[head.lower()], rest
    return None, name


def _format_value(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (str, int, float)) or value is None:
        return str(value)
    try:
        return json.dumps(value, default=str)
    except (TypeError, ValueError):
        return str(value)


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _architecture(folder: Path) -> dict | None:
    """Layers, width, heads, context and vocabulary from config.json: ours (the book's names) or GPT-2's."""
    path = folder / "config.json"
    if not path.is_file():
        return None
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None
    names = {"hf_scratch_gpt": ("n_layers", "emb_dim", "n_heads", "context_length"),
             "gpt2": ("n_layer", "n_embd", "n_head", "n_positions")}.get(config.get("model_type"))
    if names is None or not all(n in config for n in names):
        return None
    return dict(zip(("n_layers", "emb_dim", "n_heads", "context_length"), (config[n] for n in names), strict=True),
                vocab_size=config.get("vocab_size"))


def _count_parameters(folder: Path) -> int | None:
    """Elements of every tensor in the folder's safetensors files, read from their JSON headers (no weights)."""
    total, found = 0, False
    for path in sorted(folder.glob("*.safetensors")):
        with open(path, "rb") as file:
            try:
                (length,) = struct.unpack("<Q", file.read(8))
                header = json.loads(file.read(length))
            except (struct.error, json.JSONDecodeError, UnicodeDecodeError):
                raise ValueError(f"{path} is not a safetensors file (its header does not parse)") from None
        for name, entry in header.items():
            if name != "__metadata__":
                total += math.prod(entry["shape"])
        found = True
    return total if found else None


# ------------------------------------------------------------------------------------------------------ push
# What a push uploads, by the top-level name of each file of the run (first match wins). Folders are never
# uploaded: checkpoint-*/ holds intermediate training states, and the final model sits at the top. Python files
# are uploaded when the model's auto_map needs them (_code_files), hidden files never.
UPLOAD_RULES: tuple[tuple[str, str], ...] = (
    ("README.md", "card"),
    ("config.json", "model"),
    ("generation_config.json", "model"),
    ("*.safetensors", "model"),
    ("*.safetensors.index.json", "model"),
    ("adapter_config.json", "model"),
    ("tokenizer.json", "tokenizer"),
    ("tokenizer_config.json", "tokenizer"),
    ("special_tokens_map.json", "tokenizer"),
    ("added_tokens.json", "tokenizer"),
    ("chat_template.jinja", "tokenizer"),
    ("vocab.json", "tokenizer"),
    ("merges.txt", "tokenizer"),
    ("encoder.json", "tokenizer"),
    ("vocab.bpe", "tokenizer"),
    ("pattern.txt", "tokenizer"),
    ("metrics.json", "run record"),
    ("*results.json", "run record"),
    ("trainer_state.json", "run record"),
    ("training_config.json", "run record"),
    ("*.png", "run record"),
    ("*.svg", "run record"),
    ("samples*.txt", "run record"),
    ("samples*.md", "run record"),
    ("samples*.json", "run record"),
    ("samples*.jsonl", "run record"),
)
# Why the rest stays home (first match wins); anything unmatched is "not a model, tokenizer, ... file".
SKIP_RULES: tuple[tuple[str, str], ...] = (
    (CARD_INPUTS_FILE, "card inputs (rendered into README.md)"),
    ("optimizer.*", "optimizer state (for resuming training)"),
    ("scheduler.*", "scheduler state (for resuming training)"),
    ("scaler.*", "gradient-scaler state (for resuming training)"),
    ("rng_state*", "random-number-generator state (for resuming training)"),
    ("training_args.bin", "pickled training arguments"),
    ("*.bin", "pickle-based weights (the upload uses safetensors)"),
    ("*.pt", "pickle-based file"),
    ("*.pth", "pickle-based file"),
    ("*.pkl", "pickle-based file"),
    ("*.ckpt", "pickle-based file"),
)
WEIGHT_PATTERNS = ("*.safetensors", "*.safetensors.index.json")


@dataclass
class PushPlan:
    """What a push uploads: ``folder`` (temporary) holds exactly ``files`` (repo path -> size in bytes)."""

    run: Path
    repo_id: str
    as_gpt2: bool
    folder: Path
    files: dict[str, int]
    kinds: dict[str, str]
    skipped: dict[str, str]
    card: str
    notes: list[str] = field(default_factory=list)


def check_repo_id(repo_id: str) -> str:
    """``repo_id`` if it is a valid model repo id (``NAME`` or ``NAMESPACE/NAME``), else a ``ValueError``."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise ValueError(f"{repo_id!r} is not a valid Hub repo id: expected NAME or NAMESPACE/NAME with letters, "
                         f"digits, '-', '_' and '.', at most 96 characters ({error})") from None
    return repo_id


# The files of a LoRA adapter folder (hf_scratch.training.lora_setup): peft's format, hf_scratch's own, or both.
ADAPTER_FILES = {"adapter_config.json": "adapter", "adapter_model.safetensors": "adapter",
                 "lora_config.json": "adapter", "lora_adapter.safetensors": "adapter",
                 "head_weights.safetensors": "adapter", CARD_FILE: "card"}


def is_adapter_folder(folder: Path) -> bool:
    """A LoRA adapter alone (``adapter/`` of a LoRA run): adapter weights and no model ``config.json``."""
    return not (folder / "config.json").is_file() and any(
        (folder / name).is_file() for name in ("adapter_model.safetensors", "lora_adapter.safetensors"))


def check_run_folder(run: str | os.PathLike) -> Path:
    """``run`` as a path if it holds a saved model (``config.json`` and safetensors weights) or a LoRA adapter,
    else an error that says what is missing."""
    run = Path(run)
    if not run.exists():
        raise FileNotFoundError(f"run folder not found: {run}")
    if not run.is_dir():
        raise ValueError(f"{run} is a file; pass the folder the model was saved to")
    if is_adapter_folder(run):
        return run
    missing = [what for what, present in (
        ("config.json", (run / "config.json").is_file()),
        ("safetensors weights", any(any(run.glob(p)) for p in WEIGHT_PATTERNS)),
    ) if not present]
    if missing:
        checkpoints = sorted(p.name for p in run.glob("checkpoint*") if p.is_dir())
        listed = ", ".join(checkpoints[:3]) + (", ..." if len(checkpoints) > 3 else "")
        hint = (f"; it holds intermediate checkpoints ({listed}): push one of those, or save the final model at "
                f"the top of the run") if checkpoints else ""
        if (run / "adapter").is_dir() and not hint:
            hint = f"; to push its LoRA adapter alone, pass {run / 'adapter'}"
        raise ValueError(f"{run} is not a saved model: it has no {' and no '.join(missing)} (expected the folder "
                         f"written by save_pretrained, hf-scratch pretrain or a finetuning command, or a LoRA "
                         f"adapter folder){hint}")
    return run


def _classify(name: str, is_dir: bool, code_files: set[str] = frozenset()) -> tuple[str | None, str | None]:
    """(kind, None) for an uploaded top-level entry, (None, reason) for one that is left out."""
    if is_dir:
        if fnmatch.fnmatchcase(name, "checkpoint*"):
            return None, "intermediate training checkpoint"
        return None, "folder (only the top level of a run is uploaded)"
    if name.startswith("."):
        return None, "hidden file"
    if name.endswith(".py"):  # only the code trust_remote_code runs, not a stray script next to the model
        return ("code", None) if name in code_files else (None, "Python file that config.json's auto_map never uses")
    for pattern, kind in UPLOAD_RULES:
        if fnmatch.fnmatchcase(name, pattern):
            return kind, None
    for pattern, reason in SKIP_RULES:
        if fnmatch.fnmatchcase(name, pattern):
            return None, reason
    return None, "not a model, tokenizer, code, card or run-record file"


def _code_files(run: Path) -> set[str]:
    """The Python files remote code loading needs: the modules named by the ``auto_map`` of config.json (and of
    tokenizer_config.json), and every file they import relatively, as transformers resolves them."""
    from transformers.dynamic_module_utils import get_relative_import_files

    modules = set()
    for name in ("config.json", "tokenizer_config.json"):
        path = run / name
        auto_map = _read_json(path).get("auto_map") if path.is_file() else None
        for references in (auto_map or {}).values():
            for reference in references if isinstance(references, list) else [references]:
                if isinstance(reference, str):  # "module.Class", or "repo--module.Class" for code kept elsewhere
                    modules.add(reference.split("--")[-1].rsplit(".", 1)[0] + ".py")
    files = set()
    for module in sorted(modules):
        if "--" in module or not (run / module).is_file():
            raise ValueError(f"{run} lacks {module}, the model code its auto_map names; save the model again "
                             f"with save_pretrained")
        files.add(module)
        files.update(Path(f).name for f in get_relative_import_files(run / module))
    missing = sorted(f for f in files if not (run / f).is_file())
    if missing:
        raise ValueError(f"{run} lacks {', '.join(missing)}, imported by its model code")
    return files


def _place(source: Path, target: Path) -> None:
    """Hard-link where possible (no copy of gigabytes of weights), else copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


@contextlib.contextmanager
def stage_push(run: str | os.PathLike, repo_id: str, *, as_gpt2: bool = False) -> Iterator[PushPlan]:
    """Stage in a temporary folder exactly what ``hf-scratch push`` uploads, and describe it.

    Uploaded, from the top level of the run: the model (``config.json``, ``generation_config.json``,
    ``*.safetensors`` and their index), its code (the ``*.py`` files ``config.json``'s ``auto_map`` needs for
    ``trust_remote_code``), the tokenizer files,
    the card (``README.md``), and run records (``metrics.json``, ``*results.json``, ``trainer_state.json``, plots
    as ``*.png``/``*.svg``, ``samples*``). Left out: every folder (``checkpoint-*/`` intermediate checkpoints and
    anything else), optimizer/scheduler/RNG states, pickle files (``*.bin``, ``*.pt``, ...), hidden files, other
    Python files, ``model_card.json``, and anything else not named above.

    The card: if the run has ``model_card.json`` (written by :func:`write_model_card`), it is rendered again with
    the repo id; else the run's ``README.md`` is kept; else a card is generated from ``config.json`` and a flat
    ``metrics.json``. ``as_gpt2=True`` stages ``model.to_gpt2()`` saved by ``GPT2LMHeadModel.save_pretrained``
    instead of the model and its code, with a stock GPT-2 card."""
    run = check_run_folder(run)
    repo_id = check_repo_id(repo_id)
    adapter = is_adapter_folder(run)
    if adapter and as_gpt2:
        raise ValueError(f"{run} is a LoRA adapter: --as-gpt2 exports a model; merge the adapter first "
                         f"(hf-scratch merge-lora) or push it without --as-gpt2")
    config = {} if adapter else _read_json(run / "config.json")
    architectures = config.get("architectures") or []
    if as_gpt2:
        _check_gpt2_exportable(run, config)

    code_files = set() if adapter else _code_files(run)
    kinds, skipped = {}, {}
    for entry in sorted(run.iterdir()):
        if adapter:  # only the adapter's own files: its weights, configs and card
            kind = None if entry.is_dir() else ADAPTER_FILES.get(entry.name)
            reason = "not a file of the LoRA adapter" if kind is None else None
        else:
            kind, reason = _classify(entry.name, entry.is_dir(), code_files)
        if kind is None:
            skipped[entry.name + ("/" if entry.is_dir() else "")] = reason
        elif as_gpt2 and kind in ("model", "code"):
            skipped[entry.name] = ("replaced by the stock GPT-2 export" if kind == "model"
                                   else "model code, not needed by the stock GPT-2 export")
        else:
            kinds[entry.name] = kind

    notes = []
    with tempfile.TemporaryDirectory(prefix="hf-scratch-push-") as tmp:
        folder = Path(tmp)
        for name in kinds:
            if name != CARD_FILE:  # the card is written below, never through a link into the run
                _place(run / name, folder / name)
        if as_gpt2:
            _save_gpt2(run, folder)
            for path in folder.iterdir():
                kinds.setdefault(path.name, "model")

        card = _stage_card(run, folder, repo_id, as_gpt2, architectures, notes)
        kinds[CARD_FILE] = "card"
        files = {p.relative_to(folder).as_posix(): p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file()}
        yield PushPlan(run=run, repo_id=repo_id, as_gpt2=as_gpt2, folder=folder, files=files,
                       kinds={name: kinds[name] for name in files}, skipped=skipped, card=card, notes=notes)


def _check_gpt2_exportable(run: Path, config: dict) -> None:
    architectures = config.get("architectures") or []
    if config.get("model_type") != "hf_scratch_gpt" or "ScratchGPTForCausalLM" not in architectures:
        raise ValueError(f"only a ScratchGPTForCausalLM exports as GPT-2 (--as-gpt2); {run} holds model_type "
                         f"{config.get('model_type')!r} with architectures {architectures}")


def _save_gpt2(run: Path, folder: Path) -> None:
    from .model import ScratchGPTForCausalLM

    model = ScratchGPTForCausalLM.from_pretrained(run)
    model.to_gpt2().save_pretrained(folder)
    if "auto_map" in _read_json(folder / "config.json"):  # no remote code is the export's whole point
        raise RuntimeError("the GPT-2 export's config.json refers to remote code")


def export_as_gpt2(run: str | os.PathLike, folder: str | os.PathLike) -> Path:
    """Save the ScratchGPTForCausalLM in ``run`` as a stock ``GPT2LMHeadModel`` in ``folder``, with the run's
    tokenizer files: a folder that loads with plain ``transformers`` and no remote code. Returns ``folder``."""
    run, folder = check_run_folder(run), Path(folder)
    _check_gpt2_exportable(run, _read_json(run / "config.json"))
    folder.mkdir(parents=True, exist_ok=True)
    _save_gpt2(run, folder)
    for entry in run.iterdir():
        if entry.is_file() and _classify(entry.name, False)[0] == "tokenizer":
            shutil.copy2(entry, folder / entry.name)
    return folder


def _stage_card(run: Path, folder: Path, repo_id: str, as_gpt2: bool, architectures, notes: list[str]) -> str:
    inputs_path = run / CARD_INPUTS_FILE
    if inputs_path.is_file():
        inputs = _read_json(inputs_path)
        unknown = sorted(set(inputs) - set(_CARD_INPUTS))
        if unknown:
            raise ValueError(f"{inputs_path} has entries render_model_card does not take: {', '.join(unknown)}")
        card = render_model_card(**inputs, folder=folder, repo_id=repo_id, as_gpt2=as_gpt2)
    elif (run / CARD_FILE).is_file() and not as_gpt2:
        card = None
        shutil.copyfile(run / CARD_FILE, folder / CARD_FILE)
        notes.append(f"README.md is the run's own card ({CARD_INPUTS_FILE} not found, so it is not re-rendered)")
    else:
        kind = next((ARCHITECTURE_KINDS[a] for a in architectures if a in ARCHITECTURE_KINDS), None)
        if kind is None:
            raise ValueError(f"{run} has no model card and no card template fits its architectures {architectures}; "
                             f"write one with hf_scratch.hub.write_model_card")
        metrics = _numeric_metrics(run / "metrics.json")
        card = render_model_card(kind, metrics=metrics, folder=folder, repo_id=repo_id, as_gpt2=as_gpt2)
        why = "the run's README.md describes the remote-code model" if (run / CARD_FILE).is_file() else "none found"
        notes.append(f"README.md generated from config.json{' and metrics.json' if metrics else ''} ({why}); "
                     f"hf_scratch.hub.write_model_card adds datasets, command and hyperparameters")
    if card is not None:
        _save_card(card, folder / CARD_FILE)
    return (folder / CARD_FILE).read_text(encoding="utf-8")


def _numeric_metrics(path: Path) -> dict[str, float]:
    """The finite numbers at the top level of a metrics.json (other entries, such as lists, are not metrics)."""
    if not path.is_file():
        return {}
    data = _read_json(path)
    return {k: float(v) for k, v in data.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object")
    return data


def describe_plan(plan: PushPlan, *, private: bool = False) -> str:
    """The dry-run report: the repo, every file with its size, what is left out and why, and the card."""
    total = sum(plan.files.values())
    width = max(len(name) for name in plan.files)
    lines = [f"dry run: nothing is uploaded. `hf-scratch push` would create the model repo {plan.repo_id} "
             f"({'private' if private else 'public unless the namespace defaults to private'}; an existing repo "
             f"keeps its visibility) and upload {len(plan.files)} files, {total:,} bytes, from {plan.run}"
             f"{' exported as stock GPT-2' if plan.as_gpt2 else ''}:"]
    lines += [f"  {name:<{width}}  {size:>14,} bytes  {plan.kinds[name]}" for name, size in plan.files.items()]
    if plan.skipped:
        lines.append("left out:")
        lines += [f"  {name}  ({reason})" for name, reason in plan.skipped.items()]
    lines += [f"note: {note}" for note in plan.notes]
    lines += ["", f"----- {CARD_FILE} -----", plan.card.rstrip("\n"), f"----- end of {CARD_FILE} -----"]
    return "\n".join(lines)


def resolve_token(token: str | None = None) -> str:
    """``token``, else the one huggingface_hub finds (``HF_TOKEN``, then ``hf auth login``'s file)."""
    from huggingface_hub import get_token

    token = token or get_token()
    if not token:
        raise ValueError("no Hugging Face token: set HF_TOKEN, run `hf auth login`, or pass --token "
                         "(--dry-run needs none)")
    return token


def push_run(
    run: str | os.PathLike,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = False,
    as_gpt2: bool = False,
    commit_message: str | None = None,
):
    """Upload a run folder to the model repo ``repo_id`` (created if missing); returns the ``CommitInfo``.
    Everything is checked (repo id, folder, token, offline mode) before anything is sent."""
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError

    check_repo_id(repo_id)
    check_run_folder(run)
    token = resolve_token(token)
    if constants.is_offline_mode():
        raise ValueError("HF_HUB_OFFLINE is set, so nothing can be uploaded: unset it, or use --dry-run")
    with stage_push(run, repo_id, as_gpt2=as_gpt2) as plan:
        api = HfApi(token=token)
        try:
            url = api.create_repo(repo_id, private=True if private else None, exist_ok=True, repo_type="model")
            return api.upload_folder(
                folder_path=plan.folder, repo_id=url.repo_id, repo_type="model",
                commit_message=commit_message or f"Upload {plan.run.name} with hf-scratch push"
                                                 f"{' (stock GPT-2 export)' if as_gpt2 else ''}",
            )
        except HfHubHTTPError as error:
            status = error.response.status_code if error.response is not None else None
            if status in (401, 403):  # the token, not the program: say so without a traceback
                raise ValueError(f"the Hub at {api.endpoint} refused the token (HTTP {status}); check HF_TOKEN or "
                                 f"--token, and that it may write to {repo_id}: {error}") from None
            raise


def _push_command(args) -> None:
    if args.dry_run:
        with stage_push(args.run, args.repo_id, as_gpt2=args.as_gpt2) as plan:
            print(describe_plan(plan, private=args.private))
        return
    commit = push_run(args.run, args.repo_id, token=args.token, private=args.private, as_gpt2=args.as_gpt2,
                      commit_message=args.message)
    print(f"pushed {args.run} to {commit.repo_url.repo_id}: {commit.commit_url}")


def add_push_command(subparsers) -> argparse.ArgumentParser:
    """Add ``push RUN REPO_ID`` to the ``hf-scratch`` parser's subcommands (``parser.add_subparsers()``)."""
    push = subparsers.add_parser(
        "push", help="upload a run or checkpoint folder to the Hugging Face Hub, with its model card",
        description="Upload a saved model folder (a run's top level or one checkpoint) to a Hub model repo: "
                    "model, code, tokenizer, README.md card and run records; never intermediate checkpoints "
                    "or optimizer states. The token comes from --token, HF_TOKEN or `hf auth login`; "
                    "HF_ENDPOINT selects another Hub.",
    )
    push.add_argument("run", type=Path, help="the folder written by save_pretrained / hf-scratch pretrain")
    push.add_argument("repo_id", help="NAMESPACE/NAME (or NAME, in the token's own namespace)")
    push.add_argument("--private", action="store_true", help="create the repo private (an existing repo is unchanged)")
    push.add_argument("--as-gpt2", action="store_true",
                      help="upload model.to_gpt2() as stock GPT2LMHeadModel, so loading needs no remote code")
    push.add_argument("--dry-run", action="store_true",
                      help="list the files (with sizes) and print the card that would be uploaded; upload nothing")
    push.add_argument("--token", default=None, help="Hub token (default: HF_TOKEN, then `hf auth login`'s)")
    push.add_argument("--message", default=None, help="commit message")
    push.set_defaults(func=_push_command)
    return push
