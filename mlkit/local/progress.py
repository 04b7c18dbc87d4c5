"""Rich progress bars for the local run: one line per task, filled from Spark's task counts."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn


class TaskProgress:
    def __init__(self, spark, console):
        self.spark = spark
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description:<28}"), BarColumn(),
                                 MofNCompleteColumn(), TextColumn("[dim]{task.fields[note]}"), TimeElapsedColumn(),
                                 console=console, transient=False)
        self._current: int | None = None

    def __enter__(self) -> "TaskProgress":
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def say(self, message: str) -> None:
        if self._current is not None:
            self.progress.update(self._current, note=message[:60])

    @contextmanager
    def task(self, job: str, key: str) -> Iterator[None]:
        tid = self.progress.add_task(f"{job} › {key}", total=None, note="")
        self._current = tid
        stop = threading.Event()
        seen: dict[int, tuple[int, int]] = {}

        def poll() -> None:
            # Spark tasks (one per group partition) are the unit of work we can see from here.
            try:
                tracker = self.spark.sparkContext.statusTracker()
                while not stop.wait(0.3):
                    for sid in tracker.getActiveStageIds():
                        info = tracker.getStageInfo(sid)
                        if info is not None:
                            seen[sid] = (info.numCompletedTasks, info.numTasks)
                    if seen:
                        done = sum(d for d, _ in seen.values())
                        total = sum(t for _, t in seen.values())
                        self.progress.update(tid, completed=done, total=max(total, 1))
            except Exception:  # noqa: BLE001 - the gateway closing (interrupt, stop) only ends the bar's updates
                return

        thread = threading.Thread(target=poll, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
            total = self.progress.tasks[[t.id for t in self.progress.tasks].index(tid)].total or 1
            self.progress.update(tid, completed=total, total=total)
            self._current = None
