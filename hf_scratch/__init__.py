"""hf_scratch: the GPT of "Build a Large Language Model (From Scratch)", written from scratch as a Hugging Face model.

Importing the package registers the model with transformers' Auto classes.
"""

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification

from .model import ScratchGPTConfig, ScratchGPTForCausalLM, ScratchGPTForSequenceClassification, ScratchGPTModel

AutoConfig.register(ScratchGPTConfig.model_type, ScratchGPTConfig, exist_ok=True)
AutoModel.register(ScratchGPTConfig, ScratchGPTModel, exist_ok=True)
AutoModelForCausalLM.register(ScratchGPTConfig, ScratchGPTForCausalLM, exist_ok=True)
AutoModelForSequenceClassification.register(ScratchGPTConfig, ScratchGPTForSequenceClassification, exist_ok=True)

__version__ = "0.1.0"
__all__ = ["ScratchGPTConfig", "ScratchGPTForCausalLM", "ScratchGPTForSequenceClassification", "ScratchGPTModel",
           "__version__"]
