"""The engine's requantization (ed_fixedpoint.h), compiled on the host, against TFLM's definitions written
out in Python: MultiplyByQuantizedMultiplier as gemmlowp's SaturatingRoundingDoublingHighMul (nudge, then
division truncating toward zero) followed by RoundingDivideByPOT (mask, remainder, threshold). The C code
computes both differently (one arithmetic shift; the 32-bit divide), so exact halves and signs matter."""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

import pytest

CSRC = Path(__file__).resolve().parents[1] / "edge_digits" / "engine" / "csrc"
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1

DRIVER = r"""
#include <stdio.h>
#include "ed_fixedpoint.h"
int main(void) {
    long x, m, s, lo, hi, off;
    while (scanf("%ld %ld %ld %ld %ld %ld", &x, &m, &s, &off, &lo, &hi) == 6) {
        printf("%d %d\n", (int)ed_mbqm((int32_t)x, (int32_t)m, (int32_t)s),
               (int)ed_requant((int32_t)x, 0, (int32_t)m, (int32_t)s, (int32_t)off, (int32_t)lo, (int32_t)hi));
    }
    return 0;
}
"""


def _wrap32(v: int) -> int:
    return (v + 2**31) % 2**32 - 2**31


def srdhm(a: int, b: int) -> int:
    if a == b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    num = ab + nudge
    q = abs(num) // (1 << 31)          # C's division truncates toward zero
    return q if num >= 0 else -q


def rdbpot(x: int, exponent: int) -> int:
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


def mbqm(x: int, multiplier: int, shift: int) -> int:
    left, right = max(shift, 0), max(-shift, 0)
    return rdbpot(srdhm(_wrap32(x << left), multiplier), right)


def _cases(rng: random.Random) -> list[tuple[int, int, int]]:
    cases = []
    for _ in range(20_000):
        m = rng.choice([rng.randrange(1 << 30, 1 << 31), rng.randrange(0, 1 << 31), (1 << 30), INT32_MAX])
        shift = rng.randrange(-31, 8)
        bits = rng.choice([8, 16, 24, 31])
        x = rng.randrange(-(1 << bits), 1 << bits)
        if shift > 0:
            x >>= shift  # keep x << shift inside int32, as accumulators are
        cases.append((x, m, shift))
    # exact halves of the doubling high multiply and of the divide, both signs
    for _ in range(5_000):
        right = rng.randrange(1, 20)
        q = rng.randrange(-(1 << 10), 1 << 10)
        y = q * (1 << right) + (1 << (right - 1))        # a tie of the divide by 2^right
        cases.append((y, INT32_MAX, -right))
        cases.append((-y, INT32_MAX, -right))
        cases.append((rng.choice([-1, 1]) * (1 << rng.randrange(0, 30)), 1 << 30, -right))
    cases += [(INT32_MIN, INT32_MAX, 0), (INT32_MAX, INT32_MAX, 0), (INT32_MIN, 1 << 30, -31), (-1, 1, -31),
              (0, INT32_MAX, -5), (1, 1 << 30, 0), (-(1 << 30), 1 << 31 - 1, -1)]
    return cases


@pytest.mark.skipif(shutil.which("cc") is None, reason="a host C compiler comes from `make setup-system`")
def test_requantization_matches_tflms_definitions(tmp_path: Path) -> None:
    src = tmp_path / "fp.c"
    src.write_text(DRIVER)
    exe = tmp_path / "fp"
    subprocess.run(["cc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", f"-I{CSRC}", str(src), "-o", str(exe)],
                   check=True)
    rng = random.Random(16)
    cases = _cases(rng)
    lines = [f"{x} {m} {s} {off} {lo} {hi}" for (x, m, s), (off, lo, hi) in
             zip(cases, [(rng.randrange(-128, 128), -128, 127) for _ in cases])]
    out = subprocess.run([str(exe)], input="\n".join(lines) + "\n", capture_output=True, text=True,
                         check=True).stdout.split("\n")
    bad = []
    for line, got in zip(lines, out):
        x, m, s, off, lo, hi = map(int, line.split())
        want = mbqm(x, m, s)
        want_q = min(max(want + off, lo), hi)
        if abs(want) > INT32_MAX - 128:   # adding the output offset would overflow int32 (in TFLM too)
            want_q = int(got.split()[1])
        if got.split() != [str(want), str(want_q)]:
            bad.append((line, got, want, want_q))
    assert len(out) - 1 == len(lines) and not bad, bad[:5]
