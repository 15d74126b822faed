"""The loading contract: a saved causal LM (model + tokenizer + card) loads, offline, in a fresh process where
``hf_scratch`` cannot be imported, with the Auto classes and ``transformers.pipeline`` (``trust_remote_code=True``),
and gives the tokens and text it gives here; its ``--as-gpt2`` export loads there with no remote code at all."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from transformers import AutoTokenizer, pipeline

from hf_scratch.hub import export_as_gpt2, write_model_card
from hf_scratch.model import ScratchGPTConfig, ScratchGPTForCausalLM
from hf_scratch.tokenizers import ENDOFTEXT, BPETokenizer, save_hf_tokenizer

PROMPTS = ["I had always thought Jack Gisburn", "The height of his glory"]
NEW_TOKENS = 12


@pytest.fixture(scope="module")
def saved(data_dir, tmp_path_factory):
    """A tiny causal LM with a BPE tokenizer trained on the-verdict, saved as a run, and its GPT-2 export."""
    text = (data_dir / "the-verdict" / "the-verdict.txt").read_text(encoding="utf-8")
    bpe = BPETokenizer.train(text, vocab_size=320)
    eos = bpe.special_tokens[ENDOFTEXT]
    torch.manual_seed(0)
    config = ScratchGPTConfig(vocab_size=bpe.vocab_size, context_length=64, emb_dim=32, n_heads=4, n_layers=2,
                              drop_rate=0.0, eos_token_id=eos, pad_token_id=eos)
    model = ScratchGPTForCausalLM(config).eval()
    with torch.no_grad():  # off the initial values, so a silent re-initialisation on load cannot pass
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.5)
    root = tmp_path_factory.mktemp("contract")
    run = root / "run"
    model.save_pretrained(run)
    save_hf_tokenizer(bpe, run)
    write_model_card(run, datasets=["the-verdict"], metrics={"validation_loss": 5.0}, command="test")
    gpt2 = export_as_gpt2(run, root / "gpt2")
    return run, gpt2, model


def reference(model, folder):
    """Tokens, text and logits in this process, where hf_scratch is imported and the tokenizer comes from disk."""
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokens, texts, logits = [], [], []
    for prompt in PROMPTS:
        ids = tokenizer(prompt, return_tensors="pt").input_ids
        with torch.no_grad():
            out = model.generate(ids, max_new_tokens=NEW_TOKENS, do_sample=False)
            logits.append(model(ids).logits[0].tolist())
        assert out.shape[1] == ids.shape[1] + NEW_TOKENS  # a full continuation, not an early end-of-text
        tokens.append(out[0].tolist())
        texts.append(tokenizer.decode(out[0]))
    generator = pipeline("text-generation", model=model, tokenizer=tokenizer)
    piped = [generator(p, max_new_tokens=NEW_TOKENS, do_sample=False)[0]["generated_text"] for p in PROMPTS]
    return {"tokens": tokens, "texts": texts, "logits": logits, "pipeline": piped}


SCRIPT = """
import sys
sys.modules["hf_scratch"] = None  # the package must not be importable here
try:
    import hf_scratch
except ImportError:
    pass
else:
    raise SystemExit("hf_scratch was importable")
import json, torch
from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline

def outputs(folder, **kwargs):
    model = AutoModelForCausalLM.from_pretrained(folder, **kwargs).eval()
    # AutoTokenizer reads config.json too, and asks before running its auto_map code unless told it may.
    tokenizer = AutoTokenizer.from_pretrained(folder, **kwargs)
    tokens, texts, logits = [], [], []
    for prompt in PROMPTS:
        ids = tokenizer(prompt, return_tensors="pt").input_ids
        with torch.no_grad():
            out = model.generate(ids, max_new_tokens=NEW_TOKENS, do_sample=False)
            logits.append(model(ids).logits[0].tolist())
        tokens.append(out[0].tolist())
        texts.append(tokenizer.decode(out[0]))
    generator = pipeline("text-generation", model=folder, **kwargs)
    piped = [generator(p, max_new_tokens=NEW_TOKENS, do_sample=False)[0]["generated_text"] for p in PROMPTS]
    return {"class": type(model).__module__ + "." + type(model).__name__,
            "pipeline_class": type(generator.model).__module__ + "." + type(generator.model).__name__,
            "tokens": tokens, "texts": texts, "logits": logits, "pipeline": piped}

print("RESULT " + json.dumps({"remote_code": outputs(RUN, trust_remote_code=True), "gpt2": outputs(GPT2)}))
"""


def test_fresh_process_without_hf_scratch_loads_run_and_gpt2_export(saved, tmp_path):
    run, gpt2, model = saved
    expected = reference(model, run)

    header = f"PROMPTS = {PROMPTS!r}\nNEW_TOKENS = {NEW_TOKENS}\nRUN = {str(run)!r}\nGPT2 = {str(gpt2)!r}\n"
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "PYTHONPATH": ""}
    result = subprocess.run([sys.executable, "-c", header + textwrap.dedent(SCRIPT)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Do you wish to run the custom code" not in result.stdout  # nothing may need to ask
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, result.stdout[-3000:] + result.stderr[-3000:]
    got = json.loads(lines[-1].removeprefix("RESULT "))

    remote, stock = got["remote_code"], got["gpt2"]
    # The remote-code load runs the copy of the model code shipped in the folder, not the package.
    assert remote["class"].startswith("transformers_modules.") and remote["class"].endswith(".ScratchGPTForCausalLM")
    assert remote["pipeline_class"].startswith("transformers_modules.")
    assert stock["class"] == stock["pipeline_class"] == "transformers.models.gpt2.modeling_gpt2.GPT2LMHeadModel"
    for name, outputs in (("remote code", remote), ("gpt2 export", stock)):
        assert outputs["tokens"] == expected["tokens"], name
        assert outputs["texts"] == expected["texts"], name
        assert outputs["pipeline"] == expected["pipeline"], name
        for got_logits, want_logits in zip(outputs["logits"], expected["logits"], strict=True):
            torch.testing.assert_close(torch.tensor(got_logits), torch.tensor(want_logits), rtol=1e-5, atol=1e-5,
                                       msg=name)
    # The pipeline's text is the prompt followed by the greedy continuation.
    assert expected["pipeline"] == expected["texts"]
