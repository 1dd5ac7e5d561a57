"""The report pictures: a confusion matrix, and a grid of titled images (top losses, data samples).

Both stay readable at dozens of classes with long names: sizes grow with the class
count, names are shortened with an ellipsis, and the matrix's column labels are slanted.
"""
import math
from pathlib import Path

import numpy as np
import torch

from ..files import atomic_path

NAME_CHARS = 22  # class names longer than this are cut, with an ellipsis
CELL_INCHES = 0.45  # confusion matrix cell side
ANNOTATE_UP_TO = 30  # classes: beyond this the counts no longer fit in the cells
TILE_INCHES = 1.9  # image grid tile width, at least
TITLE_CHAR_INCHES = 0.065  # width of one character of an 8 pt title: tiles widen to fit the longest line


def short(name: str, limit: int = NAME_CHARS) -> str:
    """`name` cut to `limit` characters in the middle: names often differ only at the start or the end."""
    if len(name) <= limit:
        return name
    front = (limit - 1) * 3 // 5
    return name[:front] + "…" + name[len(name) - (limit - 1 - front):]


def _pyplot():
    """matplotlib.pyplot, imported when a picture is drawn: `visionfit predict` never pays for it."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed, and none opened on a headless server
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(path: str | Path, confusion: np.ndarray, class_names: list[str], title: str = "") -> None:
    """Counts in the cells, colour = fraction of the true class (row), so small classes show too."""
    k = len(class_names)
    side = max(5.0, CELL_INCHES * k + 3.5)
    fig, ax = _pyplot().subplots(figsize=(side, side * 0.9), layout="constrained")
    rows = confusion.sum(axis=1, keepdims=True)
    fractions = np.divide(confusion, rows, out=np.zeros(confusion.shape), where=rows > 0)
    image = ax.imshow(fractions, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, shrink=0.8, label="fraction of the true class")
    font = 10 if k <= 10 else 8
    names = [short(name) for name in class_names]
    ax.set_xticks(range(k), names, rotation=45, ha="right", rotation_mode="anchor", fontsize=font)
    ax.set_yticks(range(k), names, fontsize=font)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or "confusion matrix")
    if k <= ANNOTATE_UP_TO:
        _annotate(ax, confusion, fractions, font)
    _save(fig, path)


def _annotate(ax, confusion: np.ndarray, fractions: np.ndarray, font: int) -> None:
    for (row, col), count in np.ndenumerate(confusion):
        if count:
            colour = "white" if fractions[row, col] > 0.5 else "black"
            ax.text(col, row, str(count), ha="center", va="center", color=colour, fontsize=font - 1)


def plot_image_grid(path: str | Path, images: list[torch.Tensor], titles: list[str], columns: int = 8,
                    title: str = "") -> None:
    """uint8 C x H x W images in a grid, each with its (possibly multi-line) title above it."""
    columns = max(1, min(columns, len(images)))
    rows = math.ceil(len(images) / columns)
    lines = [line for text in titles for line in text.split("\n")]
    title_lines = max((text.count("\n") + 1 for text in titles), default=1)
    tile_width = max(TILE_INCHES, TITLE_CHAR_INCHES * max(map(len, lines), default=0) + 0.2)
    tile_height = tile_width + 0.17 * title_lines
    fig, axes = _pyplot().subplots(rows, columns, figsize=(tile_width * columns, tile_height * rows + 0.4 * bool(title)),
                             squeeze=False, layout="constrained")
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, text in zip(axes.flat, images, titles):
        pixels = image.permute(1, 2, 0).numpy()
        if pixels.shape[-1] == 1:
            ax.imshow(pixels[..., 0], cmap="gray", vmin=0, vmax=255)
        else:
            ax.imshow(pixels)
        ax.set_title(text, fontsize=8)
    if title:
        fig.suptitle(title)
    _save(fig, path)


def _save(fig, path: str | Path) -> None:
    # Constrained layout (set when the figure is made) keeps labels, colorbar and titles apart.
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    _pyplot().close(fig)
