"""`hf-scratch finetune-classifier --lora` with either implementation, and `hf-scratch merge-lora`: the run folder
(merged model at the root, the adapter alone in adapter/), what the run records, merging both adapter formats back
into a full checkpoint, and clear errors for bad options."""

import json
import warnings

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

import hf_scratch  # noqa: F401  (registers the Auto classes)
from hf_scratch.cli import main
from hf_scratch.model import ScratchGPTConfig, ScratchGPTForCausalLM, ScratchGPTForSequenceClassification
from hf_scratch.tokenizers import BPETokenizer, save_hf_tokenizer

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")
TEXTS = ["WINNER!! You have won a free prize, call now", "Ok lar... see you at home tonight"]
COMMON = ["--epochs", "1", "--limit", "16", "--max-length", "24", "--batch-size", "8", "--lr", "1e-2",
          "--lora-rank", "4", "--lora-alpha", "8", "--no-progress"]
RUNS = {"scratch": ["--lora-impl", "scratch"],
        "peft": ["--lora-impl", "peft"],
        # the book's setting: the head is adapted too (its weight frozen), so peft cannot carry it by itself
        "peft-head-adapted": ["--lora-impl", "peft", "--lora-targets", "W_query,W_value,ff.layers.0,score"]}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A tiny byte-level causal LM with its tokenizer: the checkpoint the LoRA runs start from."""
    folder = tmp_path_factory.mktemp("lora_cli") / "base"
    bpe = BPETokenizer.byte_level()
    eot = bpe.vocab_size - 1
    torch.manual_seed(0)
    config = ScratchGPTConfig(vocab_size=bpe.vocab_size, context_length=32, emb_dim=16, n_heads=2, n_layers=2,
                              drop_rate=0.0, eos_token_id=eot, pad_token_id=eot)
    ScratchGPTForCausalLM(config).save_pretrained(folder)
    save_hf_tokenizer(bpe, folder)
    return folder


@pytest.fixture(scope="module")
def runs(base):
    out = {}
    for name, options in RUNS.items():
        out[name] = base.parent / f"run-{name}"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            argv = ["finetune-classifier", "--init", str(base), "--lora", *options, *COMMON, "--output-dir",
                    str(out[name])]
            assert main(argv) == 0
    return out


def logits(folder, ids):
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    assert type(model) is ScratchGPTForSequenceClassification
    with torch.no_grad():
        return model(ids).logits


@pytest.mark.parametrize("name", list(RUNS))
def test_lora_run_folder_and_record(runs, name):
    run = runs[name]
    impl = "scratch" if name == "scratch" else "peft"
    for file in ("config.json", "model.safetensors", "modeling_classification.py", "tokenizer.json", "metrics.json",
                 "README.md", "training_config.json"):
        assert (run / file).is_file(), file
    adapter = run / "adapter"
    files = {p.name for p in adapter.iterdir()}
    expected = {"lora_config.json", "README.md", "model_card.json"}
    expected |= {"lora_adapter.safetensors"} if impl == "scratch" else {"adapter_config.json",
                                                                         "adapter_model.safetensors"}
    if name == "peft-head-adapted":
        expected.add("head_weights.safetensors")
    assert files == expected
    # The root holds a plain model: no adapter tensors in its weights.
    from safetensors import safe_open

    with safe_open(run / "model.safetensors", "pt") as file:
        assert not any("lora" in k or "modules_to_save" in k for k in file.keys())
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["lora"]["impl"] == impl and metrics["lora"]["rank"] == 4 and metrics["lora"]["alpha"] == 8
    assert metrics["freeze"] == "head_only"
    assert metrics["lora"]["trained_in_full"] == ([] if name == "peft-head-adapted" else ["score"])
    config = json.loads((run / "training_config.json").read_text())
    assert config["lora"] is True and config["lora_impl"] == impl
    record = json.loads((adapter / "lora_config.json").read_text())
    assert record["impl"] == impl and record["base_model"] == str(runs[name].parent / "base")
    assert record["model_class"] == "ScratchGPTForSequenceClassification"
    card = (run / "README.md").read_text()
    assert f"| lora_impl | {impl} |" in card  # the run's own card records the implementation too


@pytest.mark.parametrize("name", list(RUNS))
def test_merge_lora_rebuilds_the_runs_model(runs, base, name, capsys):
    run = runs[name]
    out = run.parent / f"merged-{name}"
    assert main(["merge-lora", str(base), str(run / "adapter"), str(out)]) == 0
    assert "merged" in capsys.readouterr().out
    ids = torch.randint(0, 256, (2, 9), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(logits(out, ids), logits(run, ids), rtol=1e-5, atol=1e-6)
    assert AutoTokenizer.from_pretrained(out)("hi")["input_ids"] == AutoTokenizer.from_pretrained(base)("hi")[
        "input_ids"]
    merged_config = json.loads((out / "config.json").read_text())
    assert merged_config["id2label"] == {"0": "ham", "1": "spam"}
    card = (out / "README.md").read_text()
    assert "pipeline_tag: text-classification" in card and "hf-scratch merge-lora" in card
    # An occupied output is refused, --overwrite replaces it; the base and the adapter are never an output.
    assert main(["merge-lora", str(base), str(run / "adapter"), str(out)]) == 2
    assert "not empty; pass --overwrite" in capsys.readouterr().err
    assert main(["merge-lora", str(base), str(run / "adapter"), str(out), "--overwrite"]) == 0
    assert main(["merge-lora", str(base), str(run / "adapter"), str(base), "--overwrite"]) == 2
    assert "overlaps" in capsys.readouterr().err


def test_classify_reads_a_lora_run(runs, capsys):
    assert main(["classify", str(runs["scratch"]), *TEXTS]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and all(line.split("\t")[0] in ("ham", "spam") for line in lines)


def test_merge_lora_bad_input(runs, base, tmp_path, capsys):
    assert main(["merge-lora", str(base), str(tmp_path), str(tmp_path / "out")]) == 2
    assert "holds no LoRA adapter" in capsys.readouterr().err
    # An adapter trained on another shape: a base with twice the width.
    other = tmp_path / "wide"
    config = ScratchGPTConfig(vocab_size=257, context_length=32, emb_dim=32, n_heads=2, n_layers=2)
    ScratchGPTForCausalLM(config).save_pretrained(other)
    for name in ("scratch", "peft"):
        assert main(["merge-lora", str(other), str(runs[name] / "adapter"), str(tmp_path / name)]) == 2
        assert "does not fit this model" in capsys.readouterr().err


@pytest.mark.parametrize("options, message", [
    (["--lora", "--lora-rank", "0"], "rank must be a positive integer"),
    (["--lora", "--lora-alpha", "-1"], "alpha must be a positive number"),
    (["--lora", "--lora-impl", "loralib"], "lora_impl must be one of scratch, peft"),
    (["--lora-rank", "8"], "--lora-rank given without --lora"),
    (["--lora", "--freeze", "all"], "--freeze all cannot be combined with --lora"),
    (["--lora", "--lora-targets", "W_query,,W_value"], "comma-separated module names"),
    (["--lora", "--lora-targets", "W_query,attn.c_attn"], "'attn.c_attn' matches no module"),
])
def test_bad_lora_options(base, tmp_path, capsys, options, message):
    argv = ["finetune-classifier", "--init", str(base), *options, "--limit", "8", "--no-progress", "--output-dir",
            str(tmp_path / "run")]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_merge_lora_takes_a_folder_peft_wrote_by_itself(base, tmp_path):
    from peft import LoraConfig, get_peft_model

    from hf_scratch.training.lora_setup import merge_lora_checkpoint

    model = ScratchGPTForSequenceClassification.from_pretrained(base, num_labels=2)
    peft_model = get_peft_model(model, LoraConfig(task_type="SEQ_CLS", r=2, target_modules=["W_query", "W_value"]))
    with torch.no_grad():
        for param in peft_model.parameters():
            if param.requires_grad:
                param.add_(torch.randn_like(param) * 0.3)
    ids = torch.randint(0, 256, (2, 9), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = peft_model(input_ids=ids).logits
    peft_model.save_pretrained(tmp_path / "adapter")  # no lora_config.json of ours
    merge_lora_checkpoint(str(base), tmp_path / "adapter", tmp_path / "merged")
    torch.testing.assert_close(logits(tmp_path / "merged", ids), expected, rtol=1e-5, atol=1e-6)
