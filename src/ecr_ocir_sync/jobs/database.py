"""One SQLite connection on one thread, with group commit.

Every call runs on the database thread, so the event loop never blocks on
disk.  Calls that queue up while a commit is in progress are written in one
transaction (each in its own savepoint, so one failing call rolls back alone)
and made durable by one fsync: intake stays fast without weakening
"committed before 202", and workers' lease and finish writes share the
intake's commits instead of breaking them up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["Database", "StoreUnavailableError"]

log = logging.getLogger("ecr_ocir_sync.jobs.database")

T = TypeVar("T")
_MAX_BATCH = 256


class StoreUnavailableError(RuntimeError):
    """The store cannot take work: it is closed, or its thread has died."""


@dataclass(slots=True)
class _Call:
    work: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


def _settle(call: _Call, result: Any, error: BaseException | None) -> None:
    def apply() -> None:
        if call.future.done():
            return
        if error is not None:
            call.future.set_exception(error)
        else:
            call.future.set_result(result)

    with contextlib.suppress(RuntimeError):  # the caller's loop is closed: nobody to tell
        call.loop.call_soon_threadsafe(apply)


class Database:
    """Runs work against one SQLite file on a dedicated thread.

    If that thread ends for any reason — stopped, or killed by an error that
    escapes a call — every call it had not answered is answered with
    StoreUnavailableError, later calls fail at once, and ``healthy`` is False.
    """

    def __init__(
        self,
        path: Path,
        schema: str,
        *,
        prepare: Callable[[sqlite3.Connection], None] | None = None,
    ) -> None:
        self.path = path
        self._schema = schema
        self._prepare = prepare
        self._queue: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="job-store", daemon=True)
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._lock = threading.Lock()  # orders "closed" against new calls
        self._closed: str | None = None  # why no call is taken any more
        self._in_flight: list[_Call] = []

    @property
    def healthy(self) -> bool:
        return self._closed is None and self._thread.is_alive()

    def start(self) -> None:
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            raise self._startup_error

    def stop(self) -> None:
        with self._lock:
            self._closed = self._closed or f"the job store {self.path} is closed"
        if self._thread.is_alive():  # never started, or already stopped: nothing to do
            self._queue.put(None)
            self._thread.join()

    async def call(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work(connection)`` in the next commit; returns once that commit is durable."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._lock:
            if self._closed is None and not self._thread.is_alive():
                self._closed = f"the job store {self.path} is not open"
            if self._closed is not None:
                raise StoreUnavailableError(self._closed)
            self._queue.put(_Call(work, future, loop))
        return await future

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        connection.row_factory = sqlite3.Row
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")  # committed means on disk
        connection.execute("PRAGMA busy_timeout=5000")
        connection.executescript(self._schema)
        if self._prepare is not None:
            self._prepare(connection)
        return connection

    def _run(self) -> None:
        try:
            connection = self._connect()
        except BaseException as error:  # noqa: BLE001 - reported to start()
            self._startup_error = error
            self._ready.set()
            return
        self._ready.set()
        reason = f"the job store {self.path} is closed"
        try:
            self._serve(connection)
        except BaseException as error:  # the thread ends here: every caller is told below
            reason = f"the job store's thread died: {error!r}; restart the service"
            log.critical("%s", reason, exc_info=error)
        finally:
            self._shut_down(reason)
            connection.close()

    def _serve(self, connection: sqlite3.Connection) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            calls = [first]
            while len(calls) < _MAX_BATCH:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True  # finish this batch, then stop
                    break
                calls.append(more)
            self._in_flight = calls
            self._execute(connection, calls)
            self._in_flight = []

    def _shut_down(self, reason: str) -> None:
        """No call is taken any more; every one not yet answered gets the reason."""
        with self._lock:
            self._closed = self._closed if self._closed and "died" not in reason else reason
        error = StoreUnavailableError(reason)
        for call in self._in_flight:
            _settle(call, None, error)  # a call already answered keeps its answer
        while True:
            try:
                queued = self._queue.get_nowait()
            except queue.Empty:
                return
            if queued is not None:
                _settle(queued, None, error)

    @staticmethod
    def _execute(connection: sqlite3.Connection, calls: list[_Call]) -> None:
        outcomes: list[tuple[Any, BaseException | None]] = []
        try:
            connection.execute("BEGIN IMMEDIATE")
            for index, call in enumerate(calls):
                connection.execute(f"SAVEPOINT call{index}")
                try:
                    outcomes.append((call.work(connection), None))
                    connection.execute(f"RELEASE call{index}")
                except Exception as error:  # noqa: BLE001 - handed to the caller
                    connection.execute(f"ROLLBACK TO call{index}")
                    connection.execute(f"RELEASE call{index}")
                    outcomes.append((None, error))
            connection.execute("COMMIT")
        except sqlite3.Error as commit_error:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            for call in calls:
                _settle(call, None, commit_error)
            return
        for call, (result, failure) in zip(calls, outcomes, strict=True):
            _settle(call, result, failure)
