"""GPT-2's tokenizer from OpenAI's files: as a from-scratch :class:`BPETokenizer` or as tiktoken's encoding.

Both look for ``encoder.json`` and ``vocab.bpe`` the way :func:`hf_scratch.data.fetch` does (explicit path, then
``$HF_SCRATCH_DATA/gpt2-bpe``, then the user cache), so nothing touches the network when the files are local.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from ..data.sources import DataNotFoundError, fetch_files, offline
from .bpe import ENDOFTEXT, GPT2_PATTERN, BPETokenizer


def gpt2_files(path: str | os.PathLike | None = None, *, download: bool | None = None) -> tuple[Path, Path]:
    """``(encoder.json, vocab.bpe)`` of GPT-2, checksummed; downloaded into the cache if allowed and missing."""
    files = fetch_files("gpt2-bpe", path, download=download)
    return files["encoder.json"], files["vocab.bpe"]


@lru_cache(maxsize=4)
def _load_bpe(encoder_json: Path, vocab_bpe: Path) -> BPETokenizer:
    return BPETokenizer.from_files(encoder_json, vocab_bpe)


def load_gpt2_bpe(path: str | os.PathLike | None = None, *, download: bool | None = None) -> BPETokenizer:
    """The from-scratch BPE with GPT-2's 50,000 merges and ``<|endoftext|>`` = 50256 (cached per file pair;
    the tokenizer's word cache is shared, which is safe since encoding does not depend on it)."""
    return _load_bpe(*gpt2_files(path, download=download))


@lru_cache(maxsize=4)
def _local_encoding(encoder_json: Path, vocab_bpe: Path):
    import tiktoken

    bpe = _load_bpe(encoder_json, vocab_bpe)
    # tiktoken ranks are the ids of the ordinary tokens (tiktoken's own loader builds the same map).
    ranks = {token: i for token, i in bpe.encoder.items()}
    return tiktoken.Encoding("gpt2", pat_str=GPT2_PATTERN, mergeable_ranks=ranks,
                             special_tokens={ENDOFTEXT: bpe.special_tokens[ENDOFTEXT]}, explicit_n_vocab=50257)


def gpt2_encoding(path: str | os.PathLike | None = None):
    """tiktoken's ``gpt2`` encoding, built from local files when ``path``, ``$HF_SCRATCH_DATA`` or the cache has
    them; otherwise ``tiktoken.get_encoding("gpt2")``, which downloads through tiktoken's own cache (unless
    ``HF_SCRATCH_OFFLINE``/``HF_HUB_OFFLINE`` is set: then :class:`DataNotFoundError`)."""
    try:
        files = gpt2_files(path, download=False)
    except DataNotFoundError:
        if path is not None or offline():  # offline: our error names the variable and URL; tiktoken's would not
            raise
        import tiktoken

        return tiktoken.get_encoding("gpt2")
    return _local_encoding(*files)
