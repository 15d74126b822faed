import torch
from datasets import Dataset
from transformers import Trainer, TrainingArguments

from hf_scratch.model import ScratchGPTForCausalLM


def test_trainer_trains_and_the_loss_falls(tmp_path, tiny_config):
    torch.manual_seed(0)
    model = ScratchGPTForCausalLM(tiny_config(drop_rate=0.1))
    # A repeating pattern a tiny model can learn in a few dozen steps.
    pattern = torch.arange(32) % 7 + 3
    data = Dataset.from_dict({"input_ids": [pattern.roll(i).tolist() for i in range(16)]})
    data = data.map(lambda row: {"labels": row["input_ids"]})
    args = TrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=8, gradient_accumulation_steps=2, max_steps=30,
        learning_rate=3e-3, logging_steps=5, save_strategy="no", report_to=[], use_cpu=True, seed=0,
        disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=data)
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 6
    assert losses[0] > 3.0  # about ln(97) at the start
    assert losses[-1] < 0.5 * losses[0]


def test_loss_divides_by_num_items_in_batch(tiny_config):
    """Trainer's token-weighted gradient accumulation: sum of token losses / items, not a mean of means."""
    torch.manual_seed(0)
    model = ScratchGPTForCausalLM(tiny_config()).eval()
    ids = torch.randint(0, 97, (2, 10))
    labels = ids.clone()
    labels[0, :6] = -100
    mean = model(ids, labels=labels).loss
    scored = int((labels[:, 1:] != -100).sum())  # the model shifts: position t predicts label t + 1
    summed = model(ids, labels=labels, num_items_in_batch=1).loss
    torch.testing.assert_close(summed, mean * scored)
    torch.testing.assert_close(model(ids, labels=labels, num_items_in_batch=40).loss, mean * scored / 40)
