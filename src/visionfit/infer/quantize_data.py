"""The images int8 quantization calibrates on and is measured on.

    data = quantize_data(classifier, calibration_data=None)   # the run's recorded training data
    data.calibration    # up to CALIBRATION_IMAGES training images, drawn with a fixed seed
    data.validation     # the run's validation split (labelled), or None

Calibration wants images like the ones the model will see: its training images, through
the eval preprocessing. `--calibration-data` names them; by default they are the training
data the run's config.yaml (beside the model file) records, split exactly as the run split it.
"""
from dataclasses import dataclass

import numpy as np

from ..data.samples import DatasetSplits, Samples
from ..errors import ConfigError, DataError
from .runner import Classifier, read_samples

CALIBRATION_IMAGES = 128  # onnxruntime's examples calibrate on a few hundred; MinMax settles well before that
VALIDATION_IMAGES = 2000  # at most, for the accuracy of the float and int8 files (seeded draw)
SEED = 0


@dataclass
class QuantizeData:
    calibration: Samples
    validation: Samples | None  # labelled, in the model's class order


def quantize_data(classifier: Classifier, calibration_data=None, images: str | None = None) -> QuantizeData:
    """Calibration images from `calibration_data` (a folder or CSV), else from the run's recorded
    training data; validation images from the run's recorded data when there is one."""
    splits = _recorded_splits(classifier, required=calibration_data is None)
    if calibration_data is not None:
        calibration = read_samples(calibration_data, images, classifier.class_names)
    else:
        calibration = splits.train
    validation = None
    if splits is not None:
        held_out = splits.val if splits.val is not None and len(splits.val) else splits.test
        validation = held_out if held_out is not None and held_out.labelled else None
    return QuantizeData(_draw(calibration, CALIBRATION_IMAGES), _draw(validation, VALIDATION_IMAGES))


def _recorded_splits(classifier: Classifier, required: bool) -> DatasetSplits | None:
    """The splits the run's config.yaml describes (its data, split and seed), or None when there is
    no such record; with `required`, a missing or unreadable record is an error naming the flag."""
    from ..config import Config
    from ..data.prepare import resolve_splits

    record = classifier.path.parent / "config.yaml" if classifier.path is not None and classifier.path.is_file() else None
    if record is None or not record.is_file():
        if required:
            raise ConfigError(f"--calibration-data: no run config.yaml beside {classifier.path or 'the model'} says "
                              "what it trained on; give --calibration-data FOLDER_OR_CSV of training images")
        return None
    try:
        config = Config.from_file(record)
        splits = resolve_splits(config.data, config.train.seed)
    except (ConfigError, DataError) as error:
        if not required:
            return None
        raise DataError(f"--calibration-data: the training data {record} records cannot be read ({error}); "
                        "give --calibration-data FOLDER_OR_CSV of training images") from None
    if splits.train is None or list(splits.class_names) != list(classifier.class_names):
        if not required:
            return None
        raise DataError(f"--calibration-data: the data {record} records no longer has the model's classes; "
                        "give --calibration-data FOLDER_OR_CSV of training images")
    return splits


def _draw(samples: Samples | None, count: int) -> Samples | None:
    """At most `count` of `samples`, drawn with a fixed seed, kept in their order."""
    if samples is None or len(samples) <= count:
        return samples
    rows = np.sort(np.random.default_rng(SEED).choice(len(samples), count, replace=False))
    return samples.subset(rows)
