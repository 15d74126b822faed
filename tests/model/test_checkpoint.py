import json
import os
import subprocess
import sys
import textwrap

import torch
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

import hf_scratch  # noqa: F401  (registers the Auto classes)
from hf_scratch.model import ScratchGPTConfig, ScratchGPTForCausalLM, ScratchGPTModel


def trained_like(model):
    """Move every tensor away from its initial value, so a silent re-initialisation on load cannot pass."""
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.05)
    return model


def test_save_and_auto_load_give_identical_tensors_and_logits(tmp_path, tiny_config):
    torch.manual_seed(0)
    model = trained_like(ScratchGPTForCausalLM(tiny_config(qkv_bias=True))).eval()
    model.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert type(loaded) is ScratchGPTForCausalLM
    saved, restored = model.state_dict(), loaded.state_dict()
    assert saved.keys() == restored.keys()
    for name in saved:
        assert torch.equal(saved[name], restored[name]), name
    assert loaded.out_head.weight is loaded.model.tok_emb.weight
    ids = torch.randint(0, 97, (2, 12))
    assert torch.equal(loaded(ids).logits, model(ids).logits)
    assert type(AutoConfig.from_pretrained(tmp_path)) is ScratchGPTConfig


def test_untied_head_survives_the_round_trip(tmp_path, tiny_config):
    torch.manual_seed(1)
    model = trained_like(ScratchGPTForCausalLM(tiny_config(tie_word_embeddings=False)))
    model.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert loaded.out_head.weight is not loaded.model.tok_emb.weight
    assert torch.equal(loaded.out_head.weight, model.out_head.weight)


def test_backbone_loads_with_auto_model(tmp_path, tiny_config):
    torch.manual_seed(2)
    backbone = trained_like(ScratchGPTModel(tiny_config())).eval()
    backbone.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    ids = torch.randint(0, 97, (1, 9))
    assert torch.equal(loaded(ids).last_hidden_state, backbone(ids).last_hidden_state)


def test_checkpoint_carries_its_code(tmp_path, tiny_config):
    ScratchGPTForCausalLM(tiny_config()).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "hf_scratch_gpt"
    assert config["auto_map"] == {
        "AutoConfig": "configuration_scratch_gpt.ScratchGPTConfig",
        "AutoModelForCausalLM": "modeling_scratch_gpt.ScratchGPTForCausalLM",
    }
    for name in ("modeling_scratch_gpt.py", "configuration_scratch_gpt.py", "attention.py", "layers.py"):
        assert (tmp_path / name).is_file(), name


def test_fresh_process_without_hf_scratch_loads_with_remote_code(tmp_path, tiny_config):
    torch.manual_seed(3)
    model = trained_like(ScratchGPTForCausalLM(tiny_config(qkv_bias=True))).eval()
    checkpoint = tmp_path / "checkpoint"
    model.save_pretrained(checkpoint)
    prompt = torch.randint(0, 97, (2, 5))
    expected = model.generate(prompt, max_new_tokens=12, do_sample=False, pad_token_id=0)

    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["hf_scratch"] = None  # the package must not be importable here
        try:
            import hf_scratch
        except ImportError:
            pass
        else:
            raise SystemExit("hf_scratch was importable")
        import json, torch
        from transformers import AutoModelForCausalLM
        model = AutoModelForCausalLM.from_pretrained({str(checkpoint)!r}, trust_remote_code=True).eval()
        prompt = torch.tensor({prompt.tolist()})
        tokens = model.generate(prompt, max_new_tokens=12, do_sample=False, pad_token_id=0)
        print(json.dumps({{"module": type(model).__module__, "tokens": tokens.tolist()}}))
        """
    )
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    output = json.loads(result.stdout.strip().splitlines()[-1])
    assert output["module"].startswith("transformers_modules.")  # the shipped copy, not the package
    assert output["tokens"] == expected.tolist()
