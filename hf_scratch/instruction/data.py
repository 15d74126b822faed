"""Instruction data (book ch. 7.2–7.4): records, the 85/10/5 split, tokenised examples and the padding collator.

Examples are dicts with two keys, both lists of token ids of the same length:

- ``input_ids``: prompt, response and one end-of-text token;
- ``labels``: the same ids, with the prompt's positions set to -100 when the prompt is masked.

The model shifts labels itself (position t predicts ``labels[t + 1]``), so the end-of-text at the end of
``labels`` is the target that teaches the model to stop. :class:`InstructionCollator` only pads and truncates.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ..tokenizers.adapters import encoder_of, pad_id_of
from .prompts import build_prompt, check_record

IGNORE_INDEX = -100  # the label cross-entropy skips (torch's and transformers' default ignore_index)
SPLIT_FRACTIONS = (0.85, 0.10)  # train, test; validation gets the rest (book ch. 7.2)


def read_records(path: str | os.PathLike) -> list:
    """The non-empty JSON list in ``path``; each record is for the caller to check."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"records file not found: {path}")
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:  # JSONDecodeError and UnicodeDecodeError are both ValueErrors
        raise ValueError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(records, list):
        raise ValueError(f"{path}: expected a JSON list of records, got a JSON {type(records).__name__}")
    if not records:
        raise ValueError(f"{path} holds no records")
    return records


def load_instruction_records(path: str | os.PathLike | None = None, **fetch_kwargs) -> list[dict]:
    """The records of a JSON file (a list of ``{instruction, input, output}``), checked; with no path, the book's
    1,100 records of the ``alpaca-1100`` source (``HF_SCRATCH_DATA``, the cache or a verified download)."""
    if path is None:
        from ..data import load_alpaca

        records = load_alpaca(**fetch_kwargs)
    else:
        records = read_records(path)
    for index, record in enumerate(records):
        check_record(record, index)
    return records


def split_records(records: list[dict], seed: int | None = None) -> dict[str, list[dict]]:
    """``train``/``validation``/``test`` as the book cuts them: the first 85% to train, the next 10% to test, the rest
    to validation (935 / 55 / 110 of the 1,100 records). The book keeps the file's order; ``seed`` shuffles first."""
    if seed is not None:
        import random

        records = records[:]
        random.Random(seed).shuffle(records)
    n_train = int(len(records) * SPLIT_FRACTIONS[0])
    n_test = int(len(records) * SPLIT_FRACTIONS[1])
    return {"train": records[:n_train], "validation": records[n_train + n_test:],
            "test": records[n_train:n_train + n_test]}


def tokenize_record(record: dict, encode, eos_id: int, style: str = "alpaca", mask_prompt: bool = False) -> dict:
    """One example. Prompt and response are encoded apart and joined, so the prompt's ids are exactly those the
    model is given when it answers, and the masked span ends exactly where the response starts."""
    prompt = encode(build_prompt(record, style))
    response = encode(record["output"]) + [eos_id]
    labels = ([IGNORE_INDEX] * len(prompt) if mask_prompt else prompt) + response
    return {"input_ids": prompt + response, "labels": labels}


def tokenize_splits(splits: dict[str, list[dict]], tokenizer, style: str = "alpaca", mask_prompt: bool = False):
    """``datasets.DatasetDict`` of the splits, each row the record's fields plus ``input_ids`` and ``labels``."""
    from datasets import Dataset, DatasetDict

    encode, eos_id = encoder_of(tokenizer), pad_id_of(tokenizer)
    out = {}
    for name, records in splits.items():
        rows = [{"instruction": r["instruction"], "input": r.get("input") or "", "output": r["output"],
                 **tokenize_record(r, encode, eos_id, style, mask_prompt)} for r in records]
        out[name] = Dataset.from_list(rows)
    return DatasetDict(out)


@dataclass
class InstructionCollator:
    """Pads a batch to its longest example: ``input_ids`` with ``pad_token_id`` (the end-of-text id, as the book),
    ``labels`` with -100, ``attention_mask`` 1 on real tokens; then cuts everything to ``max_length``. Returns CPU
    tensors (Trainer/accelerate place them) and drops other columns."""

    pad_token_id: int
    max_length: int | None = None

    def __post_init__(self):
        if self.max_length is not None and self.max_length < 2:
            raise ValueError(f"max_length must be at least 2 (an input and a target), got {self.max_length}")

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        if not features:
            raise ValueError("cannot collate an empty batch")
        longest = max(len(f["input_ids"]) for f in features)
        if self.max_length is not None:
            longest = min(longest, self.max_length)
        ids, labels, masks = [], [], []
        for f in features:
            if len(f["input_ids"]) != len(f["labels"]):
                raise ValueError(f"input_ids and labels differ in length ({len(f['input_ids'])} vs "
                                 f"{len(f['labels'])})")
            seq, target = list(f["input_ids"])[:longest], list(f["labels"])[:longest]
            gap = longest - len(seq)
            ids.append(seq + [self.pad_token_id] * gap)
            labels.append(target + [IGNORE_INDEX] * gap)
            masks.append([1] * len(seq) + [0] * gap)
        return {"input_ids": torch.tensor(ids, dtype=torch.long), "labels": torch.tensor(labels, dtype=torch.long),
                "attention_mask": torch.tensor(masks, dtype=torch.long)}
