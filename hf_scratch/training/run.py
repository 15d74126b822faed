"""``pretrain(config)``: data, model, either loop, and the run folder a person and the Hub can use."""

import json
import math
import time
from pathlib import Path

from transformers import set_seed

from ..hub import write_model_card
from ..tokenizers import save_hf_tokenizer
from .common import build_model, checkpoints_of, distributed_state, finish_processes, reset_run_dir
from .config import PretrainConfig
from .data import EMBEDDED_CORPUS, prepare_data
from .loop import train_with_loop
from .report import RunLog, write_outputs
from .trainer_engine import train_with_trainer


def prepare_run_dir(config: PretrainConfig) -> Path:
    """Refuse to clobber a previous run unless told: ``overwrite`` starts again, ``resume`` continues it."""
    run_dir = Path(config.output_dir)
    occupied = run_dir.exists() and any(run_dir.iterdir())
    checkpoints = run_dir / "checkpoints"
    if config.resume:
        prefix = "checkpoint-" if config.engine == "trainer" else "step-"
        if not checkpoints_of(checkpoints, prefix):
            raise FileNotFoundError(f"nothing to resume: {checkpoints} holds no checkpoint")
        return run_dir
    if occupied and not config.overwrite:
        raise FileExistsError(f"run folder {run_dir} is not empty; pass --resume to continue that run or "
                              f"--overwrite to replace it (or choose another --output-dir)")
    return reset_run_dir(run_dir, occupied)


def total_steps_of(config: PretrainConfig, n_windows: int, world_size: int) -> int:
    if config.max_steps:
        return config.max_steps
    windows_per_step = config.batch_size * config.grad_accum * world_size
    return max(1, math.ceil(config.epochs * n_windows / windows_per_step))


def resume_config(output_dir: str, progress: bool = True) -> PretrainConfig:
    """The configuration a run folder was started with, set to resume."""
    path = Path(output_dir) / "training_config.json"
    if not path.is_file():
        raise FileNotFoundError(f"nothing to resume: {path} does not exist")
    saved = json.loads(path.read_text())
    return PretrainConfig(**{**saved, "resume": True, "overwrite": False, "progress": progress})


def pretrain(config: PretrainConfig) -> dict:
    """Train a GPT as ``config`` says and write the run folder; returns the metrics (also in metrics.json)."""
    state = distributed_state()
    data = prepare_data(config)  # all input errors surface here, before anything is written
    run_dir = prepare_run_dir(config)
    if state.is_main_process:
        if data.corpus_name == EMBEDDED_CORPUS and not config.resume:
            print(f"Training on '{EMBEDDED_CORPUS}', the short original text shipped with hf_scratch. For the "
                  f"book's data: hf-scratch pretrain --corpus the-verdict (or --corpus tinyshakespeare "
                  f"--tokenizer bytes), with HF_SCRATCH_DATA pointing at the data or a network to download it.")
        (run_dir / "training_config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")

    set_seed(config.seed)
    model = build_model(config, data.tokenizer.vocab_size, data.tokenizer.eot_token)
    total_steps = total_steps_of(config, len(data.train), state.num_processes)
    tokens_per_step = config.batch_size * config.grad_accum * state.num_processes * data.max_length
    log = RunLog(tokens_per_step=tokens_per_step)
    engine = train_with_trainer if config.engine == "trainer" else train_with_loop
    started = time.perf_counter()
    model, is_main = engine(model, data, config, run_dir, log, total_steps)
    log.wall_seconds += time.perf_counter() - started  # on resume, added to the time already spent
    metrics = write_run_folder(model, data, config, run_dir, log, tokens_per_step) if is_main else {}
    finish_processes()
    return metrics


def write_run_folder(model, data, config: PretrainConfig, run_dir: Path, log: RunLog, tokens_per_step: int) -> dict:
    model.save_pretrained(run_dir)
    save_hf_tokenizer(data.tokenizer, run_dir, model_max_length=config.context_length)
    title = f"{data.corpus_name}: {model.num_parameters():,} parameters, {config.engine}"
    metrics = write_outputs(log, run_dir, title, extra_metrics={
        "corpus": data.corpus_name, "tokenizer": data.tokenizer_name, "parameters": model.num_parameters(),
        "train_windows": len(data.train), "validation_windows": len(data.validation),
        "tokens_per_step": tokens_per_step, "engine": config.engine, "device": str(model.device),
    })
    write_card(run_dir, config, data, metrics)
    return metrics


def write_card(run_dir: Path, config: PretrainConfig, data, metrics: dict):
    """The model card (README.md) of the run folder."""
    hyperparameters = {k: v for k, v in config.to_dict().items()
                       if k not in ("output_dir", "overwrite", "resume", "progress", "command")}
    write_model_card(run_dir, kind="causal-lm", datasets=[data.corpus_name], hyperparameters=hyperparameters,
                     metrics={"validation_loss": metrics["final_validation_loss"],
                              "validation_perplexity": metrics["final_validation_perplexity"]},
                     command=config.command or "hf-scratch pretrain")

