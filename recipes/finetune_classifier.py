"""Classification finetuning (book ch. 6): the SMS spam classifier.

Two ways to run it:

    # the options of `hf-scratch finetune-classifier` (plus --config FILE.yaml with the same keys)
    python recipes/finetune_classifier.py --init gpt2 --freeze last_block --epochs 5        # the book (network)
    python recipes/finetune_classifier.py --init runs/pretrain --freeze all --epochs 5      # any checkpoint of ours

    # the offline path: per seed, a BPE tokenizer and a small GPT pretrained on the TRAINING split's messages only,
    # then finetuned; prints train/validation/test accuracy and wall time per seed, and their means
    python recipes/finetune_classifier.py offline --seeds 1 2 3 --output-dir runs/spam-offline

The offline path's settings are the fields of ``hf_scratch.classification.offline.OfflineSpamConfig``; the
finetuning options go in ``--finetune-json '{"freeze": "all", "epochs": 5, "lr": 1e-4}'``.
"""

import argparse
import json
import statistics
import sys
from pathlib import Path

from hf_scratch.options import add_dataclass_options, expand_config_file


def offline(argv: list[str]) -> int:
    from hf_scratch.classification.offline import OfflineSpamConfig, offline_spam_run

    parser = argparse.ArgumentParser(prog="finetune_classifier.py offline")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--finetune-json", default=None, help="finetuning options as JSON (FinetuneConfig fields)")
    defaults = OfflineSpamConfig()
    add_dataclass_options(parser, OfflineSpamConfig, {}, skip=("seed", "finetune"))
    args = vars(parser.parse_args(argv))
    seeds, finetune = args.pop("seeds"), args.pop("finetune_json")
    root = Path(args.pop("output_dir"))
    extra = {"finetune": {**defaults.finetune, **json.loads(finetune)}} if finetune else {}
    summaries = []
    for seed in seeds:
        summary = offline_spam_run(OfflineSpamConfig(**args, **extra, seed=seed, output_dir=str(root / f"seed{seed}")))
        summaries.append(summary)
        print(f"seed {seed}: accuracy train {summary['train_accuracy']:.2%}, validation "
              f"{summary['validation_accuracy']:.2%}, test {summary['test_accuracy']:.2%}; "
              f"{summary['seconds']['total']:.0f} s ({summary['seconds']})")
    result = {"seeds": summaries,
              "mean_test_accuracy": statistics.mean(s["test_accuracy"] for s in summaries),
              "max_seconds": max(s["seconds"]["total"] for s in summaries),
              "command": "python recipes/finetune_classifier.py offline " + " ".join(argv)}
    (root / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"mean test accuracy over {len(seeds)} seeds: {result['mean_test_accuracy']:.2%}; slowest run "
          f"{result['max_seconds']:.0f} s; {root / 'results.json'}")
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["offline"]:
        return offline(argv[1:])
    argv = expand_config_file(argv)
    from hf_scratch.classification.cli import main as cli_main

    return cli_main(["finetune-classifier", *argv])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
