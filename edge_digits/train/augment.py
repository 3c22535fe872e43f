"""Augmentation that makes MNIST look like digits cut out of camera frames.

Pure NumPy and OpenCV (which releases the GIL), applied to a whole batch of
uint8 images at a time; the trainer runs it inside a parallel tf.data map.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from edge_digits.train.recipe import Augmentation


def affine_matrix(rng: np.random.Generator, aug: Augmentation, size: int = 28) -> np.ndarray:
    """A random rotation, zoom, aspect change, shear and shift about the image centre, as a 2x3 matrix.

    The aspect change scales width against height, as narrow long-tailed or
    wide handwriting does once a digit is fitted into MNIST's 20x20 box.
    """
    angle = math.radians(rng.uniform(-aug.rotation, aug.rotation))
    zoom = rng.uniform(*aug.zoom)
    aspect = rng.uniform(*aug.aspect)
    shear = math.radians(rng.uniform(-aug.shear, aug.shear))
    tx, ty = rng.uniform(-aug.shift, aug.shift, 2) * size
    c = (size - 1) / 2.0
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    sh = np.array([[1.0, math.tan(shear)], [0.0, 1.0]])
    m = zoom * rot @ sh @ np.diag([aspect, 1.0])
    offset = np.array([c, c]) - m @ np.array([c, c]) + np.array([tx, ty])
    return np.hstack([m, offset[:, None]]).astype(np.float32)


def elastic(image: np.ndarray, rng: np.random.Generator, alpha: float, sigma: float) -> np.ndarray:
    """Simard-style elastic distortion: a smoothed random displacement field."""
    h, w = image.shape
    dx = cv2.GaussianBlur(rng.uniform(-1, 1, (h, w)).astype(np.float32), (0, 0), sigma) * alpha
    dy = cv2.GaussianBlur(rng.uniform(-1, 1, (h, w)).astype(np.float32), (0, 0), sigma) * alpha
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(image, gx + dx, gy + dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


_KERNEL = np.ones((2, 2), np.uint8)


def augment_image(image: np.ndarray, rng: np.random.Generator, aug: Augmentation) -> np.ndarray:
    """One uint8 28x28 image (white ink on black), randomly transformed."""
    out = image
    if aug.rotation or aug.shear or aug.shift or aug.zoom != (1.0, 1.0) or aug.aspect != (1.0, 1.0):
        out = cv2.warpAffine(out, affine_matrix(rng, aug, out.shape[0]), out.shape[::-1], flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    if aug.elastic_alpha and rng.random() < aug.elastic_p:
        out = elastic(out, rng, aug.elastic_alpha, aug.elastic_sigma)
    if aug.thickness_p and rng.random() < aug.thickness_p:
        out = cv2.dilate(out, _KERNEL) if rng.random() < 0.5 else cv2.erode(out, _KERNEL)
    if aug.blur and rng.random() < aug.blur_p:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.3, aug.blur))
    fading = aug.fade_p and rng.random() < aug.fade_p
    if aug.contrast != (1.0, 1.0) or aug.noise or aug.noise_max or fading:
        f = out.astype(np.float32) * rng.uniform(*aug.contrast)
        if fading:
            # contrast lowered towards mid-grey: a raised background, as an underexposed or grey page gives
            factor = rng.uniform(*aug.fade)
            f = 127.5 * (1.0 - factor) + factor * f
        if aug.noise or aug.noise_max:
            sigma = rng.uniform(aug.noise, aug.noise_max) if aug.noise_max else aug.noise
            f += rng.normal(0.0, sigma * 255.0, f.shape).astype(np.float32)
        out = np.clip(f, 0, 255).astype(np.uint8)
    return out


def augment_batch(images: np.ndarray, seed: int, aug: Augmentation) -> np.ndarray:
    """Augment each image of a uint8 batch with probability ``aug.p``; deterministic for a given seed."""
    rng = np.random.default_rng(seed)
    out = images.copy()
    for i in range(len(images)):
        if rng.random() < aug.p:
            out[i] = augment_image(images[i], rng, aug)
    return out
