"""The native engine on ARM Linux, as a Raspberry Pi runs it: cross-compiled, run under qemu-user, bit-exact.

The engine's host harness (``firmware/host/ed_host.c`` with a generated
engine) is built with Debian's cross compilers, statically, with the
optimisation level of the native backend (``-O3``: the compilers vectorize
the kernels' loops with NEON there, and those are the code paths a Pi runs):
``aarch64-linux-gnu-gcc`` for 64-bit Pi OS and ``arm-linux-gnueabihf-gcc``
with ``-march=armv7-a -mfpu=neon-vfpv4 -mfloat-abi=hard`` for 32-bit Pi OS
(a Pi Zero's ARMv6 has no NEON: it runs the scalar loops, which the aarch64
and x86 runs cover). Each runs under ``qemu-aarch64-static`` /
``qemu-arm-static`` on all 10,000 MNIST test images, one process per model
and architecture, images through stdin; the int8 outputs must equal TFLM's.
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
ARCHES = {
    "aarch64": ("aarch64-linux-gnu-gcc", [], "qemu-aarch64-static"),
    "armv7": ("arm-linux-gnueabihf-gcc", ["-march=armv7-a", "-mfpu=neon-vfpv4", "-mfloat-abi=hard"],
              "qemu-arm-static"),
}
ELF_MACHINE = {"aarch64": 183, "armv7": 40}   # EM_AARCH64, EM_ARM
PACKAGES = "gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf libc6-dev-arm64-cross libc6-dev-armhf-cross qemu-user-static"

pytestmark = pytest.mark.slow


def _require_tools() -> None:
    missing = [tool for cc, _, qemu in ARCHES.values() for tool in (cc, qemu) if shutil.which(tool) is None]
    if missing:
        message = f"missing {', '.join(missing)}: make setup-system installs {PACKAGES}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def cross_build(arch: str, gen: Path, out: Path) -> Path:
    """The stream harness with the generated engine, a static ARM Linux executable."""
    cc, flags, _ = ARCHES[arch]
    sources = sorted(str(p) for p in gen.glob("*.c"))
    cmd = [cc, "-std=c99", "-Wall", "-Wextra", "-Werror", "-static", OPT, *flags, "-I", str(gen), *sources,
           str(HOST), "-o", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{arch} build failed:\n{proc.stderr[-3000:]}"
    return out


def run_emulated(arch: str, exe: Path, images: np.ndarray, out_size: int) -> np.ndarray:
    """All images through one emulated harness process (stdin -> stdout)."""
    proc = subprocess.run([ARCHES[arch][2], str(exe)], input=images.tobytes(), capture_output=True, timeout=1800)
    assert proc.returncode == 0, f"{arch} harness failed ({proc.returncode}): {proc.stderr[-2000:]!r}"
    return np.frombuffer(proc.stdout, dtype=np.int8).reshape(len(images), out_size)


@pytest.mark.parametrize("name", ["micro", "standard"])
def test_engine_on_arm_matches_tflm_on_all_test_images(name: str, mnist, tflm_golden, tmp_path: Path) -> None:
    from edge_digits.engine.generate import generate

    _require_tools()
    model = bundled_model(name)
    engine = generate(model, tmp_path / "gen")
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
