"""Every knob of a pretraining run in one dataclass, checked once before anything is loaded."""

import dataclasses
from dataclasses import dataclass

ENGINES = ("trainer", "loop")


@dataclass
class PretrainConfig:
    # Data: a named source (the-verdict, tinyshakespeare), a text file, or None for the corpus the package ships.
    corpus: str | None = None
    # "gpt2" (OpenAI's BPE), "bytes" (256 byte ids + <|endoftext|>), or a folder of a BPE trained with
    # `hf-scratch tokenizer train`; None: bytes for the shipped corpus, gpt2 otherwise.
    tokenizer: str | None = None
    train_ratio: float = 0.9
    stride: int | None = None  # between training windows; None = max_length (no overlap), 1 = every offset

    # Model: a GPT-2 preset, or explicit dimensions.
    preset: str | None = None
    n_layers: int = 4
    emb_dim: int = 128
    n_heads: int = 4
    context_length: int = 128
    drop_rate: float = 0.0
    qkv_bias: bool = False
    tie_word_embeddings: bool = True  # GPT-2 ties the output head to the token embedding; the book's GPTModel not
    embedding_init_std: float | None = None  # None: GPT-2's 0.02; 1.0: PyTorch's default, as the book's GPTModel
    max_length: int | None = None  # tokens of input per window; None = context_length - 1 (see data.windows)

    # Optimisation (book ch. 5, appendix D).
    epochs: float = 1.0
    max_steps: int | None = None  # overrides epochs
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_steps: int = 100
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    max_grad_norm: float = 1.0
    bf16: bool = False

    # Evaluation and samples.
    eval_every: int = 100
    eval_batches: int | None = None  # None: the whole validation split

    @property
    def eval_batch_size(self) -> int:
        """Evaluation keeps no activations for backward, so it affords batches 4x larger (and fewer of them)."""
        return 4 * self.batch_size
    prompt: str = "The"
    sample_tokens: int = 60
    temperature: float = 0.8
    top_k: int | None = 40

    # Run.
    output_dir: str = "runs/pretrain"
    overwrite: bool = False
    resume: bool = False
    engine: str = "trainer"
    seed: int = 123
    save_every: int | None = None  # None: at every evaluation
    progress: bool = True
    command: str | None = None  # how the run was started, for the model card

    def __post_init__(self):
        positive_ints = ["n_layers", "emb_dim", "n_heads", "context_length", "batch_size", "grad_accum",
                         "eval_every", "sample_tokens"]
        optional_positive_ints = ["max_steps", "max_length", "stride", "eval_batches", "save_every", "top_k"]
        for name in positive_ints + optional_positive_ints:
            value = getattr(self, name)
            if value is None and name in optional_positive_ints:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("lr", "epochs"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if not 0 <= self.min_lr <= self.lr:
            raise ValueError(f"min_lr must be in [0, lr={self.lr}], got {self.min_lr}")
        for name in ("warmup_steps",):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.weight_decay < 0 or self.max_grad_norm <= 0 or self.temperature < 0:
            raise ValueError("weight_decay must be >= 0, max_grad_norm > 0 and temperature >= 0")
        if not 0 < self.train_ratio < 1:
            raise ValueError(f"train_ratio must be strictly between 0 and 1, got {self.train_ratio}")
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {self.engine!r}")
        if self.max_length is not None and self.max_length + 1 > self.context_length:
            raise ValueError(
                f"max_length {self.max_length} needs {self.max_length + 1} positions (inputs and the last target) "
                f"but context_length is {self.context_length}"
            )
        if self.preset is not None:
            from ..model.configuration_scratch_gpt import GPT2_PRESETS, PRESET_ALIASES

            if self.preset not in GPT2_PRESETS and self.preset not in PRESET_ALIASES:
                raise ValueError(f"unknown preset {self.preset!r}; known presets: "
                                 f"{', '.join([*GPT2_PRESETS, *PRESET_ALIASES])}")
        if self.overwrite and self.resume:
            raise ValueError("choose either overwrite (start again) or resume (continue), not both")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
