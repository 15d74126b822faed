import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hf_scratch.training import pretrain

REPO = Path(__file__).resolve().parents[2]


def test_two_process_ddp_matches_one_process_with_the_same_global_batch(tiny_run, tmp_path):
    """2 gloo processes x batch 2 against 1 process x batch 4. With dropout off and EpochShuffler's shared order,
    both see the same 4 windows per step; DDP averages the two halves' gradients, which only reorders float
    sums, hence 1e-5 relative."""
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    assert accelerate, "the accelerate launcher is installed with the package"
    common = dict(max_steps=8, drop_rate=0.0, eval_every=4)
    single = pretrain(tiny_run(batch_size=4, output_dir=str(tmp_path / "single"), **common))

    run = tiny_run(batch_size=2, output_dir=str(tmp_path / "ddp"), **common)
    argv = [accelerate, "launch", "--config_file", str(REPO / "recipes/accelerate/cpu_ddp_2proc.yaml"),
            str(REPO / "recipes/pretrain.py"), "--no-progress"]
    for name in ("max_steps", "batch_size", "n_layers", "emb_dim", "n_heads", "context_length", "warmup_steps",
                 "lr", "min_lr", "eval_every", "eval_batches", "sample_tokens", "drop_rate", "seed", "output_dir"):
        argv += ["--" + name.replace("_", "-"), str(getattr(run, name))]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # two workers on two cores
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]

    ddp = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert ddp["tokens_seen"] == single["tokens_seen"] == 8 * 4 * 32
    losses = [s["loss"] for s in ddp["train_loss_per_step"]]
    assert losses == pytest.approx([s["loss"] for s in single["train_loss_per_step"]], rel=1e-5)
    assert ddp["final_validation_loss"] == pytest.approx(single["final_validation_loss"], rel=1e-5)
