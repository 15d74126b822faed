"""Pretraining windows (book ch. 2.6): a sliding window over one stream of token ids.

The book's loader yields ``inputs = ids[i : i + max_length]`` and ``targets = ids[i + 1 : i + max_length + 1]``
for ``i`` in ``range(0, len(ids) - max_length, stride)``: ``max_length`` predicted tokens per window.

Our model (like ``GPT2LMHeadModel``) shifts the labels itself: it scores position ``t`` against ``labels[t + 1]``.
So each example here is the book's window *plus its last target*: ``input_ids = labels = ids[i : i + max_length
+ 1]``. The model then scores exactly the book's ``max_length`` targets; the logits at the first ``max_length``
positions are the book's logits (attention is causal, so the extra last token changes none of them), and the
last position's prediction has no label and is ignored. ``model(**example).loss`` therefore equals the book's
``cross_entropy(model(inputs).logits, targets)``. The cost: a window occupies ``max_length + 1`` positions, so
the model's ``context_length`` must be at least ``max_length + 1`` (with the book's ch. 5 setting
``max_length = context_length``, use ``max_length = context_length - 1``; pass ``context_length`` to have this
checked here). :func:`book_inputs_targets` recovers the book's ``(inputs, targets)`` pair from a batch.

The train/validation split is made on token ids, not on characters, so no token is lost or re-tokenised at the
boundary: with ``s = round(train_ratio * len(ids))``, train is ``ids[:s]`` and validation ``ids[s - 1:]``. The
validation stream starts one token early so that ``ids[s]`` (the first validation token) is a prediction target,
with ``ids[s - 1]`` as its context: every token after the first is a target of exactly one split's stream.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from datasets import Dataset, DatasetDict
from datasets.utils.tqdm import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

TokenizerLike = Any  # hf_scratch BPE, tiktoken Encoding, transformers tokenizer, or a callable text -> ids


def encode_text(text: str, tokenizer: TokenizerLike = None) -> list[int]:
    """Token ids of ``text``; special tokens written in the text (``<|endoftext|>``) become their ids, as the
    book's loader allows. ``tokenizer=None`` means GPT-2 (tiktoken)."""
    if tokenizer is None:
        from ..tokenizers.gpt2 import gpt2_encoding

        tokenizer = gpt2_encoding()
    if hasattr(tokenizer, "backend_tokenizer"):  # transformers: no BOS/EOS added, no length warning
        return tokenizer.backend_tokenizer.encode(text, add_special_tokens=False).ids
    if hasattr(tokenizer, "encode"):
        try:
            return list(tokenizer.encode(text, allowed_special="all"))
        except TypeError:  # a tokenizer without tiktoken's keyword (e.g. WordTokenizer)
            return list(tokenizer.encode(text))
    if callable(tokenizer):
        return list(tokenizer(text))
    raise TypeError(f"cannot encode with {type(tokenizer).__name__}: expected an encode method or a callable")


def _check_window(max_length, stride):
    for name, value in (("max_length", max_length), ("stride", stride)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def window_starts(n_tokens: int, max_length: int, stride: int) -> range:
    """Start of each window, as the book's loop: ``range(0, n_tokens - max_length, stride)``."""
    _check_window(max_length, stride)
    return range(0, max(n_tokens - max_length, 0), stride)


def _windows_batch(batch: dict[str, list], max_length: int, stride: int) -> dict[str, list]:
    windows = []
    for ids in batch["ids"]:
        windows.extend(ids[i : i + max_length + 1] for i in window_starts(len(ids), max_length, stride))
    return {"input_ids": windows, "labels": [list(w) for w in windows]}


def windows_dataset(token_ids: Sequence[int], max_length: int, stride: int, *, name: str = "corpus") -> Dataset:
    """One row per window: ``input_ids`` and ``labels``, both ``ids[i : i + max_length + 1]`` (torch format)."""
    _check_window(max_length, stride)
    token_ids = list(token_ids)
    if len(token_ids) < max_length + 1:
        raise ValueError(f"the {name} has {len(token_ids)} tokens, fewer than one window of max_length + 1 = "
                         f"{max_length + 1} (max_length inputs and the target after them); use more text or a "
                         f"smaller max_length")
    stream = Dataset.from_dict({"ids": [token_ids]})
    quiet = not are_progress_bars_disabled()
    if quiet:  # a bar for mapping one row is noise
        disable_progress_bars()
    try:
        dataset = stream.map(_windows_batch, batched=True, remove_columns=["ids"],
                             fn_kwargs={"max_length": max_length, "stride": stride})
    finally:
        if quiet:
            enable_progress_bars()
    dataset.set_format("torch", columns=["input_ids", "labels"])
    return dataset


def split_token_ids(token_ids: Sequence[int], train_ratio: float) -> tuple[list[int], list[int]]:
    """``(train, validation)`` streams; validation repeats the last train token as its first input (see above)."""
    if isinstance(train_ratio, bool) or not isinstance(train_ratio, (int, float)) or not 0 < train_ratio < 1:
        raise ValueError(f"train_ratio must be a number strictly between 0 and 1, got {train_ratio!r}")
    token_ids = list(token_ids)
    if len(token_ids) < 2:
        raise ValueError(f"cannot split {len(token_ids)} tokens into train and validation")
    split = min(max(round(train_ratio * len(token_ids)), 1), len(token_ids) - 1)
    return token_ids[:split], token_ids[split - 1 :]


def pretraining_datasets(
    source: str | Sequence[int],
    tokenizer: TokenizerLike = None,
    *,
    max_length: int = 256,
    stride: int | None = None,
    train_ratio: float = 0.9,
    context_length: int | None = None,
) -> DatasetDict:
    """Train/validation windows for ``Trainer`` or a ``DataLoader``, from text (encoded with ``tokenizer``,
    GPT-2 by default) or from token ids. ``stride`` defaults to ``max_length`` (no overlap, as the book's ch. 5).
    Each row: ``input_ids`` and ``labels``, ``max_length + 1`` ids each (see the module docstring)."""
    stride = max_length if stride is None else stride
    _check_window(max_length, stride)
    if context_length is not None and max_length + 1 > context_length:
        raise ValueError(f"a window of max_length={max_length} needs {max_length + 1} positions (inputs plus the "
                         f"last target) but context_length is {context_length}; use max_length <= "
                         f"{context_length - 1}")
    ids = encode_text(source, tokenizer) if isinstance(source, str) else list(source)
    if not ids:
        raise ValueError("the corpus is empty: no tokens to make windows from")
    train, validation = split_token_ids(ids, train_ratio)
    return DatasetDict({
        "train": windows_dataset(train, max_length, stride, name="train split"),
        "validation": windows_dataset(validation, max_length, stride, name="validation split"),
    })


def create_dataloader(
    source: str | Sequence[int] | Dataset,
    tokenizer: TokenizerLike = None,
    *,
    batch_size: int = 4,
    max_length: int = 256,
    stride: int = 128,
    shuffle: bool = True,
    drop_last: bool = True,
    num_workers: int = 0,
    seed: int | None = None,
) -> torch.utils.data.DataLoader:
    """The book's ``create_dataloader_v1`` with its arguments: batches are dicts of ``input_ids`` and ``labels``,
    each ``[batch_size, max_length + 1]``, ready for ``model(**batch)``. ``source`` may be text, token ids, or a
    windows dataset from :func:`pretraining_datasets` (then max_length/stride are already applied)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if isinstance(source, Dataset):
        dataset = source
    else:
        ids = encode_text(source, tokenizer) if isinstance(source, str) else list(source)
        if not ids:
            raise ValueError("the corpus is empty: no tokens to make windows from")
        dataset = windows_dataset(ids, max_length, stride)
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last,
                                       num_workers=num_workers, generator=generator)


def book_inputs_targets(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The book's ``(inputs, targets)`` from a batch of windows: ``ids[:, :-1]`` and ``ids[:, 1:]``."""
    ids = batch["input_ids"]
    return ids[:, :-1], ids[:, 1:]



class TokenWindows(torch.utils.data.Dataset):
    """The same windows as :func:`windows_dataset`, cut on demand from one tensor of ids.

    Nothing is copied up front, so stride-1 windows over a million tokens (nanoGPT's sampling) cost no memory.
    Items are dicts of ``input_ids`` and ``labels`` (the same ``max_length + 1`` ids), as ``Trainer`` expects.
    """

    def __init__(self, token_ids: Sequence[int] | torch.Tensor, max_length: int, stride: int, *, name: str = "corpus"):
        _check_window(max_length, stride)
        self.ids = torch.as_tensor(token_ids, dtype=torch.long).flatten()
        if len(self.ids) < max_length + 1:
            raise ValueError(f"the {name} has {len(self.ids)} tokens, fewer than one window of max_length + 1 = "
                             f"{max_length + 1}; use more text or a smaller context")
        self.max_length, self.stride = max_length, stride
        self.starts = window_starts(len(self.ids), max_length, stride)

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        start = self.starts[index]
        window = self.ids[start : start + self.max_length + 1]
        return {"input_ids": window, "labels": window}


class EpochShuffler(torch.utils.data.Sampler):
    """A fresh permutation per epoch from ``(seed, epoch)``: both training paths, and every process of a
    distributed run, see the same order, which a sampler drawing from the global RNG cannot promise."""

    def __init__(self, data_size: int, seed: int):
        self.data_size, self.seed, self.epoch = data_size, seed, 0

    def set_epoch(self, epoch: int):
        self.epoch = epoch

    def __len__(self) -> int:
        return self.data_size

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.data_size, generator=generator).tolist())
