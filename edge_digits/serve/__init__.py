"""The serving stage, ``edge-digits serve``: digit recognition over HTTP in one light process.

Run it::

    edge-digits serve --model standard --host 127.0.0.1 --port 8080 [--workers N]
    curl -s localhost:8080/healthz
    python - <<'EOF'
    import base64, json, urllib.request
    from edge_digits.data import load_mnist
    img = load_mnist()[2][0]                       # uint8 (28, 28), white ink on black
    body = json.dumps({"images": [base64.b64encode(img.tobytes()).decode()]}).encode()
    req = urllib.request.Request("http://127.0.0.1:8080/v1/classify", body, {"Content-Type": "application/json"})
    print(json.load(urllib.request.urlopen(req)))   # {"predictions": [{"digit": 7, "scores": [...]}]}
    EOF
    curl -s --data-binary @digit.png -H 'Content-Type: image/png' localhost:8080/v1/classify

Endpoints (the OpenAPI document ``edge_digits/serve/openapi.json`` is served as-is at ``/openapi.json``):

* ``GET /`` -- a page for a browser, phone or desktop (``serve/static/``: plain HTML, CSS and JS, nothing
  from elsewhere): read a photo (chosen or dropped; posted to ``/v1/read``, drawn with its boxes, the lines
  listed as text) and draw a digit with mouse or finger (reduced as MNIST digits were made, posted to
  ``/v1/classify`` as you draw, the digit and its ten scores shown). ``GET /static/NAME`` serves the page's
  files, read once at start-up; any other name is a 404.
* ``POST /v1/classify`` -- JSON ``{"images": [base64 of 784 raw uint8 pixels, ...]}``, or a PNG body
  (``Content-Type: image/png``, any size up to the limits, converted to grayscale and resized to 28x28
  with area averaging; it must already be white ink on black like MNIST).
* ``POST /v1/read`` -- a JPEG/PNG photo of a page, read by the camera path (``edge_digits.vision.photo_answer``:
  the page found and flattened, orientation found automatically, segmentation, the rejection model,
  one batch through a classifier of its own; boxes also in the photo's pixels).
* ``GET /healthz``, ``GET /v1/model`` (manifest), ``GET /metrics`` (Prometheus text), ``GET /openapi.json``.

How it works: a small HTTP/1.1 server written on ``asyncio.Protocol`` (keep-alive, pipelining answered
in order, strict limits on head size, header count, body size, image size and images per request;
any malformed request gets a 4xx JSON ``{"error": ...}``). Classification requests are queued to a
micro-batcher: one task takes everything queued (up to ``max_batch`` images), waits at most
``batch_wait_ms`` for more when the batch is not full and some open connection has no request queued
yet, and runs one interpreter call in a single-thread executor (the interpreter releases the GIL, so
the loop keeps parsing meanwhile); a batch of one image runs on the loop itself, cheaper than the
thread hops. A
dynamic-batch model gets one interpreter per batch size bucket (1..8, then powers of two), batches
padded up to the bucket, because resizing an interpreter's input costs more than a whole inference.

``--workers N`` starts N worker processes, each with its own event loop, interpreters and metrics,
listening on the same port with ``SO_REUSEPORT`` (Linux), which spreads connections over them. With
N > 1, every worker leaves its metrics in a shared temp folder once a second, and ``/metrics`` (from
whichever worker answers) shows all workers' series, labelled ``worker``, the others' at most about a
second old.

Modules: ``config`` (options and limits), ``http`` (HTTP/1.1 framing on
asyncio), ``images`` (upload checks), ``batching`` (interpreter pool and
micro-batcher), ``app`` (routes, manifest, metrics), ``metrics`` (the
Prometheus text registry), ``workers`` (one process or many).
"""

from edge_digits.serve.app import OPENAPI_PATH, App, PhotoReader, load_photo_reader
from edge_digits.serve.batching import InterpreterPool, MicroBatcher
from edge_digits.serve.config import Limits, ServeConfig
from edge_digits.serve.workers import make_socket, serve, serve_async

__all__ = ["OPENAPI_PATH", "App", "InterpreterPool", "Limits", "MicroBatcher", "PhotoReader", "ServeConfig",
           "load_photo_reader", "make_socket", "serve", "serve_async"]
