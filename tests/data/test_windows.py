"""Pretraining windows: the book's sliding window, its loss, and the train/validation split."""

import pytest
import torch
import torch.nn.functional as F
from datasets import DatasetDict

from hf_scratch.data import (
    book_inputs_targets,
    create_dataloader,
    pretraining_datasets,
    split_token_ids,
    windows_dataset,
)


def book_windows(ids, max_length, stride):
    """The book's GPTDatasetV1 loop, written out: (inputs, targets) pairs."""
    pairs = []
    for i in range(0, len(ids) - max_length, stride):
        pairs.append((ids[i : i + max_length], ids[i + 1 : i + max_length + 1]))
    return pairs


@pytest.fixture(scope="module")
def verdict_ids(corpora, reference_gpt2):
    ids = reference_gpt2.encode(corpora["the-verdict"])
    assert len(ids) == 5145  # the book's count
    return ids


@pytest.mark.parametrize("max_length,stride", [(4, 1), (4, 4), (8, 5), (256, 128), (256, 256), (5144, 1)])
def test_windows_are_the_books(max_length, stride, verdict_ids):
    dataset = windows_dataset(verdict_ids, max_length, stride)
    expected = book_windows(verdict_ids, max_length, stride)
    assert len(dataset) == len(expected)
    for row, (inputs, targets) in zip(dataset, expected, strict=True):
        assert row["input_ids"].tolist() == inputs + targets[-1:]
        assert torch.equal(row["labels"], row["input_ids"])
        assert row["input_ids"][:-1].tolist() == inputs and row["input_ids"][1:].tolist() == targets


def test_book_ch2_and_ch5_counts(verdict_ids, corpora):
    assert len(windows_dataset(verdict_ids, 4, 4)) == 1286
    splits = pretraining_datasets(corpora["the-verdict"], max_length=256, stride=256, train_ratio=0.9)
    assert isinstance(splits, DatasetDict)
    # The book's ch. 5: 9 batches of 2 for training, 1 batch of 2 for validation.
    assert (len(splits["train"]), len(splits["validation"])) == (18, 2)


def test_loss_and_predicted_tokens_match_the_book(verdict_ids):
    from hf_scratch.model import ScratchGPTConfig, ScratchGPTForCausalLM

    torch.manual_seed(0)
    max_length = 16
    config = ScratchGPTConfig(vocab_size=50257, context_length=max_length + 1, emb_dim=32, n_heads=4, n_layers=2,
                              drop_rate=0.0)
    model = ScratchGPTForCausalLM(config).eval()
    loader = create_dataloader(verdict_ids[:400], batch_size=3, max_length=max_length, stride=max_length,
                               shuffle=False)
    batch = next(iter(loader))
    assert batch["input_ids"].shape == batch["labels"].shape == (3, max_length + 1)
    inputs, targets = book_inputs_targets(batch)
    expected = book_windows(verdict_ids[:400], max_length, max_length)[:3]
    assert inputs.tolist() == [i for i, _ in expected] and targets.tolist() == [t for _, t in expected]
    with torch.no_grad():
        book_logits = model(inputs).logits
        book_loss = F.cross_entropy(book_logits.flatten(0, 1), targets.flatten())
        ours = model(**batch)
    # Same max_length predictions per window, same logits on them, same loss.
    assert targets.shape[1] == max_length
    torch.testing.assert_close(ours.logits[:, :-1], book_logits)
    torch.testing.assert_close(ours.loss, book_loss)


def test_no_token_lost_at_the_split(verdict_ids):
    for ratio in (0.1, 0.5, 0.85, 0.9):
        train, validation = split_token_ids(verdict_ids, ratio)
        assert train + validation[1:] == verdict_ids  # every token in exactly one stream, in order
        assert validation[0] == train[-1]  # shared context token, so validation's first token is a target
    splits = pretraining_datasets(verdict_ids, max_length=4, stride=4, train_ratio=0.9)
    boundary = round(0.9 * len(verdict_ids))
    train_targets = splits["train"][:]["input_ids"][:, 1:].flatten().tolist()
    validation_targets = splits["validation"][:]["input_ids"][:, 1:].flatten().tolist()
    # With stride == max_length the targets tile each stream: train predicts ids[1:...], validation from ids[boundary].
    assert train_targets == verdict_ids[1 : 1 + len(train_targets)]
    assert validation_targets == verdict_ids[boundary : boundary + len(validation_targets)]
    assert boundary - (1 + len(train_targets)) < 4  # only a tail shorter than one window is left unpredicted


def test_dataloader_book_arguments(verdict_ids):
    loader = create_dataloader(verdict_ids, batch_size=8, max_length=4, stride=4, shuffle=True, drop_last=True,
                               seed=123)
    assert loader.num_workers == 0 and loader.drop_last
    assert len(loader) == 1286 // 8
    first = next(iter(loader))
    assert set(first) == {"input_ids", "labels"} and first["input_ids"].dtype == torch.long
    again = next(iter(create_dataloader(verdict_ids, batch_size=8, max_length=4, stride=4, seed=123)))
    assert torch.equal(first["input_ids"], again["input_ids"])
    keep_last = create_dataloader(verdict_ids, batch_size=8, max_length=4, stride=4, shuffle=False, drop_last=False)
    assert len(keep_last) == -(-1286 // 8)


def test_text_with_tokenizers(corpora, gpt2_bpe):
    text = corpora["the-verdict"][:3000] + "<|endoftext|>" + corpora["the-verdict"][3000:6000]
    ours = pretraining_datasets(text, gpt2_bpe, max_length=32, stride=16)
    default = pretraining_datasets(text, max_length=32, stride=16)  # GPT-2 through tiktoken
    assert torch.equal(ours["train"][:]["input_ids"], default["train"][:]["input_ids"])
    everything = torch.cat([ours["train"][:]["input_ids"].flatten(), ours["validation"][:]["input_ids"].flatten()])
    assert 50256 in everything.tolist()


# ------------------------------------------------------------------------------------------------------ bad input
def test_empty_corpus():
    with pytest.raises(ValueError, match="corpus is empty"):
        pretraining_datasets("", max_length=4)
    with pytest.raises(ValueError, match="corpus is empty"):
        create_dataloader([], max_length=4)


def test_corpus_shorter_than_one_window():
    with pytest.raises(ValueError, match="has 4 tokens, fewer than one window of max_length \\+ 1 = 5"):
        windows_dataset([1, 2, 3, 4], max_length=4, stride=1)
    with pytest.raises(ValueError, match="validation split has .* fewer than one window"):
        pretraining_datasets(list(range(100)), max_length=16, train_ratio=0.9)


@pytest.mark.parametrize("stride", [0, -1, 1.5])
def test_bad_stride(stride):
    with pytest.raises(ValueError, match="stride must be a positive integer"):
        windows_dataset(list(range(20)), max_length=4, stride=stride)


def test_bad_ratio_and_context():
    with pytest.raises(ValueError, match="train_ratio must be a number strictly between 0 and 1"):
        pretraining_datasets(list(range(100)), max_length=4, train_ratio=1.0)
    with pytest.raises(ValueError, match="needs 257 positions .* context_length is 256"):
        pretraining_datasets(list(range(1000)), max_length=256, context_length=256)
