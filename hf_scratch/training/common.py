"""Pieces both training paths share: the model from the config, samples, the progress bar."""

import time
from pathlib import Path

import torch
from accelerate import PartialState
from tqdm.auto import tqdm

from ..generation import generate_tokens
from ..model import ScratchGPTConfig, ScratchGPTForCausalLM
from .config import PretrainConfig
from .optim import warmup_cosine_lr


def distributed_state() -> PartialState:
    """The processes of this run. On a CPU-only machine accelerate needs ``cpu=True`` to see the processes that
    ``accelerate launch`` started (as gloo data-parallel workers); without it each one believes it is alone."""
    return PartialState(cpu=not torch.cuda.is_available())


def reset_run_dir(run_dir: Path, occupied: bool) -> Path:
    """Clear (when ``occupied``) and create ``run_dir``. Every process has looked at it before the main process,
    alone, changes anything, and none goes on before it has."""
    import shutil

    state = distributed_state()
    state.wait_for_everyone()
    if state.is_main_process:
        if occupied:
            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
    state.wait_for_everyone()
    return run_dir


def finish_processes() -> None:
    """Under ``accelerate launch``: leave together, since a worker that exits while the main process still writes
    tears the process group down under it."""
    state = distributed_state()
    if state.num_processes > 1:
        state.wait_for_everyone()
        state.destroy_process_group()


def build_model(config: PretrainConfig, vocab_size: int, eos_token_id: int | None) -> ScratchGPTForCausalLM:
    dims = dict(n_layers=config.n_layers, emb_dim=config.emb_dim, n_heads=config.n_heads)
    special = dict(bos_token_id=eos_token_id, eos_token_id=eos_token_id, pad_token_id=eos_token_id)
    common = dict(vocab_size=vocab_size, context_length=config.context_length, drop_rate=config.drop_rate,
                  tie_word_embeddings=config.tie_word_embeddings, embedding_init_std=config.embedding_init_std,
                  **special)
    if config.preset:
        model_config = ScratchGPTConfig.from_preset(config.preset, qkv_bias=config.qkv_bias, **common)
    else:
        model_config = ScratchGPTConfig(qkv_bias=config.qkv_bias, **dims, **common)
    return ScratchGPTForCausalLM(model_config)


def checkpoints_of(folder: Path, prefix: str) -> list[Path]:
    """``folder/{prefix}N`` checkpoints in step order (``checkpoint-N`` from Trainer, ``step-N`` from the loop)."""
    return sorted(folder.glob(f"{prefix}*"), key=lambda path: int(path.name.rsplit("-", 1)[-1]))


def lr_of_step(config: PretrainConfig, step: int, total_steps: int) -> float:
    """The learning rate optimizer step ``step`` (1-based) used."""
    return warmup_cosine_lr(step - 1, peak_lr=config.lr, warmup_steps=config.warmup_steps,
                            total_steps=total_steps, min_lr=config.min_lr)


def sample_text(model, tokenizer, config: PretrainConfig) -> str:
    """A continuation of the fixed prompt; a private RNG, so sampling never shifts the training run's RNG."""
    device = next(model.parameters()).device
    prompt = torch.tensor([tokenizer.encode(config.prompt, allowed_special="all")], device=device)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    ids = generate_tokens(model, prompt, config.sample_tokens, temperature=config.temperature, top_k=config.top_k,
                          eos_id=tokenizer.eot_token, generator=generator)
    return tokenizer.decode(ids[0].tolist())


class Progress:
    """A tqdm bar over optimizer steps showing loss, learning rate and tokens/s."""

    def __init__(self, total: int, initial: int, tokens_per_step: int, enabled: bool):
        self.bar = tqdm(total=total, initial=initial, desc="pretrain", unit="step", disable=not enabled,
                        dynamic_ncols=True)
        self.tokens_per_step = tokens_per_step
        self.start, self.start_step = time.perf_counter(), initial

    def update(self, step: int, loss: float, lr: float):
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        tokens_per_s = (step - self.start_step) * self.tokens_per_step / elapsed
        self.bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.2e}", tok_s=f"{tokens_per_s:,.0f}", refresh=False)
        self.bar.update(step - self.bar.n)

    def write(self, text: str):
        self.bar.write(text)

    def close(self):
        self.bar.close()
