"""`visionfit train` and `visionfit models`: one flag per config field, then fit().

    visionfit train --data digits/ --model resnet18 --epochs 5
    visionfit train --config runs/exp/config.yaml --lr 0.01     # a saved run's settings, one changed
"""
import argparse
import dataclasses
import types
import typing

from ..config import SECTIONS
from ..errors import ConfigError
from .help import with_default


def add_commands(commands) -> None:
    train = commands.add_parser("train", help="train a model; writes runs/<name>/", description="Train an image classifier.")
    train.add_argument("--config", metavar="FILE.yaml",
                       help="start from the settings in this YAML file: a run's config.yaml, or its sections (data, "
                            "model, train, run) by hand; flags given here override it; its paths are relative to "
                            "the working folder, as on the command line")
    train.add_argument("--trust-code", action="store_true",
                       help="allow a package.module:Class model named in a file (the --config file, or the run "
                            "--resume continues): importing it runs that module's code; only for files you trust")
    add_config_flags(train)
    train.set_defaults(command=run_train)

    models = commands.add_parser("models", help="list the model names", description="List model names.")
    models.add_argument("filter", nargs="?", default="", help="only names containing this text")
    models.add_argument("--all", action="store_true", help="list every timm name too (over a thousand)")
    models.set_defaults(command=run_models)


def add_config_flags(parser: argparse.ArgumentParser, say_defaults: bool = True) -> None:
    """One flag per config field: `image_size` -> `--image-size`, help from the field (and its
    default, when `say_defaults`). Every flag's argparse default is None: only what the user
    typed reaches fit(), so the config's own defaults (or a --config file) decide the rest."""
    for section, kind in SECTIONS.items():
        group = parser.add_argument_group(section)
        for f in dataclasses.fields(kind):
            flag = "--" + f.name.replace("_", "-")
            help_text = _field_help(f) if say_defaults else f.metadata.get("help", "")
            base = _base_type(f.type)
            if base is bool:
                group.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
            elif base is dict:
                group.add_argument(flag, nargs="*", metavar="KEY=VALUE", type=parse_key_value, default=None, help=help_text)
            elif base is list:
                group.add_argument(flag, type=_float_list, default=None, metavar="A,B,C", help=help_text)
            elif f.metadata.get("words"):  # a number or a word: --lr 0.01, --lr auto
                metavar = "|".join(["NUMBER", *f.metadata["words"]])
                group.add_argument(flag, type=parse_number_or_word, default=None, metavar=metavar, help=help_text)
            else:
                group.add_argument(flag, type=base, default=None, choices=f.metadata.get("choices"), help=help_text)


def _field_help(f: dataclasses.Field) -> str:
    """The field's help, ending in its default ("none" for an unset optional field)."""
    default = f.default_factory() if f.default is dataclasses.MISSING else f.default
    return with_default(f.metadata.get("help", ""), "none" if default is None else default)


def config_options(args: argparse.Namespace) -> dict:
    """The config fields the user set on the command line (the rest keep their defaults)."""
    names = {f.name for kind in SECTIONS.values() for f in dataclasses.fields(kind)}
    options = {name: value for name, value in vars(args).items() if name in names and value is not None}
    if "model_args" in options:
        options["model_args"] = dict(options["model_args"])
    return options


def run_train(args: argparse.Namespace) -> None:
    from ..fitting import fit
    from ..train.distributed import shutdown_distributed

    options = config_options(args)
    if args.config:
        options = _file_options(args.config, options, args.trust_code)
    try:
        fit(options.pop("model", None), options.pop("data", None), trust_code=args.trust_code, **options)
    finally:  # under torchrun: leave the process group before exit (NCCL warns of a leak otherwise)
        shutdown_distributed()


def _file_options(path: str, flags: dict, trust_code: bool) -> dict:
    """The options of a --config file with the flags laid over it, checked, as fit() takes them.

    The file is data: a `package.module:Class` model it names is imported only with --trust-code
    (one typed as --model on the command line is the user's own choice)."""
    from ..config import Config
    from ..models.safety import check_architecture

    if flags.get("resume"):
        raise ConfigError(f"--config {path} and --resume: a resumed run keeps its own saved settings; give one of them")
    config = Config.from_file(path, **flags)
    if "model" not in flags:
        check_architecture(config.model.model, f"--config {path}", trust_code)
    return {name: value for section in config.to_dict().values() for name, value in section.items()}


def run_models(args: argparse.Namespace) -> None:
    from ..models import list_models

    for family, names in list_models(args.filter).items():
        prefix = "timm:" if family == "timm" else ""
        print(f"{family} ({len(names)}{'' if not args.filter else ' matching'}):")
        if family == "timm" and not (args.filter or args.all):
            print("  use as timm:<name>; `visionfit models --all` or `visionfit models FILTER` lists them")
            continue
        print("\n".join(f"  {prefix}{n}" for n in names) if names else "  (none match)")


def _base_type(annotation):
    """int | None -> int; list[float] | None -> list; dict -> dict."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    return typing.get_origin(annotation) or annotation


def parse_number_or_word(text: str) -> float | str:
    """'0.01' -> 0.01, '1e-3' -> 0.001, 'auto' -> 'auto' (the config says which words it takes)."""
    try:
        return float(text)
    except ValueError:
        return text


def parse_key_value(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"'{text}' is not KEY=VALUE (e.g. act=relu)")
    key, value = text.split("=", 1)
    return key, parse_literal(value)


def parse_literal(value: str):
    """'3' -> 3, '0.5' -> 0.5, 'true' -> True, anything else stays text."""
    lowered = value.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def _float_list(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a comma-separated list of numbers (e.g. 0.485,0.456,0.406)")
