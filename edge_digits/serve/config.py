"""What ``edge-digits serve`` is told: the model, where to listen, and the limits on one request."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Limits:
    """What one request may contain; anything beyond gets a 4xx with a message."""

    max_body_bytes: int = 8 * 1024 * 1024
    max_head_bytes: int = 16 * 1024
    max_headers: int = 100
    max_batch: int = 64            # images per interpreter call, and per /v1/classify request
    max_image_side: int = 4096     # pixels, for PNG/JPEG uploads
    max_image_pixels: int = 16 * 1024 * 1024
    request_timeout_s: float = 10.0   # a started request must arrive whole within this
    keepalive_timeout_s: float = 75.0


@dataclass
class ServeConfig:
    model: Path
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    backend: str = "auto"
    threads: int = 1
    batch_wait_ms: float = 1.0
    limits: Limits = field(default_factory=Limits)
