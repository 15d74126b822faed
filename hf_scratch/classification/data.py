"""The SMS spam data of book ch. 6 on ``datasets``: balance, split, tokenize, pad.

The book's preparation: keep all 747 spam messages and a seeded random 747 of the ham, shuffle with a fixed seed,
and cut 70/10/20 (``int`` of each fraction, the remainder to test) into 1,045 / 149 / 300 messages. Labels are
0 ham, 1 spam.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..tokenizers.adapters import encoder_of, pad_id_of

LABELS = ("ham", "spam")
SPLIT_SEED = 123  # the book's random_state


def balanced_spam_rows(rows: Sequence[tuple[str, str]], seed: int = SPLIT_SEED) -> list[tuple[str, str]]:
    """All spam rows and as many ham rows, drawn without replacement with ``seed`` (book ch. 6.2)."""
    ham = [row for row in rows if row[0] == "ham"]
    spam = [row for row in rows if row[0] == "spam"]
    if not spam or len(ham) < len(spam):
        raise ValueError(f"cannot balance {len(ham)} ham against {len(spam)} spam messages")
    chosen = np.random.default_rng(seed).choice(len(ham), size=len(spam), replace=False)
    return [ham[i] for i in sorted(chosen)] + spam


def split_sizes(n: int, train_frac: float = 0.7, validation_frac: float = 0.1) -> tuple[int, int, int]:
    train = int(n * train_frac)
    validation = int(n * validation_frac)
    return train, validation, n - train - validation


def load_spam_splits(path: str | os.PathLike | None = None, seed: int = SPLIT_SEED, **fetch_kwargs):
    """``datasets.DatasetDict`` with ``train``/``validation``/``test`` (columns ``text``, ``label``: a
    ``ClassLabel`` 0 ham / 1 spam) from the ``sms-spam`` source, prepared as the book does."""
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

    from ..data import load_sms_spam

    rows = balanced_spam_rows(load_sms_spam(path, **fetch_kwargs), seed)
    order = np.random.default_rng(seed + 1).permutation(len(rows))
    rows = [rows[i] for i in order]
    n_train, n_validation, _ = split_sizes(len(rows))
    features = Features({"text": Value("string"), "label": ClassLabel(names=list(LABELS))})

    def make(part):
        return Dataset.from_dict({"text": [t for _, t in part], "label": [LABELS.index(l) for l, _ in part]},
                                 features=features)

    return DatasetDict(train=make(rows[:n_train]), validation=make(rows[n_train:n_train + n_validation]),
                       test=make(rows[n_train + n_validation:]))


def tokenize_splits(splits, tokenizer, *, context_length: int, padding: str = "longest_train",
                    max_length: int | None = None):
    """Add ``input_ids`` and ``attention_mask`` to every split.

    ``padding="longest_train"`` (the book): every sequence is right-padded (with the end-of-text id) to the
    longest training sequence, and longer validation/test sequences are truncated to it. ``"dynamic"``: sequences
    stay unpadded and :class:`PadCollator` pads each batch to its own longest. Either way nothing is longer than
    ``max_length`` (default and upper bound: ``context_length``); truncation keeps the first tokens and warns.
    Empty messages raise ``ValueError``."""
    if padding not in ("longest_train", "dynamic"):
        raise ValueError(f"padding must be 'longest_train' or 'dynamic', got {padding!r}")
    limit = context_length if max_length is None else min(max_length, context_length)
    if limit < 1:
        raise ValueError(f"max_length must be >= 1, got {max_length}")
    encode, pad_id = encoder_of(tokenizer), pad_id_of(tokenizer)
    encoded = {name: [encode(text) for text in split["text"]] for name, split in splits.items()}
    for name, seqs in encoded.items():
        empty = [i for i, ids in enumerate(seqs) if not ids]
        if empty:
            raise ValueError(f"{len(empty)} {name} message(s) are empty after tokenization (first: row {empty[0]})")
    if padding == "longest_train" and "train" in encoded:
        limit = min(limit, max(len(ids) for ids in encoded["train"]))
    for name, seqs in encoded.items():
        too_long = sum(len(ids) > limit for ids in seqs)
        if too_long:
            warnings.warn(f"{too_long} {name} message(s) are longer than {limit} tokens and were truncated to the "
                          f"first {limit}", stacklevel=2)
    out = {}
    for name, split in splits.items():
        seqs = [ids[:limit] for ids in encoded[name]]
        if padding == "longest_train":
            masks = [[1] * len(ids) + [0] * (limit - len(ids)) for ids in seqs]
            seqs = [ids + [pad_id] * (limit - len(ids)) for ids in seqs]
        else:
            masks = [[1] * len(ids) for ids in seqs]
        out[name] = split.add_column("input_ids", seqs).add_column("attention_mask", masks)
    from datasets import DatasetDict

    return DatasetDict(out)


@dataclass
class PadCollator:
    """Stacks examples into tensors, padding ``input_ids`` with ``pad_token_id`` and ``attention_mask`` with 0 to
    the batch's longest. It only pads: tensors stay on the CPU (Trainer/accelerate place them) and other
    columns except ``label``/``labels`` are dropped."""

    pad_token_id: int
    padding_side: str = "right"

    def __post_init__(self):
        if self.padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {self.padding_side!r}")

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        longest = max(len(f["input_ids"]) for f in features)
        ids, masks = [], []
        for f in features:
            seq = list(f["input_ids"])
            mask = list(f.get("attention_mask") or [1] * len(seq))
            gap = longest - len(seq)
            if self.padding_side == "right":
                ids.append(seq + [self.pad_token_id] * gap)
                masks.append(mask + [0] * gap)
            else:
                ids.append([self.pad_token_id] * gap + seq)
                masks.append([0] * gap + mask)
        batch = {"input_ids": torch.tensor(ids, dtype=torch.long),
                 "attention_mask": torch.tensor(masks, dtype=torch.long)}
        key = "labels" if "labels" in features[0] else "label" if "label" in features[0] else None
        if key is not None:
            batch["labels"] = torch.tensor([int(f[key]) for f in features], dtype=torch.long)
        return batch
