"""Prompt formats for instruction finetuning (book ch. 7.2): Alpaca, and the Phi-3 style of exercise 7.1.

A record is a dict with ``instruction``, an optional ``input`` and, for training, ``output``. ``build_prompt`` gives
the text the model sees before it answers (ending with the response header); ``build_training_text`` appends the
reference answer. The Alpaca text is byte for byte the book's ``format_input(entry)`` followed by
``"\\n\\n### Response:\\n" + output``.
"""

from __future__ import annotations

from collections.abc import Mapping

PROMPT_STYLES = ("alpaca", "phi3")

ALPACA_PREAMBLE = ("Below is an instruction that describes a task. "
                   "Write a response that appropriately completes the request.")


def check_record(record: Mapping, index: int | None = None, need_output: bool = True) -> None:
    """Raise a ``ValueError`` naming the record and the field when it cannot be formatted."""
    where = "record" if index is None else f"record {index}"
    if not isinstance(record, Mapping):
        raise ValueError(f"{where}: expected an object with 'instruction', 'input' and 'output', got "
                         f"{type(record).__name__}")
    fields = ("instruction", "output") if need_output else ("instruction",)
    for field in fields:
        if field not in record:
            raise ValueError(f"{where}: missing {field!r} (has {', '.join(map(repr, record)) or 'no fields'})")
        if not isinstance(record[field], str):
            raise ValueError(f"{where}: {field!r} must be a string, got {type(record[field]).__name__}")
    if not record["instruction"].strip():
        raise ValueError(f"{where}: 'instruction' is empty")
    if record.get("input") is not None and not isinstance(record["input"], str):
        raise ValueError(f"{where}: 'input' must be a string, got {type(record['input']).__name__}")


def format_input(record: Mapping, style: str = "alpaca") -> str:
    """The instruction and optional input, without the response header (the book's ``format_input``)."""
    extra = record.get("input") or ""
    if style == "alpaca":
        text = f"{ALPACA_PREAMBLE}\n\n### Instruction:\n{record['instruction']}"
        return text + (f"\n\n### Input:\n{extra}" if extra else "")
    if style == "phi3":
        return f"<|user|>\n{record['instruction']}" + (f"\n{extra}" if extra else "")
    raise ValueError(f"prompt style must be one of {', '.join(PROMPT_STYLES)}, got {style!r}")


def response_header(style: str = "alpaca") -> str:
    """What separates the prompt from the answer."""
    if style == "alpaca":
        return "\n\n### Response:\n"
    if style == "phi3":
        return "\n<|assistant|>:\n"
    raise ValueError(f"prompt style must be one of {', '.join(PROMPT_STYLES)}, got {style!r}")


def build_prompt(record: Mapping, style: str = "alpaca") -> str:
    """The text a model continues to answer ``record``: instruction, optional input, response header."""
    return format_input(record, style) + response_header(style)


def build_training_text(record: Mapping, style: str = "alpaca") -> str:
    """The prompt followed by the reference answer (``record['output']``)."""
    return build_prompt(record, style) + record["output"]
