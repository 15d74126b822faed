"""Every YAML of recipes/configs/ names only options its recipe has, with values its config accepts, so the
documented commands cannot rot. (The runs themselves need the network or minutes; docs/results.md has them.)"""

from pathlib import Path

import pytest

from hf_scratch.cli import build_parser
from hf_scratch.options import expand_config_file

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "recipes" / "configs").glob("*.yaml"))
# Which command each config drives, by its name.
COMMANDS = {"instruct": "finetune-instruct", "spam": "finetune-classifier"}


def command_of(path: Path) -> str:
    return next((c for prefix, c in COMMANDS.items() if path.stem.startswith(prefix)), "pretrain")


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_config_parses_into_its_command(path):
    command = command_of(path)
    args = build_parser().parse_args([command, *expand_config_file(["--config", str(path)])])
    values = {k: v for k, v in vars(args).items() if k not in ("command", "func")}
    if command == "pretrain":
        from hf_scratch.training import PretrainConfig as Config
    elif command == "finetune-classifier":
        from hf_scratch.classification.finetune import FinetuneConfig as Config
    else:
        from hf_scratch.instruction.finetune import InstructConfig as Config
    config = Config(**values)  # validates every value
    import yaml

    for key, value in yaml.safe_load(path.read_text()).items():
        assert getattr(config, key) == value, key


def test_every_recipe_has_a_config():
    assert {command_of(p) for p in CONFIGS} == {"pretrain", "finetune-classifier", "finetune-instruct"}
