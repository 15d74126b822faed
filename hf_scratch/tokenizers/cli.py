"""``hf-scratch tokenizer``: train a byte-level BPE on a text file, and encode text with a saved one."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .bpe import ENDOFTEXT, BPETokenizer


def _train(args) -> None:
    corpus = Path(args.corpus)
    if not corpus.is_file():
        raise ValueError(f"corpus file not found: {corpus}")
    try:
        text = corpus.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"{corpus} is not UTF-8 text: {error}") from None
    specials = args.special_token if args.special_token is not None else [ENDOFTEXT]
    bpe = BPETokenizer.train(text, args.vocab_size, specials)
    out = bpe.save(args.out)
    from .hf import save_hf_tokenizer

    save_hf_tokenizer(bpe, out)
    print(f"trained {bpe.vocab_size} tokens ({len(bpe.merges)} merges, special {list(bpe.special_tokens)}) "
          f"on {corpus} ({len(text):,} characters); saved encoder.json, vocab.bpe and tokenizer.json to {out}")


def _encode(args) -> None:
    directory = Path(args.directory)
    if not (directory / "encoder.json").is_file() or not (directory / "vocab.bpe").is_file():
        raise ValueError(f"{directory} does not hold a tokenizer (encoder.json and vocab.bpe)")
    bpe = BPETokenizer.load(directory)
    try:
        ids = bpe.encode(args.text, allowed_special="all" if args.allow_special else frozenset())
    except ValueError as error:
        raise ValueError(f"{error}. On the command line: --allow-special") from None
    if args.json:
        print(json.dumps({"ids": ids, "tokens": [bpe.id_to_token(i) for i in ids]}, ensure_ascii=False))
    else:
        print(" ".join(map(str, ids)))


def add_tokenizer_command(subparsers) -> argparse.ArgumentParser:
    """Add ``tokenizer train`` and ``tokenizer encode`` to the ``hf-scratch`` subcommands."""
    parser = subparsers.add_parser("tokenizer", help="train a byte-level BPE, or encode text with one (book ch. 2)")
    actions = parser.add_subparsers(dest="tokenizer_command", required=True)

    train = actions.add_parser("train", help="learn a byte-level BPE from a UTF-8 text file")
    train.add_argument("corpus", help="UTF-8 text file to learn from")
    train.add_argument("--vocab-size", type=int, required=True,
                       help="ids in total: 256 bytes + merges + special tokens (256 + specials: bytes only)")
    train.add_argument("--out", required=True, help="folder for encoder.json, vocab.bpe and tokenizer.json")
    train.add_argument("--special-token", action="append", metavar="TOKEN",
                       help=f"a special token (repeatable; default {ENDOFTEXT})")
    train.set_defaults(func=_train)

    encode = actions.add_parser("encode", help="print the token ids of TEXT")
    encode.add_argument("directory", help="folder written by 'tokenizer train' (or OpenAI's GPT-2 files)")
    encode.add_argument("text")
    encode.add_argument("--allow-special", action="store_true",
                        help="encode special tokens written in TEXT as their ids (default: error)")
    encode.add_argument("--json", action="store_true", help="print ids and tokens as JSON")
    encode.set_defaults(func=_encode)
    return parser
