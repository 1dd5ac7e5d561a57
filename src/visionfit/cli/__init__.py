"""The `visionfit` command. It only parses arguments and calls the Python API.

    visionfit train --data hymenoptera/ --model resnet18 --epochs 25
    visionfit models resnet

Each module here adds its subcommands with `add_commands(subparsers)`.
"""
import argparse
import sys

from ..errors import VisionfitError
from . import check_data, compare, infer, train

COMMAND_MODULES = [train, compare, infer, check_data]


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
    except KeyboardInterrupt:
        print("visionfit: interrupted; `visionfit train --resume runs/<name>` continues a run", file=sys.stderr)
        sys.exit(130)


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(prog="visionfit", description="Train, evaluate, predict and export image classifiers.")
    parser.add_argument("--version", action="version", version=f"visionfit {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.add_commands(commands)
    return parser
