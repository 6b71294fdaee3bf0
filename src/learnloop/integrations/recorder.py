"""A background writer for generations logged from inside an app's hot path.

The app's call must not wait for the database, and a logging failure must never become
the app's failure. ``Recorder.record`` only puts a row on a queue (microseconds); one
daemon thread takes what has queued up and writes it with the ledger's bulk path (one
COPY per batch). A batch the database refuses is retried row by row, so one bad row costs
only itself; every row that cannot be written is counted in ``failed`` and warned about.
``flush()`` waits until everything recorded so far is written (tests, shutdown, before
attaching feedback to a fresh generation id); an ``atexit`` hook flushes at exit.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import warnings
from collections.abc import Callable
from typing import Any

log = logging.getLogger("learnloop.integrations")

MAX_BATCH = 500
MAX_QUEUE = 100_000  # rows; past this the app is logging faster than the database takes them


class LoggingFailure(UserWarning):
    """A generation could not be logged; the app's call went on (counted in ``failed``)."""


class Recorder:
    def __init__(self, client: Any | Callable[[], Any] | None = None) -> None:
        self._client = client
        self._q: queue.Queue[dict[str, Any] | None] = queue.Queue(MAX_QUEUE)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pending = 0
        self._idle = threading.Condition(self._lock)
        self.written = 0
        self.failed = 0
        atexit.register(self.flush, 10.0)

    def _ll(self) -> Any:
        c = self._client
        if c is None:
            import learnloop

            c = self._client = learnloop.connect()
        elif callable(c) and not hasattr(c, "bulk_log"):
            c = self._client = c()
        return c

    def record(self, row: dict[str, Any]) -> None:
        """Queue one generation (GenerationIn fields); never raises."""
        try:
            with self._lock:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(target=self._run, name="learnloop-recorder", daemon=True)
                    self._thread.start()
                self._pending += 1
            self._q.put_nowait(row)
        except queue.Full:
            with self._lock:
                self._pending -= 1
            self.fail(1, "the logging queue is full (the database is not keeping up)")
        except Exception as exc:  # noqa: BLE001 - logging must never break the app's call
            self.fail(1, f"{type(exc).__name__}: {exc}")

    def fail(self, n: int, why: str) -> None:
        with self._lock:
            self.failed += n
            total = self.failed
        msg = f"learnloop could not log {n} generation(s): {why} ({total} so far); the app's calls were not affected"
        log.warning(msg)
        warnings.warn(msg, LoggingFailure, stacklevel=3)

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Wait until every recorded row is written or failed; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def _run(self) -> None:
        while True:
            first = self._q.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < MAX_BATCH:
                try:
                    nxt = self._q.get_nowait()
                except queue.Empty:
                    break
                if nxt is not None:
                    batch.append(nxt)
            self._write(batch)
            with self._idle:
                self._pending -= len(batch)
                self._idle.notify_all()

    def _write(self, batch: list[dict[str, Any]]) -> None:
        try:
            ll = self._ll()
            ll.bulk_log(batch)
            with self._lock:
                self.written += len(batch)
            return
        except Exception as exc:  # noqa: BLE001
            if len(batch) == 1:
                self.fail(1, f"{type(exc).__name__}: {exc}")
                return
        for row in batch:  # isolate the bad row(s)
            self._write([row])
