"""Full finetuning vs from-scratch LoRA (hf_scratch.lora) vs peft LoRA, side by side (book appendix E).

    python benchmarks/bench_lora.py                                  # both parts (about 10 minutes on 2 cores)
    python benchmarks/bench_lora.py --skip-accuracy --rounds 3       # speed and memory only
    python benchmarks/bench_lora.py --skip-speed --output-dir runs/bench-lora   # accuracy only

Speed and memory: the GPT-2 124M classifier shape (12 x 768 x 12, vocab 50,257, 2 labels, random weights: speed
and memory do not depend on the values), batch 8 x 120 tokens (the book's spam batches: the longest training
message is 120 tokens), fp32, one training step = forward + loss + backward + AdamW step. LoRA: rank 16, alpha 16
on every linear layer of the blocks, the head trained in full, in both implementations. All three models live in
one process and are timed in interleaved rounds (each round rotates which goes first); medians are reported,
since these machines are shared. Memory, read the same way for all three:
- peak: bytes held at the start of a step (parameters, buffers, optimizer state) plus the highest net amount the
  step allocates on top of that, from the allocation events of ``torch.profiler`` (``profile_memory=True``) over
  one step: gradients, activations, temporaries, and the optimizer state on the first step (a warm-up step runs
  first, so it is counted in the start bytes);
- activations saved for backward (``torch.autograd.graph.saved_tensors_hooks``, parameters left out),
  deterministic;
- on CUDA, ``torch.cuda.max_memory_allocated`` over one step as well.

Accuracy: the offline spam path of ``docs/classification.md`` (no pretrained GPT-2 here): a BPE tokenizer and a
4 x 256 GPT pretrained on the training split's messages (``offline_spam_run``), finetuned in full with the
recipe's defaults, and the same backbone finetuned with each LoRA implementation (same data, seed, schedule and
epochs; only the learning rate differs, ``--lora-lr``, as LoRA trains far fewer numbers). Test accuracy on the
300 test messages.
"""

import argparse
import copy
import json
import statistics
import time
from pathlib import Path

import torch

from hf_scratch.model import ScratchGPTConfig, ScratchGPTForSequenceClassification
from hf_scratch.training import build_optimizer
from hf_scratch.training.lora_setup import LoRASettings, wrap_with_lora

VARIANTS = ("full", "scratch", "peft")


def build_variants(args):
    config = ScratchGPTConfig.from_preset("gpt2", num_labels=2, drop_rate=0.0)
    torch.manual_seed(0)
    base = ScratchGPTForSequenceClassification(config)
    models = {"full": base}
    for impl in ("scratch", "peft"):
        settings = LoRASettings(lora=True, lora_impl=impl, lora_rank=args.rank, lora_alpha=args.alpha)
        models[impl], _ = wrap_with_lora(copy.deepcopy(base), settings, trainable=("score",))
    for model in models.values():
        model.train()
    return models


def unique_tensors(tensors):
    seen = {}
    for t in tensors:
        if isinstance(t, torch.Tensor) and t.numel():
            storage = t.untyped_storage()
            seen[storage.data_ptr()] = storage.nbytes()
    return sum(seen.values())


def held_bytes(model, optimizer):
    state = [v for s in optimizer.state.values() for v in s.values()]
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    return unique_tensors([*model.parameters(), *model.buffers(), *state, *grads])


def train_step(model, optimizer, ids, labels):
    loss = model(input_ids=ids, labels=labels).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def peak_step_bytes(model, optimizer, ids, labels, device):
    """Bytes held before the step plus the peak of the net allocations the step makes (profiler events)."""
    from torch.profiler import ProfilerActivity, profile

    start = held_bytes(model, optimizer)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities, profile_memory=True) as prof:
        train_step(model, optimizer, ids, labels)
    events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
                    key=lambda e: e.start_ns())
    running = peak = 0
    for event in events:
        if event.device_type() == (torch.autograd.DeviceType.CUDA if device.type == "cuda"
                                   else torch.autograd.DeviceType.CPU):
            running += event.nbytes()
            peak = max(peak, running)
    return start + peak


def saved_activation_bytes(model, ids, labels):
    """Bytes of the tensors autograd keeps for backward, parameters (which are kept too) left out."""
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in weights:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = model(input_ids=ids, labels=labels).loss
    loss.backward()
    model.zero_grad(set_to_none=True)
    return sum(seen.values())


def speed_and_memory(args, device) -> dict:
    models = build_variants(args)
    for model in models.values():
        model.to(device)
    optimizers = {name: build_optimizer(model, lr=1e-5, weight_decay=0.1, betas=(0.9, 0.999))
                  for name, model in models.items()}
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 50257, (args.batch, args.tokens), generator=generator).to(device)
    labels = torch.randint(0, 2, (args.batch,), generator=generator).to(device)
    trainable = {name: sum(p.numel() for p in {id(p): p for p in m.parameters()}.values() if p.requires_grad)
                 for name, m in models.items()}
    for name in VARIANTS:  # warm-up: kernels chosen, optimizer state created
        train_step(models[name], optimizers[name], ids, labels)

    times = {name: [] for name in VARIANTS}
    for r in range(args.rounds):
        order = VARIANTS[r % 3:] + VARIANTS[:r % 3]
        for name in order:
            sync(device)
            started = time.perf_counter()
            for _ in range(args.steps):
                train_step(models[name], optimizers[name], ids, labels)
            sync(device)
            times[name].append((time.perf_counter() - started) / args.steps)
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{n} {times[n][-1]:.3f} s/step" for n in VARIANTS),
              flush=True)

    result = {name: {"trainable": trainable[name], "step_seconds": statistics.median(times[name]),
                     "step_seconds_all": times[name]} for name in VARIANTS}
    for name in VARIANTS:
        result[name]["peak_bytes"] = peak_step_bytes(models[name], optimizers[name], ids, labels, device)
        result[name]["activation_bytes"] = saved_activation_bytes(models[name], ids, labels)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
            train_step(models[name], optimizers[name], ids, labels)
            result[name]["cuda_peak_bytes"] = torch.cuda.max_memory_allocated()
    return result


def accuracy(args) -> dict:
    from hf_scratch.classification import FinetuneConfig, finetune_classifier
    from hf_scratch.classification.offline import OfflineSpamConfig, offline_spam_run

    root = Path(args.output_dir)
    offline = OfflineSpamConfig(output_dir=str(root / "full"), seed=args.seed, progress=False)
    summary_path = root / "full" / "summary.json"
    if args.reuse and summary_path.is_file():
        summary = json.loads(summary_path.read_text())
        print(f"reusing {summary_path}")
    else:
        print("pretraining the backbone and finetuning it in full (offline_spam_run)...", flush=True)
        summary = offline_spam_run(offline)
    full = json.loads((root / "full" / "classifier" / "metrics.json").read_text())
    results = {"full": full}
    finetune = {k: v for k, v in offline.finetune.items() if k != "freeze"}
    finetune.update(lr=args.lora_lr, epochs=args.lora_epochs)
    for impl in ("scratch", "peft"):
        print(f"finetuning with LoRA ({impl})...", flush=True)
        results[impl] = finetune_classifier(FinetuneConfig(
            init=str(root / "full" / "pretrain"), output_dir=str(root / f"lora-{impl}"), overwrite=True,
            seed=args.seed, progress=False, lora=True, lora_impl=impl, lora_rank=args.rank, lora_alpha=args.alpha,
            **finetune))
    results["pretrain_seconds"] = summary["seconds"]["pretrain"]
    results["settings"] = {"full": offline.finetune, "lora": {**finetune, "rank": args.rank, "alpha": args.alpha}}
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--alpha", type=float, default=16.0)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=120)
    parser.add_argument("--steps", type=int, default=2, help="training steps per timed run")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--output-dir", default="runs/bench-lora", help="run folders of the accuracy part")
    parser.add_argument("--reuse", action="store_true", help="reuse the pretrained backbone and full run found there")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--lora-lr", type=float, default=1e-3)
    parser.add_argument("--lora-epochs", type=int, default=2)
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}")
    report = {"args": vars(args)}
    if not args.skip_speed:
        speed = report["speed"] = speed_and_memory(args, device)
        print(f"\nGPT-2 124M classifier shape, batch {args.batch} x {args.tokens}, LoRA rank {args.rank} alpha "
              f"{args.alpha:g} on every block linear + head in full; medians of {args.rounds} rounds")
        print(f"{'':<34}{'full':>14}{'scratch LoRA':>14}{'peft LoRA':>14}{'scratch/peft':>14}")
        rows = [("trainable parameters", "trainable", lambda v: f"{v:,}"),
                ("step time (s)", "step_seconds", lambda v: f"{v:.3f}"),
                ("peak memory of a step (MiB)", "peak_bytes", lambda v: f"{v / 2**20:.1f}"),
                ("activations saved for backward (MiB)", "activation_bytes", lambda v: f"{v / 2**20:.1f}")]
        if device.type == "cuda":
            rows.append(("CUDA peak allocated (MiB)", "cuda_peak_bytes", lambda v: f"{v / 2**20:.1f}"))
        for label, key, fmt in rows:
            ratio = speed["scratch"][key] / speed["peft"][key]
            print(f"{label:<34}" + "".join(f"{fmt(speed[n][key]):>14}" for n in VARIANTS) + f"{ratio:>13.3f}x")
    if not args.skip_accuracy:
        acc = report["accuracy"] = accuracy(args)
        print(f"\nspam, offline backbone (4 x 256, pretrained {acc['pretrain_seconds']:.0f} s), seed {args.seed}")
        print(f"{'':<34}{'full':>14}{'scratch LoRA':>14}{'peft LoRA':>14}")
        for label, key, fmt in (("trainable parameters", "trainable_parameters", lambda v: f"{v:,}"),
                                ("train accuracy", "train_accuracy", lambda v: f"{v:.2%}"),
                                ("validation accuracy", "validation_accuracy", lambda v: f"{v:.2%}"),
                                ("test accuracy", "test_accuracy", lambda v: f"{v:.2%}"),
                                ("finetuning wall time (s)", "wall_seconds", lambda v: f"{v:.1f}")):
            print(f"{label:<34}" + "".join(f"{fmt(acc[n][key]):>14}" for n in VARIANTS))
        for name in VARIANTS:
            acc[name] = {k: v for k, v in acc[name].items() if k not in ("epochs", "train_loss_per_step")}
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_lora.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"\nresults in {out / 'bench_lora.json'}")


if __name__ == "__main__":
    main()
