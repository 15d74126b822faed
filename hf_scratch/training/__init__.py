"""Pretraining (book ch. 5, appendix D): one config, two interchangeable loops (Trainer, from scratch)."""

from .config import PretrainConfig
from .optim import build_optimizer, warmup_cosine_lr, warmup_cosine_schedule
from .run import pretrain, resume_config

__all__ = ["PretrainConfig", "build_optimizer", "pretrain", "resume_config", "warmup_cosine_lr",
           "warmup_cosine_schedule"]
