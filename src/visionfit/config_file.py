"""A run's settings read from a YAML file: `visionfit train --config run.yaml`, `Config.from_file`.

The file has the sections of a run's saved config.yaml, so a saved file and a hand-written
one read the same way:

    data:  {data: digits/, image_size: 32}
    model: {model: resnet18, pretrained: true}
    train: {epochs: 5, lr: 0.01}           # a section may leave out any setting: it keeps its default
    run:   {name: digits-r18}

Settings sit in their section (a flat `lr: 0.01` at the top is refused, naming the section it
belongs to), paths are relative to the working folder, as on the command line, and visionfit's
own bookkeeping in a saved file (`resolved:`, `visionfit_version:`) is skipped. The file is
data: yaml.safe_load only (no tags that build objects), every key and type is checked, and
`run.resume` is refused: resuming is --resume's job.
"""
import dataclasses
import difflib
import math
import re
import reprlib
import typing
from pathlib import Path

from .config import SECTIONS
from .errors import ConfigError

# Top-level keys visionfit writes into a run's config.yaml that are not settings.
BOOKKEEPING = ("resolved", "visionfit_version")
MAX_BYTES = 1_000_000  # a config file is a few kilobytes; anything this big is the wrong file
# PyYAML follows YAML 1.1, which reads `1e-3` (no dot) as text; a float setting takes it as the number it means.
_NUMBER_TEXT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
_FIELDS = {name: {f.name: f for f in dataclasses.fields(kind)} for name, kind in SECTIONS.items()}
_TYPES = {name: typing.get_type_hints(kind) for name, kind in SECTIONS.items()}
_SHORT_REPR = reprlib.Repr()  # keyword arguments only from Python 3.12
_SHORT_REPR.maxlevel, _SHORT_REPR.maxlist, _SHORT_REPR.maxdict, _SHORT_REPR.maxstring = 2, 4, 4, 40


def read_config_file(path) -> dict:
    """The flat options `path` sets (`{"model": "resnet18", "lr": 0.01}`), each checked against its field."""
    where = f"--config {path}"
    options = {}
    for section, values in _load_mapping(Path(path), where).items():
        if section in BOOKKEEPING:
            continue
        if section not in SECTIONS:
            raise ConfigError(f"{where}: unknown section '{section}'{_section_hint(section)}")
        if not isinstance(values, (dict, type(None))):
            example = next(iter(_FIELDS[section]))
            raise ConfigError(f"{where}: section '{section}' holds {_kind(values)}; it must be a mapping of "
                              f"settings, e.g. {section}: {{{example}: ...}}")
        for key, value in (values or {}).items():
            options[key] = _checked(where, section, key, value)
    if options.get("resume") is not None:
        raise ConfigError(f"{where} sets run.resume; a file cannot resume a run: use --resume {options['resume']}")
    return options


def _load_mapping(path: Path, where: str) -> dict:
    """The file's YAML document, which must be a mapping (an empty file is an empty one)."""
    if path.is_dir():
        raise ConfigError(f"{where} is a folder; give a YAML file such as runs/exp/config.yaml")
    try:
        if path.stat().st_size > MAX_BYTES:
            raise ConfigError(f"{where} holds {path.stat().st_size:,} bytes, far more than settings take; "
                              "give a YAML file such as runs/exp/config.yaml")
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{where} does not exist; give a YAML file such as runs/exp/config.yaml") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{where} is not a text file (not UTF-8); give a YAML file such as runs/exp/config.yaml") from None
    except OSError as error:
        raise ConfigError(f"{where} cannot be read ({error.strerror or error}); check the file") from None
    document = _parse_yaml(text, where)
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigError(f"{where} holds {_kind(document)}; it must be a mapping of sections "
                          f"({', '.join(SECTIONS)}), as a run's config.yaml is")
    return document


def _parse_yaml(text: str, where: str):
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        at = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).strip().splitlines()[0]
        raise ConfigError(f"{where} is not plain YAML ({at}{problem}); write settings as "
                          "`section: {key: value}` with no tags") from None


def _checked(where: str, section: str, key, value):
    """`value` for section.key, once the key is known and the value has the field's type."""
    fields = _FIELDS[section]
    if key not in fields:
        raise ConfigError(f"{where}: unknown key {section}.{key}{_key_hint(section, str(key))}")
    kind, optional = _field_kind(_TYPES[section][key])
    value = _as_float(value) if kind is float else value
    if isinstance(value, str) and value in fields[key].metadata.get("words", ()):
        return value  # a number field's word (lr: auto)
    if value is None and not optional:
        raise ConfigError(f"{where}: {section}.{key} is empty; give {_EXPECTED[kind]}, or delete the line "
                          "to keep the default")
    if value is not None and not _ACCEPTS[kind](value):
        raise ConfigError(f"{where}: {section}.{key} must be {_EXPECTED[kind]}, not {_shown(value)}")
    choices = fields[key].metadata.get("choices")
    if choices and value is not None and value not in choices:  # None: an optional field's "decide for me"
        raise ConfigError(f"{where}: {section}.{key} is {_shown(value)}; it must be one of {', '.join(choices)}")
    return value


def _field_kind(annotation) -> tuple[type, bool]:
    """int | None -> (int, True); list[float] | None -> (list, True); dict -> (dict, False)."""
    arguments = typing.get_args(annotation)
    optional = type(None) in arguments
    base = next(a for a in arguments if a is not type(None)) if optional else annotation
    return typing.get_origin(base) or base, optional


def _is_number(value) -> bool:
    """A finite int or float (true/false are not numbers here)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond float's range
        return False


def _is_plain(value) -> bool:
    """A model argument a file may give: a scalar, or a flat list of scalars."""
    scalar = (str, int, float, bool, type(None))
    return isinstance(value, scalar) or (isinstance(value, list) and all(isinstance(v, scalar) for v in value))


_ACCEPTS = {
    bool: lambda v: isinstance(v, bool),
    int: lambda v: isinstance(v, int) and not isinstance(v, bool),
    float: _is_number,
    str: lambda v: isinstance(v, str),
    list: lambda v: isinstance(v, list) and all(_is_number(x) for x in v),
    dict: lambda v: isinstance(v, dict) and all(isinstance(k, str) and _is_plain(x) for k, x in v.items()),
}
_EXPECTED = {bool: "true or false", int: "a whole number", float: "a number", str: "text",
             list: "a list of numbers, e.g. [0.5, 0.5, 0.5]", dict: "a mapping of names to plain values, e.g. {act: relu}"}


def _as_float(value):
    """1 -> 1.0 and '1e-3' -> 0.001 (see _NUMBER_TEXT) for a float field; anything else unchanged."""
    number = isinstance(value, int) and not isinstance(value, bool)
    if number or (isinstance(value, str) and _NUMBER_TEXT.fullmatch(value.strip())):
        try:
            return float(value)
        except OverflowError:  # an int beyond float's range: infinite, which _is_number refuses
            return math.inf
    return value


def _section_hint(name) -> str:
    """Where a misplaced key belongs, or the section it was meant to be."""
    owner = next((section for section, fields in _FIELDS.items() if name in fields), None)
    if owner:
        return f"; settings sit in their section: put {name} under {owner}:"
    close = difflib.get_close_matches(str(name), list(SECTIONS), n=1)
    return f"; did you mean {close[0]}?" if close else f"; the sections are {', '.join(SECTIONS)}"


def _key_hint(section: str, key: str) -> str:
    owner = next((other for other, fields in _FIELDS.items() if key in fields), None)
    if owner:
        return f"; {key} belongs under {owner}:"
    close = difflib.get_close_matches(key, list(_FIELDS[section]), n=1)
    return f"; did you mean {section}.{close[0]}?" if close else "; `visionfit train --help` lists the settings"


def _kind(value) -> str:
    return {list: "a list", str: "text", int: "a number", float: "a number", bool: "true/false"}.get(
        type(value), type(value).__name__)


def _shown(value) -> str:
    """A short repr: a file's nested aliases can make a value too big to print whole."""
    return _SHORT_REPR.repr(value)
