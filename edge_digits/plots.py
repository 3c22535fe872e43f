"""PNG plots for the reports (matplotlib with the Agg backend, imported only when a plot is drawn)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_digits.fileio import atomic_write_bytes


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def training_curves(history: dict[str, list[float]], path: Path) -> Path:
    """Loss and accuracy per epoch, training and validation, float and QAT phases one after the other."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, metric in zip(axes, ("loss", "accuracy")):
        offset = 0
        for phase in ("float", "qat"):
            train = history.get(f"{phase}_{metric}", [])
            val = history.get(f"{phase}_val_{metric}", [])
            epochs = np.arange(offset + 1, offset + len(train) + 1)
            if train:
                ax.plot(epochs, train, "-o", ms=3, label=f"{phase} train")
            if val:
                ax.plot(epochs[: len(val)], val, "--s", ms=3, label=f"{phase} validation")
            offset += len(train)
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    return _save(fig, path)


def confusion_matrix(m: np.ndarray, path: Path, title: str) -> Path:
    """The 10x10 confusion matrix with counts, true digit down, predicted across."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 5.4))
    shown = np.log1p(m)
    ax.imshow(shown, cmap="Blues")
    for i in range(10):
        for j in range(10):
            if m[i, j]:
                ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if shown[i, j] > shown.max() * 0.6 else "black")
    ax.set_xticks(range(10))
    ax.set_yticks(range(10))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    return _save(fig, path)


def error_grid(images: np.ndarray, true: np.ndarray, pred: np.ndarray, path: Path, limit: int = 64) -> Path:
    """Misclassified digits with their true and predicted labels."""
    plt = _pyplot()
    n = min(limit, len(images))
    cols = 8
    rows = max(1, (n + cols - 1) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.1, rows * 1.3))
    for k, ax in enumerate(np.atleast_1d(axes).ravel()):
        ax.axis("off")
        if k < n:
            ax.imshow(images[k], cmap="gray_r")
            ax.set_title(f"{true[k]}→{pred[k]}", fontsize=8, color="crimson")
    fig.suptitle(f"{len(images)} misclassified test digits (true→predicted)" + (f", first {n}" if n < len(images)
                                                                               else ""), fontsize=9)
    return _save(fig, path)
