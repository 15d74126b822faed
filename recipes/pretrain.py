"""Pretraining, launchable with accelerate; the options of ``hf-scratch pretrain``, plus ``--config FILE.yaml``
whose keys are the same options (command-line options given after it win).

    python recipes/pretrain.py --config recipes/configs/shakespeare_char.yaml       # one process
    accelerate launch --config_file recipes/accelerate/cpu_ddp_2proc.yaml recipes/pretrain.py --max-steps 200
    accelerate launch --config_file recipes/accelerate/multi_gpu.yaml recipes/pretrain.py \\
        --config recipes/configs/verdict_124m.yaml --bf16

Under accelerate the Trainer engine runs data-parallel: ``--batch-size`` is per process, so the global batch is
``batch_size x grad_accum x processes``. See recipes/README.md.
"""

import sys

from hf_scratch.cli import main
from hf_scratch.options import expand_config_file

if __name__ == "__main__":
    sys.exit(main(["pretrain", *expand_config_file(sys.argv[1:])]))
