"""Running the server: one event loop in this process, or N worker processes on one port with
``SO_REUSEPORT``, supervised until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from edge_digits.serve.app import App, PhotoReader, load_photo_reader
from edge_digits.serve.batching import InterpreterPool
from edge_digits.serve.config import ServeConfig
from edge_digits.serve.http import HttpConnection

if TYPE_CHECKING:
    import multiprocessing.queues


def make_socket(host: str, port: int, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


async def serve_async(config: ServeConfig, sock: socket.socket, worker: int = 0,
                      reader: PhotoReader | None = None, ready: Callable[[], None] | None = None,
                      signals: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM),
                      peer_dir: Path | None = None) -> None:
    engine = InterpreterPool(config.model, config.backend, config.threads, config.limits.max_batch)
    app = App(engine, config, reader, worker, peer_dir)
    loop = asyncio.get_running_loop()
    app.batcher.start()
    conns: set[HttpConnection] = set()
    sock.listen(1024)
    server = await loop.create_server(lambda: HttpConnection(app, conns), sock=sock, backlog=1024)
    stop: asyncio.Future[None] = loop.create_future()

    def request_stop() -> None:
        if not stop.done():
            stop.set_result(None)

    for sig in signals:
        try:
            loop.add_signal_handler(sig, request_stop)
        except (NotImplementedError, RuntimeError):
            pass

    async def sweeper() -> None:
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for c in list(conns):
                c.sweep(now)
            try:
                app.publish_samples()
            except OSError as exc:
                print(f"warning: cannot publish metrics: {exc}", file=sys.stderr)

    app.publish_samples()
    sweep_task = loop.create_task(sweeper())
    if ready is not None:
        ready()
    try:
        await stop
    finally:
        sweep_task.cancel()
        server.close()
        for c in list(conns):
            if c.transport is not None:
                c.transport.close()
        await app.batcher.close()


def _worker_main(config: ServeConfig, worker: int, port: int, ready_queue: multiprocessing.queues.Queue[int],
                 peer_dir: Path) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # the parent stops the workers with SIGTERM
    sock = make_socket(config.host, port, reuse_port=True)
    reader = load_photo_reader(config.model, config.backend, config.threads)
    asyncio.run(serve_async(config, sock, worker, reader, ready=lambda: ready_queue.put(worker),
                            signals=(signal.SIGTERM,), peer_dir=peer_dir))


def serve(config: ServeConfig, announce: Callable[[str], None] = print) -> None:
    """Run the server until SIGINT/SIGTERM: in this process (one worker) or in ``config.workers`` processes."""
    import multiprocessing

    if config.workers > 1 and not hasattr(socket, "SO_REUSEPORT"):
        raise OSError("--workers above 1 needs SO_REUSEPORT (Linux)")
    sock = make_socket(config.host, config.port, reuse_port=config.workers > 1)
    port = sock.getsockname()[1]
    url = f"http://{config.host if ':' not in config.host else '[' + config.host + ']'}:{port}"
    if config.workers == 1:
        reader = load_photo_reader(config.model, config.backend, config.threads)
        asyncio.run(serve_async(config, sock, 0, reader,
                                ready=lambda: announce(f"serving {config.model.name} on {url} (1 worker)")))
        return
    # the parent keeps its bound (never listening) socket, so the port stays ours; workers listen beside it
    ctx = multiprocessing.get_context("fork")
    import shutil
    import tempfile

    ready_queue = ctx.Queue()
    shm = Path("/dev/shm")
    peer_dir = Path(tempfile.mkdtemp(prefix="edge-digits-serve-", dir=shm if shm.is_dir() else None))
    procs = [ctx.Process(target=_worker_main, args=(config, i, port, ready_queue, peer_dir), daemon=True)
             for i in range(config.workers)]
    import queue

    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        for p in procs:
            p.start()
        ready = 0
        while ready < len(procs) and not stopping:
            try:
                ready_queue.get(timeout=0.5)
                ready += 1
            except queue.Empty:
                if not all(p.is_alive() for p in procs):
                    raise RuntimeError("a worker process failed to start (see the messages above)") from None
        if not stopping:
            announce(f"serving {config.model.name} on {url} ({config.workers} workers, SO_REUSEPORT)")
        while not stopping and all(p.is_alive() for p in procs):
            time.sleep(0.2)
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            if p.pid is not None:
                p.join(5)
        sock.close()
        shutil.rmtree(peer_dir, ignore_errors=True)
    if not stopping:
        raise RuntimeError("a worker process exited; stopping the server")
