"""How accuracy falls under the degradations a camera brings, and under FGSM, for int8 models side by side.

Every perturbation works on the MNIST test digits as uint8 28x28 images
(white ink on black) and is applied with a fixed seed, so two models see
exactly the same inputs. FGSM needs gradients, which an int8 TFLite model
does not give: the perturbation is computed on the Keras model the trainer
saved beside it (the QAT model ``model_qat.h5``, else the float
``model.keras``) and then fed to the int8 model, which is how such an attack
would reach a deployed device.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge_digits.runtime import Classifier

Perturb = Callable[[np.ndarray, float, np.random.Generator], np.ndarray]


class RobustnessError(ValueError):
    """A robustness run cannot be done as asked (unknown perturbation, no Keras model for FGSM)."""


def _noise(x: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise with standard deviation ``sigma`` on the 0..1 pixel scale."""
    noisy = x.astype(np.float32) / 255.0 + rng.normal(0.0, sigma, x.shape).astype(np.float32)
    result: np.ndarray = np.clip(np.rint(noisy * 255.0), 0, 255).astype(np.uint8)
    return result


def _rotation(x: np.ndarray, degrees: float, rng: np.random.Generator) -> np.ndarray:
    """Each digit turned by ``degrees`` about the image centre, clockwise or anticlockwise at random."""
    out = np.empty_like(x)
    signs = rng.choice([-1.0, 1.0], len(x))
    for i, (img, s) in enumerate(zip(x, signs)):
        m = cv2.getRotationMatrix2D((13.5, 13.5), s * degrees, 1.0)
        out[i] = cv2.warpAffine(img, m, (28, 28), flags=cv2.INTER_LINEAR, borderValue=0)
    return out


def _blur(x: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian blur of standard deviation ``sigma`` pixels (defocus, motion is not modelled)."""
    if sigma <= 0:
        return x.copy()
    return np.stack([cv2.GaussianBlur(img, (0, 0), sigma) for img in x])


def _thickness(x: np.ndarray, steps: float, rng: np.random.Generator) -> np.ndarray:
    """Strokes made thicker (``steps`` > 0, grey dilation) or thinner (< 0, erosion) by 2x2 steps."""
    n = int(round(steps))
    if n == 0:
        return x.copy()
    kernel = np.ones((2, 2), np.uint8)
    op = cv2.dilate if n > 0 else cv2.erode
    return np.stack([op(img, kernel, iterations=abs(n)) for img in x])


def _contrast(x: np.ndarray, factor: float, rng: np.random.Generator) -> np.ndarray:
    """Contrast lowered towards mid-grey: ``factor`` 1 is the original, 0 a flat grey image."""
    out = 127.5 * (1.0 - factor) + factor * x.astype(np.float32)
    result: np.ndarray = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return result


def _translation(x: np.ndarray, pixels: float, rng: np.random.Generator) -> np.ndarray:
    """Each digit moved ``pixels`` away from the centre in a random direction."""
    out = np.empty_like(x)
    angles = rng.uniform(0, 2 * np.pi, len(x))
    for i, (img, a) in enumerate(zip(x, angles)):
        m = np.array([[1, 0, pixels * np.cos(a)], [0, 1, pixels * np.sin(a)]], np.float32)
        out[i] = cv2.warpAffine(img, m, (28, 28), flags=cv2.INTER_LINEAR, borderValue=0)
    return out


@dataclass(frozen=True)
class Perturbation:
    name: str
    unit: str
    levels: tuple[float, ...]
    apply: Perturb | None  # None: FGSM, which needs the Keras model


PERTURBATIONS: dict[str, Perturbation] = {p.name: p for p in (
    Perturbation("noise", "sigma (0..1 scale)", (0.0, 0.1, 0.2, 0.3, 0.4, 0.5), _noise),
    Perturbation("rotation", "degrees", (0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 35.0, 40.0, 45.0), _rotation),
    Perturbation("blur", "sigma (pixels)", (0.0, 0.5, 1.0, 1.5, 2.0, 2.5), _blur),
    Perturbation("thickness", "2x2 dilations (+) / erosions (-)", (-2.0, -1.0, 0.0, 1.0, 2.0, 3.0), _thickness),
    Perturbation("contrast", "contrast kept (1 = original)", (1.0, 0.8, 0.6, 0.4, 0.2, 0.1), _contrast),
    Perturbation("translation", "pixels", (0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0), _translation),
    Perturbation("fgsm", "epsilon (0..1 scale)", (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3), None),
)}


def fgsm_images(keras_path: Path, x: np.ndarray, y: np.ndarray, epsilons: tuple[float, ...],
                batch: int = 500) -> dict[float, np.ndarray]:
    """FGSM: x + eps * sign(d loss / d x) on the Keras model, for each epsilon, as uint8 images.

    The sign of the gradient is computed once (it does not depend on eps)
    and each epsilon is a step along it, clipped to the valid pixel range.
    """
    if not keras_path.is_file():
        raise RobustnessError(f"FGSM needs the Keras model of the int8 model: {keras_path} does not exist")
    from edge_digits.train.tflite import load_keras_model, tf_and_keras

    tf, tf_keras = tf_and_keras()
    model = load_keras_model(keras_path, compile=False)
    loss = tf_keras.losses.SparseCategoricalCrossentropy(from_logits=False)
    signs = []
    for start in range(0, len(x), batch):
        xb = tf.convert_to_tensor(x[start:start + batch, ..., None].astype(np.float32) / 255.0)
        with tf.GradientTape() as tape:
            tape.watch(xb)
            out = model(xb, training=False)
            if float(tf.reduce_min(out)) < 0 or abs(float(tf.reduce_mean(tf.reduce_sum(out, axis=1))) - 1) > 1e-3:
                out = tf.nn.softmax(out)
            value = loss(y[start:start + batch], out)
        signs.append(np.sign(tape.gradient(value, xb).numpy()[..., 0]))
    sign = np.concatenate(signs).astype(np.float32)
    base = x.astype(np.float32) / 255.0
    return {eps: np.clip(np.rint((base + eps * sign) * 255.0), 0, 255).astype(np.uint8) for eps in epsilons}


@dataclass
class ModelCurves:
    """One model's accuracy at every level of every perturbation, and the confusions that grew most."""

    name: str
    path: str
    keras: str | None
    accuracy: dict[str, list[float]] = field(default_factory=dict)
    growing_confusions: dict[str, list[dict[str, int]]] = field(default_factory=dict)
    top_confusions: list[dict[str, int]] = field(default_factory=list)


@dataclass
class RobustnessReport:
    images: int
    seed: int
    perturbations: dict[str, dict[str, Any]]
    models: list[ModelCurves]
    skipped: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _confusion(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    m = np.zeros((10, 10), np.int64)
    np.add.at(m, (y, pred), 1)
    return m


def _growth(clean: np.ndarray, worst: np.ndarray, top: int) -> list[dict[str, int]]:
    """The (true, predicted) pairs whose count grew most from the clean to the perturbed matrix."""
    grown = worst - clean
    np.fill_diagonal(grown, 0)
    order = np.argsort(grown, axis=None)[::-1][:top]
    return [{"true": int(i // 10), "predicted": int(i % 10), "added": int(grown.flat[i])}
            for i in order if grown.flat[i] > 0]


def keras_beside(model: Path) -> Path | None:
    """The trainer's Keras model in the same run folder as an int8 model (QAT first, then float), if any."""
    for name in ("model_qat.h5", "model.keras"):
        if (model.parent / name).is_file():
            return model.parent / name
    return None


def evaluate_robustness(models: list[tuple[str, Path, Path | None]], x: np.ndarray, y: np.ndarray,
                        perturbations: list[str] | None = None, seed: int = 0, backend: str = "auto",
                        progress: Callable[[str], None] | None = None) -> RobustnessReport:
    """Accuracy of each (name, int8 model, Keras model or None) under each perturbation, same inputs for all.

    FGSM images depend on the model (they follow its own gradient), so each
    model is attacked through its own Keras model; models without one skip
    FGSM, and the report says so.
    """
    names = perturbations or list(PERTURBATIONS)
    unknown = [n for n in names if n not in PERTURBATIONS]
    if unknown:
        raise RobustnessError(f"unknown perturbation {', '.join(unknown)}; choose from {', '.join(PERTURBATIONS)}")
    inputs: dict[str, list[np.ndarray]] = {}
    for name in names:
        p = PERTURBATIONS[name]
        if p.apply is not None:
            inputs[name] = [p.apply(x, level, np.random.default_rng(seed)) for level in p.levels]
    curves, skipped = [], []
    clean_conf: dict[str, np.ndarray] = {}
    for label, path, keras in models:
        clf = Classifier(path, backend=backend)
        mc = ModelCurves(label, str(path), str(keras) if keras else None)
        clean = _confusion(y, clf.predict_batched(x).argmax(axis=1))
        clean_conf[label] = clean
        total_growth = np.zeros((10, 10), np.int64)
        for name in names:
            p = PERTURBATIONS[name]
            if p.apply is None:
                if keras is None:
                    skipped.append(f"fgsm for {label}: no Keras model (give --keras, or use a training run folder)")
                    continue
                batches = list(fgsm_images(keras, x, y, p.levels).values())
            else:
                batches = inputs[name]
            if progress:
                progress(f"{label}: {name}")
            matrices = [_confusion(y, clf.predict_batched(b).argmax(axis=1)) for b in batches]
            mc.accuracy[name] = [float(np.trace(m)) / len(y) for m in matrices]
            worst = min(matrices, key=lambda m: np.trace(m))
            mc.growing_confusions[name] = _growth(clean, worst, 3)
            grown = worst - clean
            np.fill_diagonal(grown, 0)
            total_growth += np.maximum(grown, 0)
        mc.top_confusions = _growth(np.zeros_like(total_growth), total_growth, 5)
        curves.append(mc)
    table: dict[str, dict[str, Any]] = {n: {"unit": PERTURBATIONS[n].unit, "levels": list(PERTURBATIONS[n].levels)}
                                        for n in names}
    return RobustnessReport(int(len(y)), seed, table, curves, skipped)


def _fmt(v: float) -> str:
    return f"{v:g}"


def report_markdown(report: RobustnessReport) -> str:
    """One table per perturbation (levels across, models down) and the confusions that grow most."""
    parts = [f"# Robustness\n\n{report.images} MNIST test images, seed {report.seed}; int8 accuracy.\n"]
    for name, info in report.perturbations.items():
        levels = info["levels"]
        rows = [m for m in report.models if name in m.accuracy]
        if not rows:
            continue
        head = "| model | " + " | ".join(_fmt(v) for v in levels) + " |"
        rule = "|---|" + "---|" * len(levels)
        body = "\n".join(f"| {m.name} | " + " | ".join(f"{a:.2%}" for a in m.accuracy[name]) + " |" for m in rows)
        parts.append(f"## {name} ({info['unit']})\n\n{head}\n{rule}\n{body}\n")
    lines = []
    for m in report.models:
        pairs = ", ".join(f"{c['true']}->{c['predicted']} (+{c['added']})" for c in m.top_confusions)
        lines.append(f"- {m.name}: {pairs or 'none'}")
    parts.append("## Confusions that grow most (true->predicted, summed over the strongest level of each)\n\n"
                 + "\n".join(lines) + "\n")
    if report.skipped:
        parts.append("## Skipped\n\n" + "\n".join(f"- {s}" for s in report.skipped) + "\n")
    return "\n".join(parts)


def write_report(report: RobustnessReport, out: Path) -> list[Path]:
    """robustness.json, robustness.md and one PNG per perturbation into ``out``."""
    from edge_digits import plots
    from edge_digits.fileio import atomic_write_json, atomic_write_text

    out.mkdir(parents=True, exist_ok=True)
    files = [atomic_write_json(out / "robustness.json", report.to_dict()),
             atomic_write_text(out / "robustness.md", report_markdown(report))]
    if plots.missing() is not None:   # the reports stand without their plots
        return files
    for name, info in report.perturbations.items():
        series = {m.name: m.accuracy[name] for m in report.models if name in m.accuracy}
        if series:
            files.append(plots.robustness_curve(name, str(info["unit"]), list(info["levels"]), series,
                                                out / f"robustness_{name}.png"))
    return files


__all__ = ["PERTURBATIONS", "ModelCurves", "RobustnessError", "RobustnessReport", "evaluate_robustness",
           "fgsm_images", "keras_beside", "report_markdown", "write_report"]
