"""What the commands of `clickstream` share: the global options, the terminal, the settings
with a command's flags on top, stopping on signals, and the options several commands take.

Commands reach the terminal as `context.terminal`, never by importing the name, so that a
test that replaces it here replaces it for every command.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from clickstream.cli.terminal import Terminal
from clickstream.errors import Interrupted

if TYPE_CHECKING:
    from clickstream.settings import Settings

terminal = Terminal()


class State:
    """What the global options decided, shared by every command."""

    config: Path | None = None
    log_level: str | None = None


state = State()


def settings(**overrides: Any) -> Settings:
    """The settings with the global options and then `overrides` (a command's flags) on top;
    logging is set up as they say."""
    # pydantic and structlog are imported here, when a command runs, not for `--help`.
    from clickstream import logs  # noqa: PLC0415
    from clickstream.settings import load_settings, plaintext_secrets  # noqa: PLC0415

    loaded = load_settings(state.config, {"log_level": state.log_level, **overrides})
    logs.configure(loaded.log_level)
    for problem in plaintext_secrets(loaded):
        logs.get("settings").warning(
            "a password travels unencrypted", problem=problem, hint="use https or SASL_SSL"
        )
    return loaded


class SinkChoice(StrEnum):
    """The stores `consume` writes to (`--sink`)."""

    OPENSEARCH = "opensearch"
    CLICKHOUSE = "clickhouse"


def sink_settings(sink: SinkChoice | None, group: str | None = None, **overrides: Any) -> Settings:
    """`settings(**overrides)` for a command that reads the topic for a sink: `--sink` (else
    `consumer.sink`) picks the store, and with it its consumer group (unless `--group`
    names one) and its dead-letter topic."""
    chosen = None if sink is None else sink.value
    consumer = {**overrides.pop("consumer", {}), "sink": chosen}
    return settings(consumer=consumer, **overrides).for_sink(group=group)


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """SIGINT/SIGTERM set the returned event instead of interrupting mid-write."""
    stop = threading.Event()

    def handler(_signum: int, _frame: object) -> None:
        if stop.is_set():  # a second Ctrl-C: the user really wants out
            raise Interrupted("interrupted again; stopping without waiting")
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


# -- options several commands take ------------------------------------------------------------


Bootstrap = Annotated[
    str | None,
    typer.Option(
        "--bootstrap-servers", "-b", help="Kafka bootstrap servers, host:port[,host:port]."
    ),
]
Topic = Annotated[str | None, typer.Option("--topic", "-t", help="The events topic.")]
SearchUrl = Annotated[str | None, typer.Option("--opensearch-url", help="OpenSearch URL.")]
IndexPrefix = Annotated[
    str | None, typer.Option("--index-prefix", help="Daily indices are named PREFIX-YYYY.MM.DD.")
]
Sink = Annotated[
    SinkChoice | None,
    typer.Option(
        "--sink",
        help="The store: opensearch or clickhouse [default: consumer.sink, else opensearch]. "
        "Each has its own consumer group and dead-letter topic.",
        case_sensitive=False,
    ),
]
