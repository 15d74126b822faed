"""``hf-scratch finetune-classifier`` and ``hf-scratch classify`` (book ch. 6)."""

from __future__ import annotations

import argparse
import sys

from ..options import add_dataclass_options
from ..training.finetuning import OPTIONS_HELP, invoked_command
from ..training.lora_setup import LORA_HELP
from .finetune import FinetuneConfig

FINETUNE_HELP = {
    **OPTIONS_HELP,
    "freeze": "what is trained in full: all, last_block (the book: last block + final norm + head; the default), "
              "last_two_blocks, head_only (the only choice with --lora, and its default)",
    "pooling": "where the label is read: last_non_pad (last real token, default) or last (the last position)",
    "padding": "longest_train (pad everything to the longest training message, the book) or dynamic (each batch "
               "to its own longest)",
    "data_path": "the SMSSpamCollection file (default: the sms-spam source, from HF_SCRATCH_DATA or the cache)",
    **LORA_HELP,
}


def _finetune(args):
    from .finetune import finetune_classifier

    values = {k: v for k, v in vars(args).items() if k not in ("command", "func")}
    metrics = finetune_classifier(FinetuneConfig(**values, command=invoked_command("finetune-classifier")))
    if not metrics:  # a worker process of a data-parallel run: the main process reports
        return
    print(f"done in {metrics['wall_seconds']:.0f} s: accuracy train {metrics['train_accuracy']:.2%}, validation "
          f"{metrics['validation_accuracy']:.2%}, test {metrics['test_accuracy']:.2%}; run folder "
          f"{values['output_dir']} (model, tokenizer, metrics.json, loss_accuracy.png, README.md)")
    print(f'try: hf-scratch classify {values["output_dir"]} "You have won a prize! Call now"')


def _classify(args):
    from transformers.utils import logging

    from .predict import classify_texts, load_classifier

    logging.disable_progress_bar()
    model, tokenizer = load_classifier(args.checkpoint, trust_remote_code=args.trust_remote_code)
    for text, (label, probability) in zip(args.text, classify_texts(model, tokenizer, args.text), strict=True):
        print(f"{label}\t{probability:.4f}\t{text}")


def add_finetune_classifier_command(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("finetune-classifier", help="finetune a GPT as an SMS spam classifier (book ch. 6)")
    add_dataclass_options(parser, FinetuneConfig, FINETUNE_HELP)
    parser.set_defaults(func=_finetune)
    return parser


def add_classify_command(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("classify", help="label texts with a classifier folder, with its probability")
    parser.add_argument("checkpoint", help="a run folder of 'hf-scratch finetune-classifier'")
    parser.add_argument("text", nargs="+", help="one or more texts; prints label, probability and text per line")
    parser.add_argument("--trust-remote-code", action=argparse.BooleanOptionalAction, default=True,
                        help="allow the checkpoint's own model code (needed without hf_scratch installed)")
    parser.set_defaults(func=_classify)
    return parser


def main(argv=None) -> int:
    """Both commands on their own (``hf-scratch`` wires them in too): same error handling as ``hf-scratch``."""
    parser = argparse.ArgumentParser(prog="hf-scratch")
    sub = parser.add_subparsers(dest="command", required=True)
    add_finetune_classifier_command(sub)
    add_classify_command(sub)
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except (ValueError, OSError) as error:
        print(f"hf-scratch {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0
