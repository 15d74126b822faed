"""Corpus and tokenizer for a pretraining run, resolved from the config, and the train/validation windows."""

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..data import SOURCES, TokenWindows, read_text, split_token_ids
from ..tokenizers import BPETokenizer
from ..tokenizers.adapters import bpe_from_spec
from .config import PretrainConfig

EMBEDDED_CORPUS = "harbour-year"


@dataclass
class PretrainData:
    corpus_name: str
    tokenizer: BPETokenizer
    tokenizer_name: str
    train: TokenWindows
    validation: TokenWindows
    max_length: int  # predicted tokens per window; a window holds one more, the last target


def embedded_corpus() -> str:
    """The original text shipped with the package, so the first run needs no network and no data."""
    return resources.files("hf_scratch.data").joinpath("corpus", "harbour_year.txt").read_text(encoding="utf-8")


def load_corpus(corpus: str | None) -> tuple[str, str]:
    """``(name, text)`` of a named source, a text file, or (``None``) the embedded corpus."""
    if corpus is None or corpus == EMBEDDED_CORPUS:
        return EMBEDDED_CORPUS, embedded_corpus()
    if corpus in SOURCES:
        return corpus, read_text(corpus)
    path = Path(corpus).expanduser()
    if path.is_file():
        return path.name, path.read_text(encoding="utf-8")
    raise FileNotFoundError(
        f"corpus {corpus!r} is neither a file nor a known data set ({', '.join(['the-verdict', 'tinyshakespeare'])}"
        f", or omit it for the embedded '{EMBEDDED_CORPUS}')"
    )


def load_tokenizer(spec: str | None, corpus_name: str) -> tuple[str, BPETokenizer]:
    """``(name, tokenizer)``; no ``spec``: bytes for the embedded corpus, GPT-2's BPE otherwise."""
    if spec is None:
        spec = "bytes" if corpus_name == EMBEDDED_CORPUS else "gpt2"
    tokenizer = bpe_from_spec(spec)
    return (spec if spec in ("bytes", "gpt2") else str(Path(spec).expanduser())), tokenizer


def prepare_data(config: PretrainConfig) -> PretrainData:
    corpus_name, text = load_corpus(config.corpus)
    if not text.strip():
        raise ValueError(f"corpus {corpus_name!r} is empty")
    tokenizer_name, tokenizer = load_tokenizer(config.tokenizer, corpus_name)
    max_length = config.max_length or config.context_length - 1
    ids = tokenizer.encode(text, allowed_special="all")
    train_ids, validation_ids = split_token_ids(ids, config.train_ratio)
    train = TokenWindows(train_ids, max_length, config.stride or max_length, name=f"train split of {corpus_name}")
    # Validation windows never overlap: every validation token is scored once, the whole split each time.
    validation = TokenWindows(validation_ids, max_length, max_length, name=f"validation split of {corpus_name}")
    if config.batch_size > len(train):
        raise ValueError(f"batch_size {config.batch_size} is larger than the {len(train)} training windows of "
                         f"{corpus_name} ({len(train_ids)} tokens, windows of {max_length + 1}); use a smaller "
                         f"batch, a shorter context or a smaller stride")
    return PretrainData(corpus_name, tokenizer, tokenizer_name, train, validation, max_length)
