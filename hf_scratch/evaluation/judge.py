"""LLM-as-a-judge scoring of instruction responses (book ch. 7.8).

A larger model reads each test record (instruction, optional input, reference ``output``) and the finetuned model's
response, and answers with a score from 0 to 100; the average is the chapter's headline number. The prompt is the
book's wording, word for word, so that a Llama 3 8B judge served by Ollama reproduces its figure.

Three backends share one small interface (:class:`JudgeBackend`: ``name``, ``model``, ``url``, ``options``,
``ask(prompt) -> str``): Ollama's ``/api/chat``, any OpenAI-compatible ``/chat/completions`` server (both over
``urllib``, no client library), and a local ``transformers`` model folder.

Failures are sorted by what another try can change:

- :class:`JudgeAttemptFailed`: one request went wrong (HTTP 5xx/408/429, a timeout, a dropped connection, a reply
  body that is not the expected JSON). The attempt counts, and the item is asked again.
- :class:`JudgeUnavailable` (a ``ConnectionError``): nothing listens at the address, or the host is unknown.
  Every item would fail the same way, so the run stops at once; the scores so far are already on disk.
- :class:`JudgeRequestRejected` (a ``ValueError``): the server answers but refuses the request (HTTP 4xx: an
  unknown model, a bad API key). Also stops the run.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import math
import os
import re
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..instruction.data import read_records
from ..instruction.prompts import PROMPT_STYLES, check_record, format_input

BACKENDS = ("ollama", "openai", "transformers")
DEFAULT_OLLAMA_URL = "http://localhost:11434"
OLLAMA_DEFAULT_PORT = 11434
DEFAULT_OPENAI_URL = "https://api.openai.com/v1"
DEFAULT_TIMEOUT = 300.0  # Ollama loads the model on the first request, which can take minutes on a CPU
DEFAULT_MAX_TOKENS = 16  # room for "100" and a little chatter; a longer answer would not parse anyway
OUTPUT_FORMAT = "hf-scratch-judge/1"
MAX_RETRY_AFTER = 60.0  # longest wait a 429's Retry-After header can impose
# The judge settings that make two scores comparable; a resumed run must match all of them.
SETTING_KEYS = ("backend", "model", "url", "options", "prompt_style", "response_key")


class JudgeAttemptFailed(Exception):
    """One request failed in a way another try may fix; the scoring loop asks again."""


class JudgeUnavailable(ConnectionError):
    """Nothing answers at the judge's address (connection refused, unknown host): the run stops."""


class JudgeRequestRejected(ValueError):
    """The judge answers but refuses the request (HTTP 4xx other than 408/429): the run stops."""


# ---------------------------------------------------------------------------------------------- input and prompt
def load_responses(path: str | os.PathLike, response_key: str = "model_response") -> list[dict]:
    """The records of a responses file (a JSON list in the book's layout), checked before any judge is asked."""
    records = read_records(path)
    for index, record in enumerate(records):
        try:
            check_record(record, index)
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None
        if response_key not in record:
            raise ValueError(f"{path}: record {index}: missing {response_key!r}, the model's response (has "
                             f"{', '.join(map(repr, record))}; --response-key names another field)")
        if not isinstance(record[response_key], str):
            raise ValueError(f"{path}: record {index}: {response_key!r} must be a string, got "
                             f"{type(record[response_key]).__name__}")
    return records


def judge_prompt(record: Mapping, response_key: str = "model_response", style: str = "alpaca") -> str:
    """The book's judging prompt (ch. 7.8), verbatim: changing a word changes the scores."""
    return (
        f"Given the input `{format_input(record, style)}` "
        f"and correct output `{record['output']}`, "
        f"score the model response `{record[response_key]}`"
        " on a scale from 0 to 100, where 100 is the best score. "
        "Respond with the integer number only."
    )


_SCORE = re.compile(r"([0-9]{1,3})\.?")


def parse_score(reply: str) -> int | None:
    """The score in a reply, or None when the reply is not one.

    Strict, as the prompt asks for "the integer number only": after stripping whitespace the reply must be an
    integer from 0 to 100 in ASCII digits. One trailing period is tolerated ("85." is 85: models end sentences,
    and the number is unambiguous); anything else ("Score: 85", "85/100", "85.5", "-3", "150") is not a score.
    """
    match = _SCORE.fullmatch(reply.strip())
    if match is None:
        return None
    value = int(match.group(1))
    return value if value <= 100 else None


# ---------------------------------------------------------------------------------------------- HTTP plumbing
_LOCAL_HOSTS = ("localhost", "::1", "0.0.0.0")


def _opener(url: str) -> urllib.request.OpenerDirector:
    """urllib's opener; without proxies for a judge on this machine, which an ``http_proxy`` would not reach."""
    host = urlsplit(url).hostname or ""
    if host in _LOCAL_HOSTS or host.startswith("127."):
        return urllib.request.build_opener(urllib.request.ProxyHandler({}))
    return urllib.request.build_opener()


def _error_message(body: bytes) -> str:
    """The readable part of an error reply: Ollama's ``{"error": "..."}``, OpenAI's ``{"error": {"message"}}``."""
    text = body.decode("utf-8", "replace").strip()
    try:
        payload = json.loads(text)
    except ValueError:
        return text[:300]
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        error = error.get("message") or error
    return str(error if error is not None else payload)[:300]


def _post_json(url: str, payload: dict, *, base_url: str, timeout: float, headers: Mapping | None = None) -> bytes:
    """POST ``payload`` as JSON; the raw reply body, or one of the three judge errors."""
    request = urllib.request.Request(url, data=json.dumps(payload).encode("utf-8"), method="POST",
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with _opener(url).open(request, timeout=timeout) as response:
            return response.read()
    except urllib.error.HTTPError as error:
        message = _error_message(error.read() or b"")
        if error.code >= 500 or error.code in (408, 429):
            if error.code == 429:  # rate limited: wait as told (bounded) before the next attempt
                with contextlib.suppress(TypeError, ValueError):
                    time.sleep(min(max(float(error.headers.get("Retry-After", 1)), 0.0), MAX_RETRY_AFTER))
            raise JudgeAttemptFailed(f"HTTP {error.code} from {url}: {message}") from None
        raise JudgeRequestRejected(f"the judge at {base_url} refused the request: HTTP {error.code} from {url}: "
                                   f"{message}") from None
    except ConnectionRefusedError as error:  # urllib wraps it in a URLError; this is in case it does not
        raise JudgeUnavailable(f"the judge at {base_url} does not answer ({error})") from None
    except urllib.error.URLError as error:  # raised while connecting and sending
        reason = error.reason
        if isinstance(reason, (TimeoutError, ConnectionResetError, ConnectionAbortedError, BrokenPipeError)):
            raise JudgeAttemptFailed(f"{_describe(reason, timeout)} ({url})") from None
        raise JudgeUnavailable(f"the judge at {base_url} does not answer ({reason})") from None
    except (TimeoutError, ConnectionError, http.client.HTTPException) as error:  # raised while reading the reply
        raise JudgeAttemptFailed(f"{_describe(error, timeout)} ({url})") from None


def _describe(error: BaseException, timeout: float) -> str:
    if isinstance(error, TimeoutError):
        return f"no reply within the {timeout:g} s timeout"
    return f"the connection broke: {type(error).__name__}: {error}"


def _normalise_url(url: str, default_port: int | None = None) -> str:
    """``host:port`` or a full URL, without a trailing slash; ``default_port`` only when no scheme is given
    (Ollama's own reading of ``OLLAMA_HOST``)."""
    url = url.strip().rstrip("/")
    if "://" not in url:
        parts = urlsplit("http://" + url)
        if parts.port is None and default_port is not None:
            parts = parts._replace(netloc=f"{parts.netloc}:{default_port}")
        url = parts.geturl()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    return url


# ---------------------------------------------------------------------------------------------- backends
class JudgeBackend:
    """What the scoring loop needs from a judge. ``options`` are the generation settings sent with each prompt
    (recorded with every score, and compared when a run resumes)."""

    name = "judge"

    def __init__(self, model: str, url: str | None, options: dict[str, Any]):
        self.model, self.url, self.options = model, url, options

    def ask(self, prompt: str) -> str:
        """The judge's reply to one prompt, as text."""
        raise NotImplementedError

    def settings(self) -> dict[str, Any]:
        return {"backend": self.name, "model": self.model, "url": self.url, "options": dict(self.options)}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r}, url={self.url!r}, options={self.options!r})"


class OllamaJudge(JudgeBackend):
    """A model served by Ollama, through ``POST {url}/api/chat`` with the book's options (seed 123,
    temperature 0, a 2048-token context)."""

    name = "ollama"

    def __init__(self, model: str = "llama3", url: str | None = None, *, seed: int = 123, num_ctx: int = 2048,
                 timeout: float = DEFAULT_TIMEOUT):
        url = _normalise_url(url or os.environ.get("OLLAMA_HOST") or DEFAULT_OLLAMA_URL, OLLAMA_DEFAULT_PORT)
        super().__init__(model, url, {"seed": seed, "temperature": 0, "num_ctx": num_ctx})
        self.timeout = timeout

    def ask(self, prompt: str) -> str:
        payload = {"model": self.model, "messages": [{"role": "user", "content": prompt}], "stream": False,
                   "options": self.options}
        try:
            body = _post_json(f"{self.url}/api/chat", payload, base_url=self.url, timeout=self.timeout)
        except JudgeRequestRejected as error:
            if "HTTP 404" in str(error):  # Ollama's answer for a model it does not have
                raise JudgeRequestRejected(f"{error} (fetch it with: ollama pull {self.model})") from None
            raise
        return _ollama_content(body)


def _ollama_content(body: bytes) -> str:
    """``message.content`` of a reply, or the concatenation over a streamed reply (one JSON object per line)."""
    text = body.decode("utf-8", "replace")
    try:
        chunks = [json.loads(text)]
    except ValueError:
        try:
            chunks = [json.loads(line) for line in text.splitlines() if line.strip()]
        except ValueError:
            raise JudgeAttemptFailed(f"the reply is not JSON: {text[:200]!r}") from None
    parts = []
    for chunk in chunks:
        if not isinstance(chunk, dict):
            raise JudgeAttemptFailed(f"unexpected reply: {text[:200]!r}")
        if chunk.get("error"):
            raise JudgeAttemptFailed(f"the judge reported an error: {chunk['error']}")
        message = chunk.get("message")
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            parts.append(message["content"])
    if not parts:
        raise JudgeAttemptFailed(f"the reply holds no message.content: {text[:200]!r}")
    return "".join(parts)


class OpenAIJudge(JudgeBackend):
    """Any OpenAI-compatible server (OpenAI, vLLM, llama.cpp's server, LM Studio, Ollama's ``/v1``), through
    ``POST {url}/chat/completions``. The API key is sent but never written to the output."""

    name = "openai"

    def __init__(self, model: str, url: str | None = None, api_key: str | None = None, *, seed: int = 123,
                 max_tokens: int = DEFAULT_MAX_TOKENS, timeout: float = DEFAULT_TIMEOUT):
        url = _normalise_url(url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_OPENAI_URL)
        self._api_key = api_key or os.environ.get("OPENAI_API_KEY") or None
        if self._api_key is None and urlsplit(url).hostname == "api.openai.com":
            raise ValueError(f"the OpenAI API at {url} needs a key: set OPENAI_API_KEY or pass --api-key (a "
                             "self-hosted server given with --url may need none)")
        super().__init__(model, url, {"temperature": 0, "seed": seed, "max_tokens": max_tokens})
        self.timeout = timeout

    def ask(self, prompt: str) -> str:
        payload = {"model": self.model, "messages": [{"role": "user", "content": prompt}], **self.options}
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        body = _post_json(f"{self.url}/chat/completions", payload, base_url=self.url, timeout=self.timeout,
                          headers=headers)
        try:
            content = json.loads(body)["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise JudgeAttemptFailed(f"unexpected reply (no choices[0].message.content): {body[:200]!r}") from None
        return content if isinstance(content, str) else ""  # null content: a refusal, which does not parse


class TransformersJudge(JudgeBackend):
    """A local causal-LM folder run with transformers: the tokenizer's chat template when it has one (an
    instruct model), else the raw prompt; greedy decoding; only the new tokens are decoded.

    The model loads on the first ``ask`` (so a resumed run can be checked, and refused, before it loads)."""

    name = "transformers"

    def __init__(self, model: str | os.PathLike, *, max_new_tokens: int = DEFAULT_MAX_TOKENS,
                 trust_remote_code: bool = True, device: str | None = None):
        folder = Path(model)
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"the transformers judge needs a local model folder with config.json: {folder}")
        super().__init__(str(folder.resolve()), None, {"do_sample": False, "max_new_tokens": max_new_tokens})
        self.folder, self.trust_remote_code, self.device = folder, trust_remote_code, device
        self.network = self.tokenizer = None

    def load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging

        logging.disable_progress_bar()  # a loading bar would cut through the judging bar
        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(self.folder, trust_remote_code=self.trust_remote_code)
        network = AutoModelForCausalLM.from_pretrained(self.folder, trust_remote_code=self.trust_remote_code,
                                                       dtype="auto")
        self.network, self.device = network.to(device).eval(), device

    def ask(self, prompt: str) -> str:
        import torch

        if self.network is None:
            self.load()
        tokenizer, network = self.tokenizer, self.network
        if getattr(tokenizer, "chat_template", None):
            text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                                 add_generation_prompt=True)
            inputs = tokenizer(text, return_tensors="pt", add_special_tokens=False)  # the template has them
        else:
            inputs = tokenizer(prompt, return_tensors="pt")
        inputs = inputs.to(self.device)
        length, new = inputs["input_ids"].shape[1], self.options["max_new_tokens"]
        context = getattr(network.config, "max_position_embeddings", None)
        if context and length + new > context:
            raise JudgeAttemptFailed(f"the prompt has {length} tokens; with {new} new ones it exceeds the judge's "
                                     f"context of {context}")
        settings = network.generation_config
        extra = {}
        if settings.eos_token_id is None and tokenizer.eos_token_id is not None:
            extra["eos_token_id"] = tokenizer.eos_token_id
        if settings.pad_token_id is None:
            extra["pad_token_id"] = (tokenizer.pad_token_id if tokenizer.pad_token_id is not None
                                     else extra.get("eos_token_id", settings.eos_token_id))
        with torch.inference_mode():
            output = network.generate(**inputs, do_sample=False, max_new_tokens=new, **extra)
        return tokenizer.decode(output[0, length:], skip_special_tokens=True)


def make_backend(backend: str, model: str | None = None, *, url: str | None = None, api_key: str | None = None,
                 seed: int = 123, num_ctx: int = 2048, max_tokens: int = DEFAULT_MAX_TOKENS,
                 timeout: float = DEFAULT_TIMEOUT, trust_remote_code: bool = True,
                 device: str | None = None) -> JudgeBackend:
    """A backend by name, with the options that apply to it (the others are ignored)."""
    if timeout <= 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    if backend == "ollama":
        return OllamaJudge(model or "llama3", url, seed=seed, num_ctx=num_ctx, timeout=timeout)
    if backend == "openai":
        if not model:
            raise ValueError("the openai backend needs --model (a model name of the server, e.g. gpt-4o-mini)")
        return OpenAIJudge(model, url, api_key, seed=seed, max_tokens=max_tokens, timeout=timeout)
    if backend == "transformers":
        if not model:
            raise ValueError("the transformers backend needs --model (a local model folder)")
        if url:
            raise ValueError("--url does not apply to the transformers backend (it runs --model locally)")
        return TransformersJudge(model, max_new_tokens=max_tokens, trust_remote_code=trust_remote_code,
                                 device=device)
    raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")


# ---------------------------------------------------------------------------------------------- scoring
def score_prompt(backend: JudgeBackend, prompt: str, max_retries: int = 3) -> dict[str, Any]:
    """Ask until the reply parses, at most ``max_retries`` times. ``score`` is None when no attempt gave one;
    ``error`` then says what each attempt got. :class:`JudgeUnavailable` and :class:`JudgeRequestRejected`
    propagate: retrying cannot help."""
    errors, reply = [], None
    for attempt in range(1, max_retries + 1):
        try:
            reply = backend.ask(prompt)
        except JudgeAttemptFailed as error:
            errors.append(f"attempt {attempt}: {error}")
            continue
        score = parse_score(reply)
        if score is not None:
            return {"score": score, "error": None, "attempts": attempt, "reply": reply}
        errors.append(f"attempt {attempt}: not an integer from 0 to 100: {reply[:120]!r}")
    return {"score": None, "error": "; ".join(errors), "attempts": max_retries, "reply": reply}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _summary(items: Mapping[int, dict], total: int) -> dict[str, Any]:
    scores = [item["score"] for item in items.values() if item["score"] is not None]
    failed = sum(item["score"] is None for item in items.values())
    return {"average": math.fsum(scores) / len(scores) if scores else None, "scored": len(scores),
            "failed": failed, "pending": total - len(scores) - failed, "total": total}


def _write_json(path: Path, document: dict) -> None:
    """Replace ``path`` atomically: a crash mid-write leaves the previous complete file, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            json.dump(document, file, indent=2, ensure_ascii=False)
            file.write("\n")
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o644)  # mkstemp's 0600 would make the scores private
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def default_output_path(input_path: str | os.PathLike) -> Path:
    """``<input stem>_judged.json`` beside the input."""
    input_path = Path(input_path)
    return input_path.with_name(f"{input_path.stem}_judged.json")


def _previous_items(output: Path, source: dict, settings: dict) -> dict[int, dict]:
    """The scored items of an earlier run of the same input with the same judge settings; refuse anything else."""
    advice = "pass --overwrite to start again, or choose another --output"
    try:
        previous = json.loads(output.read_text(encoding="utf-8"))
    except ValueError as error:
        raise ValueError(f"{output} exists but is not a judge output ({error}); {advice}") from None
    if not isinstance(previous, dict) or previous.get("format") != OUTPUT_FORMAT:
        raise ValueError(f"{output} exists but is not an output of 'hf-scratch judge'; {advice}")
    old_source = previous.get("source") or {}
    if old_source.get("sha256") != source["sha256"]:
        raise ValueError(f"{output} holds scores for another responses file ({old_source.get('path')}, different "
                         f"contents from {source['path']}); {advice}")
    old = json.loads(json.dumps(previous.get("judge") or {}))
    changed = [f"{key}: {old.get(key)!r} then, {settings[key]!r} now" for key in SETTING_KEYS
               if old.get(key) != settings[key]]
    if changed:
        raise ValueError(f"{output} was judged with other settings ({'; '.join(changed)}); {advice}")
    return {item["index"]: item for item in previous.get("items", []) if item.get("score") is not None}


def judge_file(
    input_path: str | os.PathLike,
    backend: JudgeBackend,
    output_path: str | os.PathLike | None = None,
    *,
    prompt_style: str = "alpaca",
    response_key: str = "model_response",
    max_retries: int = 3,
    overwrite: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Score every record of a responses file; the output document (also written to ``output_path``).

    The output is rewritten after each item, so an interrupted run keeps its scores, and the same call resumes:
    items already scored with the same settings are kept without asking again (failed ones are asked again).
    Another input file or other judge settings are refused unless ``overwrite``.
    """
    from tqdm.auto import tqdm

    if prompt_style not in PROMPT_STYLES:
        raise ValueError(f"prompt style must be one of {', '.join(PROMPT_STYLES)}, got {prompt_style!r}")
    if max_retries < 1:
        raise ValueError(f"max_retries must be >= 1, got {max_retries}")
    input_path = Path(input_path)
    records = load_responses(input_path, response_key)
    output = Path(output_path) if output_path is not None else default_output_path(input_path)
    if output.resolve() == input_path.resolve():
        raise ValueError(f"the output {output} would replace the responses file; choose another --output")
    source = {"path": str(input_path.resolve()), "sha256": _sha256(input_path), "records": len(records)}
    settings = {**backend.settings(), "prompt_style": prompt_style, "response_key": response_key}
    settings = json.loads(json.dumps(settings))  # compare and store exactly what the JSON file holds

    items: dict[int, dict] = {}
    if output.exists() and not overwrite:
        items = _previous_items(output, source, settings)
        if items and log:
            log(f"resuming: {len(items)} of {len(records)} items already scored in {output}")
    stamp = {"backend": settings["backend"], "model": settings["model"], "options": settings["options"]}

    def document() -> dict[str, Any]:
        return {"format": OUTPUT_FORMAT, "source": source, "judge": settings,
                "summary": _summary(items, len(records)), "items": [items[i] for i in sorted(items)]}

    todo = [i for i in range(len(records)) if i not in items]
    bar = tqdm(total=len(records), initial=len(records) - len(todo), desc="judging", unit="item",
               disable=not progress, dynamic_ncols=True)
    try:
        for index in todo:
            record = records[index]
            try:
                result = score_prompt(backend, judge_prompt(record, response_key, prompt_style), max_retries)
            except JudgeUnavailable as error:
                done = sum(item["score"] is not None for item in items.values())
                raise JudgeUnavailable(f"{error}; {done} of {len(records)} items are scored in {output}: start "
                                       "the judge and run the same command again to resume") from None
            items[index] = {"index": index, **record, **result, "judge": stamp}
            _write_json(output, document())
            bar.update(1)
            average = _summary(items, len(records))["average"]
            if average is not None:
                bar.set_postfix(average=f"{average:.2f}")
    finally:
        bar.close()
    result = document()
    _write_json(output, result)
    return result
