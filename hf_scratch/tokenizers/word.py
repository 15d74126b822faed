"""The chapter's first tokenizer (book ch. 2.2-2.4): words and punctuation looked up in a fixed vocabulary.

The vocabulary is every distinct piece of a corpus, sorted, plus ``<|endoftext|>`` and ``<|unk|>``; text
outside it encodes to ``<|unk|>``. By default whitespace runs are pieces too, so ``decode(encode(text)) ==
text`` for any text made of known pieces. ``keep_whitespace=False`` is the book's variant: whitespace is
dropped, the vocabulary is the book's size (1,130 pieces + 2 for The Verdict), and decode rebuilds spacing by
rule (a space between pieces, none before punctuation), which loses line breaks.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

UNK = "<|unk|>"
ENDOFTEXT = "<|endoftext|>"
# Punctuation marks, double dashes and whitespace are their own pieces; the capturing group keeps them.
_SPLIT = re.compile(r'([,.:;?_!"()\']|--|\s+)')
_SPECIAL = re.compile(r"(<\|endoftext\|>|<\|unk\|>)")
_SPACE_BEFORE_PUNCT = re.compile(r'\s+([,.:;?_!"()\'])')


def split_words(text: str, keep_whitespace: bool = True) -> list[str]:
    pieces = []
    for part in _SPECIAL.split(text):
        if part in (ENDOFTEXT, UNK):
            pieces.append(part)
            continue
        for piece in _SPLIT.split(part):
            if not piece:
                continue
            if piece.isspace() and not keep_whitespace:
                continue
            pieces.append(piece)
    return pieces


class WordTokenizer:
    """Word-level tokenizer with a vocabulary built by :meth:`from_corpus` (the book's ``SimpleTokenizerV2``)."""

    def __init__(self, vocab: dict[str, int], keep_whitespace: bool = True):
        for token in (ENDOFTEXT, UNK):
            if token not in vocab:
                raise ValueError(f"the vocabulary must contain {token}")
        self.str_to_int = dict(vocab)
        self.int_to_str = {i: s for s, i in vocab.items()}
        if len(self.int_to_str) != len(self.str_to_int):
            raise ValueError("two words of the vocabulary share one id")
        self.keep_whitespace = keep_whitespace

    @classmethod
    def from_corpus(cls, text: str | Iterable[str], keep_whitespace: bool = True) -> WordTokenizer:
        documents = [text] if isinstance(text, str) else list(text)
        pieces = {p for document in documents for p in split_words(document, keep_whitespace)}
        pieces -= {ENDOFTEXT, UNK}
        if not any(not p.isspace() for p in pieces):
            raise ValueError("the corpus is empty: no words to build a vocabulary from")
        words = sorted(pieces) + [ENDOFTEXT, UNK]
        return cls({word: i for i, word in enumerate(words)}, keep_whitespace)

    @property
    def vocab_size(self) -> int:
        return len(self.str_to_int)

    def __len__(self) -> int:
        return self.vocab_size

    def encode(self, text: str) -> list[int]:
        unk = self.str_to_int[UNK]
        return [self.str_to_int.get(piece, unk) for piece in split_words(text, self.keep_whitespace)]

    def decode(self, ids: Iterable[int]) -> str:
        try:
            pieces = [self.int_to_str[i] for i in ids]
        except KeyError as error:
            raise ValueError(f"token id {error.args[0]!r} is not in the vocabulary (size {self.vocab_size})") from None
        if self.keep_whitespace:
            return "".join(pieces)
        return _SPACE_BEFORE_PUNCT.sub(r"\1", " ".join(pieces))
