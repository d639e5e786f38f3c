"""Rich progress bars for long steps: counts, a live value (loss), elapsed time and ETA."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class LoggedProgress(Progress):
    """A Rich progress display that, when output is not a terminal (a log file, CI), prints a
    line at every tenth of each task instead of staying silent until the end."""

    def __init__(self, *columns, **kwargs) -> None:
        super().__init__(*columns, **kwargs)
        self._logged: dict[TaskID, int] = {}

    def _log(self, task_id: TaskID) -> None:
        if self.console.is_terminal:
            return
        task = self._tasks[task_id]
        if not task.total:
            return
        tenth = int(10 * task.completed / task.total)
        if tenth > self._logged.get(task_id, 0):
            self._logged[task_id] = tenth
            remaining = task.time_remaining
            eta = f", ETA {fmt_seconds(remaining)}" if remaining and task.completed < task.total else ""
            info = task.fields.get("info", "")
            self.console.print(
                f"  {task.description}: {task.completed:g}/{task.total:g} ({100 * task.completed / task.total:.0f}%), "
                f"{fmt_seconds(task.elapsed)}{eta}{'; ' + info if info else ''}",
                highlight=False, soft_wrap=True,
            )

    def update(self, task_id: TaskID, **kwargs) -> None:
        super().update(task_id, **kwargs)
        self._log(task_id)

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self._log(task_id)


def make_progress(console: Console) -> Progress:
    return LoggedProgress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        transient=not console.is_terminal,  # in a log, the lines above already tell the story
    )


def fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {sec:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
