"""End to end: a tiny `finetune-classifier` run writes every output; the checkpoint reloads with the Auto classes,
in this process and in a fresh one where hf_scratch cannot be imported; `classify` labels texts."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

import hf_scratch  # noqa: F401  (registers the Auto classes)
from hf_scratch.classification import classify_texts
from hf_scratch.classification.cli import main
from hf_scratch.model import ScratchGPTForSequenceClassification

TEXTS = ["WINNER!! You have won a free prize, call 09061701461 now", "Ok lar... see you at home tonight"]


@pytest.fixture(scope="module")
def run(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("clf") / "run"
    argv = ["finetune-classifier", "--init", "random", "--tokenizer", "bytes", "--n-layers", "2", "--emb-dim", "32",
            "--n-heads", "2", "--context-length", "96", "--epochs", "2", "--limit", "48", "--batch-size", "8",
            "--lr", "1e-3", "--freeze", "last_block", "--output-dir", str(out), "--no-progress"]
    with pytest.warns(UserWarning, match="truncated"):  # byte-level messages exceed a 96-token context
        assert main(argv) == 0
    return out


def test_run_writes_every_output(run):
    for name in ("config.json", "model.safetensors", "modeling_classification.py", "modeling_scratch_gpt.py",
                 "tokenizer.json", "metrics.json", "loss_accuracy.png", "README.md", "model_card.json",
                 "training_config.json"):
        assert (run / name).is_file(), name
    assert not (run / "checkpoints").exists()
    metrics = json.loads((run / "metrics.json").read_text())
    for split in ("train", "validation", "test"):
        assert 0 <= metrics[f"{split}_accuracy"] <= 1
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2]
    assert all("train_accuracy" in e and "validation_accuracy" in e for e in metrics["epochs"])
    assert metrics["examples"] == {"train": 48, "validation": 48, "test": 48}
    assert 0 < metrics["trainable_parameters"] < metrics["total_parameters"]
    config = json.loads((run / "config.json").read_text())
    assert config["architectures"] == ["ScratchGPTForSequenceClassification"]
    assert config["auto_map"]["AutoModelForSequenceClassification"] == (
        "modeling_classification.ScratchGPTForSequenceClassification")
    assert config["id2label"] == {"0": "ham", "1": "spam"}
    card = (run / "README.md").read_text()
    assert "pipeline_tag: text-classification" in card and "AutoModelForSequenceClassification" in card
    assert f"{metrics['test_accuracy']:.6g}" in card


def test_reload_in_process_gives_the_same_predictions(run):
    model = AutoModelForSequenceClassification.from_pretrained(run).eval()
    assert isinstance(model, ScratchGPTForSequenceClassification)
    tokenizer = AutoTokenizer.from_pretrained(run)
    metrics = json.loads((run / "metrics.json").read_text())
    # The test accuracy recomputed from the reloaded weights equals the one the run measured.
    from hf_scratch.classification import load_spam_splits

    test = load_spam_splits()["test"].select(range(48))
    with pytest.warns(UserWarning, match="kept the first"):
        predicted = classify_texts(model, tokenizer, test["text"])
    accuracy = sum(["ham", "spam"].index(label) == y for (label, _), y in zip(predicted, test["label"], strict=True))
    assert accuracy / 48 == pytest.approx(metrics["test_accuracy"])


SCRIPT = """
import sys
sys.modules["hf_scratch"] = None  # the package must not be importable here
import json, torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
model = AutoModelForSequenceClassification.from_pretrained(RUN, trust_remote_code=True).eval()
tokenizer = AutoTokenizer.from_pretrained(RUN, trust_remote_code=True)
batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
with torch.no_grad():
    logits = model(**batch).logits
print(json.dumps({"class": type(model).__name__, "logits": logits.tolist(),
                  "labels": [model.config.id2label[i] for i in logits.argmax(-1).tolist()]}))
"""


def test_reload_with_remote_code_in_a_fresh_process(run, tmp_path):
    model = ScratchGPTForSequenceClassification.from_pretrained(run).eval()
    tokenizer = AutoTokenizer.from_pretrained(run)
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")  # right padding with the end-of-text id
    with torch.no_grad():
        expected = model(**batch).logits
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "PYTHONPATH": ""}
    code = f"RUN = {str(run)!r}\nTEXTS = {TEXTS!r}\n" + textwrap.dedent(SCRIPT)
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    got = json.loads(result.stdout.strip().splitlines()[-1])
    assert got["class"] == "ScratchGPTForSequenceClassification"
    assert torch.allclose(torch.tensor(got["logits"]), expected, atol=1e-5)
    assert got["labels"] == [model.config.id2label[i] for i in expected.argmax(-1).tolist()]


def test_classify_command(run, capsys):
    assert main(["classify", str(run), *TEXTS]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    model = AutoModelForSequenceClassification.from_pretrained(run).eval()
    expected = classify_texts(model, AutoTokenizer.from_pretrained(run), TEXTS)
    for line, text, (label, probability) in zip(lines, TEXTS, expected, strict=True):
        got_label, got_probability, got_text = line.split("\t")
        assert (got_label, got_text) == (label, text) and float(got_probability) == pytest.approx(probability, abs=1e-4)
        assert 0.5 <= probability <= 1


def test_bad_cli_input(run, tmp_path, capsys):
    assert main(["classify", str(run), "   "]) == 2
    assert "empty" in capsys.readouterr().err
    assert main(["classify", str(tmp_path / "missing"), "hi"]) == 2
    assert main(["finetune-classifier", "--freeze", "most", "--output-dir", str(tmp_path / "x")]) == 2
    assert "freeze must be one of" in capsys.readouterr().err
    assert main(["finetune-classifier", "--init", str(tmp_path / "nothing"), "--output-dir", str(tmp_path / "x")]) == 2
    assert "not a GPT-2 id" in capsys.readouterr().err
    # an occupied run folder is not overwritten
    assert main(["finetune-classifier", "--tokenizer", "bytes", "--output-dir", str(run)]) == 2
    assert "not empty" in capsys.readouterr().err
