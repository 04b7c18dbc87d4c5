"""Inference logging off the request path: a bounded queue, one sender thread, batched sinks.

Accounting is exact: every event offered is, at any moment, in exactly one of
queued / in flight / delivered / dropped (``queue_full``, ``send_failed``, ``shutdown``), so
``offered == delivered + dropped + queued + in_flight``; after ``close`` nothing is queued or in
flight, so ``offered == delivered + dropped``, even when the sink hangs past the close deadline
(that batch is counted ``dropped_shutdown`` and the stuck sender's late outcome is ignored).
Requests never wait on the sink: a full queue drops (and counts) the event instead of blocking.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any, Protocol

log = logging.getLogger("mlkit.serve.inference_log")


class Sink(Protocol):
    name: str

    def send(self, events: list[dict[str, Any]]) -> None:
        """Deliver all events or raise (the logger retries the whole batch)."""

    def close(self) -> None: ...


class InferenceLogger:
    def __init__(self, sink: Sink, queue_size: int = 10_000, batch_size: int = 200, flush_seconds: float = 1.0,
                 max_retries: int = 5, retry_backoff_seconds: float = 0.5):
        self.sink = sink
        self.batch_size, self.flush_seconds = batch_size, flush_seconds
        self.max_retries, self.backoff = max_retries, retry_backoff_seconds
        self._q: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=queue_size)
        self._lock = threading.Lock()
        self._counts = {"offered": 0, "delivered": 0, "dropped_queue_full": 0, "dropped_send_failed": 0,
                        "dropped_shutdown": 0, "retries": 0, "batches": 0}
        self._in_flight = 0
        self._abandoned = False            # close gave up on the in-flight batch and counted it
        self._closing = threading.Event()  # no new events; flush what is queued (retries included)
        self._abort = threading.Event()    # the close deadline passed: stop retrying
        self._thread = threading.Thread(target=self._run, name="inference-log-sender", daemon=True)
        self.last_error: str | None = None

    def start(self) -> "InferenceLogger":
        self._thread.start()
        return self

    def offer(self, event: dict[str, Any]) -> bool:
        """Queue one event; never blocks. False (and counted) when the queue is full or closed."""
        with self._lock:
            self._counts["offered"] += 1
            if self._closing.is_set():
                self._counts["dropped_shutdown"] += 1
                return False
        try:
            self._q.put_nowait(event)
            return True
        except queue.Full:
            with self._lock:
                self._counts["dropped_queue_full"] += 1
            return False

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {**self._counts, "queued": self._q.qsize(), "in_flight": self._in_flight}

    def _take_batch(self) -> list[dict[str, Any]]:
        batch: list[dict[str, Any]] = []
        deadline = time.monotonic() + self.flush_seconds
        while len(batch) < self.batch_size:
            timeout = deadline - time.monotonic()
            if timeout <= 0 or self._abort.is_set() or (self._closing.is_set() and self._q.empty()):
                break
            try:
                batch.append(self._q.get(timeout=min(timeout, 0.1)))
            except queue.Empty:
                continue
        with self._lock:
            self._in_flight = len(batch)
        return batch

    def _deliver(self, batch: list[dict[str, Any]]) -> None:
        for attempt in range(self.max_retries + 1):
            try:
                self.sink.send(batch)
                with self._lock:
                    if self._abandoned:  # close already counted this batch dropped_shutdown
                        return
                    self._counts["delivered"] += len(batch)
                    self._counts["batches"] += 1
                    self._in_flight = 0
                self.last_error = None
                return
            except Exception as e:  # any sink failure is retried, then counted; never raised at a request
                self.last_error = f"{type(e).__name__}: {str(e)[:300]}"
                if attempt == self.max_retries or self._abort.is_set():
                    break
                with self._lock:
                    self._counts["retries"] += 1
                # Exponential backoff, capped; cut short once the close deadline has passed.
                self._abort.wait(min(self.backoff * 2 ** attempt, 30.0))
        log.warning("inference log: %d event(s) dropped after %d attempt(s): %s",
                    len(batch), attempt + 1, self.last_error)
        with self._lock:
            if self._abandoned:
                return
            self._counts["dropped_send_failed"] += len(batch)
            self._in_flight = 0

    def _run(self) -> None:
        # After the close deadline (abort) no new batch is taken: close counts what is left.
        while not self._abort.is_set() and not (self._closing.is_set() and self._q.empty()):
            batch = self._take_batch()
            if batch:
                self._deliver(batch)

    def close(self, timeout: float = 10.0, grace: float = 2.0) -> dict[str, int]:
        """Flush what can be flushed within ``timeout``; whatever is left is counted as dropped.
        After the deadline the sender stops retrying and taking batches; a send still running
        ``grace`` seconds later is abandoned (its batch counted ``dropped_shutdown``)."""
        self._closing.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
            self._abort.set()
            self._thread.join(grace)
        with self._lock:
            if self._thread.is_alive():  # stuck in sink.send: count its batch now, ignore its outcome
                self._abandoned = True
                self._counts["dropped_shutdown"] += self._in_flight
                self._in_flight = 0
        left = 0
        while True:
            try:
                self._q.get_nowait()
                left += 1
            except queue.Empty:
                break
        with self._lock:
            self._counts["dropped_shutdown"] += left
        try:
            self.sink.close()
        except Exception as e:  # closing a broken sink must not hide the counts
            log.warning("inference log: closing %s failed: %s", self.sink.name, e)
        return self.counts()
