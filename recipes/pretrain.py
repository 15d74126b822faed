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

import yaml

from hf_scratch.cli import main


def options_from_yaml(path: str) -> list[str]:
    with open(path) as file:
        settings = yaml.safe_load(file) or {}
    argv = []
    for key, value in settings.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            argv.append(flag if value else "--no-" + key.replace("_", "-"))
        else:
            argv += [flag, str(value)]
    return argv


if __name__ == "__main__":
    argv = sys.argv[1:]
    if "--config" in argv:
        at = argv.index("--config")
        argv = options_from_yaml(argv[at + 1]) + argv[:at] + argv[at + 2 :]
    sys.exit(main(["pretrain", *argv]))
