"""Prompt texts match the book's formats byte for byte (ch. 7.2, exercise 7.1)."""

import pytest

from hf_scratch.instruction import build_prompt, build_training_text, format_input
from hf_scratch.instruction.prompts import check_record

WITH_INPUT = {"instruction": "Rewrite the sentence using a simile.", "input": "The car is very fast.",
              "output": "The car is as fast as lightning."}
WITHOUT_INPUT = {"instruction": "Name the author of 'Pride and Prejudice'.", "input": "", "output": "Jane Austen."}


def test_alpaca_with_input():
    assert build_training_text(WITH_INPUT) == (
        "Below is an instruction that describes a task. Write a response that appropriately completes the request."
        "\n\n### Instruction:\nRewrite the sentence using a simile."
        "\n\n### Input:\nThe car is very fast."
        "\n\n### Response:\nThe car is as fast as lightning.")


def test_alpaca_without_input_has_no_input_section():
    assert build_training_text(WITHOUT_INPUT) == (
        "Below is an instruction that describes a task. Write a response that appropriately completes the request."
        "\n\n### Instruction:\nName the author of 'Pride and Prejudice'."
        "\n\n### Response:\nJane Austen.")
    # A missing "input" key is the same as an empty one.
    assert build_prompt({k: v for k, v in WITHOUT_INPUT.items() if k != "input"}) == build_prompt(WITHOUT_INPUT)


def test_phi3_style():
    assert build_training_text(WITH_INPUT, "phi3") == (
        "<|user|>\nRewrite the sentence using a simile.\nThe car is very fast.\n<|assistant|>:\n"
        "The car is as fast as lightning.")
    assert build_training_text(WITHOUT_INPUT, "phi3") == (
        "<|user|>\nName the author of 'Pride and Prejudice'.\n<|assistant|>:\nJane Austen.")


def test_prompt_is_the_training_text_without_the_answer():
    for style in ("alpaca", "phi3"):
        for record in (WITH_INPUT, WITHOUT_INPUT):
            assert build_training_text(record, style) == build_prompt(record, style) + record["output"]
            assert build_prompt(record, style).startswith(format_input(record, style))


def test_unknown_style_and_bad_records():
    with pytest.raises(ValueError, match="prompt style must be one of alpaca, phi3"):
        build_prompt(WITH_INPUT, "chatml")
    with pytest.raises(ValueError, match="record 3: missing 'output'"):
        check_record({"instruction": "x", "input": ""}, 3)
    with pytest.raises(ValueError, match="record 0: missing 'instruction'"):
        check_record({"output": "x"}, 0)
    with pytest.raises(ValueError, match="'instruction' is empty"):
        check_record({"instruction": "  ", "output": "x"})
    with pytest.raises(ValueError, match="'output' must be a string"):
        check_record({"instruction": "x", "output": 3})
