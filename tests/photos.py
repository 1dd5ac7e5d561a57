"""Real photos (scikit-image's) cut to odd sizes and aspect ratios: class folders of PNGs and JPEGs."""
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("animals", "things")


def write_odd_photos(root: Path, per_class: int = 9, seed: int = 0) -> Path:
    """root/animals/*, root/things/*: crops of chelsea and the astronaut, of coffee and the rocket."""
    from skimage import data

    sources = {"animals": [data.chelsea(), data.astronaut()], "things": [data.coffee(), data.rocket()]}
    rng = np.random.default_rng(seed)
    for label in CLASSES:
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            photo = sources[label][i % 2]
            h, w = rng.integers(37, photo.shape[0]), rng.integers(37, photo.shape[1])
            top, left = rng.integers(0, photo.shape[0] - h + 1), rng.integers(0, photo.shape[1] - w + 1)
            crop = np.ascontiguousarray(photo[top : top + h, left : left + w])
            Image.fromarray(crop).save(root / label / f"{seed}_{i}_{h}x{w}{'.jpg' if i % 3 == 0 else '.png'}")
    return root
