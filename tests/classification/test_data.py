"""The spam data: the book's balance and split sizes, disjoint splits, tokenization, padding, metrics."""

import warnings

import evaluate
import pytest
import torch

from hf_scratch.classification import PadCollator, load_spam_splits, metric_path, tokenize_splits
from hf_scratch.data import load_sms_spam
from hf_scratch.tokenizers import BPETokenizer


@pytest.fixture(scope="module")
def splits(data_dir):
    return load_spam_splits()


def test_book_sizes_labels_and_no_overlap(splits):
    assert {k: len(v) for k, v in splits.items()} == {"train": 1045, "validation": 149, "test": 300}
    assert splits["train"].features["label"].names == ["ham", "spam"]
    rows = load_sms_spam()
    labelled = {}
    for label, text in rows:
        labelled.setdefault(text, set()).add(label)
    seen = []
    for split in splits.values():
        for text, label in zip(split["text"], split["label"], strict=True):
            assert ["ham", "spam"][label] in labelled[text]  # the label is the file's
            seen.append(text)
    counts = [sum(s["label"]) for s in splits.values()]
    assert sum(counts) == 747 and len(seen) == 1494  # all spam, as much ham
    # The preparation is seeded: the same splits every time.
    again = load_spam_splits()
    assert again["test"]["text"] == splits["test"]["text"]


def test_splits_are_disjoint_as_rows(splits):
    """Every row of the balanced set lands in exactly one split: the multiset union is the balanced set."""
    from collections import Counter

    union = Counter()
    for split in splits.values():
        union.update(zip(split["text"], split["label"], strict=True))
    assert sum(union.values()) == 1494
    spam_rows = Counter((t, 1) for label, t in load_sms_spam() if label == "spam")
    assert {k: v for k, v in union.items() if k[1] == 1} == spam_rows


def test_longest_train_padding_and_truncation(splits):
    tokenizer = BPETokenizer.byte_level()
    small = {k: v.select(range(30)) for k, v in splits.items()}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = tokenize_splits(small, tokenizer, context_length=40)
    assert any("truncated" in str(w.message) for w in caught)
    lengths = {len(ids) for split in data.values() for ids in split["input_ids"]}
    assert lengths == {40}
    row = data["train"][0]
    n = sum(row["attention_mask"])
    assert row["input_ids"][:n] == tokenizer.encode_ordinary(small["train"][0]["text"])[:40]
    assert all(i == tokenizer.eot_token for i in row["input_ids"][n:])


def test_dynamic_padding_collator(splits):
    tokenizer = BPETokenizer.byte_level()
    data = tokenize_splits({"train": splits["train"].select(range(4))}, tokenizer, context_length=1000,
                           padding="dynamic")
    features = [data["train"][i] for i in range(4)]
    batch = PadCollator(tokenizer.eot_token)(features)
    longest = max(len(f["input_ids"]) for f in features)
    assert batch["input_ids"].shape == (4, longest) and batch["input_ids"].device == torch.device("cpu")
    assert batch["attention_mask"].sum(1).tolist() == [len(f["input_ids"]) for f in features]
    assert batch["labels"].tolist() == [f["label"] for f in features]
    left = PadCollator(tokenizer.eot_token, padding_side="left")(features)
    assert left["attention_mask"][:, -1].all()


def test_empty_message_is_an_error():
    from datasets import Dataset

    data = {"train": Dataset.from_dict({"text": ["hello", ""], "label": [0, 1]})}
    with pytest.raises(ValueError, match="empty"):
        tokenize_splits(data, BPETokenizer.byte_level(), context_length=16)


def test_metric_modules_load_offline():
    accuracy = evaluate.load(metric_path("accuracy"))
    prf = evaluate.load(metric_path("precision_recall_f1"))
    predictions, references = [1, 1, 0, 0, 1], [1, 0, 0, 1, 1]
    assert accuracy.compute(predictions=predictions, references=references) == {"accuracy": 0.6}
    scores = prf.compute(predictions=predictions, references=references)
    assert scores["precision"] == pytest.approx(2 / 3) and scores["recall"] == pytest.approx(2 / 3)
    assert scores["f1"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="no metric module"):
        metric_path("bleu")
