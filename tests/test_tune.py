"""`edge-digits tune`: budgets measured as exported, infeasible trials skipped, a study that resumes, and
workers sharing one study through a real PostgreSQL server (Debian's package, started here)."""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from edge_digits.train.recipe import load_recipe
from edge_digits.train.tune import (
    Budget,
    TrialResult,
    TuneError,
    base_params,
    pareto_front,
    parse_bytes,
    pi_layers,
    run_tune,
    space_layers,
)

TINY_BASE = """base: micro
training: {epochs: 2, subset: 3000, validation: 1000, batch_size: 64, warmup_epochs: 0}
augmentation: {p: 0.5}
qat: {epochs: 1, calibration: 200}
"""

pytestmark = pytest.mark.slow   # trains, searches or runs all 10,000 test images: `make test` only


@pytest.fixture()
def tiny_base(tmp_path: Path) -> Path:
    path = tmp_path / "tiny-micro.yaml"
    path.write_text(TINY_BASE)
    return path


def test_sizes_parse_as_flash_and_ram_are_sized() -> None:
    assert parse_bytes("24KB") == 24576 and parse_bytes("12k") == 12288 and parse_bytes("1.5MB") == 1572864
    assert parse_bytes("20000") == 20000 and parse_bytes("64KiB") == 65536
    with pytest.raises(TuneError, match="'24 parsecs' is not a size: write it as 24KB"):
        parse_bytes("24 parsecs")


def test_micro_is_a_point_of_the_search_space() -> None:
    micro = load_recipe("micro")
    params = base_params(micro)
    assert params == {"c1": 8, "c2": 16, "c3": 16, "c5": 0, "c4": 48, "learning_rate": 0.006, "label_smoothing": 0.0,
                      "l2": 0.0}
    assert load_recipe("standard").layers != micro.layers and base_params(load_recipe("standard")) is None
    assert [layer["type"] for layer in space_layers(dict(params, c3=0, c5=24))] == [
        "conv", "maxpool", "conv", "maxpool", "conv", "conv", "maxpool", "flatten", "dense"]


def test_pareto_front_keeps_only_undominated_feasible_trials() -> None:
    def t(n: int, acc: float | None, flash: int, feasible: bool = True) -> TrialResult:
        return TrialResult(n, {}, "COMPLETE", feasible, flash, 1000, 10, acc)

    trials = [t(0, 0.99, 20000), t(1, 0.98, 21000), t(2, 0.97, 15000), t(3, 0.995, 30000, feasible=False),
              t(4, None, 10000, feasible=False), t(5, 0.99, 20000)]
    assert [x.number for x in pareto_front(trials)] == [2, 0, 5]


def test_tune_measures_trials_as_exported_and_resumes_the_study(tiny_base: Path, tmp_path: Path, mnist) -> None:
    from edge_digits.runtime import tflm

    out = tmp_path / "tune"
    budget = Budget(max_flash=parse_bytes("24KB"), max_arena=parse_bytes("12KB"))
    first = run_tune(str(tiny_base), out, 3, budget, sampler_seed=3, data=mnist)
    assert first.trials[0].params == base_params(load_recipe("micro")), "a new study starts from the base network"
    assert first.storage == f"sqlite:///{(out / 'study.db').resolve()}"
    for trial in first.trials:
        assert trial.flash_bytes and trial.arena_bytes and trial.macs
        if trial.val_accuracy is None:  # skipped: the untrained network is already over budget
            assert not trial.feasible and not (out / f"trial-{trial.number:03d}").exists()
            continue
        model = (Path(trial.run_dir) / "model_int8.tflite").read_bytes()
        assert trial.flash_bytes == len(model) and tflm.allocates(model, trial.arena_bytes)
        assert trial.feasible == (trial.flash_bytes <= budget.max_flash and trial.arena_bytes <= budget.max_arena)
        assert trial.val_accuracy > 0.5 and trial.test_accuracy > 0.5
    assert first.best is not None and first.best.feasible
    assert first.best.val_accuracy == max(t.val_accuracy for t in first.trials if t.feasible and t.val_accuracy)
    best = load_recipe(str(out / "best.yaml"))
    assert [dict(type=x.type, filters=x.filters) for x in best.layers if x.type == "conv"] == [
        dict(type="conv", filters=x["filters"]) for x in space_layers(first.best.params) if x["type"] == "conv"]
    assert best.training.epochs == 2
    assert best.training.learning_rate == pytest.approx(first.best.params["learning_rate"])
    report = json.loads((out / "tune.json").read_text())
    assert len(report["trials"]) == 3 and report["best"] == first.best.number
    assert "## Pareto front" in (out / "tune.md").read_text()
    assert (out / "pareto.png").read_bytes()[:4] == b"\x89PNG"

    again = run_tune(str(tiny_base), out, 1, budget, sampler_seed=4, data=mnist)
    assert len(again.trials) == 4 and [t.number for t in again.trials] == [0, 1, 2, 3]
    assert again.trials[0].params == first.trials[0].params, "the study continued, the base was not queued again"


def test_impossible_budget_trains_nothing_and_says_so(tiny_base: Path, tmp_path: Path, mnist_cache: Path) -> None:
    from click.testing import CliRunner

    from edge_digits.cli import main

    out = tmp_path / "tune"
    result = CliRunner().invoke(main, ["tune", "--base", str(tiny_base), "--out", str(out), "--trials", "2",
                                       "--max-arena", "4KB", "--cache-dir", str(mnist_cache)])
    assert result.exit_code == 0, result.output
    assert "2 trials, 0 trained, 2 over budget" in result.output and "no trial met the budgets" in result.output
    assert not list(out.glob("trial-*")) and not (out / "best.yaml").exists()
    bad = CliRunner().invoke(main, ["tune", "--out", str(out), "--max-flash", "lots"])
    assert bad.exit_code == 2 and "'lots' is not a size" in bad.output
    bad = CliRunner().invoke(main, ["tune", "--out", str(out), "--storage", "postgres-server-1",
                                    "--cache-dir", str(mnist_cache)])
    assert bad.exit_code != 0 and "is not a database URL: give sqlite:///PATH.db or postgresql://" in bad.output


TINY_PI = """base: standard
layers:
  - {type: conv, filters: 16, kernel: 5, stride: 2, batchnorm: true}
  - {type: conv, filters: 32, kernel: 3, stride: 2, batchnorm: true}
  - {type: conv, filters: 64, kernel: 3, stride: 1, batchnorm: true}
  - {type: gap}
  - {type: dropout, rate: 0.1}
  - {type: dense, units: 10, activation: none}
training: {epochs: 1, subset: 2000, validation: 500, batch_size: 64, warmup_epochs: 0, learning_rate: 0.004,
           label_smoothing: 0.0, l2: 0.0}
augmentation: {p: 0.5}
qat: {epochs: 1, calibration: 200}
"""


def test_pi_space_keeps_trials_over_the_latency_budget_untrained(tmp_path: Path, mnist) -> None:
    """Latency is measured on the untrained int8 graph beside the reference (seed-cnn): a budget no CNN of
    the space meets (1/50 of seed-cnn's time) trains nothing; a loose one trains and records the ratio."""
    base = tmp_path / "tiny-pi.yaml"
    base.write_text(TINY_PI)
    point = base_params(load_recipe(str(base)), "pi")
    assert point == {"c1": 16, "k1": 5, "c2": 32, "c3": 64, "c4": 0, "learning_rate": 0.004,
                     "label_smoothing": 0.0, "l2": 0.0}
    assert base_params(load_recipe("micro"), "pi") is None and base_params(load_recipe(str(base))) is None
    assert [layer["type"] for layer in pi_layers(dict(point, c4=96))] == [
        "conv", "conv", "conv", "conv", "gap", "dropout", "dense"]

    tight = run_tune(str(base), tmp_path / "tight", 2, Budget(max_latency_ratio=0.02), sampler_seed=1, data=mnist,
                     space="pi")
    assert tight.trials[0].params == point
    for trial in tight.trials:
        assert trial.latency_ratio is not None and trial.latency_ratio > 0.02
        assert not trial.feasible and trial.val_accuracy is None
    assert not list((tmp_path / "tight").glob("trial-*")) and tight.best is None
    assert "latency 0.02x seed-cnn's" in (tmp_path / "tight" / "tune.md").read_text()

    loose = run_tune(str(base), tmp_path / "loose", 1, Budget(max_latency_ratio=50.0), data=mnist, space="pi")
    (trial,) = loose.trials
    assert trial.feasible and trial.val_accuracy is not None and trial.latency_ratio is not None
    assert 0.02 < trial.latency_ratio < 50.0
    best = load_recipe(str(tmp_path / "loose" / "best.yaml"))
    assert [(x.filters, x.kernel, x.stride) for x in best.layers if x.type == "conv"] == [
        (16, 5, 2), (32, 3, 2), (64, 3, 1)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    """A throwaway PostgreSQL server from Debian's package, on a free port, trusted local connections."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.skip("PostgreSQL is not installed: `make setup` installs Debian's postgresql package")
    bindir = Path(found[-1]).parent
    root = Path(tempfile.mkdtemp(prefix="edge-digits-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root: the server runs as Debian's postgres user
        shutil.chown(root, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    data = root / "data"
    subprocess.run([*as_user, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "edge", "-E", "UTF8",
                    "--no-sync"], check=True, capture_output=True)
    subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-w",
                    "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
                   check=True, capture_output=True)
    try:
        yield f"postgresql://edge@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def test_two_workers_share_one_study_on_postgresql(postgres_url: str, tiny_base: Path, tmp_path: Path,
                                                   mnist_cache: Path) -> None:
    import optuna

    env = dict(os.environ, EDGE_DIGITS_DATA=str(mnist_cache))
    workers = [subprocess.Popen([sys.executable, "-m", "edge_digits", "tune", "--base", str(tiny_base),
                                 "--out", str(tmp_path / f"worker{i}"), "--trials", "2", "--max-flash", "24KB",
                                 "--max-arena", "12KB", "--storage", postgres_url, "--study-name", "shared",
                                 "--sampler-seed", str(i)], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True) for i in (1, 2)]
    outputs = [w.communicate(timeout=900)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    study = optuna.load_study(study_name="shared", storage=postgres_url)
    trials = study.get_trials()
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    dirs = {Path(t.user_attrs["run_dir"]).parent.name for t in trials if "run_dir" in t.user_attrs}
    owners = {t.number: Path(t.user_attrs.get("run_dir", "x/x")).parent.name for t in trials}
    assert dirs <= {"worker1", "worker2"} and len([t for t in trials if "run_dir" in t.user_attrs]) >= 1
    assert sum(1 for t in trials if t.params == base_params(load_recipe("micro"))) == 1, owners
    last = json.loads(max((tmp_path / f"worker{i}" / "tune.json" for i in (1, 2)),
                          key=lambda p: p.stat().st_mtime).read_text())
    assert len(last["trials"]) == 4 and last["storage"].startswith("postgresql://edge@127.0.0.1:")
    assert "study shared: " in outputs[0] and "study shared: " in outputs[1]
    np.testing.assert_array_equal(sorted(len(o) > 0 for o in outputs), [True, True])


def test_workers_opening_a_new_database_at_once_all_get_the_study(postgres_url: str) -> None:
    """Table creation races on a fresh database (a unique-key violation for the loser); all must get in."""
    import threading

    import psycopg

    from edge_digits.train.tune import _open_study

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE DATABASE race")
    url = postgres_url.rsplit("/", 1)[0] + "/race"
    barrier, studies, errors = threading.Barrier(6), [], []

    def worker() -> None:
        barrier.wait()
        try:
            studies.append(_open_study("raced", url, None))
        except Exception as exc:  # noqa: BLE001 (collected and asserted below)
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors and len(studies) == 6
    assert len({s._study_id for s in studies}) == 1
