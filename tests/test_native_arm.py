"""The native engine on ARM Linux, as a Raspberry Pi runs it: cross-compiled, run under qemu-user, bit-exact.

The engine's host harness (``firmware/host/ed_host.c`` with the engine
generated as the native backend generates it: convolutions through the
dot-product kernel) is built with Debian's cross compilers, statically, with
the native backend's optimisation level and the instruction-set flags it
picks for each Pi's CPU (``native.isa_flags``), so each of the kernel's ARM
paths runs: plain NEON for a Pi 4 (Cortex-A72, 64-bit Pi OS), SDOT for a
Pi 5 (Cortex-A76: ``-march=armv8.2-a+dotprod``), and 32-bit NEON for 32-bit
Pi OS (``arm-linux-gnueabihf-gcc -march=armv7-a -mfpu=neon-vfpv4``, a Pi 2's
Cortex-A7; a Pi Zero's ARMv6 has no NEON: it runs the portable C path, which
the x86 tests cover). Each runs under ``qemu-aarch64-static`` /
``qemu-arm-static`` with that CPU model (``QEMU_CPU``; never ``max``, which
has instructions no Pi has) on all 10,000 MNIST test images, one process per
model and CPU, images through stdin; the int8 outputs must equal TFLM's.
Emulated time says nothing about speed, so nothing is timed here.

The tools come from ``make setup-system``; without them the test is
skipped, except under ``$CI``, where it fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from edge_digits import int8
from edge_digits.models import bundled_model
from edge_digits.runtime import native

pytest.importorskip("tflite")
pytest.importorskip("tflite_micro")

HOST = Path(__file__).resolve().parents[1] / "firmware" / "host" / "ed_host.c"
OPT = next(f for f in native.FLAGS if f.startswith("-O"))
# name: (compiler, flags, qemu, QEMU_CPU, the kernel path that must be compiled in)
ARCHES = {
    "pi4-aarch64": ("aarch64-linux-gnu-gcc", list(native.isa_flags("aarch64-linux-gnu", {"fp", "asimd"})),
                    "qemu-aarch64-static", "cortex-a72", "neon"),
    "pi5-aarch64": ("aarch64-linux-gnu-gcc", list(native.isa_flags("aarch64-linux-gnu", {"asimd", "asimddp"})),
                    "qemu-aarch64-static", "cortex-a76", "neon-dotprod"),
    "pi2-armv7": ("arm-linux-gnueabihf-gcc", ["-march=armv7-a", "-mfpu=neon-vfpv4", "-mfloat-abi=hard"],
                  "qemu-arm-static", "cortex-a7", "neon"),
}
ELF_MACHINE = {"pi4-aarch64": 183, "pi5-aarch64": 183, "pi2-armv7": 40}   # EM_AARCH64, EM_ARM
PACKAGES = "gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf libc6-dev-arm64-cross libc6-dev-armhf-cross qemu-user-static"

pytestmark = pytest.mark.slow


def _require_tools() -> None:
    tools = {tool for cc, _, qemu, _, _ in ARCHES.values() for tool in (cc, qemu)}
    missing = sorted(tool for tool in tools if shutil.which(tool) is None)
    if missing:
        message = f"missing {', '.join(missing)}: make setup-system installs {PACKAGES}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def cross_build(arch: str, gen: Path, out: Path) -> Path:
    """The stream harness with the generated engine, a static ARM Linux executable."""
    cc, flags, _, _, path = ARCHES[arch]
    sources = sorted(str(p) for p in gen.glob("*.c"))
    cmd = [cc, "-std=c99", "-Wall", "-Wextra", "-Werror", "-static", OPT, *flags, "-I", str(gen), *sources,
           str(HOST), "-o", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{arch} build failed:\n{proc.stderr[-3000:]}"
    text = out.read_bytes()
    paths = {p for p in (b"avx512-vnni", b"neon-dotprod", b"neon", b"scalar") if b"dot path: " + p + b"\0" in text}
    assert paths == {path.encode()}, f"{arch}: expected the {path} path compiled in, found {paths}"
    return out


def run_emulated(arch: str, exe: Path, images: np.ndarray, out_size: int) -> np.ndarray:
    """All images through one emulated harness process (stdin -> stdout)."""
    _, _, qemu, cpu, _ = ARCHES[arch]
    proc = subprocess.run([qemu, "-cpu", cpu, str(exe)], input=images.tobytes(), capture_output=True, timeout=1800)
    assert proc.returncode == 0, f"{arch} harness failed ({proc.returncode}): {proc.stderr[-2000:]!r}"
    return np.frombuffer(proc.stdout, dtype=np.int8).reshape(len(images), out_size)


@pytest.mark.parametrize("name", ["micro", "standard"])
def test_engine_on_arm_matches_tflm_on_all_test_images(name: str, mnist, tflm_golden, tmp_path: Path) -> None:
    from edge_digits.engine.generate import generate

    _require_tools()
    model = bundled_model(name)
    engine = generate(model, tmp_path / "gen", dot=True)
    images = int8.quantize_images(mnist[2], engine.input_scale, engine.input_zero_point)[..., None]
    exes = {arch: cross_build(arch, tmp_path / "gen", tmp_path / f"ed_host_{arch}") for arch in ARCHES}
    for arch, exe in exes.items():   # really an ARM executable (ELF e_machine), not the host's
        with exe.open("rb") as f:
            assert int.from_bytes(f.read(20)[18:20], "little") == ELF_MACHINE[arch], arch
    with ThreadPoolExecutor(len(exes)) as pool:   # the two emulations side by side, one process each
        futures = {arch: pool.submit(run_emulated, arch, exe, images, engine.output_size)
                   for arch, exe in exes.items()}
        golden = tflm_golden(model, images)
        outputs = {arch: f.result() for arch, f in futures.items()}
    for arch, got in outputs.items():
        mismatched = int(np.any(got != golden, axis=1).sum())
        assert mismatched == 0, f"{arch}: {mismatched} of 10000 images differ from TFLM"
    assert (golden.argmax(1) == mnist[3]).mean() > 0.99
