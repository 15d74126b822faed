"""Command-line options from config dataclasses, and YAML files of the same options (for ``recipes/``)."""

import argparse
import dataclasses
import typing


def add_dataclass_options(parser: argparse.ArgumentParser, cls, helps: dict[str, str], skip=("command",)):
    """One ``--option`` per field of the config dataclass ``cls``, typed from its annotation, except the fields in
    ``skip`` (by default ``command``, which the CLI records itself)."""
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if field.name in skip:
            continue
        flag = "--" + field.name.replace("_", "-")
        kind = hints[field.name]
        base = next((t for t in typing.get_args(kind) if t is not type(None)), kind)
        if base is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=field.default,
                                help=helps.get(field.name))
        else:
            parser.add_argument(flag, type=base, default=field.default, help=helps.get(field.name),
                                metavar=field.name.upper())


def expand_config_file(argv: list[str]) -> list[str]:
    """Replace ``--config FILE.yaml`` by the options it holds (keys are option names); options given on the
    command line after it still win, as argparse keeps the last value."""
    if "--config" not in argv:
        return argv
    import yaml

    at = argv.index("--config")
    with open(argv[at + 1]) as file:
        settings = yaml.safe_load(file) or {}
    from_file = []
    for key, value in settings.items():
        flag = key.replace("_", "-")
        if isinstance(value, bool):
            from_file.append(f"--{flag}" if value else f"--no-{flag}")
        else:
            from_file += [f"--{flag}", str(value)]
    return from_file + argv[:at] + argv[at + 2 :]
