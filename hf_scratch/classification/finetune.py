"""``finetune_classifier(config)``: the spam classifier of book ch. 6 trained with ``transformers.Trainer``.

A run folder holds the model (``AutoModelForSequenceClassification``, its code for ``trust_remote_code``), the
tokenizer (``AutoTokenizer``), ``metrics.json`` (train/validation/test accuracy, precision/recall/F1, every epoch),
``loss_accuracy.png`` (loss and accuracy per epoch, the book's figures 6.16 and 6.17) and the model card.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .data import LABELS, PadCollator, load_spam_splits, pad_id_of, tokenize_splits
from .freezing import FREEZING_POLICIES, apply_freezing

GPT2_IDS = ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl")
PADDINGS = ("longest_train", "dynamic")


@dataclass
class FinetuneConfig:
    # Starting point: a GPT-2 Hub id (needs the network), a folder (a causal-LM or classifier checkpoint of ours,
    # or a GPT-2 folder), or "random" (a new model of the dimensions below).
    init: str = "random"
    # For "random": "gpt2" (OpenAI's BPE), "bytes", or a folder of a trained BPE (encoder.json, vocab.bpe).
    # For a folder init, its own tokenizer.json is used unless this names one.
    tokenizer: str | None = None
    freeze: str | None = None  # None: "last_block" (the book), or "head_only" with --lora
    pooling: str = "last_non_pad"
    padding: str = "longest_train"
    max_length: int | None = None  # tokens kept per message (default: the model's context)

    # LoRA (appendix E): adapters on the frozen base, the head trained in full (hf_scratch.training.lora_setup).
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

    # Optimisation: the book's AdamW at 5e-5, weight decay 0.1, batch 8, 5 epochs, constant rate.
    epochs: int = 5
    batch_size: int = 8
    lr: float = 5e-5
    min_lr: float | None = None  # end of the cosine decay; None: constant rate (the book)
    warmup_steps: int = 0
    weight_decay: float = 0.1
    max_grad_norm: float = 1.0
    bf16: bool = False

    # Data: the sms-spam source (HF_SCRATCH_DATA or the cache); limit: first N examples of each split (smoke runs).
    data_path: str | None = None
    limit: int | None = None

    output_dir: str = "runs/classifier"
    overwrite: bool = False
    seed: int = 123
    progress: bool = True
    command: str | None = None

    def __post_init__(self):
        from ..training.lora_setup import LoRASettings

        LoRASettings.from_config(self)  # checks the --lora options
        if self.freeze is None:
            self.freeze = "head_only" if self.lora else "last_block"
        if self.freeze not in FREEZING_POLICIES:
            raise ValueError(f"freeze must be one of {', '.join(FREEZING_POLICIES)}, got {self.freeze!r}")
        if self.lora and self.freeze != "head_only":
            raise ValueError(f"--freeze {self.freeze} cannot be combined with --lora: LoRA freezes the base model and "
                             f"trains adapters, and the head in full (--freeze head_only, the default with --lora)")
        from ..model.modeling_classification import POOLINGS

        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {self.pooling!r}")
        if self.padding not in PADDINGS:
            raise ValueError(f"padding must be one of {', '.join(PADDINGS)}, got {self.padding!r}")
        for name in ("n_layers", "emb_dim", "n_heads", "context_length", "epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("max_length", "limit"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value <= 0):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not self.lr > 0 or (self.min_lr is not None and not 0 <= self.min_lr <= self.lr):
            raise ValueError(f"lr must be > 0 and min_lr in [0, lr], got lr={self.lr}, min_lr={self.min_lr}")
        if self.warmup_steps < 0 or self.weight_decay < 0 or self.max_grad_norm <= 0:
            raise ValueError("warmup_steps and weight_decay must be >= 0, max_grad_norm > 0")
        if self.drop_rate is not None and not 0 <= self.drop_rate < 1:
            raise ValueError(f"drop_rate must be in [0, 1), got {self.drop_rate}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _label_fields(config: FinetuneConfig) -> dict:
    return dict(num_labels=len(LABELS), id2label=dict(enumerate(LABELS)),
                label2id={label: i for i, label in enumerate(LABELS)}, classifier_pooling=config.pooling)


def _bpe_tokenizer(spec: str):
    from ..tokenizers import BPETokenizer, load_gpt2_bpe

    if spec == "gpt2":
        return load_gpt2_bpe()
    if spec == "bytes":
        return BPETokenizer.byte_level()
    path = Path(spec).expanduser()
    if not (path / "encoder.json").is_file():
        raise FileNotFoundError(f"tokenizer {spec!r}: expected 'gpt2', 'bytes' or a folder with encoder.json and "
                                f"vocab.bpe (from 'hf-scratch tokenizer train')")
    return BPETokenizer.load(path)


def build_classifier(config: FinetuneConfig):
    """``(model, tokenizer, base_model)`` for ``config.init``; the tokenizer is a ``BPETokenizer`` or a
    transformers tokenizer, ``base_model`` the Hub id the card names (or None)."""
    from ..model import ScratchGPTConfig, ScratchGPTForSequenceClassification

    overrides = {} if config.drop_rate is None else {"drop_rate": config.drop_rate}
    labels = _label_fields(config)
    if config.init in GPT2_IDS:
        model = ScratchGPTForSequenceClassification.from_gpt2(config.init, **labels, **overrides)
        return model, _bpe_tokenizer(config.tokenizer or "gpt2"), config.init
    if config.init == "random":
        tokenizer = _bpe_tokenizer(config.tokenizer or "gpt2")
        eot = pad_id_of(tokenizer)
        model_config = ScratchGPTConfig(
            vocab_size=tokenizer.vocab_size, context_length=config.context_length, emb_dim=config.emb_dim,
            n_heads=config.n_heads, n_layers=config.n_layers, drop_rate=overrides.get("drop_rate", 0.0),
            bos_token_id=eot, eos_token_id=eot, pad_token_id=eot, **labels)
        return ScratchGPTForSequenceClassification(model_config), tokenizer, None
    path = Path(config.init).expanduser()
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"--init {config.init!r}: not gpt2, gpt2-medium, random, or a folder with a "
                                f"config.json")
    model_type = json.loads((path / "config.json").read_text()).get("model_type")
    if model_type == "gpt2":
        model = ScratchGPTForSequenceClassification.from_gpt2(str(path), **labels, **overrides)
    elif model_type == ScratchGPTConfig.model_type:
        # Set the fields on the config: from_pretrained passes keywords the saved config lacks (classifier_pooling
        # of a causal-LM checkpoint) to the model's __init__ instead.
        model_config = ScratchGPTConfig.from_pretrained(path)
        for key, value in {**labels, **overrides}.items():
            setattr(model_config, key, value)
        model = ScratchGPTForSequenceClassification.from_pretrained(path, config=model_config)
    else:
        raise ValueError(f"--init {path}: a {model_type!r} checkpoint; expected one of hf_scratch's or GPT-2")
    if config.tokenizer is not None:
        tokenizer = _bpe_tokenizer(config.tokenizer)
    elif (path / "tokenizer.json").is_file():
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(path)
    else:
        raise FileNotFoundError(f"--init {path} has no tokenizer.json; name the tokenizer with --tokenizer")
    vocab = len(tokenizer) if hasattr(tokenizer, "__len__") else tokenizer.vocab_size
    if vocab > model.config.vocab_size:
        raise ValueError(f"the tokenizer has {vocab} ids but the model's vocabulary only {model.config.vocab_size}")
    return model, tokenizer, None


def _save_tokenizer(tokenizer, run_dir: Path, context_length: int):
    from ..tokenizers import BPETokenizer, save_hf_tokenizer

    if isinstance(tokenizer, BPETokenizer):
        save_hf_tokenizer(tokenizer, run_dir, model_max_length=context_length)
    else:
        tokenizer.save_pretrained(run_dir)


def _occupied(config: FinetuneConfig) -> bool:
    run_dir = Path(config.output_dir)
    occupied = run_dir.exists() and any(run_dir.iterdir())
    if occupied and not config.overwrite:
        raise FileExistsError(f"run folder {run_dir} is not empty; pass --overwrite to replace it "
                              f"(or choose another --output-dir)")
    return occupied


def _prepare_run_dir(config: FinetuneConfig) -> Path:
    run_dir = Path(config.output_dir)
    if _occupied(config):
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def compute_metrics_fn():
    """Trainer's ``compute_metrics``: accuracy and spam precision/recall/F1 from the shipped metric modules."""
    import evaluate

    from .metrics import metric_path

    accuracy = evaluate.load(metric_path("accuracy"))
    prf = evaluate.load(metric_path("precision_recall_f1"))

    def compute(eval_pred):
        predictions = eval_pred.predictions.argmax(-1)
        references = eval_pred.label_ids
        return {**accuracy.compute(predictions=predictions, references=references),
                **prf.compute(predictions=predictions, references=references, pos_label=1)}

    return compute


def finetune_classifier(config: FinetuneConfig) -> dict:
    """Train as ``config`` says and write the run folder; returns the metrics (also in metrics.json)."""
    from tqdm.auto import tqdm
    from transformers import PrinterCallback, Trainer, TrainerCallback, TrainingArguments, set_seed
    from transformers.utils import logging

    from ..model import CLASSIFIER_HEAD
    from ..training import build_optimizer, warmup_cosine_schedule
    from ..training.lora_setup import LoRASettings, save_lora_run, wrap_with_lora

    logging.disable_progress_bar()
    _occupied(config)  # before any work: refuse to clobber a previous run
    set_seed(config.seed)
    model, tokenizer, base_model = build_classifier(config)
    splits = load_spam_splits(config.data_path)
    if config.limit:
        splits = splits.__class__({k: v.select(range(min(config.limit, len(v)))) for k, v in splits.items()})
    data = tokenize_splits(splits, tokenizer, context_length=model.config.context_length, padding=config.padding,
                           max_length=config.max_length)
    lora, lora_record = LoRASettings.from_config(config), None
    if lora.lora:
        model, report = wrap_with_lora(model, lora, trainable=(CLASSIFIER_HEAD,))
        lora_record = {**lora.describe(), "layers": len(model.hf_scratch_lora["layers"]),
                       "trained_in_full": model.hf_scratch_lora["in_full"]}
        trained = (f"LoRA ({lora.lora_impl}, rank {lora.lora_rank}, alpha {lora.lora_alpha:g}) on "
                   f"{lora_record['layers']} layers, in full: {', '.join(lora_record['trained_in_full']) or 'nothing'}")
    else:
        report = apply_freezing(model, config.freeze)
        trained = f"freeze {config.freeze}"
    run_dir = _prepare_run_dir(config)
    (run_dir / "training_config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    if config.progress:
        print(f"{config.init} -> classifier, {trained}: {report.trainable:,} of {report.total:,} parameters trainable")

    steps_per_epoch = math.ceil(len(data["train"]) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    optimizer = build_optimizer(model, lr=config.lr, weight_decay=config.weight_decay, betas=(0.9, 0.999))
    scheduler = warmup_cosine_schedule(optimizer, warmup_steps=config.warmup_steps, total_steps=total_steps,
                                       min_lr=config.lr if config.min_lr is None else config.min_lr)
    history = {"steps": [], "train_loss": [], "epochs": []}

    class RecordCallback(TrainerCallback):
        bar, done = None, False

        def on_train_begin(self, args, state, control, **kwargs):
            self.bar = tqdm(total=total_steps, desc="finetune", unit="step", disable=not config.progress,
                            dynamic_ncols=True)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs and not self.done:
                history["steps"].append(state.global_step)
                history["train_loss"].append(float(logs["loss"]))
                self.bar.set_postfix(loss=f"{logs['loss']:.3f}", lr=f"{scheduler.get_last_lr()[0]:.2e}", refresh=False)
                self.bar.update(state.global_step - self.bar.n)

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            if self.done:  # the final evaluations after training are reported separately
                return
            epoch = round(state.epoch or 0)
            if not history["epochs"] or history["epochs"][-1]["epoch"] != epoch:
                history["epochs"].append({"epoch": epoch, "step": state.global_step})
            entry = history["epochs"][-1]
            entry.update({k.removeprefix("eval_"): v for k, v in (metrics or {}).items()
                          if k.endswith(("_loss", "_accuracy", "_f1"))})
            if "validation_accuracy" in entry and "train_accuracy" in entry:
                self.bar.write(f"epoch {epoch}: loss train {entry['train_loss']:.3f} validation "
                                    f"{entry['validation_loss']:.3f}; accuracy train {entry['train_accuracy']:.2%} "
                                    f"validation {entry['validation_accuracy']:.2%}")

        def on_train_end(self, args, state, control, **kwargs):
            self.bar.update(state.global_step - self.bar.n)
            self.bar.close()
            self.done = True

    args = TrainingArguments(
        output_dir=str(run_dir / "checkpoints"),
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=4 * config.batch_size,
        num_train_epochs=config.epochs,
        max_grad_norm=config.max_grad_norm,
        eval_strategy="epoch",
        save_strategy="no",
        logging_strategy="steps",
        logging_steps=max(1, steps_per_epoch // 10),
        seed=config.seed,
        bf16=config.bf16,
        use_cpu=not torch.cuda.is_available(),
        report_to=[],
        disable_tqdm=True,
        remove_unused_columns=False,  # the collator picks input_ids, attention_mask and label itself
        label_names=["labels"],
        dataloader_num_workers=0,
    )
    trainer = Trainer(
        model=model, args=args, train_dataset=data["train"],
        eval_dataset={"train": data["train"], "validation": data["validation"]},
        data_collator=PadCollator(pad_id_of(tokenizer)), compute_metrics=compute_metrics_fn(),
        optimizers=(optimizer, scheduler), callbacks=[RecordCallback()],
    )
    trainer.remove_callback(PrinterCallback)
    started = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - started
    final = {}
    for split in ("train", "validation", "test"):
        result = trainer.evaluate(data[split], metric_key_prefix=split)
        final.update({f"{split}_{name}": result[f"{split}_{name}"]
                      for name in ("loss", "accuracy", "precision", "recall", "f1") if f"{split}_{name}" in result})
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)  # save_strategy "no": only Trainer's empty folder

    if lora.lora:  # the merged model at the root, the adapter alone in adapter/
        adapter_base = None if config.init == "random" else config.init
        model = save_lora_run(trainer.model, run_dir, lora, base=adapter_base,
                              card=_card_fields(config, final))
    else:
        model = trainer.model.requires_grad_(True)
        model.save_pretrained(run_dir)
    _save_tokenizer(tokenizer, run_dir, model.config.context_length)
    metrics = {**final, "wall_seconds": round(wall, 2), "epochs": history["epochs"],
               "train_loss_per_step": [{"step": s, "loss": l} for s, l in zip(history["steps"],
                                                                                history["train_loss"], strict=True)],
               "trainable_parameters": report.trainable, "total_parameters": report.total,
               "examples": {k: len(v) for k, v in data.items()},
               "sequence_length": len(data["train"][0]["input_ids"]) if config.padding == "longest_train" else None,
               "init": config.init, "freeze": config.freeze, "pooling": config.pooling, "seed": config.seed,
               "lora": lora_record}
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    plot_curves(history, run_dir / "loss_accuracy.png", f"{config.init}, {trained}")
    write_card(run_dir, config, metrics, base_model)
    return metrics


def plot_curves(history: dict, path: Path, title: str):
    """Loss (per logged step, and per epoch on validation) and accuracy per epoch, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [e for e in history["epochs"] if "validation_accuracy" in e]
    steps_per_epoch = epochs[0]["step"] / max(epochs[0]["epoch"], 1) if epochs else 1
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4))
    loss_ax.plot([s / steps_per_epoch for s in history["steps"]], history["train_loss"], alpha=0.6,
                 label="training loss (logged steps)")
    for split in ("train", "validation"):
        loss_ax.plot([e["epoch"] for e in epochs], [e.get(f"{split}_loss") for e in epochs], "o-",
                     label=f"{split} loss (epoch end)")
        acc_ax.plot([e["epoch"] for e in epochs], [e.get(f"{split}_accuracy") for e in epochs], "o-",
                    label=f"{split} accuracy")
    from matplotlib.ticker import MaxNLocator

    for ax, ylabel in ((loss_ax, "cross-entropy loss"), (acc_ax, "accuracy")):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


TRAINING_DATA = ("The UCI SMS Spam Collection prepared as in the book's chapter 6: all 747 spam messages and 747 ham "
                 "messages drawn at random, split 70/10/20 into 1,045 training, 149 validation and 300 test messages; "
                 "labels 0 ham, 1 spam.")
CARD_METRICS = ("train_accuracy", "validation_accuracy", "test_accuracy", "test_precision", "test_recall", "test_f1")


def _card_fields(config: FinetuneConfig, metrics: dict) -> dict:
    """What the run's card (and a LoRA run's adapter card) says besides the model itself."""
    return dict(datasets=["sms-spam"], metrics={k: metrics[k] for k in CARD_METRICS if k in metrics},
                command=config.command or "hf-scratch finetune-classifier", training_data=TRAINING_DATA)


def write_card(run_dir: Path, config: FinetuneConfig, metrics: dict, base_model: str | None):
    from ..hub import write_model_card

    hyperparameters = {k: v for k, v in config.to_dict().items()
                       if k not in ("output_dir", "overwrite", "progress", "command", "data_path")}
    if not config.lora:
        hyperparameters = {k: v for k, v in hyperparameters.items() if not k.startswith("lora_")}
    write_model_card(run_dir, kind="text-classification", hyperparameters=hyperparameters, base_model=base_model,
                     **_card_fields(config, metrics))
