"""``hf-scratch finetune-instruct`` (book ch. 7)."""

from __future__ import annotations

import argparse

from ..options import add_dataclass_options
from .finetune import RESPONSES_FILE, InstructConfig

INSTRUCT_HELP = {
    "init": "a folder (a causal LM of ours, e.g. an 'hf-scratch pretrain' run, or a GPT-2 folder), gpt2 / "
            "gpt2-medium (OpenAI's weights, needs the network; the book uses gpt2-medium), or random",
    "tokenizer": "for --init random: gpt2 (default), bytes, or a folder from 'hf-scratch tokenizer train'; for a "
                 "folder init, overrides its tokenizer.json",
    "prompt_style": "alpaca (the book) or phi3 (exercise 7.1)",
    "mask_prompt": "leave the prompt out of the loss, train on the response only (exercise 7.2)",
    "max_length": "tokens kept per example (default: the model's context)",
    "drop_rate": "dropout (default: the checkpoint's; 0 for random)",
    "grad_accum": "micro-batches per optimizer step",
    "min_lr": "learning rate at the end of a cosine decay (default: constant rate, as the book)",
    "warmup_steps": "linear warmup steps",
    "data_path": "a JSON list of {instruction, input, output} records (default: the book's 1,100, alpaca-1100)",
    "split_seed": "shuffle with this seed before the 85/10/5 split (default: the file's order, as the book)",
    "limit": "use only the first N records of each split (quick trials)",
    "max_new_tokens": "longest answer generated for each test record",
    "generate_batch_size": "test prompts answered per batch",
    "bf16": "bf16 autocast (faster on CPUs with AMX and on recent GPUs)",
    "overwrite": "replace a non-empty --output-dir",
    "progress": "show the progress bars and per-epoch lines",
}


def _finetune(args):
    import sys

    from .finetune import finetune_instruct

    values = {k: v for k, v in vars(args).items() if k not in ("command", "func")}
    if sys.argv[1:2] == ["finetune-instruct"]:
        command = "hf-scratch " + " ".join(sys.argv[1:])
    else:  # the recipe script, or a call from Python
        command = " ".join(["python", *sys.argv]) if sys.argv[0].endswith(".py") else None
    metrics = finetune_instruct(InstructConfig(**values, command=command))
    out = values["output_dir"]
    print(f"done in {metrics['wall_seconds']:.0f} s: loss train {metrics['initial_train_loss']:.3f} -> "
          f"{metrics['final_train_loss']:.3f}, validation {metrics['initial_validation_loss']:.3f} -> "
          f"{metrics['final_validation_loss']:.3f}; run folder {out} (model, tokenizer, {RESPONSES_FILE}, "
          f"metrics.json, loss.png, README.md)")
    print(f"score the answers: hf-scratch judge {out}/{RESPONSES_FILE} --backend ollama --model llama3")


def add_finetune_instruct_command(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("finetune-instruct", help="finetune a GPT to follow instructions (book ch. 7) "
                                                             "and answer the test split")
    add_dataclass_options(parser, InstructConfig, INSTRUCT_HELP)
    parser.set_defaults(func=_finetune)
    return parser
