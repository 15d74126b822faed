"""Pretraining, launchable with accelerate; the same options as ``hf-scratch pretrain``.

    python recipes/pretrain.py --corpus the-verdict --epochs 10            # one process
    accelerate launch --config_file recipes/accelerate/cpu_ddp_2proc.yaml recipes/pretrain.py --max-steps 200
    accelerate launch --config_file recipes/accelerate/multi_gpu.yaml recipes/pretrain.py --preset gpt2 --bf16

Under accelerate the Trainer engine runs data-parallel: ``--batch-size`` is per process, so the global batch is
``batch_size x grad_accum x processes``. See recipes/README.md.
"""

import sys

from hf_scratch.cli import main

if __name__ == "__main__":
    sys.exit(main(["pretrain", *sys.argv[1:]]))
