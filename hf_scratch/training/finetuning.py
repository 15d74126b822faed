"""What the finetuning stages (classification, ch. 6; instructions, ch. 7) share: their common options, the model
they start from, and the run folder they refuse to overwrite."""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

from ..tokenizers.adapters import bpe_from_spec, checkpoint_tokenizer, pad_id_of

GPT2_IDS = ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl")

# Help of the shared options; each command adds its own (and LoRA's, from lora_setup.LORA_HELP).
OPTIONS_HELP = {
    "init": "a folder (a checkpoint of ours, e.g. an 'hf-scratch pretrain' run, or a GPT-2 folder), gpt2 / "
            "gpt2-medium / gpt2-large / gpt2-xl (OpenAI's weights, needs the network), or random",
    "tokenizer": "for --init random or a GPT-2 id: gpt2 (default), bytes, or a folder from 'hf-scratch tokenizer "
                 "train'; for a folder init, overrides its tokenizer.json",
    "max_length": "tokens kept per example (default: the model's context)",
    "drop_rate": "dropout (default: the checkpoint's; 0 for random)",
    "grad_accum": "micro-batches per optimizer step",
    "min_lr": "learning rate at the end of a cosine decay (default: constant rate, as the book)",
    "warmup_steps": "linear warmup steps",
    "limit": "use only the first N examples of each split (quick trials)",
    "bf16": "bf16 autocast (faster on CPUs with AMX and on recent GPUs)",
    "overwrite": "replace a non-empty --output-dir",
    "progress": "show the progress bars and per-epoch lines",
}


def invoked_command(subcommand: str) -> str | None:
    """The command line that started this run, for its card: ``hf-scratch SUBCOMMAND ...``, a recipe script's, or
    None when called from Python."""
    if sys.argv[1:2] == [subcommand]:
        return "hf-scratch " + " ".join(sys.argv[1:])
    return " ".join(["python", *sys.argv]) if sys.argv[0].endswith(".py") else None


@dataclass
class FinetuneOptions:
    """Options of every finetuning command; each stage's config adds its own and may change defaults."""

    # Starting point: a GPT-2 Hub id (needs the network), a folder (a checkpoint of ours or a GPT-2 folder), or
    # "random" (a new model of the dimensions below).
    init: str = "random"
    # For "random" or a GPT-2 id: "gpt2" (OpenAI's BPE, the default), "bytes", or a folder of a trained BPE. For a
    # folder init, its own tokenizer.json is used unless this names one.
    tokenizer: str | None = None
    max_length: int | None = None  # tokens kept per example (default: the model's context)

    # LoRA (appendix E): adapters on the frozen model (hf_scratch.training.lora_setup).
    lora: bool = False
    lora_impl: str = "scratch"
    lora_rank: int = 16
    lora_alpha: float = 16.0
    lora_targets: str | None = None  # comma-separated module names; None: every linear layer of the blocks

    # Dimensions of a "random" model.
    n_layers: int = 4
    emb_dim: int = 256
    n_heads: int = 4
    context_length: int = 256
    drop_rate: float | None = None  # None: keep the checkpoint's (0.0 for random)

    # Optimisation: the book's AdamW at 5e-5 and weight decay 0.1, batch 8, a constant rate.
    epochs: int = 5
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 5e-5
    min_lr: float | None = None  # end of a cosine decay; None: constant rate (the book)
    warmup_steps: int = 0
    weight_decay: float = 0.1
    max_grad_norm: float = 1.0
    bf16: bool = False

    # Data: the stage's book data set by default; limit: the first N examples of each split (quick trials).
    data_path: str | None = None
    limit: int | None = None

    output_dir: str = "runs/finetune"
    overwrite: bool = False
    seed: int = 123
    progress: bool = True
    command: str | None = None

    def __post_init__(self):
        from .lora_setup import LoRASettings

        LoRASettings.from_config(self)  # checks the --lora options
        for name in ("n_layers", "emb_dim", "n_heads", "context_length", "epochs", "batch_size", "grad_accum"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("max_length", "limit"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not self.lr > 0 or (self.min_lr is not None and not 0 <= self.min_lr <= self.lr):
            raise ValueError(f"lr must be > 0 and min_lr in [0, lr], got lr={self.lr}, min_lr={self.min_lr}")
        if self.warmup_steps < 0 or self.weight_decay < 0 or self.max_grad_norm <= 0:
            raise ValueError("warmup_steps and weight_decay must be >= 0, max_grad_norm > 0")
        if self.drop_rate is not None and not 0 <= self.drop_rate < 1:
            raise ValueError(f"drop_rate must be in [0, 1), got {self.drop_rate}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def card_hyperparameters(self) -> dict:
        """The options a model card lists: not where the run was written or how it was shown, nor unused LoRA
        options."""
        values = {k: v for k, v in self.to_dict().items()
                  if k not in ("output_dir", "overwrite", "progress", "command", "data_path")}
        return values if self.lora else {k: v for k, v in values.items() if not k.startswith("lora_")}


def model_from_init(model_class, options: FinetuneOptions, **config_fields):
    """``(model, tokenizer, base_model)`` for ``options.init``: a ``model_class`` (our causal LM or classifier) with
    ``config_fields`` set on its config (labels, pooling); the tokenizer is a ``BPETokenizer`` or a transformers
    tokenizer; ``base_model`` is the Hub id a card names (or None)."""
    from ..model import ScratchGPTConfig

    if options.drop_rate is not None:
        config_fields = {**config_fields, "drop_rate": options.drop_rate}
    if options.init in GPT2_IDS:
        try:
            model = model_class.from_gpt2(options.init, **config_fields)
        except OSError as error:  # no network and no cached copy: say what the user can do instead
            raise OSError(f"--init {options.init} needs OpenAI's weights from the Hugging Face Hub, which could not "
                          f"be loaded ({error}). Offline, start from a folder instead: a run of 'hf-scratch "
                          f"pretrain' or a saved GPT-2 (or use the recipe's offline path)") from error
        return model, bpe_from_spec(options.tokenizer or "gpt2"), options.init
    if options.init == "random":
        tokenizer = bpe_from_spec(options.tokenizer or "gpt2")
        eot = pad_id_of(tokenizer)
        model_config = ScratchGPTConfig(**{
            "vocab_size": tokenizer.vocab_size, "context_length": options.context_length, "emb_dim": options.emb_dim,
            "n_heads": options.n_heads, "n_layers": options.n_layers, "drop_rate": 0.0,
            "bos_token_id": eot, "eos_token_id": eot, "pad_token_id": eot, **config_fields})
        return model_class(model_config), tokenizer, None
    path = Path(options.init).expanduser()
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"--init {options.init!r}: not a GPT-2 id ({', '.join(GPT2_IDS)}), random, or a "
                                f"folder with a config.json")
    model_type = json.loads((path / "config.json").read_text()).get("model_type")
    if model_type == "gpt2":
        model = model_class.from_gpt2(str(path), **config_fields)
    elif model_type == ScratchGPTConfig.model_type:
        # Set the fields on the config: from_pretrained passes keywords the saved config lacks (classifier_pooling
        # of a causal-LM checkpoint) to the model's __init__ instead.
        model_config = ScratchGPTConfig.from_pretrained(path)
        for key, value in config_fields.items():
            setattr(model_config, key, value)
        model = model_class.from_pretrained(path, config=model_config)
    else:
        raise ValueError(f"--init {path}: a {model_type!r} checkpoint; expected one of hf_scratch's or GPT-2")
    return model, checkpoint_tokenizer(path, options.tokenizer, model.config.vocab_size), None


def training_arguments(options: FinetuneOptions, run_dir: Path, logging_steps: int, **overrides):
    """``TrainingArguments`` of a finetuning run: an evaluation at each epoch's end, no checkpoints (the run folder
    gets the final model), our progress bar instead of Trainer's, the collator picks its columns itself."""
    import torch
    from transformers import TrainingArguments

    settings = dict(
        output_dir=str(run_dir / "checkpoints"), per_device_train_batch_size=options.batch_size,
        gradient_accumulation_steps=options.grad_accum, num_train_epochs=options.epochs,
        max_grad_norm=options.max_grad_norm, eval_strategy="epoch", save_strategy="no", logging_strategy="steps",
        logging_steps=logging_steps, seed=options.seed, bf16=options.bf16, use_cpu=not torch.cuda.is_available(),
        report_to=[], disable_tqdm=True, remove_unused_columns=False, label_names=["labels"],
        dataloader_num_workers=0, ddp_find_unused_parameters=False)
    return TrainingArguments(**{**settings, **overrides})


def optimizer_and_schedule(model, options: FinetuneOptions, n_train: int):
    """``(steps_per_epoch, total_steps, optimizer, scheduler)``: optimizer steps count every process of a
    data-parallel run; AdamW (betas 0.9/0.999, decay on matrices), a constant rate unless ``min_lr`` asks for
    warmup + cosine decay."""
    from .common import distributed_state
    from .optim import build_optimizer, warmup_cosine_schedule

    per_step = options.batch_size * options.grad_accum * distributed_state().num_processes
    steps_per_epoch = math.ceil(n_train / per_step)
    total_steps = steps_per_epoch * options.epochs
    optimizer = build_optimizer(model, lr=options.lr, weight_decay=options.weight_decay, betas=(0.9, 0.999))
    scheduler = warmup_cosine_schedule(optimizer, warmup_steps=options.warmup_steps, total_steps=total_steps,
                                       min_lr=options.lr if options.min_lr is None else options.min_lr)
    return steps_per_epoch, total_steps, optimizer, scheduler


def check_output_dir(output_dir, overwrite: bool) -> bool:
    """Whether ``output_dir`` holds anything; raise if it does and ``overwrite`` is off. Call before any work."""
    run_dir = Path(output_dir)
    occupied = run_dir.exists() and any(run_dir.iterdir())
    if occupied and not overwrite:
        raise FileExistsError(f"run folder {run_dir} is not empty; pass --overwrite to replace it "
                              f"(or choose another --output-dir)")
    return occupied


def prepare_output_dir(output_dir, overwrite: bool) -> Path:
    """An empty ``output_dir``: an earlier run there is removed only with ``overwrite``."""
    from .common import reset_run_dir

    run_dir = Path(output_dir)
    return reset_run_dir(run_dir, check_output_dir(run_dir, overwrite))


@dataclass
class OfflineBackbone:
    """The offline path of a finetuning recipe: with no GPT-2 weights to download, follow the book's own method at
    small scale: a BPE tokenizer and a small GPT pretrained here on the stage's training split, then finetuned.
    Each stage's offline config adds its finetuning options and may change these defaults."""

    output_dir: str = "runs/offline"
    seed: int = 123
    vocab_size: int = 1024  # a small vocabulary keeps the output layer (and pretraining) cheap
    n_layers: int = 4
    emb_dim: int = 256
    n_heads: int = 4
    context_length: int = 256
    pretrain_steps: int = 600
    pretrain_max_length: int = 127  # tokens per pretraining window
    pretrain_batch_size: int = 16
    pretrain_lr: float = 1e-3
    pretrain_drop_rate: float = 0.1
    # Evaluate every N pretraining steps (None: once, at the end). Each evaluation draws from the global random
    # generator (a DataLoader seeds itself from it), which shifts the dropout masks after it: the documented
    # figures of each recipe are for its own default.
    pretrain_eval_every: int | None = None
    bf16: bool = True  # bf16 autocast: markedly faster for pretraining on CPUs with AMX
    progress: bool = True

    def pretrain(self, corpus: Path, tokenizer_dir: Path, output_dir: Path, command: str) -> dict:
        """Pretrain the backbone on ``corpus`` (a text file) with the BPE in ``tokenizer_dir``; warmup over 5% of
        the steps, cosine decay to a tenth of the rate. Returns the run's metrics."""
        from .config import PretrainConfig
        from .run import pretrain

        return pretrain(PretrainConfig(
            corpus=str(corpus), tokenizer=str(tokenizer_dir), n_layers=self.n_layers, emb_dim=self.emb_dim,
            n_heads=self.n_heads, context_length=self.context_length, drop_rate=self.pretrain_drop_rate,
            max_length=min(self.pretrain_max_length, self.context_length - 1), max_steps=self.pretrain_steps,
            batch_size=self.pretrain_batch_size, lr=self.pretrain_lr, min_lr=self.pretrain_lr / 10,
            warmup_steps=max(1, self.pretrain_steps // 20), bf16=self.bf16,
            eval_every=self.pretrain_eval_every or self.pretrain_steps, eval_batches=4, sample_tokens=20,
            seed=self.seed, output_dir=str(output_dir), overwrite=True, progress=self.progress, command=command))
