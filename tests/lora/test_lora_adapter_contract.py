"""The lora-adapter kind: a peft adapter written by save_lora_run loads, offline, in a fresh process where hf_scratch
cannot be imported (base with trust_remote_code, adapter with PeftModel.from_pretrained) and gives the outputs of
the run's merged model; the adapter's model card, in both formats."""

import copy
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from lora_helpers import batch, randomise_adapters, tiny_classifier, tiny_lm

from hf_scratch.hub import CARD_INPUTS_FILE, render_model_card
from hf_scratch.training.lora_setup import LoRASettings, save_lora_run, wrap_with_lora

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


def lora_run(base_model, root, name, impl, trainable, targets=None):
    """Save ``base_model`` as the base, train nothing but give the adapters (and the head) values, save the run."""
    base = root / f"{name}-base"
    base_model.save_pretrained(base)
    settings = LoRASettings(lora=True, lora_impl=impl, lora_rank=4, lora_alpha=8, lora_targets=targets)
    wrapped, _ = wrap_with_lora(copy.deepcopy(base_model), settings, trainable)
    randomise_adapters(wrapped)
    with torch.no_grad():
        for param_name, param in wrapped.named_parameters():
            if "score" in param_name and param.requires_grad:
                param.add_(1.0)  # a head trained in full must come back from the adapter, not from the base
    ids = batch()
    with torch.no_grad():
        expected = wrapped(input_ids=ids).logits
    run = root / f"{name}-run"
    merged = save_lora_run(wrapped, run, settings, base=str(base),
                           card=dict(datasets=["sms-spam"], metrics={"test_accuracy": 0.5}, command="a test"))
    with torch.no_grad():
        torch.testing.assert_close(merged(ids).logits, expected, rtol=1e-5, atol=1e-6)
    return base, run, expected


SCRIPT = """
import sys
sys.modules["hf_scratch"] = None  # the package must not be importable here
import json, torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

ids = torch.tensor(IDS)
out = {}
for name, auto, base, run in CASES:
    auto = {"classifier": AutoModelForSequenceClassification, "causal_lm": AutoModelForCausalLM}[auto]
    model = PeftModel.from_pretrained(auto.from_pretrained(base, trust_remote_code=True), run + "/adapter").eval()
    merged_here = model.merge_and_unload()
    root = auto.from_pretrained(run, trust_remote_code=True).eval()
    with torch.no_grad():
        out[name] = {"adapter": model(input_ids=ids).logits.tolist(), "merged": merged_here(ids).logits.tolist(),
                     "root": root(ids).logits.tolist(), "class": type(merged_here).__module__}
print("RESULT " + json.dumps(out))
"""


def test_fresh_process_loads_the_peft_adapter_without_hf_scratch(tmp_path):
    cases, expected = [], {}
    for name, model, trainable in (("classifier", tiny_classifier(seed=5), ("score",)), ("causal_lm", tiny_lm(), ())):
        base, run, logits = lora_run(model, tmp_path, name, "peft", trainable)
        cases.append((name, name, str(base), str(run)))
        expected[name] = logits
    code = f"IDS = {batch().tolist()!r}\nCASES = {cases!r}\n" + textwrap.dedent(SCRIPT)
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "PYTHONPATH": ""}
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, result.stdout[-3000:] + result.stderr[-3000:]
    got = json.loads(lines[-1].removeprefix("RESULT "))
    for name, want in expected.items():
        assert got[name]["class"].startswith("transformers_modules.")  # the code shipped with the checkpoint
        for key in ("adapter", "merged", "root"):
            torch.testing.assert_close(torch.tensor(got[name][key]), want, rtol=1e-5, atol=1e-5, msg=f"{name} {key}")


@pytest.mark.parametrize("impl", ["scratch", "peft"])
def test_adapter_card(tmp_path, impl):
    base, run, _ = lora_run(tiny_classifier(), tmp_path, impl, impl, ("score",))
    adapter = run / "adapter"
    card = (adapter / "README.md").read_text()
    meta = card.split("---")[1]
    assert f"library_name: {'peft' if impl == 'peft' else 'hf_scratch'}" in meta
    assert "pipeline_tag: text-classification" in meta and "- lora" in meta
    assert "base_model:" not in meta  # a local folder is no Hub id; the body names it instead
    assert f"**Base model:** `{base}`" in card
    assert f"| lora_impl | {impl} |" in card and "| lora_rank | 4 |" in card and "| trained_in_full | score |" in card
    assert f"hf-scratch merge-lora {base} " in card
    assert ("PeftModel.from_pretrained" in card) == (impl == "peft")
    assert ("load_lora_adapter" in card) == (impl == "scratch")
    assert "| test | accuracy | 0.5 |" in card
    # model_card.json holds what renders the card again (as hf-scratch push does).
    inputs = json.loads((adapter / CARD_INPUTS_FILE).read_text())
    assert inputs["kind"] == "lora-adapter" and inputs["pipeline_tag"] == "text-classification"
    assert str(render_model_card(**inputs, folder=adapter)).rstrip("\n") == card.rstrip("\n")


def test_causal_lm_adapter_card_and_random_base(tmp_path):
    settings = LoRASettings(lora=True, lora_rank=2, lora_alpha=2)
    wrapped, _ = wrap_with_lora(tiny_lm(), settings, ())
    save_lora_run(wrapped, tmp_path / "run", settings, base=None)
    card = (tmp_path / "run" / "adapter" / "README.md").read_text()
    assert "pipeline_tag: text-generation" in card and "not recorded (the run started from random weights" in card
    assert "from hf_scratch.model import ScratchGPTForCausalLM" in card
