"""The from-scratch GPT as a transformers model. Self-contained: only relative imports below this folder."""

from .accounting import ParameterReport, parameter_report
from .attention import CausalAttention, MultiHeadAttention, MultiHeadAttentionWrapper, SelfAttention
from .configuration_scratch_gpt import GPT2_PRESETS, ScratchGPTConfig
from .layers import GELU, FeedForward, LayerNorm, TransformerBlock
from .lora_targets import (
    CLASSIFIER_HEAD,
    LM_HEAD,
    LORA_ATTENTION_TARGETS,
    LORA_FEED_FORWARD_TARGETS,
    LORA_TARGET_MODULES,
)
from .modeling_classification import ScratchGPTForSequenceClassification
from .modeling_scratch_gpt import ScratchGPTForCausalLM, ScratchGPTModel, ScratchGPTPreTrainedModel

__all__ = [
    "CLASSIFIER_HEAD",
    "GPT2_PRESETS",
    "LM_HEAD",
    "LORA_ATTENTION_TARGETS",
    "LORA_FEED_FORWARD_TARGETS",
    "LORA_TARGET_MODULES",
    "GELU",
    "CausalAttention",
    "FeedForward",
    "LayerNorm",
    "MultiHeadAttention",
    "MultiHeadAttentionWrapper",
    "ParameterReport",
    "ScratchGPTConfig",
    "ScratchGPTForCausalLM",
    "ScratchGPTForSequenceClassification",
    "ScratchGPTModel",
    "ScratchGPTPreTrainedModel",
    "SelfAttention",
    "TransformerBlock",
    "parameter_report",
]
