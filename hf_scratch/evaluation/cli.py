"""``hf-scratch judge``: score a finetuned model's test responses with a larger LLM (book ch. 7.8)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..instruction.prompts import PROMPT_STYLES
from .judge import BACKENDS, DEFAULT_MAX_TOKENS, DEFAULT_TIMEOUT


def _judge(args):
    from .judge import default_output_path, judge_file, load_responses, make_backend

    load_responses(args.responses, args.response_key)  # a bad file fails here, before a judge model loads
    backend = make_backend(args.backend, args.model, url=args.url, api_key=args.api_key, seed=args.seed,
                           num_ctx=args.num_ctx, max_tokens=args.max_tokens, timeout=args.timeout,
                           trust_remote_code=args.trust_remote_code, device=args.device)
    output = Path(args.output) if args.output else default_output_path(args.responses)
    where = f" at {backend.url}" if backend.url else ""
    print(f"judge: {backend.name} {backend.model}{where}, options {backend.options}", file=sys.stderr)
    result = judge_file(args.responses, backend, output, prompt_style=args.prompt_style,
                        response_key=args.response_key, max_retries=args.max_retries, overwrite=args.overwrite,
                        progress=args.progress, log=lambda line: print(line, file=sys.stderr))
    summary = result["summary"]
    average = "n/a" if summary["average"] is None else f"{summary['average']:.2f}"
    print(f"average score {average} over {summary['scored']} of {summary['total']} items "
          f"({summary['failed']} failed); scores in {output}")
    if summary["failed"]:
        print(f"note: {summary['failed']} items got no score after {args.max_retries} attempts each (see their "
              "'error' field); run the same command again to retry only those", file=sys.stderr)


def add_judge_command(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "judge", help="score model responses 0-100 with a larger LLM as the judge (book ch. 7.8)",
        description="Score each record's response against its reference output with an LLM judge, using the "
                    "book's prompt. The output is saved after every item; running the same command again resumes.")
    parser.add_argument("responses", help="JSON list of records with 'instruction', optional 'input', 'output' "
                                          "(the reference) and the model's response (e.g. the test_responses.json "
                                          "of 'hf-scratch finetune-instruct')")
    parser.add_argument("--backend", choices=BACKENDS, default="ollama",
                        help="ollama (a local Ollama server, the book's setup; default), openai (any "
                             "OpenAI-compatible server) or transformers (a local model folder)")
    parser.add_argument("--model", default=None,
                        help="the judge: an Ollama model (default: llama3, the book's Llama 3 8B), a model name of "
                             "the OpenAI-compatible server, or a local folder for --backend transformers")
    parser.add_argument("--url", default=None,
                        help="server address (ollama: $OLLAMA_HOST or http://localhost:11434; openai: "
                             "$OPENAI_BASE_URL or https://api.openai.com/v1)")
    parser.add_argument("--api-key", default=None,
                        help="openai: the API key (default: $OPENAI_API_KEY; needed for api.openai.com only)")
    parser.add_argument("--seed", type=int, default=123, help="sampling seed sent to the server (the book: 123)")
    parser.add_argument("--num-ctx", type=int, default=2048, help="ollama: context window in tokens (the book: 2048)")
    parser.add_argument("--max-tokens", type=int, default=DEFAULT_MAX_TOKENS,
                        help="openai and transformers: most tokens the judge may answer with")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help="seconds to wait for a reply before the attempt counts as failed")
    parser.add_argument("--max-retries", type=int, default=3,
                        help="attempts per item before it is recorded with score null")
    parser.add_argument("--prompt-style", choices=PROMPT_STYLES, default="alpaca",
                        help="how the instruction is shown to the judge (alpaca as the book; phi3 for exercise 7.1)")
    parser.add_argument("--response-key", default="model_response", help="the field holding the model's response")
    parser.add_argument("--output", default=None, help="where the scores go (default: <responses stem>_judged.json "
                                                       "beside the responses file)")
    parser.add_argument("--overwrite", action="store_true",
                        help="start again when --output holds scores of another file or other judge settings")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                        help="show the progress bar")
    parser.add_argument("--device", default=None, help="transformers: cpu, cuda, ... (default: cuda if available)")
    parser.add_argument("--trust-remote-code", action=argparse.BooleanOptionalAction, default=True,
                        help="transformers: allow the folder's own model code")
    parser.set_defaults(func=_judge)
    return parser
