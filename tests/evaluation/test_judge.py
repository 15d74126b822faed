"""``hf-scratch judge`` against a real HTTP server on 127.0.0.1 speaking Ollama's and OpenAI's formats, and a tiny
local transformers model whose greedy answer is set by hand."""

from __future__ import annotations

import json
import socket

import pytest
from fake_llm_server import Die, FakeLLMServer, Reply, Status, Stream

from hf_scratch.cli import main
from hf_scratch.evaluation import (
    JudgeRequestRejected,
    JudgeUnavailable,
    OllamaJudge,
    OpenAIJudge,
    TransformersJudge,
    judge_file,
    judge_prompt,
    load_responses,
    make_backend,
    parse_score,
)

RECORDS = [
    {"instruction": "Rewrite the sentence using a simile.", "input": "The car is very fast.",
     "output": "The car is as fast as lightning.", "model_response": "The car is as fast as a bullet."},
    {"instruction": "What type of cloud is typically associated with thunderstorms?", "input": "",
     "output": "The type of cloud typically associated with thunderstorms is cumulonimbus.",
     "model_response": "The type of cloud associated with thunderstorms is a cumulus cloud."},
    {"instruction": "Name the author of 'Pride and Prejudice'.",
     "output": "Jane Austen wrote 'Pride and Prejudice'.", "model_response": "The author is Jane Austen."},
]
BOOK_OPTIONS = {"seed": 123, "temperature": 0, "num_ctx": 2048}


@pytest.fixture(autouse=True)
def _no_judge_environment(monkeypatch):
    for variable in ("OLLAMA_HOST", "OPENAI_BASE_URL", "OPENAI_API_KEY"):
        monkeypatch.delenv(variable, raising=False)


def write_records(path, records):
    path.write_text(json.dumps(records, indent=1), encoding="utf-8")
    return path


@pytest.fixture
def responses(tmp_path):
    return write_records(tmp_path / "test_responses.json", RECORDS)


def item_of(prompt: str) -> int:
    """Which record a judge prompt is about (each record's instruction is distinct)."""
    return next(i for i, record in enumerate(RECORDS) if record["instruction"] in prompt)


def per_item(scores):
    """A server behaviour answering each record's prompt with its own reply."""
    return lambda body: scores[item_of(body["messages"][-1]["content"])]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def read(path):
    return json.loads(path.read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------------- prompt and parsing
def test_the_prompt_is_the_books_wording():
    expected = (
        "Given the input `Below is an instruction that describes a task. Write a response that appropriately "
        "completes the request.\n\n### Instruction:\nRewrite the sentence using a simile.\n\n### Input:\nThe car "
        "is very fast.` and correct output `The car is as fast as lightning.`, score the model response `The car "
        "is as fast as a bullet.` on a scale from 0 to 100, where 100 is the best score. Respond with the integer "
        "number only.")
    assert judge_prompt(RECORDS[0]) == expected
    no_input = judge_prompt(RECORDS[1])
    assert "### Input" not in no_input and "thunderstorms?` and correct output `The type" in no_input
    other_key = {**RECORDS[2], "reply": "Austen."}
    assert "score the model response `Austen.` on a scale" in judge_prompt(other_key, "reply")
    assert judge_prompt(RECORDS[2], style="phi3").startswith("Given the input `<|user|>\nName the author")


@pytest.mark.parametrize("reply, score", [
    ("85", 85), ("  85\n", 85), ("0", 0), ("100", 100), ("085", 85), ("85.", 85),
    ("101", None), ("-3", None), ("85.5", None), ("Score: 85", None), ("85/100", None), ("eighty", None),
    ("", None), ("85..", None), ("8 5", None), ("٨٥", None),
])
def test_scores_are_parsed_strictly(reply, score):
    assert parse_score(reply) == score


# ---------------------------------------------------------------------------------------------- wire formats
def test_ollama_request_and_output(responses, tmp_path):
    with FakeLLMServer(default=per_item([Reply("70"), Reply("35"), Reply("90")])) as server:
        backend = OllamaJudge("llama3", server.url, timeout=5)
        result = judge_file(responses, backend, progress=False)
    assert len(server.requests) == 3
    for request, record in zip(server.requests, RECORDS, strict=True):
        assert request["path"] == "/api/chat"
        body = request["body"]
        assert body["model"] == "llama3" and body["stream"] is False and body["options"] == BOOK_OPTIONS
        assert body["messages"] == [{"role": "user", "content": judge_prompt(record)}]
    assert "Respond with the integer number only." in server.prompts[0]

    output = tmp_path / "test_responses_judged.json"  # the default: beside the input
    saved = read(output)
    assert saved == result
    assert saved["judge"] == {"backend": "ollama", "model": "llama3", "url": server.url, "options": BOOK_OPTIONS,
                              "prompt_style": "alpaca", "response_key": "model_response"}
    assert saved["summary"] == {"average": pytest.approx(65.0), "scored": 3, "failed": 0, "pending": 0, "total": 3}
    first = saved["items"][0]
    assert {k: first[k] for k in RECORDS[0]} == RECORDS[0]
    assert (first["index"], first["score"], first["error"], first["attempts"], first["reply"]) == (0, 70, None, 1, "70")
    assert first["judge"] == {"backend": "ollama", "model": "llama3", "options": BOOK_OPTIONS}
    assert saved["source"]["records"] == 3 and len(saved["source"]["sha256"]) == 64


def test_ollama_options_and_host_from_the_environment(monkeypatch, responses, tmp_path):
    with FakeLLMServer(default=Reply("50")) as server:
        monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{server.port}")  # Ollama's own form: no scheme
        backend = make_backend("ollama", seed=7, num_ctx=4096, timeout=5)
        judge_file(responses, backend, tmp_path / "out.json", progress=False)
    assert backend.url == server.url and backend.model == "llama3"
    assert server.requests[0]["body"]["options"] == {"seed": 7, "temperature": 0, "num_ctx": 4096}


def test_streamed_ollama_reply(responses, tmp_path):
    with FakeLLMServer(default=Stream(["8", "5"])) as server:
        result = judge_file(responses, OllamaJudge("llama3", server.url, timeout=5), progress=False)
    assert [item["score"] for item in result["items"]] == [85, 85, 85]


def test_openai_compatible_request(responses, tmp_path):
    with FakeLLMServer(default=per_item([Reply("60"), Reply("61"), Reply("62")]), api_key="sk-test") as server:
        backend = OpenAIJudge("gpt-4o-mini", f"{server.url}/v1", "sk-test", seed=5, max_tokens=8, timeout=5)
        result = judge_file(responses, backend, tmp_path / "out.json", progress=False)
    assert [item["score"] for item in result["items"]] == [60, 61, 62]
    request = server.requests[0]
    assert request["path"] == "/v1/chat/completions" and request["authorization"] == "Bearer sk-test"
    assert request["body"] == {"model": "gpt-4o-mini", "temperature": 0, "seed": 5, "max_tokens": 8,
                               "messages": [{"role": "user", "content": judge_prompt(RECORDS[0])}]}
    assert "sk-test" not in (tmp_path / "out.json").read_text()  # the key is never written down


def test_openai_key_rules(monkeypatch, responses, tmp_path):
    with pytest.raises(ValueError, match="needs a key: set OPENAI_API_KEY"):
        OpenAIJudge("gpt-4o-mini")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    assert OpenAIJudge("gpt-4o-mini").url == "https://api.openai.com/v1"
    monkeypatch.delenv("OPENAI_API_KEY")
    with FakeLLMServer(default=Reply("40")) as server:  # a self-hosted server: no key needed, none sent
        monkeypatch.setenv("OPENAI_BASE_URL", f"{server.url}/v1")
        judge_file(responses, make_backend("openai", "local-model", timeout=5), tmp_path / "o.json", progress=False)
    assert server.requests[0]["authorization"] is None
    with FakeLLMServer(api_key="sk-right") as server, pytest.raises(JudgeRequestRejected, match="HTTP 401.*API key"):
        judge_file(responses, OpenAIJudge("m", f"{server.url}/v1", "sk-wrong", timeout=5), tmp_path / "r.json",
                   progress=False)
    assert len(server.requests) == 1  # a refused request is not retried: every item would get the same answer


# ---------------------------------------------------------------------------------------------- failures and retries
def test_slow_replies(responses, tmp_path):
    script = [Reply("10", delay=1.5), Reply("20"),  # item 0: the first try times out, the second answers
              Reply("30", delay=0.3)]  # item 1: slow, but within the timeout
    with FakeLLMServer(script, default=Reply("40")) as server:
        result = judge_file(responses, OllamaJudge("llama3", server.url, timeout=0.8), progress=False)
    items = result["items"]
    assert [(item["score"], item["attempts"], item["error"]) for item in items] == [
        (20, 2, None), (30, 1, None), (40, 1, None)]
    assert len(server.requests) == 4


def test_http_500_is_retried_and_a_hopeless_item_is_recorded(responses, tmp_path):
    script = [Status(500), Reply("55")]  # item 0: one server error, then an answer
    always_500 = per_item([Reply("99"), Status(500, "out of memory"), Reply("77")])  # item 1 never succeeds
    with FakeLLMServer(script, default=always_500) as server:
        result = judge_file(responses, OllamaJudge("llama3", server.url, timeout=5), max_retries=3, progress=False)
    first, second, third = result["items"]
    assert (first["score"], first["attempts"]) == (55, 2)
    assert second["score"] is None and second["attempts"] == 3
    assert second["error"].count("HTTP 500") == 3 and "out of memory" in second["error"]
    assert third["score"] == 77  # the run went on
    assert result["summary"] == {"average": pytest.approx(66.0), "scored": 2, "failed": 1, "pending": 0, "total": 3}
    assert len(server.requests) == 2 + 3 + 1


def test_non_numeric_replies(responses, tmp_path):
    script = ["The score is 85", "85"]
    behaviour = per_item([None, Reply("I would rate it highly."), Reply("101")])
    with FakeLLMServer([Reply(text) for text in script], default=behaviour) as server:
        result = judge_file(responses, OllamaJudge("llama3", server.url, timeout=5), max_retries=2, progress=False)
    first, second, third = result["items"]
    assert (first["score"], first["attempts"]) == (85, 2)
    assert second["score"] is None and second["attempts"] == 2 and "I would rate it highly." in second["error"]
    assert third["score"] is None and "'101'" in third["error"]  # out of range is not a score either
    assert len(server.requests) == 2 + 2 + 2


def test_a_refused_connection_stops_at_once(responses, tmp_path):
    url = f"http://127.0.0.1:{closed_port()}"
    with pytest.raises(JudgeUnavailable, match=f"the judge at {url} does not answer .*0 of 3 items are scored"):
        judge_file(responses, OllamaJudge("llama3", url, timeout=5), progress=False)
    assert not (tmp_path / "test_responses_judged.json").exists()
    assert isinstance(JudgeUnavailable("x"), ConnectionError)


def test_an_unknown_host_stops_at_once(monkeypatch, responses):
    def unresolvable(host, *args, **kwargs):  # what the resolver says, without asking one
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", unresolvable)
    with pytest.raises(JudgeUnavailable, match=r"the judge at http://no-such-host\.invalid:11434 does not answer"):
        judge_file(responses, OllamaJudge("llama3", "no-such-host.invalid", timeout=5), progress=False)


def test_a_missing_model_stops_the_run(responses):
    with FakeLLMServer(default=Status(404, 'model "llama9" not found, try pulling it first')) as server:
        with pytest.raises(JudgeRequestRejected, match='HTTP 404.*model "llama9" not found.*ollama pull llama9'):
            judge_file(responses, OllamaJudge("llama9", server.url, timeout=5), progress=False)
    assert len(server.requests) == 1


# ---------------------------------------------------------------------------------------------- resuming
def test_a_run_that_loses_its_judge_keeps_its_scores_and_resumes(tmp_path):
    records = [{**RECORDS[i % 3], "instruction": f"Task {i}: {RECORDS[i % 3]['instruction']}"} for i in range(6)]
    path = write_records(tmp_path / "responses.json", records)
    output = tmp_path / "responses_judged.json"

    def score_of(body):  # a deterministic score per item: 10 x its number + 1
        task = int(body["messages"][-1]["content"].split("Task ")[1].split(":")[0])
        return Reply(str(10 * task + 1))

    with FakeLLMServer([score_of, score_of, score_of, Die()], default=score_of) as server:
        port = server.port
        with pytest.raises(JudgeUnavailable, match="does not answer.*3 of 6 items are scored"):
            judge_file(path, OllamaJudge("llama3", server.url, timeout=5), progress=False)
    kept = read(output)
    assert [(item["index"], item["score"]) for item in kept["items"]] == [(0, 1), (1, 11), (2, 21)]
    assert kept["summary"]["pending"] == 3

    with FakeLLMServer(default=score_of, port=port) as restarted:  # the judge is back, at the same address
        result = judge_file(path, OllamaJudge("llama3", restarted.url, timeout=5), progress=False)
    asked = [int(prompt.split("Task ")[1].split(":")[0]) for prompt in restarted.prompts]
    assert asked == [3, 4, 5]  # the first three were not sent again
    assert [item["score"] for item in result["items"]] == [1, 11, 21, 31, 41, 51]
    assert result["summary"] == {"average": pytest.approx(26.0), "scored": 6, "failed": 0, "pending": 0, "total": 6}


def test_resuming_asks_again_only_for_failed_items(responses, tmp_path):
    with FakeLLMServer(default=per_item([Reply("80"), Reply("no idea"), Reply("60")])) as server:
        first = judge_file(responses, OllamaJudge("llama3", server.url, timeout=5), progress=False)
    assert first["summary"]["failed"] == 1
    with FakeLLMServer(default=Reply("40"), port=server.port) as server:
        second = judge_file(responses, OllamaJudge("llama3", server.url, timeout=5), progress=False)
    assert [item_of(prompt) for prompt in server.prompts] == [1]
    assert [item["score"] for item in second["items"]] == [80, 40, 60]


def test_other_settings_or_another_input_are_refused(responses, tmp_path):
    with FakeLLMServer(default=Reply("50")) as server:
        judge_file(responses, OllamaJudge("llama3", server.url, timeout=5), progress=False)
        with pytest.raises(ValueError, match=r"other settings \(options: .*'seed': 123.*'seed': 1\b.*--overwrite"):
            judge_file(responses, OllamaJudge("llama3", server.url, seed=1, timeout=5), progress=False)
        with pytest.raises(ValueError, match="other settings.*model: 'llama3' then, 'mistral' now"):
            judge_file(responses, OllamaJudge("mistral", server.url, timeout=5), progress=False)
        with pytest.raises(ValueError, match="prompt_style"):
            judge_file(responses, OllamaJudge("llama3", server.url, timeout=5), prompt_style="phi3",
                       progress=False)
        write_records(responses, RECORDS[:2])  # the same path, other contents
        with pytest.raises(ValueError, match="scores for another responses file"):
            judge_file(responses, OllamaJudge("llama3", server.url, timeout=5), progress=False)
        requests = len(server.requests)
        result = judge_file(responses, OllamaJudge("mistral", server.url, timeout=5), overwrite=True,
                            progress=False)
        assert len(server.requests) == requests + 2
    assert result["summary"]["total"] == 2 and result["judge"]["model"] == "mistral"
    (tmp_path / "notes.json").write_text("{}")
    with pytest.raises(ValueError, match="not an output of 'hf-scratch judge'"):
        judge_file(responses, OllamaJudge("llama3", "127.0.0.1:1"), tmp_path / "notes.json", progress=False)
    with pytest.raises(ValueError, match="would replace the responses file"):
        judge_file(responses, OllamaJudge("llama3", "127.0.0.1:1"), responses, progress=False)


# ---------------------------------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize("content, message", [
    ("not json {", r"is not valid JSON"),
    ('{"instruction": "x"}', r"expected a JSON list of records, got a JSON dict"),
    ("[]", r"holds no records"),
    ('[{"instruction": "a", "output": "b", "model_response": "c"}, {"output": "b", "model_response": "c"}]',
     r"record 1: missing 'instruction'"),
    ('[{"instruction": "a", "model_response": "c"}]', r"record 0: missing 'output'"),
    ('[{"instruction": "a", "output": "b", "model_response": "c"}, {"instruction": "a", "output": "b"}]',
     r"record 1: missing 'model_response', the model's response"),
    ('[{"instruction": "a", "output": "b", "model_response": 3}]', r"record 0: 'model_response' must be a string"),
    ('["just text"]', r"record 0: expected an object"),
])
def test_bad_inputs(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        load_responses(path)


def test_missing_input_and_response_key(tmp_path, responses):
    with pytest.raises(FileNotFoundError, match="records file not found"):
        load_responses(tmp_path / "nope.json")
    with pytest.raises(ValueError, match="record 0: missing 'answer'.*--response-key"):
        load_responses(responses, "answer")


# ---------------------------------------------------------------------------------------------- the command
def test_command_end_to_end(responses, tmp_path, capsys):
    with FakeLLMServer(default=per_item([Reply("70"), Reply("35"), Reply("90")])) as server:
        code = main(["judge", str(responses), "--url", server.url, "--no-progress", "--timeout", "5"])
    assert code == 0
    out, err = capsys.readouterr()
    output = tmp_path / "test_responses_judged.json"
    assert out.strip() == f"average score 65.00 over 3 of 3 items (0 failed); scores in {output}"
    assert f"judge: ollama llama3 at {server.url}" in err
    assert read(output)["summary"]["scored"] == 3

    with FakeLLMServer(default=Reply("hmm")) as server:  # every item fails: exit 0, summary and a note
        code = main(["judge", str(responses), "--url", server.url, "--no-progress", "--max-retries", "1",
                     "--output", str(tmp_path / "failed.json"), "--seed", "9"])
    out, err = capsys.readouterr()
    assert code == 0 and out.startswith("average score n/a over 0 of 3 items (3 failed)")
    assert "run the same command again to retry only those" in err


def test_command_errors(responses, tmp_path, capsys):
    url = f"http://127.0.0.1:{closed_port()}"
    assert main(["judge", str(responses), "--url", url, "--no-progress"]) == 2
    assert f"hf-scratch judge: error: the judge at {url} does not answer (" in capsys.readouterr().err

    assert main(["judge", str(tmp_path / "missing.json")]) == 2
    assert "hf-scratch judge: error: records file not found" in capsys.readouterr().err

    bad = write_records(tmp_path / "bad.json", [{"instruction": "a", "output": "b"}])
    assert main(["judge", str(bad), "--url", url]) == 2
    assert "record 0: missing 'model_response'" in capsys.readouterr().err

    assert main(["judge", str(responses), "--backend", "openai", "--model", "gpt-4o-mini"]) == 2
    assert "needs a key" in capsys.readouterr().err
    assert main(["judge", str(responses), "--backend", "openai"]) == 2
    assert "needs --model" in capsys.readouterr().err
    assert main(["judge", str(responses), "--backend", "transformers", "--model", str(tmp_path)]) == 2
    assert "local model folder with config.json" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- transformers backend
def save_tiny_judge(folder, answer: str, chat_template: str | None = None):
    """A one-block GPT that answers ``answer`` then ``<|endoftext|>``, whatever it is asked.

    Every block weight is zero, so the last hidden state is the last token's embedding: ``a`` for every token
    except ``answer``, whose embedding is ``b`` (orthogonal to ``a``). The output head maps ``a`` to ``answer`` and
    ``b`` to ``<|endoftext|>``, so greedy decoding says ``answer`` once and stops.
    """
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from hf_scratch.model import ScratchGPTConfig, ScratchGPTForCausalLM

    vocab = {"[UNK]": 0, "<|endoftext|>": 1, "42": 2, "maybe": 3}
    words = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    words.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=words, unk_token="[UNK]", eos_token="<|endoftext|>",
                                        pad_token="<|endoftext|>")
    if chat_template:
        tokenizer.chat_template = chat_template
    tokenizer.save_pretrained(folder)

    config = ScratchGPTConfig(vocab_size=len(vocab), context_length=512, emb_dim=8, n_heads=2, n_layers=1,
                              drop_rate=0.0, tie_word_embeddings=False, eos_token_id=1, pad_token_id=1)
    model = ScratchGPTForCausalLM(config)
    a = torch.tensor([1.0, -1, 1, -1, 1, -1, 1, -1])
    b = torch.tensor([1.0, 1, -1, -1, 1, 1, -1, -1])
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
        model.model.final_norm.scale.fill_(1.0)
        model.model.tok_emb.weight[:] = a
        model.model.tok_emb.weight[vocab[answer]] = b
        model.out_head.weight[vocab[answer]] = 10 * a
        model.out_head.weight[vocab["<|endoftext|>"]] = 10 * b
    model.save_pretrained(folder)
    return folder


def test_transformers_judge_parseable_with_a_chat_template(tmp_path, responses):
    template = ("{% for m in messages %}[INST] {{ m['content'] }}{% endfor %}"
                "{% if add_generation_prompt %} [/INST]{% endif %}")
    folder = save_tiny_judge(tmp_path / "judge-42", "42", template)
    backend = make_backend("transformers", str(folder), max_tokens=4, device="cpu")
    backend.load()
    seen = []
    render = backend.tokenizer.apply_chat_template
    backend.tokenizer.apply_chat_template = lambda messages, **kw: seen.append(messages) or render(messages, **kw)
    result = judge_file(responses, backend, tmp_path / "judged.json", progress=False)
    assert [(item["score"], item["reply"], item["attempts"]) for item in result["items"]] == [(42, "42", 1)] * 3
    assert seen[0] == [{"role": "user", "content": judge_prompt(RECORDS[0])}]
    assert result["judge"]["backend"] == "transformers" and result["judge"]["url"] is None
    assert result["judge"]["model"] == str(folder.resolve())
    assert result["judge"]["options"] == {"do_sample": False, "max_new_tokens": 4}


def test_transformers_judge_unparseable_without_a_chat_template(tmp_path, responses):
    folder = save_tiny_judge(tmp_path / "judge-maybe", "maybe")
    backend = TransformersJudge(folder, max_new_tokens=4, device="cpu")
    result = judge_file(responses, backend, tmp_path / "judged.json", max_retries=2, progress=False)
    item = result["items"][0]
    assert item["score"] is None and item["attempts"] == 2 and item["reply"] == "maybe"
    assert "not an integer from 0 to 100: 'maybe'" in item["error"]
    assert result["summary"]["failed"] == 3
