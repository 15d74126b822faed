"""``hf-scratch finetune-instruct`` end to end on a tiny model: run folder, answers in the book's layout, card,
reload in a fresh process without hf_scratch, and bad input refused before anything is written."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import yaml
from transformers import AutoModelForCausalLM, AutoTokenizer

from hf_scratch.cli import main
from hf_scratch.instruction import build_prompt, build_training_text, generate_responses, split_records
from hf_scratch.instruction.data import load_instruction_records
from hf_scratch.tokenizers import BPETokenizer

LIMIT = 8


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("instruct")
    records = load_instruction_records()
    BPETokenizer.train([build_training_text(r) for r in records[:300]], vocab_size=400).save(root / "bpe")
    out = root / "run"
    code = main(["finetune-instruct", "--init", "random", "--tokenizer", str(root / "bpe"), "--n-layers", "1",
                 "--emb-dim", "32", "--n-heads", "2", "--context-length", "256", "--limit", str(LIMIT),
                 "--epochs", "2", "--batch-size", "4", "--lr", "1e-2", "--max-new-tokens", "12", "--mask-prompt",
                 "--output-dir", str(out), "--no-progress"])
    assert code == 0
    return out, records


def test_run_folder_and_responses(run):
    out, records = run
    for name in ("model.safetensors", "config.json", "tokenizer.json", "test_responses.json", "metrics.json",
                 "loss.png", "README.md", "training_config.json"):
        assert (out / name).is_file(), name
    responses = json.loads((out / "test_responses.json").read_text())
    test_split = split_records(records)["test"][:LIMIT]
    assert [{k: v for k, v in r.items() if k != "model_response"} for r in responses] == test_split
    assert all(isinstance(r["model_response"], str) for r in responses)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["examples"] == {"train": LIMIT, "validation": LIMIT, "test": LIMIT}
    assert metrics["final_train_loss"] < metrics["initial_train_loss"]
    assert metrics["mask_prompt"] is True and json.loads((out / "training_config.json").read_text())["mask_prompt"]
    assert [e["epoch"] for e in metrics["epochs"]] == [0, 1, 2]
    assert all("validation_loss" in e for e in metrics["epochs"])


def test_saved_answers_reproduce_from_the_checkpoint(run):
    """Batched, left-padded greedy answers from the reloaded model equal the saved ones, and equal answering one
    record at a time."""
    out, records = run
    tokenizer = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out)
    saved = json.loads((out / "test_responses.json").read_text())
    tests = split_records(records)["test"][:LIMIT]
    assert generate_responses(model, tokenizer, tests, max_new_tokens=12, batch_size=3) == \
        [r["model_response"] for r in saved]
    one_by_one = [generate_responses(model, tokenizer, [r], max_new_tokens=12, batch_size=1)[0] for r in tests[:4]]
    assert one_by_one == [r["model_response"] for r in saved[:4]]


def test_card_describes_the_instruction_model(run):
    out, _ = run
    text = (out / "README.md").read_text()
    meta = yaml.safe_load(text.split("---")[1])
    assert meta["pipeline_tag"] == "text-generation" and "instruction-tuned" in meta["tags"]
    assert meta["datasets"] == ["alpaca-1100"]
    metrics = json.loads((out / "metrics.json").read_text())
    results = {r["metrics"][0]["name"]: r["metrics"][0]["value"] for r in meta["model-index"][0]["results"]}
    assert results["Validation loss"] == pytest.approx(metrics["final_validation_loss"])
    assert "### Response:" in text and "trust_remote_code=True" in text


FRESH = """
import sys, json
sys.modules["hf_scratch"] = None
from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline
tokenizer = AutoTokenizer.from_pretrained(RUN, trust_remote_code=True)
model = AutoModelForCausalLM.from_pretrained(RUN, trust_remote_code=True)
ids = tokenizer(PROMPT, return_tensors="pt").input_ids
out = model.generate(ids, max_new_tokens=12, do_sample=False)
generator = pipeline("text-generation", model=RUN, trust_remote_code=True)
piped = generator(PROMPT, max_new_tokens=12, do_sample=False, return_full_text=False)[0]["generated_text"]
print("RESULT " + json.dumps({"tokens": out[0].tolist(), "pipeline": piped,
                              "class": type(model).__module__}))
"""


def test_fresh_process_without_hf_scratch_answers_the_same(run, tmp_path):
    out, records = run
    prompt = build_prompt(split_records(records)["test"][0])
    tokenizer = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out)
    ids = tokenizer(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        expected = model.generate(ids, max_new_tokens=12, do_sample=False)[0].tolist()
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    header = f"RUN = {str(out)!r}\nPROMPT = {prompt!r}\n"
    result = subprocess.run([sys.executable, "-c", header + textwrap.dedent(FRESH)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, result.stdout[-3000:] + result.stderr[-3000:]
    got = json.loads(lines[-1].removeprefix("RESULT "))
    assert got["class"].startswith("transformers_modules.")
    assert got["tokens"] == expected
    assert got["pipeline"] == tokenizer.decode(expected[ids.shape[1]:])


def test_bad_input_is_refused_before_anything_is_written(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"instruction": "Say hi", "input": ""}]))
    empty = tmp_path / "empty.json"
    empty.write_text("")
    common = ["finetune-instruct", "--init", "random", "--n-layers", "1", "--emb-dim", "16", "--n-heads", "2",
              "--no-progress"]
    cases = [
        (["--data-path", str(bad)], "record 0: missing 'output'"),
        (["--data-path", str(empty)], "is not valid JSON"),
        (["--prompt-style", "chatml"], "prompt_style must be one of alpaca, phi3"),
        (["--epochs", "0"], "epochs must be a positive integer"),
        (["--init", str(tmp_path / "nowhere")], "not a GPT-2 id"),
    ]
    for extra, message in cases:
        out = tmp_path / "out"
        assert main([*common, *extra, "--output-dir", str(out)]) == 2, extra
        assert message in capsys.readouterr().err, extra
        assert not out.exists(), extra
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("previous run")
    assert main([*common, "--output-dir", str(taken)]) == 2
    assert "is not empty; pass --overwrite" in capsys.readouterr().err
    assert (taken / "keep.txt").read_text() == "previous run"


def test_gpt2_init_offline_says_what_to_do_instead(tmp_path, monkeypatch, capsys):
    from huggingface_hub import constants

    # An empty cache (read when a download is resolved), so no copy of OpenAI's weights can be found, and no network.
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    out = tmp_path / "out"
    assert main(["finetune-instruct", "--init", "gpt2-medium", "--limit", "2", "--no-progress",
                 "--output-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--init gpt2-medium needs OpenAI's weights" in err and "Offline, start from a folder" in err
    assert not out.exists()
