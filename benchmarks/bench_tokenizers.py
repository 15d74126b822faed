"""Tokenizer speed on Tiny Shakespeare, side by side in one process.

Encode throughput (MB/s of UTF-8 input, best of --repeat runs) for the from-scratch BPE with GPT-2's merges,
tiktoken's gpt2, and the ``tokenizers`` library's BPE loaded from the same GPT-2 files; on the whole text and on
its paragraphs (chunks split at blank lines, encoded one call each). Then BPE training time for 1,000 and 5,000
merges (best of 3). Needs the data locally: HF_SCRATCH_DATA=/path/to/shared/data.

    python benchmarks/bench_tokenizers.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def best_time(function, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return min(times), result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--merges", type=int, nargs="*", default=[1000, 5000])
    args = parser.parse_args(argv)

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    from hf_scratch.data import read_text
    from hf_scratch.tokenizers import BPETokenizer, gpt2_encoding, gpt2_files

    text = read_text("tinyshakespeare")
    megabytes = len(text.encode("utf-8")) / 1e6
    chunks = [c + "\n\n" for c in text.split("\n\n")]
    encoder_json, vocab_bpe = gpt2_files()

    scratch = BPETokenizer.from_files(encoder_json, vocab_bpe)
    tiktok = gpt2_encoding()
    library = Tokenizer(models.BPE.from_file(str(encoder_json), str(vocab_bpe)))
    library.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    library.decoder = decoders.ByteLevel()

    print(f"Tiny Shakespeare: {megabytes:.2f} MB, {len(chunks)} chunks; python {platform.python_version()}, "
          f"{os.cpu_count()} cores; best of {args.repeat}")

    def cold_scratch():
        scratch._cache.clear()  # include the cost of filling the word cache
        return scratch.encode_ordinary(text)

    rows = [
        ("tiktoken gpt2", "whole", lambda: tiktok.encode_ordinary(text)),
        ("tiktoken gpt2", "chunked", lambda: [i for c in chunks for i in tiktok.encode_ordinary(c)]),
        ("hf_scratch BPE (cold cache)", "whole", cold_scratch),
        ("hf_scratch BPE (warm cache)", "whole", lambda: scratch.encode_ordinary(text)),
        ("hf_scratch BPE (warm cache)", "chunked", lambda: [i for c in chunks for i in scratch.encode_ordinary(c)]),
        ("tokenizers BPE", "whole", lambda: library.encode(text).ids),
        ("tokenizers BPE", "chunked", lambda: [i for c in chunks for i in library.encode(c).ids]),
    ]
    # Chunk edges change GPT-2's whitespace split ("\n\n" alone vs before a word), so each mode has its reference.
    reference = {"whole": tiktok.encode_ordinary(text),
                 "chunked": [i for c in chunks for i in tiktok.encode_ordinary(c)]}
    speeds = {}
    print(f"\n{'encoder':30} {'input':8} {'MB/s':>7} {'x tiktoken':>11}")
    for name, mode, function in rows:
        seconds, ids = best_time(function, args.repeat)
        assert ids == reference[mode], f"{name} ({mode}) gives different ids from tiktoken"
        speeds[name, mode] = megabytes / seconds
        ratio = speeds[name, mode] / speeds["tiktoken gpt2", mode]
        print(f"{name:30} {mode:8} {speeds[name, mode]:7.2f} {ratio:11.2f}")
    print(f"(every encoder gives tiktoken's ids: {len(reference['whole']):,} for the whole text, "
          f"{len(reference['chunked']):,} chunked)")

    print(f"\n{'BPE training':30} {'seconds':>8}")
    for merges in args.merges:
        seconds, trained = best_time(lambda n=merges: BPETokenizer.train(text, 256 + n + 1), min(args.repeat, 3))
        assert trained.vocab_size == 256 + merges + 1
        print(f"{f'{merges:,} merges (vocab {trained.vocab_size:,})':30} {seconds:8.2f}")


if __name__ == "__main__":
    main()
