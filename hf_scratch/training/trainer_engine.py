"""The run driven by ``transformers.Trainer`` (on ``accelerate``), the path that scales to many GPUs."""

import json
from pathlib import Path

import torch
from transformers import PrinterCallback, Trainer, TrainerCallback, TrainingArguments

from ..data import EpochShuffler
from .common import Progress, checkpoints_of, distributed_state, lr_of_step, sample_text
from .optim import build_optimizer, warmup_cosine_schedule
from .report import NonFiniteLossError, RunLog

RUN_LOG_FILE = "run_log.json"


class SharedOrderTrainer(Trainer):
    """Trainer with the run's sampler (an order from the seed alone: the same in the from-scratch loop, in every
    process of a data-parallel run, and in a one-process run of the same global batch) and a stop on a non-finite
    loss. Pretraining and instruction finetuning use it."""

    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        return EpochShuffler(len(dataset), self.args.seed)

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        if not torch.isfinite(loss).all():
            raise NonFiniteLossError(self.state.global_step + 1, loss.item())
        return loss


class RunCallback(TrainerCallback):
    """Feeds the RunLog and the progress bar, samples text at each evaluation, saves the log with checkpoints."""

    def __init__(self, log: RunLog, data, config, total_steps: int):
        self.log, self.data, self.config, self.total_steps = log, data, config, total_steps
        self.progress = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.progress = Progress(self.total_steps, state.global_step, self.log.tokens_per_step,
                                 enabled=self.config.progress and state.is_world_process_zero)

    def on_log(self, args, state, control, logs=None, model=None, **kwargs):
        logs = logs or {}
        step = state.global_step
        if "loss" in logs:
            lr = lr_of_step(self.config, step, self.total_steps)
            self.log.log_step(step, float(logs["loss"]), lr)
            self.progress.update(step, float(logs["loss"]), lr)
        if "eval_loss" in logs:
            entry = self.log.log_eval(step, float(logs["eval_loss"]))
            text = ""
            if state.is_world_process_zero:
                text = sample_text(model, self.data.tokenizer, self.config)
                self.progress.write(f"step {step}: train {entry['train_loss']:.3f}, validation "
                                    f"{entry['validation_loss']:.3f} (perplexity {entry['validation_perplexity']:.1f})"
                                    f"\n  sample: {text!r}")
            self.log.log_sample(step, text)

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            (folder / RUN_LOG_FILE).write_text(json.dumps(self.log.to_state()))

    def on_train_end(self, args, state, control, **kwargs):
        self.progress.close()


def last_checkpoint(checkpoints: Path) -> Path | None:
    found = checkpoints_of(checkpoints, "checkpoint-")
    return found[-1] if found else None


def train_with_trainer(model, data, config, run_dir: Path, log: RunLog, total_steps: int):
    validation = data.validation
    if config.eval_batches is not None:  # batches of the global batch size, as the loop engine counts them
        count = min(len(validation), config.eval_batches * config.eval_batch_size * distributed_state().num_processes)
        validation = torch.utils.data.Subset(validation, range(count))
    args = TrainingArguments(
        output_dir=str(run_dir / "checkpoints"),
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.eval_batch_size,
        gradient_accumulation_steps=config.grad_accum,
        max_steps=total_steps,
        max_grad_norm=config.max_grad_norm,
        logging_steps=1,
        logging_nan_inf_filter=False,  # a NaN must stop the run, not be averaged away
        eval_strategy="steps",
        eval_steps=config.eval_every,
        save_strategy="steps",
        save_steps=config.save_every or config.eval_every,
        save_total_limit=2,
        seed=config.seed,
        bf16=config.bf16,
        use_cpu=not torch.cuda.is_available(),
        report_to=[],
        disable_tqdm=True,  # our bar shows loss, lr and tokens/s instead of a line per log
        prediction_loss_only=True,
        ddp_find_unused_parameters=False,
        dataloader_num_workers=0,
    )
    optimizer = build_optimizer(model, lr=config.lr, weight_decay=config.weight_decay,
                                betas=(config.beta1, config.beta2))
    scheduler = warmup_cosine_schedule(optimizer, warmup_steps=config.warmup_steps, total_steps=total_steps,
                                       min_lr=config.min_lr)
    trainer = SharedOrderTrainer(
        model=model, args=args, train_dataset=data.train, eval_dataset=validation,
        optimizers=(optimizer, scheduler), callbacks=[RunCallback(log, data, config, total_steps)],
    )
    trainer.remove_callback(PrinterCallback)  # the bar and the evaluation lines say it; no dict per step
    resume_from = None
    if config.resume:
        resume_from = last_checkpoint(run_dir / "checkpoints")
        log.load_state(json.loads((resume_from / RUN_LOG_FILE).read_text()))
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    if not log.evals or log.evals[-1]["step"] != total_steps:
        trainer.evaluate()  # the final figures are always those of the final weights
    return trainer.model, trainer.is_world_process_zero()
