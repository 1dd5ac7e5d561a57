"""Transfer learning on any model: find and replace its head, freeze its backbone, give the
backbone and the head their own learning rates, and unfreeze the backbone later.

    name, head = find_head(model)                     # "fc", "classifier.6", "head.5", ...
    replace_head(model, num_classes=2, init="kaiming")
    freeze(model, "backbone")                         # the seeds' fixed feature extractor
    optimizer = build_optimizer(param_groups(model, lr=0.01, lr_backbone=0.001), train_cfg)

The *head* is the final classification layer only (what timm's get_classifier returns);
everything else is the *backbone*. Its *units*, which `--freeze N` counts, are the model's
top-level children that hold parameters, with ordered containers (`features`, `blocks`,
`stages`, `layers`) opened up: resnet18 -> conv1, bn1, layer1..layer4; mobilenet_v3 ->
features.0..features.12, classifier; a classic net -> features.0, features.1, ..., head.
"""
import fnmatch
import sys

from torch import nn

from ..errors import ConfigError, ModelError
from .init import apply_init

_HEAD_CONTAINERS = ("fc", "classifier", "head", "heads")
_UNIT_CONTAINERS = ("features", "blocks", "stages", "layers")


def find_head(model: nn.Module) -> tuple[str, nn.Module]:
    """(qualified name, module) of the layer that maps features to class scores.

    Asks the model first (timm and classic nets: get_classifier), then takes the last Linear
    (or, as in SqueezeNet, 1x1 Conv2d) under fc / classifier / head / heads, then the last
    Linear anywhere.
    """
    names = {id(module): name for name, module in model.named_modules()}
    if callable(getattr(model, "get_classifier", None)):
        classifier = model.get_classifier()
        if isinstance(classifier, nn.Module) and id(classifier) in names and head_classes(classifier):
            return names[id(classifier)], classifier
    for container in _HEAD_CONTAINERS:
        module = getattr(model, container, None)
        if isinstance(module, nn.Module):
            found = _last_layer(module, _is_scoring_layer)
            if found:
                return ".".join(p for p in (container, found[0]) if p), found[1]
    found = _last_layer(model, lambda m: isinstance(m, nn.Linear))
    if not found:
        raise ModelError(f"cannot find the classification layer of {type(model).__name__}: it has no Linear; "
                         "give it a get_classifier() method that returns that layer")
    return found


def _last_layer(module: nn.Module, wanted) -> tuple[str, nn.Module] | None:
    layers = [(name, m) for name, m in module.named_modules() if wanted(m)]
    return layers[-1] if layers else None


def _is_scoring_layer(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear) or (isinstance(module, nn.Conv2d) and module.kernel_size == (1, 1))


def head_classes(head: nn.Module) -> int | None:
    """How many classes a head scores: its (last) Linear's or 1x1 conv's outputs."""
    found = _last_layer(head, _is_scoring_layer)
    if found is None:
        return None
    layer = found[1]
    return layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels


def model_classes(model: nn.Module) -> int | None:
    """How many classes the model scores, or None when it has no head find_head recognises."""
    try:
        return head_classes(find_head(model)[1])
    except ModelError:
        return None


def head_keys(model: nn.Module) -> set[str]:
    """state_dict keys that belong to the head (none for a model without a recognisable head)."""
    if model_classes(model) is None:
        return set()
    name, _ = find_head(model)
    return {key for key in model.state_dict() if key.startswith(name + ".")}


def replace_head(model: nn.Module, num_classes: int, init: str = "default") -> nn.Module:
    """Give `model` a fresh head with `num_classes` outputs, initialised by `init`; returns it.

    A head that already has `num_classes` outputs is kept (its weights may be pretrained).
    """
    name, old = find_head(model)
    if head_classes(old) == num_classes:
        return old
    if callable(getattr(model, "reset_classifier", None)):
        model.reset_classifier(num_classes)  # timm and classic nets rebuild their own head
    else:
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent), child, _fresh_layer(old, num_classes))
    _, new = find_head(model)
    weight = next(old.parameters())
    new.to(device=weight.device, dtype=weight.dtype)
    return apply_init(new, init)


def _fresh_layer(old: nn.Module, num_classes: int) -> nn.Module:
    if isinstance(old, nn.Linear):
        return nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
    if isinstance(old, nn.Conv2d):
        return nn.Conv2d(old.in_channels, num_classes, 1, bias=old.bias is not None)
    raise ModelError(f"cannot rebuild a {type(old).__name__} head; give the model a reset_classifier(num_classes)")


def backbone_units(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The backbone's units in forward order (see the module docstring); the head excluded."""
    head_name, _ = find_head(model)
    units = []
    for name, child in model.named_children():
        if name in _UNIT_CONTAINERS and isinstance(child, (nn.Sequential, nn.ModuleList)):
            units += [(f"{name}.{sub}", grandchild) for sub, grandchild in child.named_children()]
        else:
            units.append((name, child))
    return [(name, unit) for name, unit in units if name != head_name and _has_parameters(unit, head_name, name)]


def _has_parameters(unit: nn.Module, head_name: str, unit_name: str) -> bool:
    """A unit counts when it owns parameters besides the head's (a container of the head may)."""
    head_prefix = head_name.removeprefix(unit_name + ".") + "." if head_name.startswith(unit_name + ".") else None
    return any(head_prefix is None or not name.startswith(head_prefix) for name, _ in unit.named_parameters())


def freeze(model: nn.Module, spec: str) -> list[str]:
    """Stop gradients for part of the model; returns what was frozen, for the run log.

    spec: "none" (no change), "backbone" (everything but the head), or "N" (the
    first N backbone units). Frozen BatchNorm layers then stay in eval mode while training
    (the trainer's set_train_mode), so their running statistics stay the pretrained ones.
    """
    if spec == "none":  # leaves alone what the user's own module may have frozen
        return []
    if spec == "backbone":
        head = set(map(id, find_head(model)[1].parameters()))
        for p in model.parameters():
            p.requires_grad_(id(p) in head)
        return ["backbone"]
    units = backbone_units(model)
    count = int(spec)
    if count > len(units):
        raise ConfigError(f"--freeze {count}: {type(model).__name__} has {len(units)} backbone units "
                          f"({', '.join(name for name, _ in units)}); use a smaller N, or --freeze backbone")
    for _, unit in units[:count]:
        unit.requires_grad_(False)
    return [name for name, _ in units[:count]]


def param_groups(model: nn.Module, lr: float, lr_backbone: float, include_frozen: bool = False,
                 weight_decay: float = 0.0) -> list[dict]:
    """Optimizer groups: the backbone at `lr_backbone`, then the head at `lr` (the head LAST:
    the trainer reports the last group's lr).

    With weight_decay > 0 each splits in two, as timm's param_groups_weight_decay does: biases,
    norm weights and other 1-D tensors (and what a timm model's no_weight_decay() names) get
    none; the head's decayed group stays last. With no decay there is nothing to withhold and
    the groups stay whole (so runs saved before the split still resume).

    include_frozen puts frozen backbone parameters in their group too: they get no gradient,
    so the optimizer skips them, until `UnfreezeBackbone` turns gradients on; they then train
    at the group's scheduled lr with no change to the optimizer or the scheduler.
    """
    if model_classes(model) is None:  # no recognisable head: one group, as a plain run has
        groups = [{"params": [p for p in model.parameters() if p.requires_grad], "lr": lr, "name": "all"}]
    else:
        head = list(find_head(model)[1].parameters())
        head_ids = set(map(id, head))
        backbone = [p for p in model.parameters() if id(p) not in head_ids and (p.requires_grad or include_frozen)]
        groups = [{"params": backbone, "lr": lr_backbone, "name": "backbone"}] if backbone else []
        groups.append({"params": [p for p in head if p.requires_grad], "lr": lr, "name": "head"})
    if not weight_decay:
        return groups
    skip = no_decay_ids(model)
    split = []
    for group in groups:
        decayed = [p for p in group["params"] if id(p) not in skip]
        exempt = [p for p in group["params"] if id(p) in skip]
        if exempt:
            split.append({**group, "params": exempt, "weight_decay": 0.0, "name": group["name"] + "_no_decay"})
        split.append({**group, "params": decayed, "weight_decay": weight_decay})
    return split


def no_decay_ids(model: nn.Module) -> set[int]:
    """ids of the parameters weight decay leaves alone: timm's rule (param_groups_weight_decay,
    which create_optimizer_v2 uses): 1-D tensors (biases, norm scales and shifts), anything
    named *.bias, and what the model's no_weight_decay() names, wildcards allowed (timm's
    position embeddings, class tokens). Frozen parameters count too: they may unfreeze later."""
    named = getattr(model, "no_weight_decay", None)
    patterns = set(named()) if callable(named) else set()
    return {id(p) for name, p in model.named_parameters()
            if p.ndim <= 1 or name.endswith(".bias") or any(fnmatch.fnmatch(name, pattern) for pattern in patterns)}


def optimizer_groups(model: nn.Module, train_cfg) -> list[dict]:
    """param_groups at the config's rates: --lr for the head, --lr-backbone (or --lr times
    --lr-backbone-mult) for the backbone, whose frozen part joins when it unfreezes later;
    --weight-decay only on weights that are not biases or norms."""
    lr_backbone = train_cfg.lr_backbone or train_cfg.lr * (train_cfg.lr_backbone_mult or 1.0)
    return param_groups(model, train_cfg.lr, lr_backbone, include_frozen=train_cfg.unfreeze_after is not None,
                        weight_decay=train_cfg.weight_decay)


class UnfreezeBackbone:
    """Trainer callback: from epoch `after` + 1 on, every frozen weight trains, except those of
    BatchNorm layers, which stay frozen and so in inference mode.

    Why BatchNorm stays: its pretrained running statistics are what the head was trained
    on. Switched to batch statistics mid-run (the trainer's set_train_mode does that to any
    BatchNorm that trains), every feature shifts at once; fine-tuning EfficientNet-Lite0 on
    digits lost 40 points of accuracy at that epoch. Keras' transfer-learning guide keeps
    BatchNorm in inference mode when unfreezing for the same reason.
    Checked at each epoch start, so a run resumed past that epoch unfreezes at once.
    """

    def __init__(self, model: nn.Module, after: int, stream=None):
        self.model, self.after, self.stream, self.done = model, after, stream, False

    def on_epoch_start(self, trainer) -> None:
        if self.done or trainer.epoch < self.after:
            return
        batchnorm = {id(p) for m in self.model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
                     for p in m.parameters()}
        thawed = [p for p in self.model.parameters() if not p.requires_grad and id(p) not in batchnorm]
        for p in thawed:
            p.requires_grad_(True)
        self.done = True
        count = sum(p.numel() for p in thawed)
        print(f"epoch {trainer.epoch + 1}: unfroze the backbone ({count:,} parameters; BatchNorm layers stay frozen)",
              file=self.stream or sys.stderr)
