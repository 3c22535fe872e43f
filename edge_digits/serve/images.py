"""Uploaded images, checked before they are decoded: PNG/JPEG headers read for their size (no pixel
bombs), truncation caught, and the JSON form of ``/v1/classify`` parsed."""

from __future__ import annotations

import base64
import json

import numpy as np

from edge_digits.serve.config import Limits
from edge_digits.serve.http import HttpError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def image_size(data: bytes) -> tuple[str, int, int]:
    """Format, width and height from a PNG or JPEG header, without decoding (so no pixel bombs)."""
    if data.startswith(PNG_MAGIC):
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise HttpError(400, "truncated or malformed PNG: no IHDR chunk")
        return "png", int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data.startswith(b"\xff\xd8"):
        i, n = 2, len(data)
        while i + 4 <= n:
            if data[i] != 0xFF:
                raise HttpError(400, "malformed JPEG: marker expected")
            marker = data[i + 1]
            if marker == 0xFF:
                i += 1
                continue
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                i += 2
                continue
            length = int.from_bytes(data[i + 2:i + 4], "big")
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                if i + 9 > n:
                    break
                return "jpeg", int.from_bytes(data[i + 7:i + 9], "big"), int.from_bytes(data[i + 5:i + 7], "big")
            if length < 2:
                raise HttpError(400, "malformed JPEG: bad segment length")
            i += 2 + length
        raise HttpError(400, "truncated or malformed JPEG: no frame header")
    raise HttpError(400, "the body is not a PNG or JPEG image")


def check_image(data: bytes, limits: Limits) -> str:
    kind, w, h = image_size(data)
    if w < 1 or h < 1:
        raise HttpError(400, f"the {kind.upper()} says it is {w}x{h} pixels")
    if max(w, h) > limits.max_image_side or w * h > limits.max_image_pixels:
        raise HttpError(413, f"the image is {w}x{h} pixels; the limit is {limits.max_image_side} per side and "
                             f"{limits.max_image_pixels} pixels")
    return kind


def decode_image(data: bytes, limits: Limits, gray: bool) -> np.ndarray:
    """A checked PNG/JPEG as uint8 grayscale (H, W) or BGR (H, W, 3); 400 when it does not decode whole."""
    import cv2

    kind = check_image(data, limits)
    if kind == "png" and not data.rstrip(b"\x00").endswith(b"IEND\xaeB`\x82"):
        raise HttpError(400, "truncated PNG: the IEND chunk is missing")
    if kind == "jpeg" and b"\xff\xd9" not in data[-64:]:
        raise HttpError(400, "truncated JPEG: the end-of-image marker is missing")
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR)
    except cv2.error:
        img = None
    if img is None or img.size == 0:
        raise HttpError(400, f"the {kind.upper()} does not decode (corrupt or truncated)")
    return img


def to_digit_image(gray: np.ndarray) -> np.ndarray:
    """A grayscale image as the model's 28x28 input (area-averaged when resized; no inversion)."""
    import cv2

    if gray.shape == (28, 28):
        return gray
    return cv2.resize(gray, (28, 28), interpolation=cv2.INTER_AREA)


def parse_classify_json(body: bytes, limits: Limits) -> np.ndarray:
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise HttpError(400, f"malformed JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise HttpError(400, 'the body must be a JSON object {"images": [...]}')
    extra = sorted(set(doc) - {"images"})
    if extra:
        raise HttpError(400, f"unknown field(s) {', '.join(map(repr, extra))}; only 'images' is accepted")
    images = doc.get("images")
    if not isinstance(images, list):
        raise HttpError(400, '"images" must be a list of base64 strings')
    if not images:
        raise HttpError(400, '"images" is empty; give at least one image')
    if len(images) > limits.max_batch:
        raise HttpError(400, f"{len(images)} images in one request; the limit is {limits.max_batch}")
    raw = []
    for i, item in enumerate(images):
        if not isinstance(item, str):
            raise HttpError(400, f"images[{i}] must be a base64 string, not {type(item).__name__}")
        try:
            pixels = base64.b64decode(item, validate=True)
        except ValueError as exc:
            raise HttpError(400, f"images[{i}] is not valid base64: {exc}") from None
        if len(pixels) != 784:
            raise HttpError(400, f"images[{i}] has {len(pixels)} bytes; want 784 (28x28 uint8, row-major)")
        raw.append(pixels)
    return np.frombuffer(b"".join(raw), np.uint8).reshape(len(raw), 28, 28)
