"""The bench stage: latency, throughput, CPU time and energy per inference, measured side by side.

Every configuration (model x backend x threads x batch) runs in the same
process, one after another, after a warm-up, so ratios between them mean
something on a noisy machine. Power, when a meter works, is sampled in a
background thread: idle first, then each configuration's load window.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edge_digits.fileio import atomic_write_json, atomic_write_text

if TYPE_CHECKING:
    from edge_digits.power import PowerMeter


@dataclass(frozen=True)
class BenchConfig:
    model: str
    backend: str
    threads: int
    batch: int


@dataclass
class BenchResult:
    """One configuration's figures; latencies are per call (one batch), in milliseconds."""

    config: BenchConfig
    model_name: str
    model_sha256: str
    backend_used: str
    delegate: str
    calls: int
    images: int
    latency_ms: dict[str, float]
    per_image_ms: float
    throughput_ips: float
    cpu_seconds: float
    wall_seconds: float
    accuracy: float
    window: tuple[float, float] = (0.0, 0.0)
    energy: dict[str, Any] | None = None
    samples_ms: list[float] = field(default_factory=list, repr=False)


def percentiles(values_ms: Sequence[float]) -> dict[str, float]:
    """min, p50, p90, p99 and max of a list of latencies.

    >>> percentiles([1.0, 2.0, 3.0, 4.0])["p50"]
    2.5
    """
    v = np.asarray(values_ms, dtype=np.float64)
    return {"min": float(v.min()), "p50": float(np.percentile(v, 50)), "p90": float(np.percentile(v, 90)),
            "p99": float(np.percentile(v, 99)), "max": float(v.max()), "mean": float(v.mean())}


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _vcgencmd(*args: str) -> str | None:
    try:
        return subprocess.run(["vcgencmd", *args], capture_output=True, text=True, timeout=3, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def system_facts() -> dict[str, Any]:
    """CPU model, cores, governor, temperature and throttling where readable, library versions."""
    from importlib.metadata import PackageNotFoundError, version

    cpuinfo = _read("/proc/cpuinfo") or ""
    model = re.search(r"^(model name|Model)\s*:\s*(.+)$", cpuinfo, re.M)
    temps = []
    for zone in sorted(Path("/sys/class/thermal").glob("thermal_zone*")):
        value = _read(str(zone / "temp"))
        if value and value.lstrip("-").isdigit():
            temps.append(int(value) / 1000.0)
    versions = {}
    for pkg in ("edge-digits", "numpy", "ai-edge-litert", "tflite-runtime", "tensorflow", "tflite-micro",
                "opencv-python-headless"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return {
        "cpu": model.group(2).strip() if model else platform.processor() or platform.machine(),
        "machine": platform.machine(),
        "cores": os.cpu_count(),
        "governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "temperature_c": max(temps) if temps else None,
        "vcgencmd_temp": _vcgencmd("measure_temp"),
        "vcgencmd_throttled": _vcgencmd("get_throttled"),
        "python": platform.python_version(),
        "versions": versions,
    }


def model_label(model: Path) -> str:
    """A short name for a model file: its stem, or folder/stem when the stem is a generic training output name.

    >>> model_label(Path("runs/standard/model_int8.tflite")), model_label(Path("m/micro_int8.tflite"))
    ('standard/model_int8', 'micro_int8')
    """
    return f"{model.parent.name}/{model.stem}" if model.stem in ("model", "model_int8", "model_float") else model.stem


def run_config(config: BenchConfig, images: np.ndarray, labels: np.ndarray, warmup: int, runs: int,
               duration: float, clock: Callable[[], float] = time.perf_counter) -> BenchResult:
    """Warm up, then time ``runs`` calls (or as many as fit in ``duration`` seconds) of one configuration."""
    from edge_digits.runtime import Classifier

    model = Path(config.model)
    classifier = Classifier(model, backend=config.backend, threads=config.threads)
    batch = images[: config.batch]
    for _ in range(warmup):
        classifier.predict_raw(batch)
    samples: list[float] = []
    cpu0, wall0 = time.process_time(), clock()
    i = 0
    while (runs and len(samples) < runs) or (not runs and clock() - wall0 < duration):
        start = (i * config.batch) % (len(images) - config.batch + 1)
        chunk = images[start:start + config.batch]
        t0 = clock()
        classifier.predict_raw(chunk)
        samples.append((clock() - t0) * 1000.0)
        i += 1
    wall, cpu = clock() - wall0, time.process_time() - cpu0
    pred = classifier.predict_batched(images[:2000]).argmax(axis=1)
    count = len(samples) * config.batch
    return BenchResult(
        config=config, model_name=model_label(model), model_sha256=hashlib.sha256(model.read_bytes()).hexdigest(),
        backend_used=classifier.backend, delegate=classifier.delegate, calls=len(samples), images=count,
        latency_ms=percentiles(samples), per_image_ms=float(np.median(samples)) / config.batch,
        throughput_ips=count / wall if wall > 0 else 0.0, cpu_seconds=cpu, wall_seconds=wall,
        accuracy=float(np.mean(pred == labels[:2000])), samples_ms=samples,
    )


@dataclass
class BenchReport:
    system: dict[str, Any]
    results: list[BenchResult]
    power: dict[str, Any] | None
    device: dict[str, Any] | None
    notes: list[str]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for r in out["results"]:
            r["samples_ms"] = [round(s, 4) for s in r["samples_ms"]]
        return out


def run_bench(models: Sequence[Path], backends: Sequence[str], threads: Sequence[int], batches: Sequence[int],
              warmup: int = 20, runs: int = 0, duration: float = 3.0, meter: PowerMeter | None = None,
              idle_seconds: float = 2.0,
              power_rate: float = 20.0, cache_dir: Path | None = None, device_result: dict[str, Any] | None = None,
              progress: Callable[[BenchConfig], None] | None = None) -> BenchReport:
    """Every combination, in one process, with optional power sampling."""
    from edge_digits.data import load_mnist
    from edge_digits.power import PowerSampler, energy_per_inference

    _, _, x_test, y_test = load_mnist(cache_dir)
    configs = [BenchConfig(str(m), b, t, n) for m in models for b in backends for t in threads for n in batches]
    notes: list[str] = []
    results: list[BenchResult] = []
    power = None
    if meter is not None:
        with PowerSampler(meter, power_rate) as sampler:
            time.sleep(idle_seconds)
            idle = (0.0, sampler.now())
            for config in configs:
                start = sampler.now()
                result = run_config(config, x_test, y_test, warmup, runs, duration)
                result.window = (start, sampler.now())
                sampler.mark(f"{result.model_name}/{config.backend}/t{config.threads}/b{config.batch}", *result.window)
                estimate = energy_per_inference(sampler.trace, idle, result.window, result.images)
                result.energy = asdict(estimate) if estimate else None
                results.append(result)
                if progress:
                    progress(config)
        trace = sampler.trace
        power = {"meter": trace.meter, "rate_hz": trace.rate_hz, "idle_window": idle,
                 "idle_watts": trace.mean(*idle), "samples": trace.samples, "windows": trace.windows,
                 "errors": trace.errors}
    else:
        for config in configs:
            results.append(run_config(config, x_test, y_test, warmup, runs, duration))
            if progress:
                progress(config)
        notes.append("no power meter: energy figures are absent")
    return BenchReport(system_facts(), results, power, device_summary(device_result), notes)


def device_summary(result: dict[str, Any] | None) -> dict[str, Any] | None:
    """A microcontroller's validate result turned into latency at its clock."""
    if not result:
        return None
    clock = result.get("clock_hz") or 0
    return {
        "board": result.get("info", {}).get("board"), "clock_hz": clock, "count": result.get("count"),
        "accuracy": result.get("accuracy"), "agreement": result.get("agreement"),
        "cycles_median": result.get("cycles_median"), "cycles_p99": result.get("cycles_p99"),
        "latency_ms_median": result["cycles_median"] / clock * 1000.0 if clock else None,
        "cycle_note": result.get("cycle_note"),
        "instructions_median": result.get("instructions_median"),
        "energy_estimates": result.get("energy_estimates") or [],
        "energy_references": result.get("energy_references") or [],
    }


def ratio_table(report: BenchReport, baseline: str) -> list[dict[str, Any]]:
    """Each result's per-image latency as a ratio against ``baseline``'s with the same backend/threads/batch."""
    base = {(r.config.backend, r.config.threads, r.config.batch): r for r in report.results
            if r.model_name == baseline}
    rows = []
    for r in report.results:
        b = base.get((r.config.backend, r.config.threads, r.config.batch))
        if b is None or r.model_name == baseline:
            continue
        rows.append({"model": r.model_name, "backend": r.config.backend, "threads": r.config.threads,
                     "batch": r.config.batch, "speedup": b.per_image_ms / r.per_image_ms,
                     "accuracy": r.accuracy, "baseline_accuracy": b.accuracy})
    return rows


def markdown(report: BenchReport, baseline: str = "seed-cnn_int8") -> str:
    s = report.system
    lines = [
        "# edge-digits bench",
        "",
        f"CPU: {s['cpu']} ({s['cores']} cores, {s['machine']}), governor {s['governor']}, "
        f"temperature {s['temperature_c']} C; Python {s['python']}; "
        + ", ".join(f"{k} {v}" for k, v in s["versions"].items()),
        "",
        "| model | backend | delegate | threads | batch | p50 ms/call | p99 ms/call | ms/image | images/s | "
        "CPU s | accuracy (2,000 test images) | J/inference |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in report.results:
        energy = f"{r.energy['joules_per_inference'] * 1000:.3f} mJ" if r.energy else "-"
        lines.append(f"| {r.model_name} | {r.backend_used} | {r.delegate} | {r.config.threads} | {r.config.batch} | "
                     f"{r.latency_ms['p50']:.3f} | {r.latency_ms['p99']:.3f} | {r.per_image_ms:.4f} | "
                     f"{r.throughput_ips:,.0f} | {r.cpu_seconds:.2f} | {r.accuracy:.2%} | {energy} |")
    ratios = ratio_table(report, baseline)
    if ratios:
        lines += ["", f"Per-image latency against `{baseline}` in the same run (higher is faster):", "",
                  "| model | backend | threads | batch | speedup | accuracy | baseline accuracy |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        lines += [f"| {r['model']} | {r['backend']} | {r['threads']} | {r['batch']} | {r['speedup']:.2f}x | "
                  f"{r['accuracy']:.2%} | {r['baseline_accuracy']:.2%} |" for r in ratios]
    if report.power:
        p = report.power
        lines += ["", f"Power meter: {p['meter']} at {p['rate_hz']} Hz, idle {p['idle_watts']} W, "
                      f"{len(p['samples'])} samples."]
    if report.device:
        d = report.device
        lines += ["", f"Microcontroller ({d['board']}, {d['clock_hz'] / 1e6:.0f} MHz): "
                      f"median {d['cycles_median']:,.0f} "
                      f"cycles = {d['latency_ms_median']:.3f} ms per inference; accuracy {d['accuracy']:.2%} on "
                      f"{d['count']} images; {d['cycle_note']}"]
        if d.get("energy_estimates"):
            lines += ["", "Energy per inference, ESTIMATED from datasheet run current (V x I x cycles / f; "
                          "under QEMU the instruction count stands in for cycles):", "",
                      "| board | core | clock | current | count | time | energy (estimate) | source |",
                      "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |"]
            lines += [f"| {e['board']} | {e['core']} | {e['clock_hz'] / 1e6:.0f} MHz | {e['current_ma']:g} mA at "
                      f"{e['supply_v']:g} V | {e['count']:,.0f} {e['count_is']} | {e['time_ms']:.3f} ms | "
                      f"{e['energy_uj']:.1f} uJ | {e['source']} |" for e in d["energy_estimates"]]
            lines += ["", "For scale, MLPerf Tiny's published figures (other models, measured with an energy "
                          "monitor):", "", "| result | system | processor | software | benchmark | latency | "
                          "energy |", "| --- | --- | --- | --- | --- | ---: | ---: |"]
            lines += [f"| {r['version']} | {r['system']} | {r['processor']} | {r['software']} | {r['benchmark']} | "
                      f"{r['latency_ms']:g} ms | {r['energy_uj']:,.0f} uJ |" for r in d.get("energy_references", [])]
    lines += [""] + [f"Note: {n}" for n in report.notes]
    return "\n".join(lines) + "\n"


def write_report(report: BenchReport, out: Path, baseline: str = "seed-cnn_int8") -> list[Path]:
    """bench.json, bench.md and the plots into ``out`` (the plots only where matplotlib is installed:
    ``plots.missing()`` says why not)."""
    from edge_digits import plots

    out = Path(out)
    files = [atomic_write_json(out / "bench.json", report.to_dict()),
             atomic_write_text(out / "bench.md", markdown(report, baseline))]
    if plots.missing() is not None:
        return files
    files.append(plots.latency_distribution(report.results, out / "latency.png"))
    files.append(plots.throughput(report.results, out / "throughput.png"))
    if report.power:
        files.append(plots.power_trace(report.power, out / "power.png"))
    return files


def compare(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    """Ratios of B over A for the configurations both reports measured (same model, backend, threads, batch)."""
    def key(r: dict[str, Any]) -> tuple[Any, ...]:
        c = r["config"]
        return r["model_sha256"], c["backend"], c["threads"], c["batch"]

    left = {key(r): r for r in a["results"]}
    rows = []
    for r in b["results"]:
        prev = left.get(key(r))
        if prev is None:
            continue
        rows.append({"model": r["model_name"], "backend": r["config"]["backend"], "threads": r["config"]["threads"],
                     "batch": r["config"]["batch"], "p50_ratio": r["latency_ms"]["p50"] / prev["latency_ms"]["p50"],
                     "throughput_ratio": r["throughput_ips"] / prev["throughput_ips"] if prev["throughput_ips"]
                     else None})
    return rows
