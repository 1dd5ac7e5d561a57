"""`visionfit compare`: train several nets on the same data and tabulate them (visionfit.compare)."""
import argparse

from .train import parse_literal, add_config_flags, config_options


def add_commands(commands) -> None:
    parser = commands.add_parser(
        "compare", help="train several nets, each with its d2l recipe; table + chart in runs/compare/",
        description="Train several nets on the same data, each with the learning rate, batch size, epochs and "
                    "input size d2l trains it with (plain SGD, constant lr, Xavier init), and write results.md, "
                    "results.csv and results.png. Common flags below apply to every net; --set to one. A flag "
                    "left out keeps the net's recipe, or else train's default (see `visionfit train --help`).",
    )
    group = parser.add_argument_group("compare")
    group.add_argument("--models", type=lambda text: [m.strip() for m in text.split(",") if m.strip()], default=None,
                       metavar="A,B,C", help="nets to train, in order; default: lenet,lenet_bn,alexnet_d2l,"
                                             "vgg11_d2l,nin,googlenet_d2l,resnet18_d2l")
    group.add_argument("--set", dest="overrides", action="append", type=_override, default=[],
                       metavar="NET.KEY=VALUE", help="one net's setting: a config field or a model argument, "
                                                     "e.g. --set vgg11_d2l.lr=0.02 --set vgg11_d2l.ratio=8 (repeatable)")
    group.add_argument("--max-image-size", type=int, default=None, metavar="PX",
                       help="shrink nets designed for bigger inputs to this side (CPU budgets); smaller nets keep theirs")
    group.add_argument("--max-val-per-class", type=int, default=None, metavar="N",
                       help="validate on at most N images per class (seeded), the same ones for every net")
    add_config_flags(parser, say_defaults=False)  # a net's recipe, not train's default, fills what is left out
    parser.set_defaults(command=run_compare)


def _override(text: str) -> tuple[str, str, object]:
    """'vgg11_d2l.lr=0.02' -> ('vgg11_d2l', 'lr', 0.02). The net is split at the last dot:
    timm names have dots of their own, setting names do not."""
    target, equals, value = text.partition("=")
    net, dot, key = target.rpartition(".")
    if not (equals and dot and net and key):
        raise argparse.ArgumentTypeError(f"'{text}' is not NET.KEY=VALUE (e.g. vgg11_d2l.lr=0.02)")
    return net, key, parse_literal(value)


def run_compare(args: argparse.Namespace) -> None:
    from ..comparing import compare

    overrides: dict[str, dict] = {}
    for net, key, value in args.overrides:
        overrides.setdefault(net, {})[key] = value
    options = config_options(args)
    result = compare(args.models, options.pop("data", None), overrides=overrides, max_image_size=args.max_image_size,
                     max_val_per_class=args.max_val_per_class, **options)
    print(result.markdown)
    print(f"results in {result.out_dir} (results.md, results.csv, results.png)")
