"""ScratchGPTForCausalLM against stock GPT2LMHeadModel, trained side by side with Trainer.

Both start from the same weights (``to_gpt2()``), see the same windows in the same order, with the same optimizer,
schedule and clipping; dropout is off and ours gets query/key/value biases (GPT-2 always has them), so that both
compute the same function with the same parameters. The script writes one plot with
both loss curves and a table of tokens/s and peak memory, and exits with an error if the curves part.

    python recipes/compare_gpt2.py --config recipes/configs/shakespeare_char.yaml --max-steps 300 \
        --output-dir runs/compare_gpt2

Tolerance: the two models run the same arithmetic through different kernels (nn.Linear vs Conv1D, separate vs
fused query/key/value), so their losses differ by float rounding, which training can amplify. Over 500 steps of
the Shakespeare recipe the largest difference measured was 5e-7 relative; 1e-4 leaves room for longer runs and is
far below any real difference (a wrong mask, scale or initialisation moves the loss by 1e-2 within a few steps,
as does Trainer's label count for GPT-2, below).
"""

import argparse
import json
import multiprocessing
import resource
import sys
import time
from pathlib import Path
from queue import Empty

import torch

TOLERANCE = 1e-4


def train_one(kind: str, argv: list[str], queue):
    """Runs in a fresh process, so its peak resident memory is this model's alone."""
    from transformers import set_seed

    from hf_scratch.options import add_dataclass_options
    from hf_scratch.training.common import build_model
    from hf_scratch.training.config import PretrainConfig
    from hf_scratch.training.data import prepare_data
    from hf_scratch.training.report import RunLog
    from hf_scratch.training.run import total_steps_of
    from hf_scratch.training.trainer_engine import train_with_trainer

    parser = argparse.ArgumentParser()
    add_dataclass_options(parser, PretrainConfig, {})
    # GPT-2 always has query/key/value biases: ours needs them too, or the stock copy trains parameters ours lacks.
    overrides = {"drop_rate": 0.0, "qkv_bias": True, "progress": False}
    config = PretrainConfig(**{**vars(parser.parse_args(argv)), **overrides})
    data = prepare_data(config)
    set_seed(config.seed)
    model = build_model(config, data.tokenizer.vocab_size, data.tokenizer.eot_token)
    if kind == "stock":
        model = model.to_gpt2()
        model.config._attn_implementation = "sdpa"
        # Trainer knows a causal-LM loss by the class name ("...ForCausalLM"); "GPT2LMHeadModel" does not match, so
        # Trainer would count every label (65 per window) instead of the 64 predicted ones and report the loss
        # scaled by 64/65 (transformers 5.24). Declaring the loss type makes both runs count alike.
        model.loss_type = "ForCausalLM"
    run_dir = Path(config.output_dir) / kind
    run_dir.mkdir(parents=True, exist_ok=True)
    total_steps = total_steps_of(config, len(data.train), 1)
    log = RunLog(tokens_per_step=config.batch_size * config.grad_accum * data.max_length)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    train_with_trainer(model, data, config, run_dir, log, total_steps)
    seconds = time.perf_counter() - start
    peak = (torch.cuda.max_memory_allocated() if torch.cuda.is_available()
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    queue.put({"kind": kind, "losses": log.train_loss, "steps": log.steps, "seconds": seconds,
               "tokens_per_s": log.steps[-1] * log.tokens_per_step / seconds, "peak_bytes": peak,
               "parameters": sum(p.numel() for p in {id(p): p for p in model.parameters()}.values()),
               "validation_loss": log.evals[-1]["validation_loss"] if log.evals else None})


def main():
    from hf_scratch.options import expand_config_file

    argv = expand_config_file(sys.argv[1:])
    if "--output-dir" not in argv:
        argv += ["--output-dir", "runs/compare_gpt2"]
    out = Path(argv[len(argv) - 1 - argv[::-1].index("--output-dir") + 1])  # the last one wins, as in argparse
    context = multiprocessing.get_context("spawn")
    results = {}
    for kind in ("ours", "stock"):
        queue = context.Queue()
        process = context.Process(target=train_one, args=(kind, argv, queue))
        process.start()
        while kind not in results:  # a child that dies sends nothing: watch it instead of waiting forever
            try:
                results[kind] = queue.get(timeout=5)
            except Empty:
                if not process.is_alive():
                    raise SystemExit(f"the {kind} run failed (exit code {process.exitcode})") from None
        process.join()

    ours, stock = results["ours"], results["stock"]
    worst = max(abs(a - b) / abs(b) for a, b in zip(ours["losses"], stock["losses"], strict=True))
    plot(ours, stock, out / "compare_gpt2.png")
    table = [
        "| | ScratchGPTForCausalLM | GPT2LMHeadModel (SDPA) | ratio |",
        "|---|---|---|---|",
        f"| parameters | {ours['parameters']:,} | {stock['parameters']:,} | |",
        f"| training tokens/s | {ours['tokens_per_s']:,.0f} | {stock['tokens_per_s']:,.0f} | "
        f"{ours['tokens_per_s'] / stock['tokens_per_s']:.2f}x |",
        f"| peak memory (MiB) | {ours['peak_bytes'] / 2**20:,.0f} | {stock['peak_bytes'] / 2**20:,.0f} | "
        f"{ours['peak_bytes'] / stock['peak_bytes']:.2f}x |",
        f"| final training loss | {ours['losses'][-1]:.4f} | {stock['losses'][-1]:.4f} | |",
        f"| final validation loss | {ours['validation_loss']:.4f} | {stock['validation_loss']:.4f} | |",
        f"| largest per-step loss difference (relative) | {worst:.2e} | | tolerance {TOLERANCE:.0e} |",
    ]
    (out / "compare_gpt2.md").write_text("\n".join(table) + "\n")
    (out / "compare_gpt2.json").write_text(json.dumps(results, indent=2))
    print("\n".join(table))
    print(f"plot: {out / 'compare_gpt2.png'}")
    if worst > TOLERANCE:
        raise SystemExit(f"the loss curves part: relative difference {worst:.2e} > {TOLERANCE:.0e}")


def plot(ours, stock, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(stock["steps"], stock["losses"], label="GPT2LMHeadModel (stock)", linewidth=3, alpha=0.5)
    ax.plot(ours["steps"], ours["losses"], label="ScratchGPTForCausalLM", linewidth=1, linestyle="--")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss")
    ax.set_title("Same weights, data, order and schedule")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
