"""The book's training loop (ch. 5.2) with appendix D's warmup, cosine decay and clipping, in plain PyTorch.

``accelerate.Accelerator`` only places the model and data on the device(s) and handles gradient accumulation; the
loop itself is the book's: loss over batches, backward, step, evaluate every few steps, print a sample.
"""

import json
import shutil
from pathlib import Path

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader

from ..data import EpochShuffler
from .common import Progress, checkpoints_of, lr_of_step, sample_text
from .optim import build_optimizer, warmup_cosine_schedule
from .report import NonFiniteLossError, RunLog

STATE_FILE = "loop_state.json"


@torch.no_grad()
def evaluate(model, loader, accelerator, max_batches: int | None = None) -> float:
    """Mean loss per predicted token over the loader (``max_batches`` of it, if given), the book's calc_loss_loader."""
    model.eval()
    total, count = torch.zeros((), device=accelerator.device), torch.zeros((), device=accelerator.device)
    for i, batch in enumerate(loader):
        if max_batches is not None and i >= max_batches:
            break
        loss = model(**batch).loss
        tokens = torch.tensor(float(batch["input_ids"].shape[0]), device=accelerator.device)
        total += loss * tokens
        count += tokens
    model.train()
    total, count = accelerator.reduce(total, "sum"), accelerator.reduce(count, "sum")
    return (total / count).item()


def train_with_loop(model, data, config, run_dir: Path, log: RunLog, total_steps: int):
    accelerator = Accelerator(gradient_accumulation_steps=config.grad_accum,
                              mixed_precision="bf16" if config.bf16 else "no", cpu=not torch.cuda.is_available())
    sampler = EpochShuffler(len(data.train), config.seed)
    # A private generator: starting a DataLoader iterator draws a seed, and from the global RNG that would shift
    # the dropout masks of a resumed run (which starts its iterator at another moment).
    train_loader = DataLoader(data.train, batch_size=config.batch_size, sampler=sampler,
                              generator=torch.Generator().manual_seed(config.seed))
    val_loader = DataLoader(data.validation, batch_size=config.eval_batch_size)
    optimizer = build_optimizer(model, lr=config.lr, weight_decay=config.weight_decay,
                                betas=(config.beta1, config.beta2))
    # Stepped by hand once per optimizer step: a prepared scheduler steps once per process.
    scheduler = warmup_cosine_schedule(optimizer, warmup_steps=config.warmup_steps, total_steps=total_steps,
                                       min_lr=config.min_lr)
    model, optimizer, train_loader, val_loader = accelerator.prepare(model, optimizer, train_loader, val_loader)
    accelerator.register_for_checkpointing(scheduler)

    step, epoch, batches_done = 0, 0, 0  # batches_done: micro-batches of the current epoch already used
    checkpoints = run_dir / "checkpoints"
    if config.resume:
        folder = checkpoints_of(checkpoints, "step-")[-1]
        accelerator.load_state(str(folder))
        state = json.loads((folder / STATE_FILE).read_text())
        step, epoch, batches_done = state["step"], state["epoch"], state["batches_done"]
        log.load_state(state["log"])

    progress = Progress(total_steps, step, log.tokens_per_step,
                        enabled=config.progress and accelerator.is_main_process)
    model.train()
    window_losses = []
    while step < total_steps:
        train_loader.set_epoch(epoch)
        loader = accelerator.skip_first_batches(train_loader, batches_done) if batches_done else train_loader
        for batch in loader:
            batches_done += 1
            with accelerator.accumulate(model):
                loss = model(**batch).loss
                if not torch.isfinite(loss):
                    raise NonFiniteLossError(step + 1, loss.item())
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad()
            window_losses.append(loss.detach())
            if not accelerator.sync_gradients:
                continue
            scheduler.step()
            step += 1
            step_loss = accelerator.reduce(torch.stack(window_losses).mean(), "mean").item()
            window_losses = []
            lr = lr_of_step(config, step, total_steps)
            log.log_step(step, step_loss, lr)
            progress.update(step, step_loss, lr)
            if step % config.eval_every == 0 or step == total_steps:
                entry = log.log_eval(step, evaluate(model, val_loader, accelerator, config.eval_batches))
                text = sample_text(accelerator.unwrap_model(model), data.tokenizer, config) \
                    if accelerator.is_main_process else ""
                log.log_sample(step, text)
                progress.write(f"step {step}: train {entry['train_loss']:.3f}, validation "
                               f"{entry['validation_loss']:.3f} (perplexity {entry['validation_perplexity']:.1f})"
                               f"\n  sample: {text!r}")
            if step % (config.save_every or config.eval_every) == 0 and step < total_steps:
                _save(accelerator, checkpoints / f"step-{step}", step, epoch, batches_done, log)
            if step >= total_steps:
                break
        else:
            epoch, batches_done = epoch + 1, 0
    progress.close()
    accelerator.wait_for_everyone()
    return accelerator.unwrap_model(model), accelerator.is_main_process


def _save(accelerator, folder: Path, step: int, epoch: int, batches_done: int, log: RunLog):
    accelerator.save_state(str(folder))
    if accelerator.is_main_process:
        state = {"step": step, "epoch": epoch, "batches_done": batches_done, "log": log.to_state()}
        (folder / STATE_FILE).write_text(json.dumps(state))
        for old in checkpoints_of(folder.parent, "step-")[:-2]:
            shutil.rmtree(old, ignore_errors=True)  # keep the last two, as the Trainer path does
