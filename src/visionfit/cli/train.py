"""`visionfit train` and `visionfit models`: one flag per config field, then fit()."""
import argparse
import dataclasses
import types
import typing

from ..config import SECTIONS


def add_commands(commands) -> None:
    train = commands.add_parser("train", help="train a model; writes runs/<name>/", description="Train an image classifier.")
    add_config_flags(train)
    train.add_argument("--trust-code", action="store_true",
                       help="allow a package.module:Class model named in a file (--resume's record) to be imported")
    train.set_defaults(command=run_train)

    models = commands.add_parser("models", help="list the model names", description="List model names.")
    models.add_argument("filter", nargs="?", default="", help="only names containing this text")
    models.add_argument("--all", action="store_true", help="list every timm name too (over a thousand)")
    models.set_defaults(command=run_models)


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per config field: `image_size` -> `--image-size`, help from the field."""
    for section, kind in SECTIONS.items():
        group = parser.add_argument_group(section)
        for f in dataclasses.fields(kind):
            flag = "--" + f.name.replace("_", "-")
            help_text = f.metadata.get("help", "")
            base = _base_type(f.type)
            if base is bool:
                group.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
            elif base is dict:
                group.add_argument(flag, nargs="*", metavar="KEY=VALUE", type=parse_key_value, default=None, help=help_text)
            elif base is list:
                group.add_argument(flag, type=_float_list, default=None, metavar="A,B,C", help=help_text)
            else:
                group.add_argument(flag, type=base, default=None, choices=f.metadata.get("choices"), help=help_text)


def config_options(args: argparse.Namespace) -> dict:
    """The config fields the user set on the command line (the rest keep their defaults)."""
    names = {f.name for kind in SECTIONS.values() for f in dataclasses.fields(kind)}
    options = {name: value for name, value in vars(args).items() if name in names and value is not None}
    if "model_args" in options:
        options["model_args"] = dict(options["model_args"])
    return options


def run_train(args: argparse.Namespace) -> None:
    from ..fitting import fit

    options = config_options(args)
    fit(options.pop("model", None), options.pop("data", None), trust_code=args.trust_code, **options)


def run_models(args: argparse.Namespace) -> None:
    from ..models import list_models

    for family, names in list_models().items():
        matching = [n for n in names if args.filter in n]
        prefix = "timm:" if family == "timm" else ""
        print(f"{family} ({len(matching)}{'' if not args.filter else ' matching'}):")
        if family == "timm" and not (args.filter or args.all):
            print("  use as timm:<name>; `visionfit models --all` or `visionfit models FILTER` lists them")
            continue
        print("\n".join(f"  {prefix}{n}" for n in matching) if matching else "  (none match)")


def _base_type(annotation):
    """int | None -> int; list[float] | None -> list; dict -> dict."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    return typing.get_origin(annotation) or annotation


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
