"""structlog, set up once: readable lines on a terminal, JSON lines otherwise.

Logs go to stderr so that stdout stays free for data (`produce --dry-run`
writes events there, `--json` writes reports there).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

from clickstream.printable import printable


def _printable_values(
    _logger: Any, _name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """For the console renderer: string values made printable (JSON escapes them itself)."""
    for key, value in event.items():
        if isinstance(value, str):
            event[key] = printable(value)
    return event


LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def configure(
    level: str = "info", stream: TextIO | None = None, *, json: bool | None = None
) -> None:
    """Route structlog to `stream` (stderr by default) at `level`.

    `json` forces the renderer; by default it is the console renderer on a terminal
    and JSON lines otherwise.
    """
    out = stream if stream is not None else sys.stderr
    as_json = not out.isatty() if json is None else json
    renderers: list[structlog.typing.Processor] = (
        [structlog.processors.JSONRenderer()]
        if as_json
        else [_printable_values, structlog.dev.ConsoleRenderer(colors=out.isatty())]
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            *renderers,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    # Libraries log through the standard logging module; keep their chatter out.
    logging.basicConfig(level=logging.WARNING, stream=out)
    for noisy in ("opensearch", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


def get(name: str) -> structlog.stdlib.BoundLogger:
    """A logger bound to a component name."""
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(component=name)
    return logger
