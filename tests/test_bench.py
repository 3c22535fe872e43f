"""bench: every configuration measured in one run, power sampling with a meter fake, reports and compare."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from edge_digits.cli import main
from edge_digits.measure import bench
from edge_digits.models import bundled_model


class SteppedMeter:
    """A meter that reads 2 W until the first configuration starts, then 6 W."""

    name = "fake"

    def __init__(self) -> None:
        self.loaded = False

    def read_watts(self) -> float:
        return 6.0 if self.loaded else 2.0

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def report(mnist_cache: Path) -> bench.BenchReport:
    meter = SteppedMeter()
    real = bench.run_config

    def loaded_run_config(*args, **kwargs):
        meter.loaded = True
        return real(*args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(bench, "run_config", loaded_run_config)
        return bench.run_bench([bundled_model("micro"), bundled_model("standard")], ["auto"], [1, 2], [1, 8],
                               warmup=3, runs=25, meter=meter, idle_seconds=0.6, power_rate=20, cache_dir=mnist_cache)


def test_every_configuration_is_measured(report: bench.BenchReport) -> None:
    assert len(report.results) == 8
    for r in report.results:
        assert r.calls == 25 and r.images == 25 * r.config.batch
        lat = r.latency_ms
        assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
        assert r.throughput_ips > 0 and r.backend_used == "litert" and r.accuracy > 0.97
    assert report.system["cores"] >= 1 and "numpy" in report.system["versions"]


def test_energy_per_inference_from_the_sampled_windows(report: bench.BenchReport) -> None:
    assert report.power["idle_watts"] == pytest.approx(2.0)
    measured = [r for r in report.results if r.energy]
    assert measured, "each load window long enough to hold a sample gets an energy figure"
    for r in measured:
        e = r.energy
        assert e["active_watts"] == pytest.approx(6.0)
        assert e["joules_per_inference"] == pytest.approx(4.0 * e["seconds"] / r.images)


def test_reports_and_compare(report: bench.BenchReport, tmp_path: Path) -> None:
    files = bench.write_report(report, tmp_path)
    assert {f.name for f in files} == {"bench.json", "bench.md", "latency.png", "throughput.png", "power.png"}
    for png in ("latency.png", "throughput.png", "power.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = (tmp_path / "bench.md").read_text()
    assert "| micro_int8 | litert | XNNPACK | 1 | 8 |" in text
    data = json.loads((tmp_path / "bench.json").read_text())
    rows = bench.compare(data, data)
    assert len(rows) == 8 and all(r["p50_ratio"] == pytest.approx(1.0) for r in rows)
    ratios = bench.ratio_table(report, "micro_int8")
    assert len(ratios) == 4 and all(r["model"] == "standard_int8" for r in ratios)


def test_cli_runs_without_a_meter_and_says_why(tmp_path: Path, mnist_cache: Path) -> None:
    result = CliRunner().invoke(main, ["bench", "--model", "micro", "--threads", "1", "--runs", "5", "--warmup", "1",
                                       "--power-meter", "pi5-pmic", "--out", str(tmp_path), "--cache-dir",
                                       str(mnist_cache)])
    assert result.exit_code == 0, result.output
    assert "running without power figures" in result.output
    assert (tmp_path / "bench.json").exists() and not (tmp_path / "power.png").exists()
    bad = CliRunner().invoke(main, ["bench", "--threads", "0", "--out", str(tmp_path)])
    assert bad.exit_code == 2 and "positive integers" in bad.output


def test_reports_without_matplotlib_skip_the_plots_and_say_why(report: bench.BenchReport, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A Pi install has no matplotlib: bench writes its JSON and Markdown, and the CLI names the extra."""
    from edge_digits import plots

    monkeypatch.setitem(sys.modules, "matplotlib", None)   # import matplotlib now fails, as where it is absent
    assert plots.missing() == "the plots need matplotlib: pip install 'edge-digits[plots]'"
    files = bench.write_report(report, tmp_path)
    assert {f.name for f in files} == {"bench.json", "bench.md"}
    assert json.loads((tmp_path / "bench.json").read_text())["results"]
    assert not list(tmp_path.glob("*.png"))
