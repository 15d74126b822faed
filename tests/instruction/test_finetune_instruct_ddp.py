"""``accelerate launch`` runs finetune-instruct data-parallel: 2 gloo processes with batch 2 follow the same
losses as 1 process with batch 4, and only the main process answers the test records and writes the run folder.

This caught a silent failure: a ``Trainer.evaluate()`` before ``train()`` (for the losses before training) left the
model unwrapped for data parallelism in transformers 5.24, so each process trained on its half of every batch
alone; the losses before training are now evaluated inside ``train()`` (``eval_on_start``)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hf_scratch.cli import main
from hf_scratch.instruction import build_training_text, load_instruction_records
from hf_scratch.tokenizers import BPETokenizer

REPO = Path(__file__).resolve().parents[2]


def test_two_processes_match_one_with_the_same_global_batch(tmp_path):
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    assert accelerate, "the accelerate launcher is installed with the package"
    BPETokenizer.train([build_training_text(r) for r in load_instruction_records()[:300]],
                       vocab_size=300).save(tmp_path / "bpe")
    common = ["--init", "random", "--tokenizer", str(tmp_path / "bpe"), "--n-layers", "1", "--emb-dim", "16",
              "--n-heads", "2", "--context-length", "256", "--limit", "8", "--epochs", "2", "--lr", "1e-2",
              "--max-new-tokens", "4", "--no-progress"]
    assert main(["finetune-instruct", *common, "--batch-size", "4", "--output-dir", str(tmp_path / "single")]) == 0

    argv = [accelerate, "launch", "--config_file", str(REPO / "recipes/accelerate/cpu_ddp_2proc.yaml"),
            str(REPO / "recipes/finetune_instruct.py"), *common, "--batch-size", "2",
            "--output-dir", str(tmp_path / "ddp")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # two workers on two cores
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("done in") == 1  # one report, from the main process

    single, ddp = (json.loads((tmp_path / name / "metrics.json").read_text()) for name in ("single", "ddp"))
    assert [s["step"] for s in ddp["train_loss_per_step"]] == [s["step"] for s in single["train_loss_per_step"]]
    # The same examples per optimizer step, the same token-weighted gradient (DDP only reorders float sums).
    assert [s["loss"] for s in ddp["train_loss_per_step"]] == \
        pytest.approx([s["loss"] for s in single["train_loss_per_step"]], rel=1e-4)
    for key in ("initial_train_loss", "final_train_loss", "final_validation_loss", "final_test_loss"):
        assert ddp[key] == pytest.approx(single[key], rel=1e-4), key
    answers = [json.loads((tmp_path / name / "test_responses.json").read_text()) for name in ("single", "ddp")]
    assert len(answers[1]) == 8 and answers[0] == answers[1]
