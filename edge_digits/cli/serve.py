"""``edge-digits serve``: the HTTP service."""

from __future__ import annotations

import click

from edge_digits.cli.common import SERVE_BACKEND_CHOICES, EdgeDigitsError, main, resolve_model_arg


@main.command("serve")
@click.option("--model", default=None, help="A .tflite, or standard/micro (default: standard).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every interface).")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True,
              help="TCP port (0: any free one).")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Worker processes sharing the port with SO_REUSEPORT, each with its own interpreters.")
@click.option("--backend", type=click.Choice(SERVE_BACKEND_CHOICES), default="auto", show_default=True,
              help="Interpreter, or native (the generated C engine); serving never imports TensorFlow.")
@click.option("--threads", type=click.IntRange(1, 64), default=1, show_default=True, help="Interpreter threads.")
@click.option("--max-batch", type=click.IntRange(1, 1024), default=64, show_default=True,
              help="Images per interpreter call, and per /v1/classify request.")
@click.option("--batch-wait-ms", type=click.FloatRange(0, 1000), default=1.0, show_default=True,
              help="How long a batch that is not full waits for more requests.")
@click.option("--max-body-bytes", type=click.IntRange(1024), default=8 * 1024 * 1024, show_default=True)
@click.option("--max-image-side", type=click.IntRange(28, 65535), default=4096, show_default=True,
              help="Largest PNG/JPEG width or height accepted.")
@click.option("--request-timeout", type=click.FloatRange(0.1, 3600), default=10.0, show_default=True,
              help="Seconds a started request may take to arrive whole (then 408).")
def serve_cmd(model: str | None, host: str, port: int, workers: int, backend: str, threads: int, max_batch: int,
              batch_wait_ms: float, max_body_bytes: int, max_image_side: int, request_timeout: float) -> None:
    """Serve digit recognition over HTTP: /v1/classify, /v1/read, /healthz, /v1/model, /metrics, /openapi.json."""
    from edge_digits.runtime import InferenceError
    from edge_digits.serve import Limits, ServeConfig, serve

    path = resolve_model_arg(model, "standard")
    if not path.is_file():
        raise EdgeDigitsError(f"model {path} does not exist")
    limits = Limits(max_body_bytes=max_body_bytes, max_batch=max_batch, max_image_side=max_image_side,
                    max_image_pixels=min(max_image_side ** 2, 64 * 1024 * 1024), request_timeout_s=request_timeout)
    config = ServeConfig(model=path, host=host, port=port, workers=workers, backend=backend, threads=threads,
                         batch_wait_ms=batch_wait_ms, limits=limits)
    try:
        serve(config, announce=lambda line: click.echo(line))
    except (InferenceError, OSError, RuntimeError) as exc:
        raise EdgeDigitsError(str(exc)) from exc
