"""What a run records, whichever loop drives it: losses, learning rate, tokens seen, samples; and its files."""

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class RunLog:
    tokens_per_step: int  # predicted tokens per optimizer step, all processes together
    steps: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    learning_rate: list[float] = field(default_factory=list)
    evals: list[dict] = field(default_factory=list)
    samples: list[dict] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)
    wall_seconds: float = 0.0

    def log_step(self, step: int, loss: float, lr: float):
        if not math.isfinite(loss):
            raise NonFiniteLossError(step, loss)
        self.steps.append(step)
        self.train_loss.append(loss)
        self.learning_rate.append(lr)

    def log_eval(self, step: int, validation_loss: float) -> dict:
        previous = self.evals[-1]["step"] if self.evals else 0
        recent = [loss for s, loss in zip(self.steps, self.train_loss, strict=True) if previous < s <= step]
        entry = {
            "step": step,
            "tokens_seen": step * self.tokens_per_step,
            # The mean training loss of the steps since the previous evaluation (free: no extra forward passes).
            "train_loss": sum(recent) / len(recent) if recent else None,
            "validation_loss": validation_loss,
            "validation_perplexity": math.exp(min(validation_loss, 50.0)),
        }
        self.evals.append(entry)
        return entry

    def log_sample(self, step: int, text: str):
        self.samples.append({"step": step, "text": text})

    def metrics(self) -> dict:
        final = self.evals[-1] if self.evals else {}
        return {
            "steps": self.steps[-1] if self.steps else 0,
            "tokens_seen": (self.steps[-1] if self.steps else 0) * self.tokens_per_step,
            "wall_seconds": round(self.wall_seconds, 2),
            "final_train_loss": final.get("train_loss"),
            "final_validation_loss": final.get("validation_loss"),
            "final_validation_perplexity": final.get("validation_perplexity"),
            "best_validation_loss": min((e["validation_loss"] for e in self.evals), default=None),
            "evaluations": self.evals,
            "train_loss_per_step": [{"step": s, "loss": l, "lr": r}
                                    for s, l, r in zip(self.steps, self.train_loss, self.learning_rate, strict=True)],
        }

    def to_state(self) -> dict:
        return {"steps": self.steps, "train_loss": self.train_loss, "learning_rate": self.learning_rate,
                "evals": self.evals, "samples": self.samples, "wall_seconds": self.wall_seconds}

    def load_state(self, state: dict):
        for key, value in state.items():
            setattr(self, key, value)


class NonFiniteLossError(ArithmeticError):
    def __init__(self, step: int, loss: float):
        super().__init__(f"the training loss became {loss} at step {step}; stopping (try a lower learning rate, "
                         f"bf16 off, or stronger gradient clipping). The last good checkpoint is kept.")
        self.step, self.loss = step, loss


def plot_losses(log: RunLog, path: Path, title: str):
    """Train and validation loss against steps, tokens seen on a second x axis (as the book's figure 5.12)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(log.steps, log.train_loss, label="training loss (per step)", alpha=0.6, linewidth=1)
    if log.evals:
        ax.plot([e["step"] for e in log.evals], [e["validation_loss"] for e in log.evals], "o-",
                label="validation loss", linewidth=2)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy loss")
    ax.set_title(title)
    ax.legend(loc="upper right")
    ax.grid(alpha=0.3)
    per_step = log.tokens_per_step
    top = ax.secondary_xaxis("top", functions=(lambda s: s * per_step, lambda t: t / per_step))
    top.set_xlabel("tokens seen")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_outputs(log: RunLog, run_dir: Path, title: str, extra_metrics: dict | None = None) -> dict:
    metrics = {**log.metrics(), **(extra_metrics or {})}
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    with open(run_dir / "samples.txt", "w", encoding="utf-8") as out:
        for sample in log.samples:
            out.write(f"--- step {sample['step']} ---\n{sample['text']}\n\n")
    plot_losses(log, run_dir / "loss.png", title)
    return metrics
