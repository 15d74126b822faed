"""The book's classifier (ch. 6): the GPT backbone with a ``num_labels``-way head read at one position.

Only relative imports inside this folder, as for the causal LM: ``save_pretrained`` ships this file (and the ones it
imports) with the checkpoint, so it loads with ``trust_remote_code=True`` where ``hf_scratch`` is not installed.
The backbone sits under ``model`` (the same ``base_model_prefix`` as ``ScratchGPTForCausalLM``), so
``ScratchGPTForSequenceClassification.from_pretrained(causal_lm_folder, num_labels=2)`` loads every backbone
tensor of a causal-LM checkpoint and initialises only the head. The head is called ``score``, the name peft's
``task_type="SEQ_CLS"`` looks for, so a LoRA run trains and saves it.
"""

import torch
import torch.nn.functional as F
from torch import nn
from transformers.modeling_outputs import SequenceClassifierOutputWithPast

from .configuration_scratch_gpt import ScratchGPTConfig
from .gpt2_interop import load_gpt2_model
from .modeling_scratch_gpt import ScratchGPTForCausalLM, ScratchGPTModel, ScratchGPTPreTrainedModel

POOLINGS = ("last_non_pad", "last")
DEFAULT_POOLING = "last_non_pad"


def check_num_labels(num_labels) -> int:
    if isinstance(num_labels, bool) or not isinstance(num_labels, int) or num_labels < 2:
        raise ValueError(f"num_labels must be an integer >= 2 for classification, got {num_labels!r}")
    return num_labels


def pooling_of(config) -> str:
    # Read with a default so configs of causal-LM checkpoints (which have no such field) work unchanged.
    pooling = getattr(config, "classifier_pooling", None) or DEFAULT_POOLING
    if pooling not in POOLINGS:
        raise ValueError(f"classifier_pooling must be one of {POOLINGS}, got {pooling!r}")
    return pooling


def pooled_positions(attention_mask: torch.Tensor | None, batch: int, seq_len: int, pooling: str,
                     device=None) -> torch.Tensor:
    """[B] index of the position each row's label is read from.

    ``"last"`` is the book's choice: the final position, right for unpadded or left-padded batches only.
    ``"last_non_pad"`` is the last position whose mask is 1, right for left and right padding alike (the book's own
    ablation shows that reading the last real token beats reading a padding token)."""
    if pooling == "last" or attention_mask is None:
        return torch.full((batch,), seq_len - 1, dtype=torch.long, device=device)
    mask = attention_mask.bool()
    if not bool(mask.any(dim=-1).all()):
        empty = int((~mask.any(dim=-1)).nonzero()[0])
        raise ValueError(f"row {empty} of the batch has no tokens (its attention_mask is all 0): empty input")
    # (position + 1) where the mask is 1, 0 elsewhere: the argmax is the last real token.
    ranks = mask.long() * torch.arange(1, seq_len + 1, device=mask.device)
    return ranks.argmax(dim=-1)


class ScratchGPTForSequenceClassification(ScratchGPTPreTrainedModel):
    """GPT backbone + ``score`` (``emb_dim`` -> ``num_labels``) applied to the pooled position; cross-entropy
    loss from ``labels`` (``-100`` ignored). ``config.classifier_pooling``: ``"last_non_pad"`` (default) or
    ``"last"``."""

    def __init__(self, config: ScratchGPTConfig, classifier_pooling: str | None = None):
        # from_pretrained(causal_lm_dir, classifier_pooling=...) passes the keyword here, since the saved config
        # has no such field; it belongs on the config, which save_pretrained writes.
        if classifier_pooling is not None:
            config.classifier_pooling = classifier_pooling
        check_num_labels(config.num_labels)
        pooling_of(config)
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = ScratchGPTModel(config)
        self.score = nn.Linear(config.emb_dim, config.num_labels, bias=True)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.tok_emb

    def set_input_embeddings(self, value: nn.Embedding):
        self.model.tok_emb = value

    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        labels: torch.LongTensor | None = None,
        return_dict: bool = True,
        **kwargs,  # what Trainer may pass (num_items_in_batch); the loss is a mean over examples either way
    ) -> SequenceClassifierOutputWithPast | tuple:
        """``input_ids``: [B, T]; ``attention_mask``: [B, T] (left or right padding); ``labels``: [B] class ids
        in [0, num_labels) or -100. Returns logits [B, num_labels]."""
        outputs = self.model(input_ids, attention_mask, position_ids, use_cache=False)
        hidden = outputs.last_hidden_state  # [B, T, emb_dim]
        batch, seq_len = input_ids.shape
        index = pooled_positions(attention_mask, batch, seq_len, pooling_of(self.config), hidden.device)
        pooled = hidden[torch.arange(batch, device=hidden.device), index]  # [B, emb_dim]
        logits = self.score(pooled)  # [B, num_labels]

        loss = None
        if labels is not None:
            loss = self.classification_loss(logits, labels)
        output = SequenceClassifierOutputWithPast(loss=loss, logits=logits)
        return output if return_dict else output.to_tuple()

    def classification_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        labels = torch.as_tensor(labels, device=logits.device)
        if labels.dtype.is_floating_point or labels.shape != logits.shape[:1]:
            raise ValueError(f"labels must be integer class ids of shape ({logits.shape[0]},), got "
                             f"{labels.dtype} {tuple(labels.shape)}")
        valid = (labels == -100) | ((labels >= 0) & (labels < self.num_labels))
        if not bool(valid.all()):
            bad = int(labels[~valid][0])
            raise ValueError(f"label {bad} is outside the label set [0, {self.num_labels}) (use -100 to ignore)")
        return F.cross_entropy(logits.float(), labels.long(), ignore_index=-100)

    @classmethod
    def from_gpt2(cls, source, num_labels: int = 2, **config_overrides) -> "ScratchGPTForSequenceClassification":
        """OpenAI GPT-2 weights (a ``GPT2LMHeadModel``, a folder, or a Hub id) in the backbone, a new head of
        ``num_labels`` outputs (book ch. 6.5). ``config_overrides`` change non-shape fields (``drop_rate``,
        ``classifier_pooling``, ``id2label``...)."""
        check_num_labels(num_labels)
        extra = {k: config_overrides.pop(k) for k in ("classifier_pooling", "id2label", "label2id")
                 if k in config_overrides}
        lm = ScratchGPTForCausalLM.from_gpt2(load_gpt2_model(source), **config_overrides)
        config = lm.config
        config.num_labels = num_labels
        for key, value in extra.items():
            setattr(config, key, value)
        model = cls(config)
        model.model.load_state_dict(lm.model.state_dict())  # strict: every backbone tensor, shapes checked
        return model.to(lm.dtype).train(lm.training)


ScratchGPTForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")
