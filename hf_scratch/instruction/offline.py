"""The offline path for chapter 7: with no GPT-2 weights to download, pretrain a small GPT here and finetune it.

From the TRAINING split only: train a BPE tokenizer on its records, pretrain a small GPT on them as plain text
(instruction, input and answer as paragraphs, without any prompt template), then finetune that model on the
Alpaca-formatted records with ``finetune_instruct``. The pretrained model has seen the words but never the prompt
format or the end-of-text after an answer; finetuning teaches both. The test records are only answered."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..tokenizers import ENDOFTEXT, BPETokenizer
from ..training.finetuning import OfflineBackbone
from .data import load_instruction_records, split_records
from .finetune import InstructConfig, finetune_instruct
from .prompts import build_training_text


@dataclass
class OfflineInstructConfig(OfflineBackbone):
    output_dir: str = "runs/instruct-offline"
    vocab_size: int = 2048
    context_length: int = 256  # the longest formatted training record is 137 tokens of this vocabulary
    pretrain_steps: int = 300  # about 11 passes over the 55k training tokens; 1,000 over-fit (validation 5.9)
    pretrain_max_length: int = 128
    pretrain_eval_every: int | None = 100
    # Finetuning (InstructConfig fields): the book's 2 epochs and batch 8, a rate suited to a small model.
    finetune: dict = field(default_factory=lambda: dict(epochs=2, batch_size=8, lr=5e-4, min_lr=5e-5,
                                                       warmup_steps=10, drop_rate=0.1))


def plain_text(record: dict) -> str:
    """A record as plain paragraphs, with none of the prompt template's words or markers."""
    return "\n\n".join(part for part in (record["instruction"], record.get("input") or "", record["output"]) if part)


def offline_instruct_run(config: OfflineInstructConfig) -> dict:
    """Tokenizer, pretraining and instruction finetuning; writes ``output_dir/{tokenizer,pretrain,instruct}`` and
    ``output_dir/summary.json``; returns the summary (losses, wall time of each stage, three sample answers)."""
    root = Path(config.output_dir)
    root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    train = split_records(load_instruction_records())["train"]
    corpus = root / "alpaca_train_plain.txt"
    corpus.write_text(ENDOFTEXT.join(plain_text(r) for r in train), encoding="utf-8")
    # The tokenizer sees the formatted text too, so the template's markers ("###") are not split into bytes.
    tokenizer = BPETokenizer.train([build_training_text(r) for r in train], vocab_size=config.vocab_size)
    tokenizer.save(root / "tokenizer")
    tokenizer_seconds = time.perf_counter() - started

    pretrain_metrics = config.pretrain(corpus, root / "tokenizer", root / "pretrain",
                                       command="hf_scratch.instruction.offline.offline_instruct_run")
    pretrain_seconds = time.perf_counter() - started - tokenizer_seconds

    metrics = finetune_instruct(InstructConfig(
        init=str(root / "pretrain"), output_dir=str(root / "instruct"), overwrite=True, seed=config.seed,
        progress=config.progress, command="python recipes/finetune_instruct.py offline", **config.finetune))
    total = time.perf_counter() - started
    responses = json.loads((root / "instruct" / "test_responses.json").read_text(encoding="utf-8"))
    summary = {
        "seed": config.seed,
        **{k: metrics[k] for k in ("initial_train_loss", "initial_validation_loss", "final_train_loss",
                                   "final_validation_loss", "final_test_loss")},
        "pretrain_validation_loss": pretrain_metrics.get("final_validation_loss"),
        "seconds": {"tokenizer": round(tokenizer_seconds, 1), "pretrain": round(pretrain_seconds, 1),
                    "finetune": metrics["wall_seconds"], "answers": metrics["answer_seconds"],
                    "total": round(total, 1)},
        "samples": responses[:3],
        "config": {k: v for k, v in vars(config).items()},
    }
    (root / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    return summary
