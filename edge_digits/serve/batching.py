"""Inference behind ``/v1/classify``: a pool of interpreters (one per batch-size bucket) and the
micro-batcher that turns requests arriving together into one interpreter call."""

from __future__ import annotations

import asyncio
import concurrent.futures
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import cast

import numpy as np


class InterpreterPool:
    """The model behind ``/v1/classify``: one interpreter per batch-size bucket, used from one thread."""

    def __init__(self, model: Path, backend: str = "auto", threads: int = 1, max_batch: int = 64) -> None:
        from edge_digits.runtime import Classifier

        self._make: Callable[[], Classifier] = lambda: Classifier(model, backend=backend, threads=threads)
        first = self._make()
        self.backend, self.delegate, self.dynamic_batch = first.backend, first.delegate, first.dynamic_batch
        # a session that runs any batch without reallocating (the native engine) needs no buckets and no padding
        self.resize_free = first.session.resize_free
        if self.resize_free:
            self.sizes = [max_batch]
        elif self.dynamic_batch:
            sizes = set(range(1, min(8, max_batch) + 1)) | {2 ** k for k in range(20) if 2 ** k <= max_batch}
            self.sizes = sorted(sizes | {max_batch})
        else:
            self.sizes = [max_batch]   # the Classifier runs such a model one image at a time
        self._clf = {self.sizes[0]: first}
        for size in self.sizes:       # allocate every bucket now, so no request pays for it
            self._predict(np.zeros((size, 28, 28), np.uint8))

    def _predict(self, images: np.ndarray) -> np.ndarray:
        n = len(images)
        size = next(s for s in self.sizes if s >= n)
        clf = self._clf.get(size)
        if clf is None:
            clf = self._clf[size] = self._make()
        if self.dynamic_batch and size != n and not self.resize_free:
            images = np.concatenate([images, np.zeros((size - n, 28, 28), np.uint8)])
        return clf.predict(images)[:n]

    def predict(self, images: np.ndarray) -> np.ndarray:
        return self._predict(images)


class MicroBatcher:
    """Requests that arrive together become one interpreter call (bounded wait, bounded batch)."""

    def __init__(self, predict: Callable[[np.ndarray], np.ndarray], max_batch: int, max_wait_s: float,
                 on_batch: Callable[[int, int, float], None] | None = None,
                 clients: Callable[[], int] | None = None, inline_max: int = 1) -> None:
        self.predict, self.max_batch, self.max_wait_s, self.on_batch = predict, max_batch, max_wait_s, on_batch
        self.clients = clients   # open connections: waiting only helps while some are not already queued
        self.inline_max = inline_max
        self.pending: deque[tuple[np.ndarray, asyncio.Future[np.ndarray]]] = deque()
        self.pending_images = 0
        self._waiter: asyncio.Future[None] | None = None
        self._collecting = False
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="edge-digits-infer")
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self._executor.shutdown(wait=False)

    def submit(self, images: np.ndarray) -> asyncio.Future[np.ndarray]:
        fut: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self.pending.append((images, fut))
        self.pending_images += len(images)
        w = self._waiter
        if w is not None and not w.done() and (not self._collecting or self.pending_images >= self.max_batch
                                               or (self.clients is not None and len(self.pending) >= self.clients())):
            w.set_result(None)   # idle, or the batch is full, or every open connection is already waiting
        return fut

    def _take(self) -> list[tuple[np.ndarray, asyncio.Future[np.ndarray]]]:
        batch: list[tuple[np.ndarray, asyncio.Future[np.ndarray]]]
        batch, n = [], 0
        while self.pending and (not batch or n + len(self.pending[0][0]) <= self.max_batch):
            item = self.pending.popleft()
            n += len(item[0])
            batch.append(item)
        self.pending_images -= n
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self.pending:
                self._waiter = loop.create_future()
                await self._waiter
            if (self.max_wait_s > 0 and self.pending_images < self.max_batch
                    and (self.clients is None or self.clients() > len(self.pending))):
                self._collecting = True
                self._waiter = waiter = loop.create_future()
                # the default argument binds this waiter (self._waiter moves on); mypy cannot type such a
                # lambda against call_later's callback, hence the cast
                handle = loop.call_later(self.max_wait_s, cast("Callable[[], object]",
                                                               lambda w=waiter: w.done() or w.set_result(None)))
                await waiter
                handle.cancel()
                self._collecting = False
            batch = self._take()
            images = batch[0][0] if len(batch) == 1 else np.concatenate([b[0] for b in batch])
            t = time.perf_counter()
            try:
                if len(images) <= self.inline_max:
                    # a lone image runs on the loop: the two thread hops would cost more than its ~0.1 ms
                    scores = self.predict(images)
                else:
                    scores = await loop.run_in_executor(self._executor, self.predict, images)
            except Exception as exc:  # a broken model: every waiting request gets a 500
                traceback.print_exc(file=sys.stderr)
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            if self.on_batch is not None:
                self.on_batch(len(images), len(batch), time.perf_counter() - t)
            start = 0
            for imgs, fut in batch:
                if not fut.done():
                    fut.set_result(scores[start:start + len(imgs)])
                start += len(imgs)
