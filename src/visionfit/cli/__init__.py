"""The `visionfit` command. It only parses arguments and calls the Python API.

    visionfit train --data hymenoptera/ --model resnet18 --epochs 25
    visionfit models resnet

Each module here adds its subcommands with `add_commands(subparsers)`. Building the parser
imports no torch: a command imports what it needs when it runs, so --help answers at once.
"""
import argparse
import os
import sys

from ..errors import VisionfitError
from . import check_data, compare, infer, lr_find, serve, train
from .help import DefaultsFormatter

COMMAND_MODULES = [train, lr_find, compare, infer, check_data, serve]
DEBUG_VARIABLE = "VISIONFIT_DEBUG"


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "command"):
        parser.print_help()
        sys.exit(2)
    try:
        args.command(args)
    except VisionfitError as error:
        print(f"visionfit: error: {error}", file=sys.stderr)
        sys.exit(2)
    except BrokenPipeError:  # `visionfit eval ... | head` closed the pipe: not an error
        sys.stderr.close()
    except KeyboardInterrupt:  # fit() has already said how to resume the run it was in
        print("visionfit: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as error:  # a bug: one line for the user, the traceback for whoever debugs it
        if os.environ.get(DEBUG_VARIABLE, "") not in ("", "0"):
            raise
        print(f"visionfit: internal error: {internal_error(error)} (a bug: please report it; "
              f"set {DEBUG_VARIABLE}=1 to see the traceback)", file=sys.stderr)
        sys.exit(1)


def internal_error(error: Exception) -> str:
    """`Type: first line of the message`, the one line a bug report needs."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose help states each flag's default; subcommands inherit it."""

    def __init__(self, *args, formatter_class=DefaultsFormatter, **kwargs):
        super().__init__(*args, formatter_class=formatter_class, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = Parser(prog="visionfit", description="Train, evaluate, predict and export image classifiers.")
    parser.add_argument("--version", action="version", version=f"visionfit {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.add_commands(commands)
    return parser
