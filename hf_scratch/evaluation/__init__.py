"""Evaluating instruction-finetuned models (book ch. 7.8): an LLM scores each response against the reference."""

from .judge import (
    BACKENDS,
    JudgeAttemptFailed,
    JudgeBackend,
    JudgeRequestRejected,
    JudgeUnavailable,
    OllamaJudge,
    OpenAIJudge,
    TransformersJudge,
    default_output_path,
    judge_file,
    judge_prompt,
    load_responses,
    make_backend,
    parse_score,
    score_prompt,
)

__all__ = [
    "BACKENDS",
    "JudgeAttemptFailed",
    "JudgeBackend",
    "JudgeRequestRejected",
    "JudgeUnavailable",
    "OllamaJudge",
    "OpenAIJudge",
    "TransformersJudge",
    "default_output_path",
    "judge_file",
    "judge_prompt",
    "load_responses",
    "make_backend",
    "parse_score",
    "score_prompt",
]
