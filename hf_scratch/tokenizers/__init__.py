"""Tokenizers of the book's chapter 2, from scratch: a word tokenizer, and byte-level BPE that is token-for-token
GPT-2's, trainable, saved in GPT-2's file format, and exportable to ``transformers``."""

from .bpe import ENDOFTEXT, GPT2_PATTERN, BPETokenizer, bytes_to_token, bytes_to_unicode, token_to_bytes
from .gpt2 import gpt2_encoding, gpt2_files, load_gpt2_bpe
from .hf import save_hf_tokenizer, to_hf_tokenizer, to_tokenizers
from .word import UNK, WordTokenizer

__all__ = [
    "ENDOFTEXT",
    "GPT2_PATTERN",
    "UNK",
    "BPETokenizer",
    "WordTokenizer",
    "bytes_to_token",
    "bytes_to_unicode",
    "gpt2_encoding",
    "gpt2_files",
    "load_gpt2_bpe",
    "save_hf_tokenizer",
    "to_hf_tokenizer",
    "to_tokenizers",
    "token_to_bytes",
]
