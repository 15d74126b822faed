import json
import math

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from hf_scratch.cli import main
from hf_scratch.training import pretrain, report, resume_config
from hf_scratch.training.report import NonFiniteLossError

RUN_FILES = ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "metrics.json",
             "loss.png", "samples.txt", "README.md", "training_config.json", "modeling_scratch_gpt.py"]


def test_cli_run_writes_every_output_and_the_checkpoint_works(tmp_path, capsys):
    run = tmp_path / "run"
    status = main(["pretrain", "--max-steps", "10", "--eval-every", "5", "--batch-size", "4", "--n-layers", "2",
                   "--emb-dim", "32", "--n-heads", "2", "--context-length", "33", "--eval-batches", "2",
                   "--sample-tokens", "8", "--output-dir", str(run), "--no-progress"])
    assert status == 0
    out = capsys.readouterr().out
    assert "harbour-year" in out and "--corpus the-verdict" in out  # says what it trains on, and how else
    for name in RUN_FILES:
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["steps"] == 10 and [e["step"] for e in metrics["evaluations"]] == [5, 10]
    assert metrics["final_validation_perplexity"] == pytest.approx(math.exp(metrics["final_validation_loss"]))
    assert metrics["tokens_seen"] == 10 * 4 * 32
    assert (run / "samples.txt").read_text().count("--- step") == 2
    assert (run / "loss.png").read_bytes()[:4] == b"\x89PNG"

    model = AutoModelForCausalLM.from_pretrained(run).eval()
    tokenizer = AutoTokenizer.from_pretrained(run)
    ids = tokenizer("The harbour", return_tensors="pt").input_ids
    assert model.generate(ids, max_new_tokens=5, do_sample=False).shape == (1, ids.shape[1] + 5)

    assert main(["generate", str(run), "The harbour", "--max-new-tokens", "5"]) == 0
    assert capsys.readouterr().out.startswith("The harbour")


def test_a_non_empty_run_folder_is_kept_unless_asked(tiny_run, capsys):
    pretrain(tiny_run(max_steps=2))
    config_file = tiny_run().output_dir + "/training_config.json"
    before = open(config_file).read()
    assert main(["pretrain", "--output-dir", tiny_run().output_dir, "--max-steps", "1", "--no-progress"]) == 2
    assert "is not empty; pass --resume" in capsys.readouterr().err
    assert open(config_file).read() == before
    metrics = pretrain(tiny_run(max_steps=3, overwrite=True))
    assert metrics["steps"] == 3


@pytest.mark.parametrize("engine", ["trainer", "loop"])
def test_training_lowers_the_validation_loss(tiny_run, engine):
    metrics = pretrain(tiny_run(max_steps=40, eval_every=20, engine=engine, lr=5e-3, eval_batches=None))
    first, last = metrics["evaluations"][0]["validation_loss"], metrics["evaluations"][-1]["validation_loss"]
    assert first < math.log(257)  # better than uniform over the byte vocabulary already
    assert last < first


def test_the_two_engines_give_the_same_losses(tiny_run, tmp_path):
    """Same seed, data order, model and hyperparameters. Dropout is off: the two loops draw other random numbers
    between steps (Trainer's evaluation, for one), so dropout masks would differ. Without it both compute the
    same function on the same batches, and only float summation order may differ: 1e-5 relative is ample."""
    runs = {}
    for engine in ("trainer", "loop"):
        config = tiny_run(max_steps=20, engine=engine, drop_rate=0.0, grad_accum=2, output_dir=str(tmp_path / engine))
        runs[engine] = json.loads(json.dumps(pretrain(config)["train_loss_per_step"]))
    trainer, loop = runs["trainer"], runs["loop"]
    assert [s["step"] for s in trainer] == [s["step"] for s in loop] == list(range(1, 21))
    for a, b in zip(trainer, loop, strict=True):
        assert a["lr"] == b["lr"]
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)


@pytest.mark.parametrize("engine", ["trainer", "loop"])
def test_resume_ends_where_an_uninterrupted_run_ends(tiny_run, tmp_path, monkeypatch, engine):
    whole = tiny_run(engine=engine, output_dir=str(tmp_path / "whole"))
    pretrain(whole)

    interrupted = tiny_run(engine=engine, output_dir=str(tmp_path / "interrupted"))
    real = report.RunLog.log_step

    def stop_after_step_6(self, step, loss, lr):
        real(self, step, loss, lr)
        if step == 6:
            raise KeyboardInterrupt("simulated interruption after step 6")

    monkeypatch.setattr(report.RunLog, "log_step", stop_after_step_6)
    with pytest.raises(KeyboardInterrupt):
        pretrain(interrupted)
    monkeypatch.setattr(report.RunLog, "log_step", real)
    assert not (tmp_path / "interrupted" / "model.safetensors").exists()

    pretrain(resume_config(interrupted.output_dir, progress=False))
    a = AutoModelForCausalLM.from_pretrained(whole.output_dir).state_dict()
    b = AutoModelForCausalLM.from_pretrained(interrupted.output_dir).state_dict()
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=0, atol=1e-6, msg=name)
    whole_log = json.loads((tmp_path / "whole" / "metrics.json").read_text())["train_loss_per_step"]
    resumed_log = json.loads((tmp_path / "interrupted" / "metrics.json").read_text())["train_loss_per_step"]
    assert [s["lr"] for s in resumed_log] == [s["lr"] for s in whole_log]
    assert [s["step"] for s in resumed_log] == list(range(1, 13))


@pytest.mark.parametrize("engine", ["trainer", "loop"])
def test_a_non_finite_loss_stops_the_run_and_keeps_the_last_checkpoint(tiny_run, tmp_path, monkeypatch, engine):
    from hf_scratch.model import ScratchGPTForCausalLM

    real = ScratchGPTForCausalLM.next_token_loss
    calls = {"n": 0}

    def loss_goes_nan_at_step_7(self, logits, labels, num_items_in_batch=None):
        loss = real(self, logits, labels, num_items_in_batch)
        if self.training:
            calls["n"] += 1
            if calls["n"] >= 7:
                return loss * float("nan")
        return loss

    monkeypatch.setattr(ScratchGPTForCausalLM, "next_token_loss", loss_goes_nan_at_step_7)
    config = tiny_run(engine=engine)
    with pytest.raises(NonFiniteLossError, match="became nan at step 7"):
        pretrain(config)
    checkpoints = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert checkpoints == (["checkpoint-4"] if engine == "trainer" else ["step-4"])
    assert not (tmp_path / "run" / "model.safetensors").exists()  # no diverged weights in the run folder


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(corpus="no/such/file.txt"), "neither a file nor a known data set"),
        (dict(batch_size=100_000), "larger than the"),
        (dict(max_length=64, context_length=33), "max_length 64 needs 65 positions"),
        (dict(preset="gpt5"), "unknown preset 'gpt5'"),
        (dict(lr=0.0), "lr must be > 0"),
        (dict(lr=-1e-3), "lr must be > 0"),
    ],
)
def test_bad_input_fails_before_training(tiny_run, tmp_path, overrides, message):
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        pretrain(tiny_run(**overrides))
    assert not (tmp_path / "run").exists()


def test_a_corpus_smaller_than_one_window_is_refused(tiny_run, tmp_path):
    small = tmp_path / "small.txt"
    small.write_text("Only a few words here.", encoding="utf-8")
    with pytest.raises(ValueError, match="fewer than one window"):
        pretrain(tiny_run(corpus=str(small), tokenizer="bytes"))
    assert not (tmp_path / "run").exists()


def test_cli_bad_input_is_an_error_message(tmp_path, capsys):
    assert main(["pretrain", "--lr", "0", "--output-dir", str(tmp_path / "x")]) == 2
    assert "lr must be > 0" in capsys.readouterr().err
    assert main(["generate", str(tmp_path), "hi"]) == 2
    assert "holds no model" in capsys.readouterr().err


@pytest.mark.parametrize("engine", ["trainer", "loop"])
def test_clipping_bounds_the_global_gradient_norm(tiny_run, monkeypatch, engine):
    norms = []
    real_step = torch.optim.AdamW.step

    def recording_step(self, *args, **kwargs):  # the gradients the optimizer actually applies
        grads = [p.grad for group in self.param_groups for p in group["params"] if p.grad is not None]
        norms.append(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])).item())
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", recording_step)
    pretrain(tiny_run(engine=engine, max_steps=6, max_grad_norm=1e9, overwrite=True))
    unclipped, norms[:] = list(norms), []
    assert min(unclipped) > 0.05  # so a bound of 0.05 has work to do
    pretrain(tiny_run(engine=engine, max_steps=6, max_grad_norm=0.05, overwrite=True))
    assert len(norms) == 6
    assert max(norms) <= 0.05 * (1 + 1e-4)


def test_bare_command_is_the_embedded_demo(monkeypatch, tmp_path):
    seen = {}
    monkeypatch.setattr("hf_scratch.training.pretrain", lambda config: seen.setdefault("config", config) and {})
    assert main(["pretrain", "--output-dir", str(tmp_path / "demo")]) == 0
    config = seen["config"]
    assert config.corpus is None and config.max_steps == 2000 and config.stride == 1
    seen.clear()
    assert main(["pretrain", "--output-dir", str(tmp_path / "demo"), "--epochs", "2"]) == 0
    assert seen["config"].max_steps is None and seen["config"].stride is None  # the user's choice stands


def test_generate_reads_a_stock_gpt2_folder(tmp_path, capsys, data_dir):
    from transformers import GPT2Config, GPT2LMHeadModel

    from hf_scratch.tokenizers import load_gpt2_bpe, save_hf_tokenizer

    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, n_positions=64)).save_pretrained(tmp_path)
    save_hf_tokenizer(load_gpt2_bpe(data_dir / "gpt2-bpe"), tmp_path)
    assert main(["generate", str(tmp_path), "Hello there", "--max-new-tokens", "6", "--no-trust-remote-code"]) == 0
    greedy = capsys.readouterr().out
    assert greedy.startswith("Hello there")
    outputs = []
    for _ in range(2):
        assert main(["generate", str(tmp_path), "Hello there", "--max-new-tokens", "6", "--temperature", "1.0",
                     "--top-k", "50", "--top-p", "0.9", "--seed", "1"]) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1] and outputs[0].startswith("Hello there")  # the seed makes sampling repeatable


def test_generate_stays_within_the_context(tiny_run, capsys):
    pretrain(tiny_run(max_steps=2))
    run = tiny_run().output_dir
    assert main(["generate", run, "The", "--max-new-tokens", "500"]) == 0
    captured = capsys.readouterr()
    assert "context is 33 tokens; generating 30 new tokens, not 500" in captured.err
    assert main(["generate", run, "x" * 40]) == 2
    assert "the model's context holds 33" in capsys.readouterr().err
