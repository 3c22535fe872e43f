"""Robustness curves on real MNIST test digits through the bundled int8 models (FGSM is tested in test_train)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from edge_digits.cli import main
from edge_digits.models import bundled_model
from edge_digits.runtime import Classifier
from edge_digits.train import robustness


@pytest.mark.parametrize("name", [n for n, p in robustness.PERTURBATIONS.items() if p.apply is not None])
def test_each_perturbation_is_neutral_at_its_neutral_level_and_changes_digits_beyond(name: str, mnist: Any) -> None:
    x = mnist[2][:50]
    p = robustness.PERTURBATIONS[name]
    neutral = [level for level in p.levels if level == (1.0 if name == "contrast" else 0.0)]
    assert neutral, "every perturbation starts from the untouched digits"
    out = p.apply(x, neutral[0], np.random.default_rng(0))
    assert out.dtype == np.uint8 and out.shape == x.shape and np.array_equal(out, x)
    strongest = p.apply(x, p.levels[-1], np.random.default_rng(0))
    assert np.abs(strongest.astype(int) - x).mean() > 3.0
    again = p.apply(x, p.levels[-1], np.random.default_rng(0))
    assert np.array_equal(strongest, again), "the same seed gives every model the same inputs"


def test_curves_start_at_the_plain_accuracy_and_fall(mnist: Any) -> None:
    x, y = mnist[2][:600], mnist[3][:600]
    model = bundled_model("micro")
    report = robustness.evaluate_robustness([("micro", model, None)], x, y, ["noise", "blur", "contrast"])
    plain = float(np.mean(Classifier(model).predict_batched(x).argmax(axis=1) == y))
    curves = report.models[0].accuracy
    for name in ("noise", "blur", "contrast"):
        assert curves[name][0] == pytest.approx(plain)
        assert curves[name][-1] < plain - 0.1, name
    assert report.models[0].top_confusions and report.images == 600


def test_cli_writes_tables_and_plots_and_says_what_it_skipped(tmp_path: Path, mnist_cache: Path) -> None:
    result = CliRunner().invoke(main, ["eval", "micro", "standard", "--robustness", "--limit", "200",
                                       "--perturbation", "rotation", "--perturbation", "fgsm",
                                       "--out", str(tmp_path), "--cache-dir", str(mnist_cache)])
    assert result.exit_code == 0, result.output
    assert "## rotation (degrees)" in result.output and "| micro |" in result.output
    data = json.loads((tmp_path / "robustness.json").read_text())
    assert [m["name"] for m in data["models"]] == ["micro", "standard"]
    assert len(data["models"][1]["accuracy"]["rotation"]) == len(robustness.PERTURBATIONS["rotation"].levels)
    assert any("fgsm for micro: no Keras model" in s for s in data["skipped"])
    assert (tmp_path / "robustness_rotation.png").read_bytes()[:4] == b"\x89PNG"
    assert not (tmp_path / "robustness_fgsm.png").exists()


def test_cli_errors_are_specific(mnist_cache: Path, tmp_path: Path) -> None:
    bad = CliRunner().invoke(main, ["eval", "micro", "--robustness", "--perturbation", "fog", "--limit", "10",
                                    "--cache-dir", str(mnist_cache)])
    assert bad.exit_code == 1 and "unknown perturbation fog" in bad.output and "rotation" in bad.output
    count = CliRunner().invoke(main, ["eval", "micro", "standard", "--robustness", "--keras", str(tmp_path / "a.h5"),
                                      "--cache-dir", str(mnist_cache)])
    assert count.exit_code == 1 and "--keras was given 1 times for 2 models" in count.output
    alone = CliRunner().invoke(main, ["eval", "micro", "--out", str(tmp_path), "--cache-dir", str(mnist_cache)])
    assert alone.exit_code == 1 and "go with --robustness" in alone.output
    missing = CliRunner().invoke(main, ["eval", "micro", "--robustness", "--perturbation", "fgsm", "--limit", "10",
                                        "--keras", str(tmp_path / "none.h5"), "--cache-dir", str(mnist_cache)])
    assert missing.exit_code == 1 and "none.h5 does not exist" in missing.output
