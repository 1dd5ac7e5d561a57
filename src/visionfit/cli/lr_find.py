"""`visionfit lr-find`: the LR range test on the data and model `train` would use.

    visionfit lr-find --data mnist/ --model lenet_relu            # prints the suggested lr
    visionfit lr-find --data digits/ --optimizer adamw --suggest steep
    visionfit train --data mnist/ --model lenet_relu --lr auto     # the same sweep, then training
"""
import argparse

from .train import add_config_flags, config_options


def add_commands(commands) -> None:
    parser = commands.add_parser(
        "lr-find", help="suggest a learning rate: the LR range test; writes runs/lr_find/lr_find.png",
        description="Train for an epoch (100 to 300 steps) while the lr grows from --start-lr to --end-lr, plot the smoothed "
                    "loss against the lr, and suggest a rate. The model starts and ends as it was. Takes train's "
                    "flags (data, model, optimizer, batch size, ...); --lr is ignored.")
    finder = parser.add_argument_group("lr finder")
    finder.add_argument("--start-lr", type=float, default=1e-7, help="the sweep's first lr")
    finder.add_argument("--end-lr", type=float, default=10.0, help="the sweep's last lr (it stops earlier when the loss diverges)")
    finder.add_argument("--steps", type=int, default=None,
                        help="optimizer steps in the sweep; default: one epoch's, at least 100 and at most 300")
    finder.add_argument("--suggest", choices=["valley", "steep"], default="valley",
                        help="valley: the middle of the longest stretch where the loss falls (fastai's default); "
                             "steep: where it falls fastest")
    add_config_flags(parser)
    parser.set_defaults(command=run_lr_find)


def run_lr_find(args: argparse.Namespace) -> None:
    from ..finding import lr_find
    from ..train.distributed import shutdown_distributed

    options = config_options(args)
    try:
        found = lr_find(options.pop("model", None), options.pop("data", None), start_lr=args.start_lr,
                        end_lr=args.end_lr, steps=args.steps, suggest=args.suggest, **options)
    finally:  # under torchrun, as `visionfit train`
        shutdown_distributed()
    print(found.format())
