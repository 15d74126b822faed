"""ScratchGPTForCausalLM against stock GPT2LMHeadModel (SDPA): same config, same weights, one process, interleaved.

    python benchmarks/bench_model.py                 # the issue's shape: 6 x 384 x 6, vocab 50257, context 256
    python benchmarks/bench_model.py --rounds 2 --train-steps 1 --new-tokens 16   # a quick look

Prints tokens/s for each side and the ratio ours / stock (> 1 means ours is faster), for
- training: forward + cross-entropy + backward + AdamW step, batch 8 x 256, fp32;
- greedy decoding with a KV cache: 16-token prompt, 128 new tokens, batch 1, with ``model.generate()`` on both
  sides, and the book-style ``hf_scratch.generation.generate_tokens`` against stock ``generate()``;
- memory: bytes of activations saved for backward in one training step (deterministic, read through
  ``torch.autograd.graph.saved_tensors_hooks``), and on CUDA the peak allocated memory.
Rounds alternate which side runs first; the medians are reported, since these machines are noisy.
"""

import argparse
import statistics
import time

import torch

from hf_scratch.generation import generate_tokens
from hf_scratch.model import ScratchGPTConfig, ScratchGPTForCausalLM


def build_models(args, device):
    config = ScratchGPTConfig(
        vocab_size=50257, context_length=args.context, emb_dim=args.emb_dim, n_heads=args.heads,
        n_layers=args.layers, drop_rate=0.1, qkv_bias=True, eos_token_id=50256, bos_token_id=50256,
    )
    torch.manual_seed(0)
    ours = ScratchGPTForCausalLM(config)
    stock = ours.to_gpt2()  # identical weights
    stock.config._attn_implementation = "sdpa"
    ours.config._attn_implementation = "sdpa"
    return ours.to(device), stock.to(device)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def train_tokens_per_s(model, optimizer, batch, steps, device):
    model.train()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    sync(device)
    return steps * batch.numel() / (time.perf_counter() - start)


def decode_tokens_per_s(fn, new_tokens, device):
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return new_tokens / (time.perf_counter() - start), out


def saved_activation_bytes(model, batch):
    seen, total = set(), 0

    def pack(t):
        nonlocal total
        key = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
        if key not in seen:
            seen.add(key)
            total += t.untyped_storage().nbytes()
        return t

    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = model(input_ids=batch, labels=batch).loss
    loss.backward()
    model.zero_grad(set_to_none=True)
    return total


def report(name, ours, stock):
    o, s = statistics.median(ours), statistics.median(stock)
    print(f"{name:<46} ours {o:10.1f}   stock {s:10.1f}   ratio {o / s:5.2f}x")
    return o / s


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--emb-dim", type=int, default=384)
    parser.add_argument("--heads", type=int, default=6)
    parser.add_argument("--context", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--train-steps", type=int, default=3, help="steps per timed training run")
    parser.add_argument("--prompt-tokens", type=int, default=16)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}")

    ours, stock = build_models(args, device)
    ours.eval()
    stock.eval()  # generate() does not switch dropout off by itself
    opt = {m: torch.optim.AdamW(m.parameters(), lr=1e-4, weight_decay=0.1) for m in (ours, stock)}
    generator = torch.Generator(device="cpu").manual_seed(0)
    batch = torch.randint(0, 50257, (args.batch, args.context), generator=generator).to(device)
    prompt = torch.randint(0, 50257, (1, args.prompt_tokens), generator=generator).to(device)
    gen_kwargs = dict(max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, do_sample=False,
                      use_cache=True, pad_token_id=50256)

    # Checked before any training step: training with dropout makes the two copies diverge.
    identical = torch.equal(generate_tokens(ours, prompt, args.new_tokens), stock.generate(prompt, **gen_kwargs))
    print(f"greedy tokens identical (book loop vs stock generate): {identical}")

    # Warm-up: first calls allocate and pick kernels.
    for model in (ours, stock):
        train_tokens_per_s(model, opt[model], batch, 1, device)
        model.eval()
        model.generate(prompt, **{**gen_kwargs, "max_new_tokens": 4, "min_new_tokens": 4})

    timings = {key: [] for key in ("train_ours", "train_stock", "gen_ours", "gen_stock", "book_ours", "book_stock")}
    for r in range(args.rounds):
        order = [(ours, "ours"), (stock, "stock")][:: 1 if r % 2 == 0 else -1]
        for model, side in order:
            timings[f"train_{side}"].append(train_tokens_per_s(model, opt[model], batch, args.train_steps, device))
        for model, side in order:
            model.eval()
            speed, out = decode_tokens_per_s(lambda m=model: m.generate(prompt, **gen_kwargs), args.new_tokens, device)
            timings[f"gen_{side}"].append(speed)
        # The book-style loop against stock generate(), alternating too.
        book = lambda: generate_tokens(ours, prompt, args.new_tokens)  # noqa: E731
        ref = lambda: stock.generate(prompt, **gen_kwargs)  # noqa: E731
        for fn, side in [(book, "ours"), (ref, "stock")][:: 1 if r % 2 == 0 else -1]:
            timings[f"book_{side}"].append(decode_tokens_per_s(fn, args.new_tokens, device)[0])
        print(f"round {r + 1}/{args.rounds} done")

    cfg = f"{args.layers}x{args.emb_dim}x{args.heads}, ctx {args.context}"
    report(f"train tokens/s (batch {args.batch}x{args.context}, {cfg})", timings["train_ours"],
           timings["train_stock"])
    report("generate() new tokens/s, KV cache", timings["gen_ours"], timings["gen_stock"])
    report("book loop (generate_tokens) vs stock generate()", timings["book_ours"], timings["book_stock"])
    mem_ours, mem_stock = saved_activation_bytes(ours, batch), saved_activation_bytes(stock, batch)
    print(f"{'activations saved for backward (MiB)':<46} ours {mem_ours / 2**20:10.1f}   "
          f"stock {mem_stock / 2**20:10.1f}   ratio {mem_ours / mem_stock:5.2f}x")
    if device.type == "cuda":
        peaks = {}
        for model, side in ((ours, "ours"), (stock, "stock")):
            torch.cuda.reset_peak_memory_stats()
            train_tokens_per_s(model, opt[model], batch, 1, device)
            peaks[side] = torch.cuda.max_memory_allocated() / 2**20
        print(f"{'CUDA peak allocated in a training step (MiB)':<46} ours {peaks['ours']:10.1f}   "
              f"stock {peaks['stock']:10.1f}   ratio {peaks['ours'] / peaks['stock']:5.2f}x")


if __name__ == "__main__":
    main()
