"""``finetune_classifier(config)``: the spam classifier of book ch. 6 trained with ``transformers.Trainer``.

A run folder holds the model (``AutoModelForSequenceClassification``, its code for ``trust_remote_code``), the
tokenizer (``AutoTokenizer``), ``metrics.json`` (train/validation/test accuracy, precision/recall/F1, every epoch),
``loss_accuracy.png`` (loss and accuracy per epoch, the book's figures 6.16 and 6.17) and the model card.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from ..tokenizers.adapters import pad_id_of, save_tokenizer
from ..training.common import distributed_state, finish_processes
from ..training.finetuning import (
    FinetuneOptions,
    check_output_dir,
    model_from_init,
    optimizer_and_schedule,
    prepare_output_dir,
    training_arguments,
)
from .data import LABELS, PadCollator, load_spam_splits, tokenize_splits
from .freezing import FREEZING_POLICIES, apply_freezing

PADDINGS = ("longest_train", "dynamic")


@dataclass
class FinetuneConfig(FinetuneOptions):
    """``hf-scratch finetune-classifier``: the shared finetuning options (``FinetuneOptions``) and these. Defaults:
    the book's 5 epochs at 5e-5; ``init`` random (``gpt2`` is the book's, with the network)."""

    freeze: str | None = None  # None: "last_block" (the book), or "head_only" with --lora
    pooling: str = "last_non_pad"
    padding: str = "longest_train"
    output_dir: str = "runs/classifier"

    def __post_init__(self):
        super().__post_init__()
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


def _label_fields(config: FinetuneConfig) -> dict:
    return dict(num_labels=len(LABELS), id2label=dict(enumerate(LABELS)),
                label2id={label: i for i, label in enumerate(LABELS)}, classifier_pooling=config.pooling)


def build_classifier(config: FinetuneConfig):
    """``(model, tokenizer, base_model)`` for ``config.init`` (see ``training.finetuning.model_from_init``)."""
    from ..model import ScratchGPTForSequenceClassification

    return model_from_init(ScratchGPTForSequenceClassification, config, **_label_fields(config))


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
    from transformers import PrinterCallback, Trainer, set_seed
    from transformers.utils import logging

    from ..model import CLASSIFIER_HEAD
    from ..training.callbacks import EpochProgress
    from ..training.lora_setup import LoRASettings, save_lora_run, wrap_with_lora

    logging.disable_progress_bar()
    check_output_dir(config.output_dir, config.overwrite)  # before any work: refuse to clobber a previous run
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
    run_dir = prepare_output_dir(config.output_dir, config.overwrite)
    main_process = distributed_state().is_main_process
    if main_process:
        (run_dir / "training_config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    if config.progress and main_process:
        print(f"{config.init} -> classifier, {trained}: {report.trainable:,} of {report.total:,} parameters trainable")

    steps_per_epoch, total_steps, optimizer, scheduler = optimizer_and_schedule(model, config, len(data["train"]))
    history = {"steps": [], "train_loss": [], "epochs": []}

    args = training_arguments(config, run_dir, logging_steps=max(1, steps_per_epoch // 10),
                              per_device_eval_batch_size=4 * config.batch_size)
    trainer = Trainer(
        model=model, args=args, train_dataset=data["train"],
        eval_dataset={"train": data["train"], "validation": data["validation"]},
        data_collator=PadCollator(pad_id_of(tokenizer)), compute_metrics=compute_metrics_fn(),
        optimizers=(optimizer, scheduler),
        callbacks=[EpochProgress(history, total_steps, scheduler, _epoch_line, config.progress)],
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
    if not main_process:  # the main process writes the run folder
        finish_processes()
        return {}
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)  # save_strategy "no": only Trainer's empty folder

    if lora.lora:  # the merged model at the root, the adapter alone in adapter/
        adapter_base = None if config.init == "random" else config.init
        model = save_lora_run(trainer.model, run_dir, lora, base=adapter_base,
                              card=_card_fields(config, final))
    else:
        model = trainer.model.requires_grad_(True)
        model.save_pretrained(run_dir)
    save_tokenizer(tokenizer, run_dir, model.config.context_length)
    metrics = {**final, "wall_seconds": round(wall, 2), "epochs": history["epochs"],
               "train_loss_per_step": [{"step": s, "loss": l} for s, l in zip(history["steps"],
                                                                                history["train_loss"], strict=True)],
               "trainable_parameters": report.trainable, "total_parameters": report.total,
               "examples": {k: len(v) for k, v in data.items()},
               "sequence_length": len(data["train"][0]["input_ids"]) if config.padding == "longest_train" else None,
               "init": config.init, "freeze": config.freeze, "pooling": config.pooling, "seed": config.seed,
               "lora": lora_record}
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    plot_curves(history, run_dir / "loss_accuracy.png", f"{Path(config.init).name}, {trained}")
    write_card(run_dir, config, metrics, base_model)
    finish_processes()
    return metrics


def _epoch_line(entry: dict) -> str | None:
    if "validation_accuracy" not in entry or "train_accuracy" not in entry:
        return None
    return (f"epoch {entry['epoch']}: loss train {entry['train_loss']:.3f} validation {entry['validation_loss']:.3f}; "
            f"accuracy train {entry['train_accuracy']:.2%} validation {entry['validation_accuracy']:.2%}")


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

    write_model_card(run_dir, kind="text-classification", hyperparameters=config.card_hyperparameters(),
                     base_model=base_model, **_card_fields(config, metrics))
