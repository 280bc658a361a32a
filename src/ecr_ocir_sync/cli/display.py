"""A live progress display for terminals: bytes, rate and blobs per destination."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

from ecr_ocir_sync.engine.progress import (
    BlobDone,
    BytesRead,
    BytesWritten,
    DestinationPlanned,
    ProgressEvent,
    SourcePlanned,
)

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

__all__ = ["LiveProgress"]


class LiveProgress:
    """A progress listener drawing one bar per destination (rich is imported lazily)."""

    def __init__(self) -> None:
        from rich.progress import (  # noqa: PLC0415 - only terminals pay for rich
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TransferSpeedColumn,
        )

        self._progress: Progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TextColumn("{task.fields[blobs]}"),
            TimeElapsedColumn(),
            transient=False,
        )
        self._source: TaskID = self._progress.add_task("source (read)", total=None, blobs="")
        self._tasks: dict[str, TaskID] = {}

    def _task(self, destination: str) -> TaskID:
        task = self._tasks.get(destination)
        if task is None:
            task = self._progress.add_task(destination, total=None, blobs="")
            self._tasks[destination] = task
        return task

    def __call__(self, event: ProgressEvent) -> None:
        if isinstance(event, BytesRead):
            self._progress.advance(self._source, event.count)
        elif isinstance(event, BytesWritten):
            self._progress.advance(self._task(event.destination), event.count)
        elif isinstance(event, SourcePlanned):
            self._progress.update(
                self._source, total=max(event.bytes_needed, 1), blobs=f"{event.blobs_needed} blobs"
            )
        elif isinstance(event, DestinationPlanned):
            note = "up to date" if event.up_to_date else f"{event.blobs_needed} blobs to send"
            self._progress.update(
                self._task(event.destination), total=max(event.bytes_needed, 1), blobs=note
            )
            if event.up_to_date:
                self._progress.update(self._task(event.destination), completed=1)
        elif isinstance(event, BlobDone):
            self._progress.update(self._task(event.destination), blobs=f"last: {event.outcome}")

    def __enter__(self) -> LiveProgress:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._progress.stop()
