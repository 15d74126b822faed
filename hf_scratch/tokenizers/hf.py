"""Export a from-scratch BPE as a ``transformers.PreTrainedTokenizerFast``.

The ``tokenizer.json`` is built with the ``tokenizers`` library: GPT-2's byte-level pre-tokenizer (its regex,
no prefix space), a BPE model holding our vocabulary and merges, the byte-level decoder, and our special tokens
as added tokens. Saved next to a checkpoint, it loads with ``AutoTokenizer.from_pretrained`` and gives the same
ids as :class:`~hf_scratch.tokenizers.bpe.BPETokenizer` (special tokens in text always become their ids there,
as with ``allowed_special="all"``).
"""

from __future__ import annotations

import os
from pathlib import Path

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

from .bpe import ENDOFTEXT, GPT2_PATTERN, BPETokenizer, bytes_to_token


def to_tokenizers(bpe: BPETokenizer) -> Tokenizer:
    """The ``tokenizers.Tokenizer`` equivalent of ``bpe``."""
    if bpe.pattern != GPT2_PATTERN:
        raise ValueError("only GPT-2's pre-tokenisation pattern can be exported (tokenizers' ByteLevel uses it)")
    vocab = {bytes_to_token(t): i for t, i in bpe.encoder.items()}
    merges = [(bytes_to_token(a), bytes_to_token(b)) for a, b in bpe.merges]
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    # Added tokens must come in id order so each keeps its id.
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in bpe.special_tokens])
    for token, i in bpe.special_tokens.items():
        if tokenizer.token_to_id(token) != i:
            raise ValueError(f"special token {token!r} would get id {tokenizer.token_to_id(token)}, not {i}")
    return tokenizer


def to_hf_tokenizer(
    bpe: BPETokenizer,
    *,
    eos_token: str | None = None,
    pad_token: str | None = None,
    bos_token: str | None = None,
    unk_token: str | None = None,
    model_max_length: int | None = None,
):
    """A ``PreTrainedTokenizerFast`` with ``bpe``'s ids. Unless given: eos, bos and unk are ``<|endoftext|>``
    when the tokenizer has it (else the first special token), as GPT-2's are; pad is the eos token (GPT-2 has no
    pad token; padded positions are masked, so reusing eos is harmless)."""
    from transformers import PreTrainedTokenizerFast

    specials = list(bpe.special_tokens)
    default = ENDOFTEXT if ENDOFTEXT in specials else (specials[0] if specials else None)
    eos_token = eos_token if eos_token is not None else default
    bos_token = bos_token if bos_token is not None else default
    unk_token = unk_token if unk_token is not None else default
    pad_token = pad_token if pad_token is not None else eos_token
    for role, token in (("eos", eos_token), ("bos", bos_token), ("unk", unk_token), ("pad", pad_token)):
        if token is not None and token not in bpe.special_tokens:
            raise ValueError(f"{role}_token {token!r} is not a special token of this tokenizer ({specials})")
    kwargs = {k: v for k, v in dict(eos_token=eos_token, bos_token=bos_token, unk_token=unk_token,
                                    pad_token=pad_token).items() if v is not None}
    if model_max_length is not None:
        kwargs["model_max_length"] = model_max_length
    return PreTrainedTokenizerFast(tokenizer_object=to_tokenizers(bpe), clean_up_tokenization_spaces=False,
                                   **kwargs)


def save_hf_tokenizer(bpe: BPETokenizer, directory: str | os.PathLike, **kwargs) -> Path:
    """Write ``tokenizer.json`` and ``tokenizer_config.json`` (loadable with ``AutoTokenizer``) to ``directory``."""
    directory = Path(directory)
    to_hf_tokenizer(bpe, **kwargs).save_pretrained(directory)
    return directory
