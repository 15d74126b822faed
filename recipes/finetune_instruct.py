"""Instruction finetuning (book ch. 7), then scoring the answers with an LLM judge (``hf-scratch judge``).

    # the options of `hf-scratch finetune-instruct` (plus --config FILE.yaml with the same keys)
    python recipes/finetune_instruct.py --config recipes/configs/instruct_gpt2_medium.yaml    # the book (network)
    python recipes/finetune_instruct.py --init runs/pretrain --epochs 2                       # any checkpoint of ours

    # multi-process / multi-GPU: the same script under accelerate (see recipes/README.md)
    accelerate launch --config_file recipes/accelerate/multi_gpu.yaml recipes/finetune_instruct.py --init gpt2-medium

    # the offline path: a BPE tokenizer and a small GPT pretrained on the TRAINING records as plain text, then
    # finetuned on the Alpaca-formatted records; prints losses before/after, times and three answers
    python recipes/finetune_instruct.py offline --output-dir runs/instruct-offline

The offline path's settings are the fields of ``hf_scratch.instruction.offline.OfflineInstructConfig``; the
finetuning options go in ``--finetune-json '{"epochs": 2, "lr": 5e-4}'``.
"""

import argparse
import json
import sys

from hf_scratch.options import add_dataclass_options, expand_config_file


def offline(argv: list[str]) -> int:
    from hf_scratch.instruction.offline import OfflineInstructConfig, offline_instruct_run

    parser = argparse.ArgumentParser(prog="finetune_instruct.py offline")
    parser.add_argument("--finetune-json", default=None, help="finetuning options as JSON (InstructConfig fields)")
    defaults = OfflineInstructConfig()
    add_dataclass_options(parser, OfflineInstructConfig, {}, skip=("finetune",))
    args = vars(parser.parse_args(argv))
    finetune = args.pop("finetune_json")
    extra = {"finetune": {**defaults.finetune, **json.loads(finetune)}} if finetune else {}
    summary = offline_instruct_run(OfflineInstructConfig(**args, **extra))
    print(f"loss train {summary['initial_train_loss']:.3f} -> {summary['final_train_loss']:.3f}, validation "
          f"{summary['initial_validation_loss']:.3f} -> {summary['final_validation_loss']:.3f}, test "
          f"{summary['final_test_loss']:.3f}; {summary['seconds']['total']:.0f} s ({summary['seconds']})")
    for sample in summary["samples"]:
        print(f"\n### {sample['instruction']} {sample.get('input') or ''}\nmodel:     {sample['model_response']}\n"
              f"reference: {sample['output']}")
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["offline"]:
        return offline(argv[1:])
    argv = expand_config_file(argv)
    from hf_scratch.cli import main as cli_main

    return cli_main(["finetune-instruct", *argv])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
