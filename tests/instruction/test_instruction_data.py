"""Records, the book's split, tokenised examples and the collator's labels on hand-made batches."""

import json

import pytest
import torch

from hf_scratch.instruction import (
    IGNORE_INDEX,
    InstructionCollator,
    build_prompt,
    build_training_text,
    load_instruction_records,
    split_records,
    tokenize_record,
)
from hf_scratch.model import ScratchGPTConfig, ScratchGPTForCausalLM
from hf_scratch.tokenizers import BPETokenizer

EOS = 9


def test_book_split_sizes_and_order():
    records = load_instruction_records()
    assert len(records) == 1100
    splits = split_records(records)
    assert {k: len(v) for k, v in splits.items()} == {"train": 935, "validation": 55, "test": 110}
    # The book slices the file in order: train, then test, then validation.
    assert splits["train"] == records[:935] and splits["test"] == records[935:1045]
    assert splits["validation"] == records[1045:]
    shuffled = split_records(records, seed=1)
    assert shuffled == split_records(records, seed=1) and shuffled["train"] != splits["train"]
    assert sorted(map(json.dumps, sum(shuffled.values(), []))) == sorted(map(json.dumps, records))


def test_collator_pads_keeps_one_end_of_text_target_and_masks_the_rest():
    # Examples end with one end-of-text (the tokenised record appends it); the collator pads the rest.
    features = [{"input_ids": [1, 2, 3, EOS], "labels": [1, 2, 3, EOS]},
                {"input_ids": [4, 5, EOS], "labels": [IGNORE_INDEX, 5, EOS]},
                {"input_ids": [6, EOS], "labels": [6, EOS]}]
    batch = InstructionCollator(pad_token_id=EOS)(features)
    assert batch["input_ids"].tolist() == [[1, 2, 3, EOS], [4, 5, EOS, EOS], [6, EOS, EOS, EOS]]
    assert batch["labels"].tolist() == [[1, 2, 3, EOS], [-100, 5, EOS, -100], [6, EOS, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 0], [1, 1, 0, 0]]
    assert all(t.device.type == "cpu" and t.dtype == torch.long for t in batch.values())


def test_collator_truncates_to_max_length():
    features = [{"input_ids": [1, 2, 3, 4, 5, EOS], "labels": [-100, -100, 3, 4, 5, EOS]},
                {"input_ids": [6, EOS], "labels": [6, EOS]}]
    batch = InstructionCollator(pad_token_id=EOS, max_length=4)(features)
    assert batch["input_ids"].tolist() == [[1, 2, 3, 4], [6, EOS, EOS, EOS]]
    assert batch["labels"].tolist() == [[-100, -100, 3, 4], [6, EOS, -100, -100]]
    with pytest.raises(ValueError, match="max_length must be at least 2"):
        InstructionCollator(pad_token_id=EOS, max_length=1)
    with pytest.raises(ValueError, match="differ in length"):
        InstructionCollator(pad_token_id=EOS)([{"input_ids": [1, 2], "labels": [1]}])


@pytest.fixture(scope="module")
def bpe():
    records = load_instruction_records()[:200]
    return BPETokenizer.train([build_training_text(r) for r in records], vocab_size=400)


@pytest.mark.parametrize("mask_prompt", [False, True])
def test_tokenized_record(bpe, mask_prompt):
    record = {"instruction": "Name the author of 'Pride and Prejudice'.", "input": "", "output": "Jane Austen."}
    eos = bpe.eot_token
    example = tokenize_record(record, bpe.encode_ordinary, eos, mask_prompt=mask_prompt)
    prompt = bpe.encode_ordinary(build_prompt(record))
    assert example["input_ids"] == prompt + bpe.encode_ordinary("Jane Austen.") + [eos]
    assert bpe.decode(example["input_ids"][:-1]) == build_training_text(record)
    expected = ([IGNORE_INDEX] * len(prompt) if mask_prompt else prompt) + example["input_ids"][len(prompt):]
    assert example["labels"] == expected


def test_masked_positions_do_not_move_gradients():
    """Logits whose next label is -100 get exactly zero gradient; the loss is the mean over the kept targets only."""
    torch.manual_seed(0)
    model = ScratchGPTForCausalLM(ScratchGPTConfig(vocab_size=32, context_length=16, emb_dim=16, n_heads=2,
                                                   n_layers=1, drop_rate=0.0))
    ids = torch.tensor([[3, 4, 5, 6, 7, 8, EOS]])
    masked = torch.tensor([[-100, -100, -100, 6, 7, 8, EOS]])
    logits = model(input_ids=ids).logits.detach().requires_grad_(True)
    loss = model.next_token_loss(logits, masked)
    loss.backward()
    assert logits.grad[0, :2].abs().sum() == 0  # positions 0, 1 predict the masked labels at 1, 2
    assert (logits.grad[0, 2:6].abs().sum(-1) > 0).all()  # positions 2..5 predict 6, 7, 8, EOS
    assert logits.grad[0, 6].abs().sum() == 0  # the last position has no next label
    by_hand = torch.nn.functional.cross_entropy(logits[0, 2:6].detach(), torch.tensor([6, 7, 8, EOS]))
    torch.testing.assert_close(loss.detach(), by_hand)
    # Through the whole model: the masked loss equals the model's loss on the response alone.
    assert model(input_ids=ids, labels=masked).loss.item() == pytest.approx(by_hand.item(), rel=1e-6)
    assert model(input_ids=ids, labels=ids).loss.item() != pytest.approx(by_hand.item(), rel=1e-3)


def test_bad_data_files(tmp_path):
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    with pytest.raises(ValueError, match="holds no records"):
        load_instruction_records(empty)
    missing = tmp_path / "missing.json"
    missing.write_text(json.dumps([{"instruction": "a", "output": "b"}, {"instruction": "c", "input": ""}]))
    with pytest.raises(ValueError, match="record 1: missing 'output'"):
        load_instruction_records(missing)
    not_json = tmp_path / "bad.json"
    not_json.write_text("{instruction: 1")
    with pytest.raises(ValueError, match="is not valid JSON"):
        load_instruction_records(not_json)
    dict_file = tmp_path / "dict.json"
    dict_file.write_text(json.dumps({"instruction": "a", "output": "b"}))
    with pytest.raises(ValueError, match="expected a JSON list of records"):
        load_instruction_records(dict_file)
    with pytest.raises(FileNotFoundError):
        load_instruction_records(tmp_path / "nowhere.json")
