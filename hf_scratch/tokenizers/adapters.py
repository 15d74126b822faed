"""What the finetuning stages need from a tokenizer, whichever kind it is: our ``BPETokenizer``, a tiktoken
``Encoding`` or a transformers tokenizer. Also how a run names its tokenizer and saves it beside the model."""

from __future__ import annotations

from pathlib import Path


def encoder_of(tokenizer):
    """A text -> ids function (no special tokens added; special-token strings in the text are treated as text)."""
    if hasattr(tokenizer, "encode_ordinary"):  # BPETokenizer, tiktoken.Encoding
        return tokenizer.encode_ordinary
    if callable(getattr(tokenizer, "encode", None)):
        return lambda text: tokenizer.encode(text, add_special_tokens=False)
    raise TypeError(f"cannot encode text with a {type(tokenizer).__name__}")


def pad_id_of(tokenizer) -> int:
    """The end-of-text id, used for padding as in the book (padded positions are masked)."""
    for name in ("eot_token", "eos_token_id", "pad_token_id"):
        value = getattr(tokenizer, name, None)
        if isinstance(value, int):
            return value
    raise ValueError(f"{type(tokenizer).__name__} has no end-of-text id to pad with")


def vocab_size_of(tokenizer) -> int:
    return len(tokenizer) if hasattr(tokenizer, "__len__") else tokenizer.vocab_size


def bpe_from_spec(spec: str):
    """``"gpt2"`` (OpenAI's BPE from local files), ``"bytes"`` (256 byte tokens and end-of-text), or a folder of
    a trained BPE (``encoder.json`` and ``vocab.bpe``, from ``hf-scratch tokenizer train``)."""
    from .bpe import BPETokenizer
    from .gpt2 import load_gpt2_bpe

    if spec == "gpt2":
        return load_gpt2_bpe()
    if spec == "bytes":
        return BPETokenizer.byte_level()
    path = Path(spec).expanduser()
    if not (path / "encoder.json").is_file():
        raise FileNotFoundError(f"tokenizer {spec!r}: expected 'gpt2', 'bytes' or a folder with encoder.json and "
                                f"vocab.bpe (from 'hf-scratch tokenizer train')")
    return BPETokenizer.load(path)


def checkpoint_tokenizer(folder: Path, spec: str | None, model_vocab_size: int):
    """The tokenizer of a run that starts from checkpoint ``folder``: ``spec`` when given, else the folder's own
    ``tokenizer.json``; refused when it has more ids than the model's vocabulary."""
    if spec is not None:
        tokenizer = bpe_from_spec(spec)
    elif (folder / "tokenizer.json").is_file():
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(folder)
    else:
        raise FileNotFoundError(f"--init {folder} has no tokenizer.json; name the tokenizer with --tokenizer")
    if vocab_size_of(tokenizer) > model_vocab_size:
        raise ValueError(f"the tokenizer has {vocab_size_of(tokenizer)} ids but the model's vocabulary only "
                         f"{model_vocab_size}")
    return tokenizer


def save_tokenizer(tokenizer, folder: Path, context_length: int) -> None:
    """Save beside the model so that ``AutoTokenizer.from_pretrained(folder)`` loads it."""
    from .bpe import BPETokenizer
    from .hf import save_hf_tokenizer

    if isinstance(tokenizer, BPETokenizer):
        save_hf_tokenizer(tokenizer, folder, model_max_length=context_length)
    else:
        tokenizer.save_pretrained(folder)
