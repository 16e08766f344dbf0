"""`clickstream stack`: start, stop and inspect the local broker, search server and ClickHouse."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from clickstream.cli import context, summaries

if TYPE_CHECKING:
    from clickstream.settings import Settings

stack_app = typer.Typer(
    help="Start, stop and inspect the local broker, search server and ClickHouse.",
    no_args_is_help=True,
)


def _stack_settings(
    kafka_port: int | None, opensearch_port: int | None, clickhouse_port: int | None
) -> Settings:
    ports = {
        "kafka_port": kafka_port,
        "opensearch_port": opensearch_port,
        "clickhouse_port": clickhouse_port,
    }
    return context.settings(stack=ports)


KafkaPort = Annotated[int | None, typer.Option("--kafka-port", help="Broker port [default: 9092].")]
SearchPort = Annotated[
    int | None, typer.Option("--opensearch-port", help="Search server port [default: 9200].")
]
ClickHousePort = Annotated[
    int | None, typer.Option("--clickhouse-port", help="ClickHouse HTTP port [default: 8123].")
]


@stack_app.command("up")
def stack_up(
    kafka_port: KafkaPort = None,
    opensearch_port: SearchPort = None,
    clickhouse_port: ClickHousePort = None,
) -> None:
    """Start the local Kafka-compatible broker, OpenSearch-compatible server and (if the
    clickhouse-local extra is installed) ClickHouse; wait until they answer. Running it
    again starts nothing."""
    from clickstream.stack import local as stack  # noqa: PLC0415 - imported lazily to keep --help fast

    settings = _stack_settings(kafka_port, opensearch_port, clickhouse_port)
    status, started = stack.up(settings.stack)
    context.terminal.say(summaries.stack_status(status, started=started))


@stack_app.command("down")
def stack_down() -> None:
    """Stop exactly the processes `stack up` started."""
    from clickstream.stack import local as stack  # noqa: PLC0415

    settings = context.settings()
    context.terminal.say(summaries.stack_status(stack.down(settings.stack)))


@stack_app.command("status")
def stack_status() -> None:
    """Show what runs where."""
    from clickstream.stack import local as stack  # noqa: PLC0415

    settings = context.settings()
    context.terminal.say(summaries.stack_status(stack.status(settings.stack)))
