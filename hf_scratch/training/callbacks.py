"""A Trainer callback for the finetuning commands: a tqdm bar over optimizer steps and a line per epoch."""

from transformers import TrainerCallback

TIMINGS = ("_runtime", "_per_second", "_model_preparation_time")  # Trainer's timings: not model metrics


class EpochProgress(TrainerCallback):
    """Shows loss and learning rate on a bar and records, in ``history``, the logged training losses
    (``steps``, ``train_loss``) and each epoch's evaluation (``epochs``: dicts with ``epoch``, ``step`` and the
    evaluation's metrics without the ``eval_`` prefix, e.g. ``validation_loss``). ``describe(entry)`` returns the
    line printed once an epoch's entry is complete, or None while it is not. Evaluations before training starts
    or after it ends are the caller's to report."""

    def __init__(self, history: dict, total_steps: int, scheduler, describe, enabled: bool = True):
        history.setdefault("steps", [])
        history.setdefault("train_loss", [])
        history.setdefault("epochs", [])
        self.history, self.total_steps, self.scheduler = history, total_steps, scheduler
        self.describe, self.enabled = describe, enabled
        self.bar, self.done = None, False

    def on_train_begin(self, args, state, control, **kwargs):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=self.total_steps, desc="finetune", unit="step", dynamic_ncols=True,
                        disable=not (self.enabled and state.is_world_process_zero))

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs and not self.done:
            self.history["steps"].append(state.global_step)
            self.history["train_loss"].append(float(logs["loss"]))
            self.bar.set_postfix(loss=f"{logs['loss']:.3f}", lr=f"{self.scheduler.get_last_lr()[0]:.2e}",
                                 refresh=False)
            self.bar.update(state.global_step - self.bar.n)

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if self.bar is None or self.done:
            return
        epochs, epoch = self.history["epochs"], round(state.epoch or 0)
        if not epochs or epochs[-1]["epoch"] != epoch:
            epochs.append({"epoch": epoch, "step": state.global_step})
        epochs[-1].update({k.removeprefix("eval_"): v for k, v in (metrics or {}).items()
                           if k != "epoch" and not k.endswith(TIMINGS)})
        line = self.describe(epochs[-1])
        if line and not self.bar.disable:  # tqdm.write prints even for a disabled bar
            self.bar.write(line)

    def on_train_end(self, args, state, control, **kwargs):
        self.bar.update(state.global_step - self.bar.n)
        self.bar.close()
        self.done = True
