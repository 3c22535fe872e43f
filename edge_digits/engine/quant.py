"""Integer requantization parameters, computed exactly as TFLM's Prepare functions do.

The engine must be bit-exact with TensorFlow Lite Micro, and TFLM derives its
integer multipliers from float scales at Prepare time; these functions repeat
that derivation (same float32/float64 steps, same rounding) in Python so the
generated C needs no floating point.
"""

from __future__ import annotations

import math

import numpy as np

INT8_MIN = -128
INT8_MAX = 127


def round_half_away(x: float) -> int:
    """Round to nearest with ties away from zero, like C's ``round``.

    >>> round_half_away(2.5), round_half_away(-2.5), round_half_away(2.4999)
    (3, -3, 2)
    """
    whole = math.trunc(x)
    frac = x - whole
    if frac >= 0.5:
        return whole + 1
    if frac <= -0.5:
        return whole - 1
    return whole


def quantize_multiplier(real: float) -> tuple[int, int]:
    """Split a positive real multiplier into a Q31 significand and a power-of-two shift (TFLM's QuantizeMultiplier).

    >>> quantize_multiplier(0.5)
    (1073741824, 0)
    >>> quantize_multiplier(0.0)
    (0, 0)
    """
    if real == 0.0:
        return 0, 0
    significand, shift = math.frexp(real)
    q_fixed = round_half_away(significand * (1 << 31))
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return int(q_fixed), int(shift)


def conv_multipliers(input_scale: float, filter_scales: np.ndarray, output_scale: float,
                     channels: int) -> tuple[list[int], list[int]]:
    """Per-output-channel multipliers and shifts for conv, depthwise and fully connected layers.

    A per-tensor filter scale (one value) is repeated for every channel.
    """
    scales = [float(np.float32(s)) for s in np.asarray(filter_scales).reshape(-1)]
    if len(scales) == 1:
        scales = scales * channels
    mults: list[int] = []
    shifts: list[int] = []
    for s in scales:
        m, sh = quantize_multiplier(float(np.float32(input_scale)) * s / float(np.float32(output_scale)))
        mults.append(m)
        shifts.append(sh)
    return mults, shifts


def mean_multiplier(input_scale: float, output_scale: float, pixels: int) -> tuple[int, int]:
    """Multiplier and shift of TFLM's integer MEAN, with the division by ``pixels`` folded in.

    TFLM scales the multiplier up by 2^floor(log2(pixels)) (capped so the shift stays valid),
    divides it by the pixel count with integer division and lowers the shift to match.

    >>> mean_multiplier(0.5, 0.5, 4)
    (1073741824, -1)
    """
    mult, shift = quantize_multiplier(float(np.float32(input_scale)) / float(np.float32(output_scale)))
    up = min(pixels.bit_length() - 1, 32, 31 + shift)
    return (mult << up) // pixels, shift - up


def activation_range(activation: str, scale: float, zero_point: int) -> tuple[int, int]:
    """The int8 output range of a fused activation (TFLM's CalculateActivationRangeQuantized).

    >>> activation_range("RELU6", 6 / 255, -128)
    (-128, 127)
    >>> activation_range("RELU", 0.1, -5)
    (-5, 127)
    """
    def q(f: float) -> int:
        return zero_point + round_half_away(float(np.float32(f) / np.float32(scale)))

    if activation == "NONE":
        return INT8_MIN, INT8_MAX
    if activation == "RELU":
        return max(INT8_MIN, q(0.0)), INT8_MAX
    if activation == "RELU6":
        return max(INT8_MIN, q(0.0)), min(INT8_MAX, q(6.0))
    if activation == "RELU_N1_TO_1":
        return max(INT8_MIN, q(-1.0)), min(INT8_MAX, q(1.0))
    raise ValueError(f"unsupported fused activation {activation}")


def softmax_params(beta: float, input_scale: float) -> tuple[int, int, int]:
    """(input_multiplier, input_left_shift, diff_min) of TFLM's int8 softmax Prepare (5 integer bits)."""
    scaled_diff_int_bits = 5
    real = min(float(np.float32(beta)) * float(np.float32(input_scale)) * (1 << (31 - scaled_diff_int_bits)),
               float((1 << 31) - 1))
    mult, left_shift = quantize_multiplier(real)
    if left_shift < 0:
        raise ValueError("softmax input scale too small for the int8 softmax")
    radius = math.floor(((1 << scaled_diff_int_bits) - 1) * (1 << (31 - scaled_diff_int_bits)) / (1 << left_shift))
    return mult, left_shift, -int(radius)


