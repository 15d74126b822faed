"""Instruction finetuning (book ch. 7): prompt formats, data and collator, ``finetune_instruct``."""

from .data import (
    IGNORE_INDEX,
    InstructionCollator,
    load_instruction_records,
    split_records,
    tokenize_record,
    tokenize_splits,
)
from .finetune import InstructConfig, finetune_instruct, generate_responses
from .prompts import PROMPT_STYLES, build_prompt, build_training_text, format_input, response_header

__all__ = ["IGNORE_INDEX", "PROMPT_STYLES", "InstructConfig", "InstructionCollator", "build_prompt",
           "build_training_text", "finetune_instruct", "format_input", "generate_responses",
           "load_instruction_records", "response_header", "split_records", "tokenize_record", "tokenize_splits"]
