"""``hf-scratch finetune-instruct --lora`` with both implementations: only the adapters train, the run folder holds
the merged model and the adapter, ``merge-lora`` rebuilds the merged model from the base, and the saved answers
are the merged model's."""

import json
import warnings

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

import hf_scratch  # noqa: F401  (registers the Auto classes)
from hf_scratch.cli import main
from hf_scratch.instruction import generate_responses, load_instruction_records, split_records
from hf_scratch.model import ScratchGPTConfig, ScratchGPTForCausalLM
from hf_scratch.tokenizers import BPETokenizer, save_hf_tokenizer

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")
LIMIT = 6


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    folder = tmp_path_factory.mktemp("instruct_lora") / "base"
    bpe = BPETokenizer.byte_level()
    eot = bpe.eot_token
    torch.manual_seed(0)
    config = ScratchGPTConfig(vocab_size=bpe.vocab_size, context_length=512, emb_dim=16, n_heads=2, n_layers=2,
                              drop_rate=0.0, eos_token_id=eot, pad_token_id=eot)
    ScratchGPTForCausalLM(config).save_pretrained(folder)
    save_hf_tokenizer(bpe, folder)
    return folder


@pytest.mark.parametrize("impl", ["scratch", "peft"])
def test_lora_run_trains_only_adapters_and_merges_back(base, impl, tmp_path):
    run = tmp_path / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["finetune-instruct", "--init", str(base), "--lora", "--lora-impl", impl, "--lora-rank", "2",
                     "--lora-alpha", "4", "--limit", str(LIMIT), "--epochs", "1", "--batch-size", "3", "--lr", "1e-2",
                     "--max-new-tokens", "6", "--no-progress", "--output-dir", str(run)]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["lora"]["impl"] == impl and metrics["lora"]["layers"] == 2 * 6
    # Rank 2 on 6 linear layers (16x16 for q, k, v, out; 16x64 and 64x16 for the feed-forward) in 2 blocks.
    assert metrics["trainable_parameters"] == 2 * (4 * 2 * (16 + 16) + 2 * 2 * (16 + 64))
    assert (run / "adapter" / "README.md").is_file()

    # The embeddings, norms and output head are the base's: only the adapted linear layers changed.
    before, after = load_file(base / "model.safetensors"), load_file(run / "model.safetensors")
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed and all(any(t in name for t in ("W_query", "W_key", "W_value", "out_proj", "ff.layers"))
                           for name in changed)

    merged = tmp_path / "merged"
    assert main(["merge-lora", str(base), str(run / "adapter"), str(merged)]) == 0
    rebuilt = load_file(merged / "model.safetensors")
    for name, tensor in after.items():
        torch.testing.assert_close(rebuilt[name], tensor, rtol=0, atol=1e-6)

    # The saved answers are the merged checkpoint's answers.
    model, tokenizer = AutoModelForCausalLM.from_pretrained(run), AutoTokenizer.from_pretrained(run)
    tests = split_records(load_instruction_records())["test"][:LIMIT]
    saved = [r["model_response"] for r in json.loads((run / "test_responses.json").read_text())]
    assert generate_responses(model, tokenizer, tests, max_new_tokens=6) == saved


def test_lora_options_need_lora(tmp_path, capsys):
    assert main(["finetune-instruct", "--init", "random", "--lora-rank", "4", "--output-dir",
                 str(tmp_path / "out")]) == 2
    assert "--lora-rank given without --lora" in capsys.readouterr().err
    assert main(["finetune-instruct", "--init", "random", "--lora", "--lora-rank", "0", "--output-dir",
                 str(tmp_path / "out")]) == 2
    assert "rank" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
