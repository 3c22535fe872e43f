"""PNG plots for the reports (matplotlib with the Agg backend, imported only when a plot is drawn)."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edge_digits.fileio import atomic_write_bytes


class _BenchConfig(Protocol):
    """What the plots read of a benchmark configuration (``measure.bench.BenchConfig``)."""

    @property
    def threads(self) -> int: ...
    @property
    def batch(self) -> int: ...


class _BenchResult(Protocol):
    """What the plots read of one benchmark result (``measure.bench.BenchResult``)."""

    @property
    def config(self) -> _BenchConfig: ...
    @property
    def model_name(self) -> str: ...
    @property
    def backend_used(self) -> str: ...
    @property
    def throughput_ips(self) -> float: ...
    @property
    def samples_ms(self) -> Sequence[float]: ...


def missing() -> str | None:
    """Why plots cannot be drawn here (matplotlib is not installed), or None: reports then skip their plots
    and say so instead of failing (a Pi install without the ``plots`` extra)."""
    if importlib.util.find_spec("matplotlib") is None:
        return "the plots need matplotlib: pip install 'edge-digits[plots]'"
    return None


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
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


def _label(r: _BenchResult) -> str:
    return f"{r.model_name}\n{r.backend_used} t{r.config.threads} b{r.config.batch}"


def latency_distribution(results: Sequence[_BenchResult], path: Path) -> Path:
    """Per-image latency of every configuration as box plots (log scale)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(results)), 4.2))
    data = [np.asarray(r.samples_ms) / r.config.batch for r in results]
    ax.boxplot(data, showfliers=False)
    ax.set_xticks(range(1, len(results) + 1), [_label(r) for r in results], fontsize=7, rotation=30, ha="right")
    ax.set_yscale("log")
    ax.set_ylabel("ms per image")
    ax.set_title("latency distribution (whiskers: 1.5 IQR)")
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)


def throughput(results: Sequence[_BenchResult], path: Path) -> Path:
    """Images per second against threads, one line per model and batch size."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    series: dict[tuple[str, str, int], list[tuple[int, float]]] = {}
    for r in results:
        series.setdefault((r.model_name, r.backend_used, r.config.batch), []).append((r.config.threads,
                                                                                      r.throughput_ips))
    for (model, backend, batch), points in sorted(series.items()):
        points.sort()
        ax.plot([p[0] for p in points], [p[1] for p in points], "-o", label=f"{model} ({backend}, batch {batch})")
    ax.set_xlabel("threads")
    ax.set_ylabel("images per second")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)


def robustness_curve(name: str, unit: str, levels: list[float], series: dict[str, list[float]],
                     path: Path) -> Path:
    """Accuracy against the strength of one perturbation, one line per model."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for model, acc in series.items():
        ax.plot(levels, [100 * a for a in acc], "-o", ms=4, label=model)
    ax.set_xlabel(f"{name}: {unit}")
    ax.set_ylabel("int8 accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"accuracy under {name}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def pareto(points: list[tuple[int, float | None, bool]], front: list[tuple[int, float]],
           max_flash: int | None, path: Path, title: str) -> Path:
    """Validation accuracy against flash bytes for every trial, the Pareto front joined, the flash budget
    as a line; trials over budget (not trained) sit at the bottom as crosses."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    trained = [(f, a) for f, a, ok in points if ok and a is not None]
    over = [f for f, a, ok in points if not ok]
    if trained:
        ax.scatter([f / 1024 for f, _ in trained], [100 * a for _, a in trained], s=18, label="trial")
    if front:
        xs, ys = zip(*sorted(front))
        ax.plot([x / 1024 for x in xs], [100 * y for y in ys], "-o", color="C3", ms=5,
                label="Pareto front (accuracy, flash, arena, MACs)")
    lo = min([100 * a for _, a in trained], default=90.0)
    if over:
        ax.scatter([f / 1024 for f in over], [lo] * len(over), marker="x", color="grey", label="over budget")
    if max_flash:
        ax.axvline(max_flash / 1024, color="grey", ls="--", lw=1, label="flash budget")
    ax.set_xlabel("int8 .tflite (KB of flash)")
    ax.set_ylabel("validation accuracy, int8 (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def power_trace(power: dict[str, Any], path: Path) -> Path:
    """Power over time with the idle and load windows shaded."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 3.6))
    samples = power["samples"]
    if samples:
        t, w = zip(*samples)
        ax.plot(t, w, lw=1)
    ax.axvspan(*power["idle_window"], color="grey", alpha=0.2, label="idle")
    for i, (label, start, end) in enumerate(power["windows"]):
        ax.axvspan(start, end, color=f"C{i % 10}", alpha=0.15)
        ax.text((start + end) / 2, ax.get_ylim()[1], label, fontsize=6, rotation=90, va="top", ha="center")
    ax.set_xlabel("seconds")
    ax.set_ylabel("watts")
    ax.set_title(f"power ({power['meter']}, {power['rate_hz']} Hz)")
    ax.legend(fontsize=7)
    return _save(fig, path)
