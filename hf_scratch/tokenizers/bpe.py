"""Byte-level byte-pair encoding (BPE), GPT-2 style, written from scratch (book ch. 2.5).

Text is cut into pre-tokens by GPT-2's regular expression, each pre-token is turned into UTF-8 bytes, and the
bytes are merged pairwise by rank. Token ids 0-255 are the 256 bytes in GPT-2's order (so a trained tokenizer
agrees with GPT-2 on them), learned merges follow, and special tokens come last. Tokens are stored the way
GPT-2's ``encoder.json`` stores them: every byte is shown as one printable unicode character
(:func:`bytes_to_unicode`), so a vocabulary saves as JSON and the merges as the lines of ``vocab.bpe``.
"""

from __future__ import annotations

import heapq
import json
import os
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable
from functools import lru_cache
from itertools import pairwise
from pathlib import Path
from typing import Literal

import regex

# GPT-2's pre-tokenisation: contractions, letters, digits, other symbols (each with one optional leading space),
# then whitespace. "\s+(?!\S)" leaves the last space of a run to prefix the next word, as GPT-2 does.
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
ENDOFTEXT = "<|endoftext|>"
_MAX_CACHE_WORDS = 1 << 18  # pre-token cache entries kept before the cache is reset


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte-to-character map: printable Latin-1 bytes stand for themselves; the other 68 bytes (controls,
    space, soft hyphen...) are moved to code points 256 and up, so no token is written with whitespace or controls."""
    visible = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    mapping = {b: chr(b) for b in visible}
    shifted = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + shifted)
            shifted += 1
    # Insertion order (visible bytes first) is GPT-2's id order for the 256 byte tokens.
    return mapping


@lru_cache(maxsize=1)
def unicode_to_bytes() -> dict[str, int]:
    return {c: b for b, c in bytes_to_unicode().items()}


def token_to_bytes(token: str) -> bytes:
    """The bytes a GPT-2-format token string stands for; ValueError if it is not made of byte characters."""
    table = unicode_to_bytes()
    try:
        return bytes(table[c] for c in token)
    except KeyError as error:
        raise ValueError(f"token {token!r} contains {error.args[0]!r}, which is not a byte-level character") from None


def bytes_to_token(data: bytes) -> str:
    table = bytes_to_unicode()
    return "".join(table[b] for b in data)


def merge_pair(symbols: list, left, right, merged) -> list:
    """``symbols`` with every adjacent ``(left, right)`` replaced by ``merged``, left to right (used by encoding and
    by training, so both apply a merge the same way)."""
    out, i, n = [], 0, len(symbols)
    while i < n:
        if i < n - 1 and symbols[i] == left and symbols[i + 1] == right:
            out.append(merged)
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return out


class BPETokenizer:
    """A byte-level BPE tokenizer: GPT-2's when loaded from OpenAI's files, or one trained with :meth:`train`.

    Args:
        merges: merge rules in rank order, each a pair of token byte strings.
        special_tokens: special tokens (e.g. ``<|endoftext|>``) in id order; they get the ids after the
            merged tokens unless ``special_ids`` says otherwise.
        pattern: the pre-tokenisation regular expression (default GPT-2's).
        vocab: optional token bytes -> id map; derived from bytes and merges if omitted.
        special_ids: optional special token -> id map (as GPT-2's ``encoder.json`` gives it).
    """

    def __init__(
        self,
        merges: Iterable[tuple[bytes, bytes]] = (),
        special_tokens: Iterable[str] = (),
        *,
        pattern: str = GPT2_PATTERN,
        vocab: dict[bytes, int] | None = None,
        special_ids: dict[str, int] | None = None,
    ):
        self.pattern = pattern
        self._pattern = regex.compile(pattern)
        self.merges: list[tuple[bytes, bytes]] = [(bytes(a), bytes(b)) for a, b in merges]
        special_tokens = list(special_tokens)
        _check_special_tokens(special_tokens)

        if vocab is None:
            vocab = {bytes([b]): i for i, b in enumerate(bytes_to_unicode())}
            for a, b in self.merges:
                vocab.setdefault(a + b, len(vocab))  # a merge may rebuild an existing token (see train)
        self.encoder: dict[bytes, int] = dict(vocab)
        if special_ids is None:
            first = max(self.encoder.values(), default=-1) + 1
            special_ids = {token: first + i for i, token in enumerate(special_tokens)}
        elif set(special_ids) != set(special_tokens):
            raise ValueError("special_ids must give an id for exactly the special tokens")
        self.special_tokens: dict[str, int] = dict(sorted(special_ids.items(), key=lambda item: item[1]))
        self._check_vocab()

        self.decoder: dict[int, bytes] = {i: t for t, i in self.encoder.items()}
        for token, i in self.special_tokens.items():
            self.decoder[i] = token.encode("utf-8")
        self._byte_ids = [self.encoder[bytes([b])] for b in range(256)]
        # Merge ranks on ids: (left id, right id) -> (rank, merged id).
        self._ranks: dict[tuple[int, int], tuple[int, int]] = {}
        for rank, (a, b) in enumerate(self.merges):
            self._ranks.setdefault((self.encoder[a], self.encoder[b]), (rank, self.encoder[a + b]))
        self._cache: dict[str, list[int]] = {}
        self._special_regex = None
        if self.special_tokens:
            # Longest first, so a special token that is a prefix of another does not win.
            alternatives = sorted(self.special_tokens, key=len, reverse=True)
            self._special_regex = regex.compile("|".join(regex.escape(t) for t in alternatives))

    def _check_vocab(self):
        for i in range(256):
            if bytes([i]) not in self.encoder:
                raise ValueError(f"the vocabulary lacks the single-byte token for byte {i}")
        for rank, (a, b) in enumerate(self.merges):
            for part in (a, b, a + b):
                if part not in self.encoder:
                    raise ValueError(f"merge {rank} ({a!r} + {b!r}) uses {part!r}, which is not in the vocabulary")
        ids = [*self.encoder.values(), *self.special_tokens.values()]
        if len(set(ids)) != len(ids):
            raise ValueError("two tokens share one id")
        table = unicode_to_bytes()
        for token in self.special_tokens:
            # In encoder.json a special token shares the key space with ordinary tokens' printable forms.
            if all(c in table for c in token) and token_to_bytes(token) in self.encoder:
                raise ValueError(f"special token {token!r} is written like an ordinary token of the vocabulary")

    # ----------------------------------------------------------------------------------------------- properties
    @property
    def vocab_size(self) -> int:
        """Number of ids: ordinary tokens plus special tokens (the embedding size a model needs)."""
        return max(self.decoder) + 1

    @property
    def n_vocab(self) -> int:  # tiktoken's name
        return self.vocab_size

    @property
    def eot_token(self) -> int | None:
        return self.special_tokens.get(ENDOFTEXT)

    def __len__(self) -> int:
        return self.vocab_size

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(vocab_size={self.vocab_size}, merges={len(self.merges)}, "
                f"special_tokens={list(self.special_tokens)})")

    # ------------------------------------------------------------------------------------------------- encoding
    def _encode_word(self, word: str) -> list[int]:
        """BPE on one pre-token: merge the adjacent pair of lowest rank until none has a rank."""
        ids = [self._byte_ids[b] for b in word.encode("utf-8")]
        ranks = self._ranks
        while len(ids) > 1:
            best = None
            for pair in pairwise(ids):
                found = ranks.get(pair)
                if found is not None and (best is None or found[0] < best[0]):
                    best, best_pair = found, pair
            if best is None:
                break
            ids = merge_pair(ids, *best_pair, best[1])
        return ids

    def encode_ordinary(self, text: str) -> list[int]:
        """Ids of ``text`` with special tokens treated as plain text (tiktoken's ``encode_ordinary``)."""
        cache = self._cache
        if len(cache) > _MAX_CACHE_WORDS:
            cache.clear()
        out: list[int] = []
        extend, get = out.extend, cache.get
        for word in self._pattern.findall(text):
            ids = get(word)
            if ids is None:
                ids = cache[word] = self._encode_word(word)
            extend(ids)
        return out

    def encode(
        self,
        text: str,
        *,
        allowed_special: Literal["all"] | Collection[str] = frozenset(),
        disallowed_special: Literal["all"] | Collection[str] = "all",
    ) -> list[int]:
        """Ids of ``text``, with tiktoken's rules for special tokens: those in ``allowed_special`` become their
        id; by default any other special token found in the text raises ValueError (pass
        ``disallowed_special=()`` to encode it as plain text instead)."""
        allowed = self._special_set(allowed_special, "allowed_special")
        disallowed = (set(self.special_tokens) - allowed if disallowed_special == "all"
                      else self._special_set(disallowed_special, "disallowed_special"))
        if disallowed:
            for match in self._special_regex.finditer(text):
                if match.group() in disallowed:
                    raise ValueError(
                        f"the text contains the special token {match.group()!r} at character {match.start()}; "
                        f"pass allowed_special={{{match.group()!r}}} (or 'all') to encode it as a special token, "
                        f"or disallowed_special=() to encode it as plain text"
                    )
        if not allowed:
            return self.encode_ordinary(text)
        out: list[int] = []
        start = 0
        for match in self._special_regex.finditer(text):
            if match.group() in allowed:
                out.extend(self.encode_ordinary(text[start:match.start()]))
                out.append(self.special_tokens[match.group()])
                start = match.end()
        out.extend(self.encode_ordinary(text[start:]))
        return out

    def encode_batch(self, texts: Iterable[str], **kwargs) -> list[list[int]]:
        return [self.encode(text, **kwargs) for text in texts]

    def _special_set(self, value, name) -> set[str]:
        if value == "all":
            return set(self.special_tokens)
        if isinstance(value, str):
            raise ValueError(f"{name} must be 'all' or a collection of special tokens, got the string {value!r}")
        chosen = set(value)
        unknown = chosen - set(self.special_tokens)
        if unknown:
            raise ValueError(f"{name} names unknown special tokens {sorted(unknown)}; "
                             f"this tokenizer's special tokens are {list(self.special_tokens)}")
        return chosen

    # ------------------------------------------------------------------------------------------------- decoding
    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        decoder = self.decoder
        try:
            return b"".join([decoder[i] for i in ids])
        except KeyError as error:
            raise ValueError(f"token id {error.args[0]!r} is not in the vocabulary (size {self.vocab_size})") from None

    def decode(self, ids: Iterable[int], errors: str = "replace") -> str:
        """Text of ``ids``; bytes that do not form valid UTF-8 (a cut-off character) become U+FFFD by default."""
        return self.decode_bytes(ids).decode("utf-8", errors=errors)

    def id_to_token(self, i: int) -> str:
        """The token of id ``i`` as GPT-2's files write it (special tokens verbatim)."""
        data = self.decoder[i]
        return data.decode("utf-8") if i in self.special_tokens.values() else bytes_to_token(data)

    # ------------------------------------------------------------------------------------------------- training
    @classmethod
    def train(
        cls,
        text: str | Iterable[str],
        vocab_size: int,
        special_tokens: Iterable[str] = (ENDOFTEXT,),
        *,
        pattern: str = GPT2_PATTERN,
    ) -> BPETokenizer:
        """Learn merges from ``text`` (a string or an iterable of documents) until the vocabulary, counting the
        256 bytes and the special tokens, has exactly ``vocab_size`` ids.

        Each step merges the most frequent adjacent pair within pre-tokens; ties go to the pair whose bytes sort
        first (left token, then right token). Pair counts are updated only for the words that contain the merged
        pair, and the best pair comes from a heap, so a step costs time in proportion to what it changes. Special
        tokens found in the text are boundaries and are not learned from. ``vocab_size == 256 +
        len(special_tokens)`` gives the byte-level tokenizer (no merges)."""
        special_tokens = list(special_tokens)
        _check_special_tokens(special_tokens)
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int):
            raise ValueError(f"vocab_size must be an integer, got {vocab_size!r}")
        minimum = 256 + len(special_tokens)
        if vocab_size < minimum:
            raise ValueError(f"vocab_size {vocab_size} is below the minimum {minimum} "
                             f"(256 byte tokens + {len(special_tokens)} special tokens)")
        documents = [text] if isinstance(text, str) else list(text)
        if not any(documents):
            raise ValueError("the training corpus is empty")

        word_counts: Counter[str] = Counter()
        compiled = regex.compile(pattern)
        splitter = (regex.compile("|".join(regex.escape(t) for t in sorted(special_tokens, key=len, reverse=True)))
                    if special_tokens else None)
        for document in documents:
            for piece in (splitter.split(document) if splitter else [document]):
                word_counts.update(compiled.findall(piece))
        if not word_counts:
            raise ValueError("the training corpus has no text outside special tokens")

        base = cls(special_tokens=(), pattern=pattern)
        token_bytes = [base.decoder[i] for i in range(256)]  # id -> bytes; grows with new tokens
        known = {t: i for i, t in enumerate(token_bytes)}
        words = [[base._byte_ids[b] for b in w.encode("utf-8")] for w in word_counts]
        freqs = list(word_counts.values())

        counts: defaultdict[tuple[int, int], int] = defaultdict(int)
        where: defaultdict[tuple[int, int], set[int]] = defaultdict(set)
        for index, (symbols, freq) in enumerate(zip(words, freqs, strict=True)):
            for pair in pairwise(symbols):
                counts[pair] += freq
                where[pair].add(index)

        def entry(pair):
            return (-counts[pair], token_bytes[pair[0]], token_bytes[pair[1]], pair)

        heap = [entry(pair) for pair in counts]
        heapq.heapify(heap)
        merges: list[tuple[bytes, bytes]] = []
        target = vocab_size - len(special_tokens)
        while len(token_bytes) < target:
            while heap and (-heap[0][0] != counts.get(heap[0][3], 0) or heap[0][0] == 0):
                heapq.heappop(heap)  # stale: the pair's count changed after this entry was pushed
            if not heap:
                raise ValueError(
                    f"the corpus runs out of pairs to merge after {len(merges)} merges, so vocab_size can be at "
                    f"most {len(token_bytes) + len(special_tokens)}; got {vocab_size}. Use more text or a smaller "
                    f"vocabulary"
                )
            _, left_bytes, right_bytes, pair = heapq.heappop(heap)
            merged_bytes = left_bytes + right_bytes
            merged = known.get(merged_bytes)
            if merged is None:  # the same bytes can arise from two different pairs; keep one id for them
                merged = known[merged_bytes] = len(token_bytes)
                token_bytes.append(merged_bytes)
            merges.append((left_bytes, right_bytes))

            touched: set[tuple[int, int]] = set()
            left, right = pair
            for index in list(where[pair]):
                symbols, freq = words[index], freqs[index]
                old = Counter(pairwise(symbols))
                new_symbols = merge_pair(symbols, left, right, merged)
                words[index] = new_symbols
                new = Counter(pairwise(new_symbols))
                for p in old.keys() | new.keys():
                    delta = new[p] - old[p]
                    if delta:
                        counts[p] += delta * freq
                        touched.add(p)
                        if not new[p]:
                            where[p].discard(index)
                        elif not old[p]:
                            where[p].add(index)
            for p in touched:
                if counts[p] > 0:
                    heapq.heappush(heap, entry(p))
                else:
                    counts.pop(p, None)
                    where.pop(p, None)
        vocab = {t: i for i, t in enumerate(token_bytes)}
        return cls(merges, special_tokens, pattern=pattern, vocab=vocab)

    @classmethod
    def byte_level(cls, special_tokens: Iterable[str] = (ENDOFTEXT,)) -> BPETokenizer:
        """No merges: one id per byte (256) plus the special tokens, for character-level work on ASCII text."""
        return cls((), special_tokens)

    # ------------------------------------------------------------------------------------------------- files
    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``encoder.json`` and ``vocab.bpe`` (GPT-2's formats) into ``directory``; returns it."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        encoder = {bytes_to_token(t): i for t, i in self.encoder.items()}
        encoder.update(self.special_tokens)
        encoder = dict(sorted(encoder.items(), key=lambda item: item[1]))
        lines = ["#version: 0.2"] + [f"{bytes_to_token(a)} {bytes_to_token(b)}" for a, b in self.merges]
        (directory / "encoder.json").write_text(json.dumps(encoder, ensure_ascii=False), encoding="utf-8")
        (directory / "vocab.bpe").write_text("\n".join(lines) + "\n", encoding="utf-8")
        if self.pattern != GPT2_PATTERN:  # GPT-2's files have no place for it
            (directory / "pattern.txt").write_text(self.pattern, encoding="utf-8")
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike) -> BPETokenizer:
        """Read ``encoder.json`` and ``vocab.bpe`` from ``directory`` (OpenAI's GPT-2 files or :meth:`save`'s)."""
        directory = Path(directory)
        pattern_file = directory / "pattern.txt"
        pattern = pattern_file.read_text(encoding="utf-8") if pattern_file.is_file() else GPT2_PATTERN
        return cls.from_files(directory / "encoder.json", directory / "vocab.bpe", pattern=pattern)

    @classmethod
    def from_files(cls, encoder_json: str | os.PathLike, vocab_bpe: str | os.PathLike, *,
                   pattern: str = GPT2_PATTERN) -> BPETokenizer:
        encoder_json, vocab_bpe = Path(encoder_json), Path(vocab_bpe)
        for path in (encoder_json, vocab_bpe):
            if not path.is_file():
                raise FileNotFoundError(f"BPE file not found: {path}")
        try:
            raw = json.loads(encoder_json.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"{encoder_json} is not valid JSON (truncated or corrupt?): {error}") from None
        if not isinstance(raw, dict) or not all(isinstance(i, int) for i in raw.values()):
            raise ValueError(f"{encoder_json} must be a JSON object mapping token strings to integer ids")

        lines = vocab_bpe.read_text(encoding="utf-8").split("\n")
        if lines and lines[0].startswith("#version"):
            lines = lines[1:]
        merges = []
        for number, line in enumerate(lines, start=2):
            if not line.strip():
                continue
            parts = line.split(" ")
            if len(parts) != 2:
                raise ValueError(f"{vocab_bpe}, line {number}: expected two tokens separated by a space, got {line!r}")
            merges.append((token_to_bytes(parts[0]), token_to_bytes(parts[1])))

        # Tokens made of bytes or merges are ordinary; anything else in encoder.json is special.
        ordinary = {bytes_to_token(bytes([b])) for b in range(256)}
        ordinary.update(bytes_to_token(a + b) for a, b in merges)
        vocab, special_ids = {}, {}
        for token, i in raw.items():
            if token in ordinary:
                vocab[token_to_bytes(token)] = i
            else:
                special_ids[token] = i
        missing = ordinary - raw.keys()
        if missing:
            example = sorted(missing)[0]
            raise ValueError(f"{encoder_json} lacks {len(missing)} tokens that the bytes or the merges of {vocab_bpe} "
                             f"need (e.g. {example!r}); is it truncated or from another tokenizer?")
        return cls(merges, list(special_ids), pattern=pattern, vocab=vocab, special_ids=special_ids)


def _check_special_tokens(tokens: list[str]) -> None:
    for token in tokens:
        if not isinstance(token, str) or not token:
            raise ValueError(f"special tokens must be non-empty strings, got {token!r}")
    if len(set(tokens)) != len(tokens):
        raise ValueError(f"special tokens are repeated: {tokens}")
