"""The command line of a Config: --preset plus one --config.<field> flag per field, parsed by absl.

A launcher defines the flags at import and builds its config in main:

    config_flags.define_flags()
    ...
    config = config_flags.from_flags()   # --preset=debug --config.seq_len=8 ...

Values are parsed by absl's and ml_collections' flag parsers: tuples as Python literals
(`--config.encoder_channels=8,16,32,64` or `'(8, 16, 32, 64)'`), floats including `inf` (uniform
replay sampling); `config.validate` then checks types and ranges and names the field.
"""

import dataclasses
from typing import Any

from absl import flags
from ml_collections.config_flags import tuple_parser

from twm_tf import config as config_lib

_FIELD_FLAGS = "config."


def _parser(kind: type) -> flags.ArgumentParser:
    """The absl/ml_collections parser of a field of type `kind`."""
    if kind is bool:
        return flags.BooleanParser()
    if kind is int:
        return flags.IntegerParser()
    if kind is float:
        return flags.FloatParser()
    if kind is tuple:
        return tuple_parser.TupleParser()
    return flags.ArgumentParser()


_FIELDS = {f.name: f for f in dataclasses.fields(config_lib.Config)}


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Defines --preset and --config.<field> for every Config field (defaults: the preset's)."""
    flags.DEFINE_enum(
        "preset",
        "atari100k",
        sorted(config_lib.PRESETS),
        "Named configuration.",
        flag_values=flag_values,
    )
    for f in _FIELDS.values():
        bounds = f" {f.metadata['bounds']}" if f.metadata["bounds"] else ""
        help_text = f.metadata["help"] + f" (paper: {f.default}{';' if bounds else ''}{bounds})"
        name = _FIELD_FLAGS + f.name
        if type(f.default) is bool:  # DEFINE_bool also gives --no<name>.
            flags.DEFINE_bool(name, None, help_text, flag_values=flag_values)
        else:
            flags.DEFINE(_parser(type(f.default)), name, None, help_text, flag_values=flag_values)


def parse_field(name: str, text: str) -> Any:
    """Parses `text` as the command line would for --config.<name>; ValueError names the field."""
    if name not in _FIELDS:
        raise ValueError(f"config has no field {name!r}")
    try:
        return _parser(type(_FIELDS[name].default)).parse(text)
    except ValueError as error:
        raise ValueError(f"config.{name}: {error}") from None


def field_flags(changes: dict[str, Any]) -> list[str]:
    """The --config.<field>=<value> arguments that reproduce `changes` on a command line."""

    def text(value):
        if isinstance(value, bool):
            return str(value).lower()
        if isinstance(value, tuple):
            return ",".join(map(str, value))
        return str(value)

    return [f"--{_FIELD_FLAGS}{name}={text(value)}" for name, value in changes.items()]


def flag_changes(flag_values: flags.FlagValues = flags.FLAGS) -> dict[str, Any]:
    """The fields given as --config.<field> on the command line, by name."""
    changes = {}
    for name in _FIELDS:
        value = flag_values[_FIELD_FLAGS + name].value
        if value is not None:
            changes[name] = value
    return changes


def from_flags(flag_values: flags.FlagValues = flags.FLAGS, **overrides) -> config_lib.Config:
    """Builds the config of --preset with every --config.<field> given on the command line.

    `overrides` (e.g. game=, seed= from a launcher's own flags) apply before the --config ones.
    """
    changes = dict(overrides)
    for name, value in flag_changes(flag_values).items():
        if name in overrides and overrides[name] != value:
            raise ValueError(
                f"--{name}={overrides[name]!r} and --{_FIELD_FLAGS}{name}={value!r} "
                "disagree; give one of them"
            )
        changes[name] = value
    return config_lib.preset(flag_values.preset, **changes)
