"""Everything that touches the terminal goes through one `Terminal`, which tests can replace.

Data (events of `--dry-run`, `--json` reports) goes to stdout; messages, progress and
summaries for people go to stderr, so that piping stdout stays clean.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any, TextIO

import orjson
from rich.console import Console, RenderableType
from rich.markup import escape

if TYPE_CHECKING:
    from rich.progress import Progress

from clickstream.printable import printable


class ProgressLine:
    """A progress bar on a terminal; nothing elsewhere (the logs carry progress there)."""

    def __init__(self, progress: Progress | None, task: Any) -> None:
        self._progress = progress
        self._task = task

    def update(self, completed: int, **fields: Any) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=completed, **fields)


class Terminal:
    """stdout for data, stderr for people."""

    def __init__(self, stdout: TextIO | None = None, stderr: TextIO | None = None) -> None:
        self.stdout = stdout if stdout is not None else sys.stdout
        self.err = Console(file=stderr if stderr is not None else sys.stderr, highlight=False)

    @property
    def interactive(self) -> bool:
        return self.err.is_terminal

    @property
    def data(self) -> IO[bytes]:
        """stdout as bytes, for JSON lines."""
        return self.stdout.buffer

    def say(self, message: RenderableType) -> None:
        """A line for people (rich markup allowed), never hard-wrapped."""
        self.err.print(message, soft_wrap=True)

    def error(self, message: str) -> None:
        # The message is plain text: `[field]` in a server's reason is not markup.
        self.err.print(f"[bold red]error:[/] {escape(printable(message))}", soft_wrap=True)

    def json(self, value: Any) -> None:
        """One JSON document on stdout."""
        self.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")
        self.stdout.flush()

    @contextmanager
    def progress(self, description: str, total: int | None) -> Iterator[ProgressLine]:
        """A progress bar with `total` steps (or a counter if None), on a terminal only."""
        if not self.interactive:
            yield ProgressLine(None, None)
            return
        from rich.progress import (  # noqa: PLC0415 - only a terminal draws a bar
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        columns = [
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn() if total else TextColumn("{task.completed:,}"),
            TaskProgressColumn() if total else TextColumn(""),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
        ]
        with Progress(*columns, console=self.err, transient=False) as progress:
            task = progress.add_task(description, total=total, detail="")
            yield ProgressLine(progress, task)
