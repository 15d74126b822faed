"""Model cards and ``hf-scratch push``, with uploads checked against a local stand-in for the Hub (fake_hub.py)."""

import argparse
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from fake_hub import FakeHub
from huggingface_hub import ModelCard
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, GPT2LMHeadModel

from hf_scratch.hub import add_push_command, export_as_gpt2, render_model_card, write_model_card
from hf_scratch.model import ScratchGPTConfig, ScratchGPTForCausalLM
from hf_scratch.tokenizers import BPETokenizer, save_hf_tokenizer

METRICS = {"validation_loss": 1.9, "validation_perplexity": math.exp(1.9)}
HYPERPARAMETERS = {"learning_rate": 4e-4, "batch_size": 8, "max_steps": 200, "warmup": True}
COMMAND = "hf-scratch pretrain --corpus tinyshakespeare --max-steps 200"
MODEL_FILES = {"config.json", "generation_config.json", "model.safetensors", "attention.py", "layers.py",
               "configuration_scratch_gpt.py", "modeling_scratch_gpt.py", "gpt2_interop.py"}
TOKENIZER_FILES = {"tokenizer.json", "tokenizer_config.json"}
RUN_RECORDS = {"metrics.json", "loss.png", "samples.txt"}
MODELS: dict[Path, ScratchGPTForCausalLM] = {}  # run folder -> the model saved in it, as it was in memory


def save_tiny_model(folder: Path, seed: int = 0) -> ScratchGPTForCausalLM:
    """A tiny causal LM with weights moved off their initial values, and a byte-level tokenizer."""
    torch.manual_seed(seed)
    config = ScratchGPTConfig(vocab_size=257, context_length=64, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.0,
                              qkv_bias=True, eos_token_id=256, pad_token_id=256)
    model = ScratchGPTForCausalLM(config).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.05)
    model.save_pretrained(folder)
    save_hf_tokenizer(BPETokenizer.byte_level(), folder)
    return model


@pytest.fixture
def run(tmp_path):
    """A run folder as pretraining leaves it: final model at the top, plus records and training leftovers."""
    folder = tmp_path / "runs" / "tiny-shakespeare"
    model = save_tiny_model(folder)
    (folder / "metrics.json").write_text(json.dumps({**METRICS, "history": [[10, 3.2], [20, 2.5]]}))
    (folder / "loss.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    (folder / "samples.txt").write_text("Every effort moves you ...\n")
    (folder / "optimizer.pt").write_bytes(b"optimizer state")
    (folder / "training_args.bin").write_bytes(b"pickle")
    (folder / "train.log").write_text("step 10 loss 3.2\n")
    (folder / "train.py").write_text("print('my training script')\n")
    (folder / ".notes.py").write_text("hidden\n")
    checkpoint = folder / "checkpoint-100"
    checkpoint.mkdir()
    (checkpoint / "model.safetensors").write_bytes(b"old weights")
    (checkpoint / "optimizer.pt").write_bytes(b"old optimizer")
    write_model_card(folder, datasets=["tinyshakespeare"], hyperparameters=HYPERPARAMETERS, metrics=METRICS,
                     command=COMMAND, language="en")
    MODELS[folder] = model
    return folder


def push_parser():
    parser = argparse.ArgumentParser(prog="hf-scratch")
    add_push_command(parser.add_subparsers(dest="command"))
    return parser


def push(*argv):
    args = push_parser().parse_args(["push", *map(str, argv)])
    args.func(args)


def front_matter(text: str) -> dict:
    match = re.match(r"^---\n(.*?)\n---\n", text, re.DOTALL)
    assert match, "the card has no YAML front matter"
    return yaml.safe_load(match.group(1))


@pytest.fixture
def hub(monkeypatch):
    """The fake Hub, with huggingface_hub and transformers pointed at it and every other address refused."""
    from huggingface_hub import constants
    from transformers.utils import hub as transformers_hub

    real_connect = socket.socket.connect

    def loopback_only(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in ("127.0.0.1", "::1"):
            raise ConnectionRefusedError(f"test: only 127.0.0.1 may be contacted, not {address}")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", loopback_only)
    with FakeHub() as fake:
        for name, value in dict(HF_ENDPOINT=fake.url, HF_HUB_OFFLINE="0", HF_TOKEN=fake.token,
                                HF_HUB_DISABLE_XET="1", HF_HUB_DISABLE_TELEMETRY="1").items():
            monkeypatch.setenv(name, value)
        # huggingface_hub reads these variables once, at import: set what it already holds too.
        monkeypatch.setattr(constants, "ENDPOINT", fake.url)
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                            fake.url + "/{repo_id}/resolve/{revision}/{filename}")
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)  # legacy LFS: the fake has no Xet storage
        monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
        monkeypatch.setattr(transformers_hub, "_hf_api", None)  # transformers caches an HfApi with its endpoint
        yield fake
    assert fake.unexpected == [], fake.unexpected


# ------------------------------------------------------------------------------------------------------ cards
def test_card_carries_metadata_metrics_and_loading_instructions(run):
    text = (run / "README.md").read_text()
    meta = front_matter(text)
    assert meta["library_name"] == "transformers"
    assert meta["pipeline_tag"] == "text-generation"
    assert "hf_scratch" in meta["tags"]
    assert meta["datasets"] == ["tinyshakespeare"]
    assert meta["license"] == "apache-2.0"
    assert meta["language"] == "en"
    assert "base_model" not in meta  # trained from scratch

    results = meta["model-index"][0]["results"]
    assert len(results) == 1
    assert results[0]["task"]["type"] == "text-generation"
    assert results[0]["dataset"] == {"name": "tinyshakespeare", "type": "tinyshakespeare", "split": "validation"}
    assert {m["type"]: m["value"] for m in results[0]["metrics"]} == {"loss": 1.9,
                                                                      "perplexity": METRICS["validation_perplexity"]}
    # huggingface_hub reads the results back as EvalResults.
    card = ModelCard.load(run / "README.md")
    assert {(r.metric_type, r.metric_value, r.dataset_split) for r in card.data.eval_results} == {
        ("loss", 1.9, "validation"), ("perplexity", METRICS["validation_perplexity"], "validation")}

    assert COMMAND in text
    assert "| learning_rate | 0.0004 |" in text and "| warmup | true |" in text and "| max_steps | 200 |" in text
    assert "## Intended use and limitations" in text
    assert "2 layers × 32 dimensions × 4 attention heads, context of 64 tokens, vocabulary of 257" in text
    n_parameters = sum(p.numel() for p in MODELS[run].parameters())  # tied head counted once, like the card
    assert f"{n_parameters:,}" in text
    assert 'AutoModelForCausalLM.from_pretrained("path/to/this/folder", trust_remote_code=True)' in text
    assert "--as-gpt2" in text
    assert json.loads((run / "model_card.json").read_text())["metrics"] == METRICS


def test_finetuned_card_names_its_base_model_and_gpt2_card_needs_no_remote_code(tmp_path):
    folder = tmp_path / "model"
    save_tiny_model(folder)
    write_model_card(folder, datasets="alpaca", base_model="openai-community/gpt2", metrics={"eval_loss": 1.2})
    meta = front_matter((folder / "README.md").read_text())
    assert meta["base_model"] == "openai-community/gpt2"
    assert meta["model-index"][0]["results"][0]["metrics"] == [{"type": "loss", "value": 1.2,
                                                                "name": "Validation loss"}]

    gpt2_card = str(render_model_card(as_gpt2=True, repo_id="me/tiny"))
    assert "trust_remote_code=True" not in gpt2_card
    assert 'GPT2LMHeadModel.from_pretrained("me/tiny")' in gpt2_card
    assert "gpt2" in front_matter(gpt2_card)["tags"]


@pytest.mark.parametrize("kwargs, message", [
    (dict(kind="classifier-v9"), "no model card template for kind 'classifier-v9'"),
    (dict(metrics={"validation_loss": float("nan")}), "metric 'validation_loss' is nan"),
    (dict(metrics={"validation_loss": "low"}), "metric 'validation_loss' must be a number"),
    (dict(datasets=["ok", ""]), "each of datasets must be a non-empty string"),
    (dict(hyperparameters=[("lr", 1)]), "hyperparameters must be a dict"),
    (dict(base_model=7), "base_model must be a string"),
])
def test_bad_card_input_is_refused_with_the_problem_named(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        write_model_card(tmp_path / "model", **kwargs)
    assert not (tmp_path / "model" / "README.md").exists()


# ------------------------------------------------------------------------------------------------------ dry run
def parse_dry_run(output: str) -> tuple[dict[str, int], str]:
    """The files (name -> bytes) and the card printed by --dry-run."""
    listing, _, card = output.partition("\n----- README.md -----\n")
    card = card.rsplit("\n----- end of README.md -----", 1)[0] + "\n"
    files = {}
    for line in listing.splitlines()[1:]:
        if line == "left out:":
            break
        match = re.fullmatch(r"  (\S+) +([\d,]+) bytes  .+", line)
        assert match, f"unexpected line in the file list: {line!r}"
        files[match.group(1)] = int(match.group(2).replace(",", ""))
    return files, card


def test_dry_run_lists_exactly_the_files_and_the_card_and_uploads_nothing(run, capsys, monkeypatch):
    monkeypatch.setattr(socket.socket, "connect", lambda *a: pytest.fail("the dry run opened a connection"))
    push(run, "me/tiny-shakespeare", "--dry-run")
    output = capsys.readouterr().out
    files, card = parse_dry_run(output)

    assert set(files) == MODEL_FILES | TOKENIZER_FILES | RUN_RECORDS | {"README.md"}
    for name in files.keys() - {"README.md"}:
        assert files[name] == (run / name).stat().st_size, name
    assert files["README.md"] == len(card.encode())
    # The card is rendered again for the repo it goes to.
    assert 'AutoModelForCausalLM.from_pretrained("me/tiny-shakespeare", trust_remote_code=True)' in card
    assert front_matter(card)["model-index"][0]["name"] == "me/tiny-shakespeare"
    left_out = output.split("left out:\n", 1)[1].split("\n\n", 1)[0]
    for name in ("checkpoint-100/", "optimizer.pt", "training_args.bin", "train.log", "model_card.json", "train.py",
                 ".notes.py"):
        assert f"  {name}  (" in left_out, name


def test_dry_run_as_gpt2_lists_the_export_and_no_code(run, capsys):
    push(run, "me/tiny-gpt2", "--dry-run", "--as-gpt2")
    files, card = parse_dry_run(capsys.readouterr().out)
    assert set(files) == {"config.json", "generation_config.json", "model.safetensors", "README.md"} \
        | TOKENIZER_FILES | RUN_RECORDS
    assert "trust_remote_code=True" not in card and "stock GPT-2" in card


def test_gpt2_export_loads_without_remote_code_and_gives_the_same_logits(run, tmp_path):
    export = export_as_gpt2(run, tmp_path / "gpt2")
    assert not list(export.glob("*.py")) and "auto_map" not in json.loads((export / "config.json").read_text())
    assert type(AutoModelForCausalLM.from_pretrained(export)) is GPT2LMHeadModel
    gpt2 = GPT2LMHeadModel.from_pretrained(export).eval()
    ids = torch.randint(0, 257, (2, 20))
    with torch.no_grad():
        torch.testing.assert_close(gpt2(ids).logits, MODELS[run](ids).logits, rtol=1e-5, atol=1e-5)


def test_a_run_without_card_inputs_keeps_its_readme_or_gets_a_generated_card(run, capsys):
    (run / "model_card.json").unlink()
    (run / "README.md").write_text("---\nlicense: mit\n---\n\n# My own card\n")
    push(run, "me/own", "--dry-run")
    output = capsys.readouterr().out
    assert parse_dry_run(output)[1] == "---\nlicense: mit\n---\n\n# My own card\n"
    assert "note: README.md is the run's own card" in output

    (run / "README.md").unlink()
    push(run, "me/generated", "--dry-run")
    output = capsys.readouterr().out
    files, card = parse_dry_run(output)
    assert "README.md" in files and "note: README.md generated from config.json and metrics.json" in output
    results = front_matter(card)["model-index"][0]["results"][0]["metrics"]
    assert {m["type"]: m["value"] for m in results} == {"loss": 1.9, "perplexity": METRICS["validation_perplexity"]}


# ------------------------------------------------------------------------------------------------------ upload
def test_push_uploads_exactly_the_planned_files(run, hub, capsys):
    push(run, "me/tiny-shakespeare", "--dry-run")
    planned, planned_card = parse_dry_run(capsys.readouterr().out)

    push(run, "me/tiny-shakespeare", "--private")
    assert "pushed" in capsys.readouterr().out
    repo = hub.repos["me/tiny-shakespeare"]
    assert repo["private"] is True
    assert len(repo["commits"]) == 1
    received = hub.files("me/tiny-shakespeare")
    assert {name: len(data) for name, data in received.items()} == planned
    for name in planned.keys() - {"README.md"}:
        assert received[name] == (run / name).read_bytes(), name
    assert received["README.md"].decode() == planned_card
    # Binary files went through the LFS protocol, text inline, as on the Hub.
    assert sorted(hub.lfs_paths) == ["loss.png", "model.safetensors"]
    assert hub.validated_cards and hub.validated_cards[-1]["pipeline_tag"] == "text-generation"


def test_push_as_gpt2_delivers_a_stock_gpt2_with_the_same_logits(run, hub, tmp_path):
    push(run, "me/tiny-gpt2", "--as-gpt2")
    received = hub.files("me/tiny-gpt2")
    assert not [name for name in received if name.endswith(".py")]
    download = tmp_path / "download"
    download.mkdir()
    for name, data in received.items():
        (download / name).write_bytes(data)
    loaded = AutoModelForCausalLM.from_pretrained(download).eval()  # no trust_remote_code
    assert type(loaded) is GPT2LMHeadModel
    ids = torch.randint(0, 257, (1, 16))
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, MODELS[run](ids).logits, rtol=1e-5, atol=1e-5)


def test_save_pretrained_and_push_to_hub_work_for_our_model(hub, tmp_path):
    torch.manual_seed(0)
    model = ScratchGPTForCausalLM(ScratchGPTConfig(vocab_size=97, context_length=32, emb_dim=32, n_heads=4,
                                                   n_layers=1))
    folder = tmp_path / "pushed"
    model.save_pretrained(folder, push_to_hub=True, repo_id="me/pushed")
    received = hub.files("me/pushed")
    local = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    assert {"config.json", "model.safetensors", "modeling_scratch_gpt.py", "README.md"} <= set(local)
    assert received == local

    model.push_to_hub("me/pushed-again")
    assert {"config.json", "model.safetensors", "modeling_scratch_gpt.py", "README.md"} <= set(
        hub.files("me/pushed-again"))
    assert hub.files("me/pushed-again")["model.safetensors"] == local["model.safetensors"]


def test_push_twice_to_an_existing_repo_adds_a_commit(run, hub):
    push(run, "me/again")
    push(run, "me/again")
    assert len(hub.repos["me/again"]["commits"]) == 2


# ------------------------------------------------------------------------------------------------------ bad input
def test_push_refuses_bad_input_before_contacting_the_hub(run, hub, tmp_path, monkeypatch):
    from huggingface_hub import constants

    not_a_run = tmp_path / "not-a-run"
    (not_a_run / "checkpoint-5").mkdir(parents=True)
    (not_a_run / "metrics.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="run folder not found: .*missing"):
        push(tmp_path / "missing", "me/x")
    with pytest.raises(ValueError, match=r"not a saved model: it has no config.json and no safetensors weights.*"
                                         r"checkpoint-5"):
        push(not_a_run, "me/x")
    with pytest.raises(ValueError, match="is a file"):
        push(run / "config.json", "me/x")
    for bad in ("not a repo", "a/b/c", "me/x--y", "-me/x"):
        with pytest.raises(ValueError, match="is not a valid Hub repo id"):
            push("--", run, bad)  # "--": a repo id may start with "-"
    # --as-gpt2 of something that is not our causal LM
    gpt2_folder = export_as_gpt2(run, tmp_path / "gpt2")
    with pytest.raises(ValueError, match="only a ScratchGPTForCausalLM exports as GPT-2"):
        push(gpt2_folder, "me/x", "--as-gpt2")

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ValueError, match="HF_HUB_OFFLINE is set"):
        push(run, "me/x")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)

    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token-file"))
    with pytest.raises(ValueError, match="no Hugging Face token: set HF_TOKEN"):
        push(run, "me/x")
    assert hub.requests == []

    with pytest.raises(ValueError, match=r"refused the token \(HTTP 401\)"):
        push(run, "me/x", "--token", "hf_wrong")
    assert hub.repos == {}


def test_push_in_a_fresh_process_follows_hf_endpoint_and_hf_token(run, tmp_path):
    """The environment alone (no patched constants) sends the upload to HF_ENDPOINT with HF_TOKEN."""
    script = ("import argparse, sys\n"
              "from hf_scratch.hub import add_push_command\n"
              "parser = argparse.ArgumentParser(); add_push_command(parser.add_subparsers(dest='command'))\n"
              "args = parser.parse_args(sys.argv[1:]); args.func(args)\n")
    with FakeHub() as fake:
        env = {**os.environ, "HF_ENDPOINT": fake.url, "HF_TOKEN": fake.token, "HF_HUB_OFFLINE": "0",
               "TRANSFORMERS_OFFLINE": "0", "HF_HUB_DISABLE_XET": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
               "HF_HOME": str(tmp_path / "hf_home")}
        result = subprocess.run([sys.executable, "-c", script, "push", str(run), "me/env", "--private"], env=env,
                                capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        assert result.returncode == 0, result.stderr[-3000:]
        assert f"pushed {run} to me/env: {fake.url}/me/env/commit/" in result.stdout
        assert fake.unexpected == []
        received = fake.files("me/env")
        assert received["model.safetensors"] == (run / "model.safetensors").read_bytes()
        assert set(received) == MODEL_FILES | TOKENIZER_FILES | RUN_RECORDS | {"README.md"}


# ------------------------------------------------------------------------------------------------------ adapters
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_lora_adapter_pushes_alone_and_merges_from_the_hub(tmp_path, hub, capsys):
    """A LoRA run's adapter/ folder pushes as a repo of its own (its files and card, nothing of the model), and
    merge-lora folds it into the base straight from the Hub, as it does from the folder."""
    from hf_scratch.cli import main
    from hf_scratch.training.lora_setup import LoRASettings, save_lora_run, wrap_with_lora

    base = tmp_path / "base"
    save_tiny_model(base)
    run = tmp_path / "run"
    settings = LoRASettings(lora=True, lora_impl="peft", lora_rank=2, lora_alpha=4.0)
    model, _ = wrap_with_lora(ScratchGPTForCausalLM.from_pretrained(base), settings, trainable=())
    with torch.no_grad():  # stands in for training: B is no longer zero
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_()
    save_lora_run(model, run, settings, base=str(base), card=dict(command="test"))

    lone = tmp_path / "lone"  # a folder holding no model, only an adapter/ inside
    shutil.copytree(run / "adapter", lone / "adapter")
    with pytest.raises(ValueError, match="to push its LoRA adapter alone, pass .*lone/adapter"):
        push(lone, "me/not-a-run", "--dry-run")
    (run / "adapter" / "notes.txt").write_text("not part of the adapter")
    push(run / "adapter", "me/tiny-lora", "--dry-run")
    planned, card = parse_dry_run(capsys.readouterr().out)
    assert set(planned) == {"adapter_config.json", "adapter_model.safetensors", "lora_config.json", "README.md"}
    assert front_matter(card)["library_name"] == "peft" and "me/tiny-lora" in card
    with pytest.raises(ValueError, match="--as-gpt2 exports a model"):
        push(run / "adapter", "me/tiny-lora", "--as-gpt2", "--dry-run")

    push(run / "adapter", "me/tiny-lora")
    received = hub.files("me/tiny-lora")
    assert {name: len(data) for name, data in received.items()} == planned

    assert main(["merge-lora", str(base), "me/tiny-lora", str(tmp_path / "from_hub")]) == 0
    assert main(["merge-lora", str(base), str(run / "adapter"), str(tmp_path / "from_folder")]) == 0
    folders = (tmp_path / "from_hub", tmp_path / "from_folder", run)
    merged = [load_file(folder / "model.safetensors") for folder in folders]
    for name, tensor in merged[0].items():
        assert torch.equal(tensor, merged[1][name]) and torch.allclose(tensor, merged[2][name], atol=1e-6), name
