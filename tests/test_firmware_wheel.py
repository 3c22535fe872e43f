"""Firmware from a pip install: the wheel of this tree, installed into a fresh virtual environment, generates,
builds, runs (QEMU) and validates firmware from an empty folder; and a missing extra, dependency or tool is an
error that names what to install, not a traceback."""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner

from edge_digits.cli import main
from edge_digits.firmware.build import build_firmware
from edge_digits.firmware.qemu import free_port
from edge_digits.models import bundled_model

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ("make", "arm-none-eabi-gcc", "qemu-system-arm")


# ------------------------------------------------------------------ the wheel, installed (slow)

def _build_backend_or_skip() -> None:
    """The wheel is built offline, without build isolation, with the setuptools of the dev extra."""
    try:
        import setuptools
        ok = int(setuptools.__version__.split(".")[0]) >= 77
    except ImportError:
        ok = False
    if not ok:
        message = "building the wheel offline needs setuptools>=77 (the dev extra; make setup installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel of this working tree, built from a copy of the files the wheel is made of (so a stale
    ``build/lib`` in the tree cannot leak old modules into it, and the tree is left alone)."""
    _build_backend_or_skip()
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(ROOT / "edge_digits", src / "edge_digits",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "build", "*.egg-info"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, src / name)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                           "--wheel-dir", str(tmp / "dist"), str(src)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (built,) = (tmp / "dist").glob("edge_digits-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory) -> Path:
    """A fresh virtual environment with the wheel installed (``--no-deps``); its dependencies are the ones of
    this test's environment, seen through a ``.pth`` file (so nothing is downloaded, and this environment's
    editable edge-digits stays out: a path in a ``.pth`` does not run that folder's own ``.pth`` files)."""
    env_dir = tmp_path_factory.mktemp("venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    python = env_dir / "bin" / "python"
    proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
                           str(wheel)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    import site

    (Path(purelib) / "zz-test-dependencies.pth").write_text("".join(f"{p}\n" for p in site.getsitepackages()))
    return env_dir


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHONUNBUFFERED"] = "1"   # `firmware run` prints its UART address while it keeps running
    return env


def _cli(venv: Path, cwd: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(venv / "bin" / "edge-digits"), *args], cwd=cwd, env=_env(), capture_output=True,
                          text=True, timeout=timeout)
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.returncode == 0, f"edge-digits {' '.join(args)}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return proc


@contextmanager
def _firmware_run(venv: Path, cwd: Path, elf: Path, port: int) -> Iterator[str]:
    """``edge-digits firmware run`` in the background until its UART listens; SIGTERM at the end, which stops
    it as Ctrl-C does (QEMU stopped with it, its port free again), and its exit and last words checked."""
    cmd = [str(venv / "bin" / "edge-digits"), "firmware", "run", "--target", "stm32f4", "--elf", str(elf),
           "--port", str(port), "--icount", "0"]
    proc = subprocess.Popen(cmd, cwd=cwd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    assert proc.stdout is not None
    said = b""
    try:
        deadline = time.monotonic() + 60
        while b"UART at" not in said and time.monotonic() < deadline and proc.poll() is None:
            if select.select([proc.stdout], [], [], 0.5)[0]:
                said += os.read(proc.stdout.fileno(), 4096)
        assert b"UART at" in said, said
        yield said.decode()
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=30)
        said += rest
        assert proc.returncode == 0 and b"stopping QEMU" in said and b"Traceback" not in said, said
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # past TIME_WAIT, not past a listener
            s.bind(("127.0.0.1", port))   # nothing listens there any more: QEMU went with the command
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)   # its own session: the CLI and the QEMU it started
            proc.wait()


@pytest.mark.slow
@pytest.mark.skipif(any(shutil.which(t) is None for t in TOOLS),
                    reason="make, the Cortex-M toolchain and QEMU come from `make setup-system`")
def test_the_installed_wheel_generates_builds_runs_and_validates_firmware(venv: Path, tmp_path: Path,
                                                                            mnist_cache: Path) -> None:
    work = tmp_path / "empty"
    work.mkdir()
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import edge_digits; print(edge_digits.__file__)"],
                           cwd=work, env=_env(), capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where).is_relative_to(venv), f"edge_digits came from {where}, not the wheel"

    generated = _cli(venv, work, "firmware", "generate", "micro", "--out", "gen")
    assert "wrote" in generated.stdout and "model.c" in generated.stdout
    assert {"model.c", "model.h", "ed_kernels.h"} <= {p.name for p in (work / "gen").iterdir()}

    built = _cli(venv, work, "firmware", "build", "--target", "stm32f4", "--out", "fw")
    assert "built" in built.stdout
    image = work / "fw" / "firmware.bin"
    assert (work / "fw" / "firmware.elf").read_bytes()[:4] == b"\x7fELF" and image.stat().st_size > 10_000
    record = json.loads((work / "fw" / "build.json").read_text())
    # the same sources, the same firmware: the clone's build of the same model is the same image, byte for byte
    clone = build_firmware("stm32f4", bundled_model("micro"), tmp_path / "clone")
    assert image.read_bytes() == Path(clone.bin).read_bytes()
    assert record["model_sha256"] == clone.model_sha256 and record["flash_bytes"] == clone.flash_bytes

    port = free_port()
    with _firmware_run(venv, work, work / "fw" / "firmware.elf", port) as said:
        assert f"tcp:127.0.0.1:{port}" in said
        checked = _cli(venv, work, "validate", "--port", f"tcp:127.0.0.1:{port}", "--count", "20",
                       "--timeout", "20", "--icount", "0", "--cache-dir", str(mnist_cache), "--json", "v.json")
    assert "identical int8 outputs 100.00%" in checked.stdout, checked.stdout
    result = json.loads((work / "v.json").read_text())
    assert result["count"] == 20 and result["agreement"] == 1.0
    assert result["accuracy"] == result["reference_accuracy"] >= 0.9
    assert result["info"]["board"] == "netduinoplus2" and result["info"]["model_sha256"] == record["model_sha256"]
    assert sorted(p.name for p in work.iterdir()) == ["fw", "gen", "v.json"], "wrote only where it was told"


@pytest.mark.slow
def test_the_wheel_carries_the_firmware_sources_and_nothing_else_of_firmware(wheel: Path) -> None:
    """Everything ``firmware build`` reads, and none of the top-level firmware/ folder (host programs, fuzz
    corpus, the TFLM app)."""
    import zipfile

    names = set(zipfile.ZipFile(wheel).namelist())
    csrc = ROOT / "edge_digits" / "firmware" / "csrc"
    sources = [p.relative_to(csrc) for p in csrc.rglob("*") if p.is_file()]
    shipped = {f"edge_digits/firmware/csrc/{p}" for p in sources
               if not any(part == "build" or part.startswith(".") for part in p.parts)}   # not build output
    assert shipped and shipped <= names, sorted(shipped - names)
    assert {"edge_digits/firmware/csrc/Makefile", "edge_digits/firmware/csrc/targets/stm32f4/target.toml",
            "edge_digits/firmware/csrc/target_config.py",
            "edge_digits/firmware/csrc/common/startup.c"} <= names
    assert not [n for n in names if n.startswith("firmware/") or "/tflm/" in n or "/fuzz/" in n or "/host/" in n]
    assert any(n.startswith("edge_digits/engine/csrc/") and n.endswith(".c") for n in names)


# ------------------------------------------------------------------ what is missing, said (fast, in-process)

@pytest.mark.parametrize(("missing", "args", "says"), [
    ("tflite_micro", ["validate", "--port", "tcp:127.0.0.1:9", "--count", "1"], "pip install 'edge-digits[micro]'"),
    ("serial", ["validate", "--port", "/dev/ttyNOSUCH", "--count", "1"], "pip install 'edge-digits[micro]'"),
    ("tflite", ["firmware", "generate", "micro", "--out", "{tmp}/gen"], "pip install 'tflite"),
])
def test_a_missing_python_module_names_what_to_install(missing: str, args: list[str], says: str, tmp_path: Path,
                                                       monkeypatch) -> None:
    """TFLM is loaded before the port is opened, so the missing extra is said even with no device there."""
    for name in [m for m in sys.modules if m == missing or m.startswith(missing + ".")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, missing, None)   # `import missing` now fails as if it were not installed
    result = CliRunner().invoke(main, [a.format(tmp=tmp_path) for a in args])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), "an error message, not a traceback"
    assert says in result.output and "Error:" in result.output, result.output


@pytest.mark.parametrize(("tool", "args", "says"), [
    ("arm-none-eabi-gcc", ["firmware", "build", "--target", "stm32f4", "--out", "{tmp}/fw"],
     "apt install gcc-arm-none-eabi libnewlib-arm-none-eabi"),
    ("make", ["firmware", "build", "--target", "mps2-an386", "--out", "{tmp}/fw"], "apt install make"),
    ("qemu-system-arm", ["firmware", "run", "--target", "stm32f4", "--elf", "{tmp}/f.elf"],
     "apt install qemu-system-arm"),
])
def test_a_missing_tool_names_the_debian_package(tool: str, args: list[str], says: str, tmp_path: Path,
                                                 monkeypatch) -> None:
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None if name == tool else real_which(name, *a, **k))
    (tmp_path / "f.elf").write_bytes(b"\x7fELF")
    result = CliRunner().invoke(main, [a.format(tmp=tmp_path) for a in args])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert f"{tool} is not on PATH: {says}" in result.output, result.output
    assert not (tmp_path / "fw").exists(), "nothing is generated before the tools are checked"
