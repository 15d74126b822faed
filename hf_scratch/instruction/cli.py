"""``hf-scratch finetune-instruct`` (book ch. 7)."""

from __future__ import annotations

import argparse

from ..options import add_dataclass_options
from ..training.finetuning import OPTIONS_HELP, invoked_command
from ..training.lora_setup import LORA_HELP
from .finetune import RESPONSES_FILE, InstructConfig

INSTRUCT_HELP = {
    **OPTIONS_HELP,
    "prompt_style": "alpaca (the book) or phi3 (exercise 7.1)",
    "mask_prompt": "leave the prompt out of the loss, train on the response only (exercise 7.2)",
    "data_path": "a JSON list of {instruction, input, output} records (default: the book's 1,100, alpaca-1100)",
    "split_seed": "shuffle with this seed before the 85/10/5 split (default: the file's order, as the book)",
    "max_new_tokens": "longest answer generated for each test record",
    "generate_batch_size": "test prompts answered per batch",
    **LORA_HELP,
}


def _finetune(args):
    from .finetune import finetune_instruct

    values = {k: v for k, v in vars(args).items() if k not in ("command", "func")}
    metrics = finetune_instruct(InstructConfig(**values, command=invoked_command("finetune-instruct")))
    if not metrics:  # a worker process of a data-parallel run: the main process reports
        return
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
