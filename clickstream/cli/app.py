"""The `clickstream` command: the app, its global options, and where every command is wired in.

Commands stay thin and live by theme in `pipeline`, `stack` and `dashboards`; what they
share is in `context`. Each command imports what it needs when it runs, so that `--help`
and a small command start fast: nothing here pulls Kafka, OpenSearch or Faker at import.
This is the one place errors become exit codes.
"""

from __future__ import annotations

import signal
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from clickstream.cli import context, dashboards, pipeline, stack
from clickstream.errors import ClickstreamError, Interrupted

app = typer.Typer(
    name="clickstream",
    help="Simulate a news site's users, stream their actions through Kafka, index them into "
    "OpenSearch.\n\nStart with `clickstream demo`: it runs the whole pipeline on a local stack.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)
# The top-level commands, in the order `--help` lists them; then the groups of commands.
app.command()(pipeline.setup)
app.command()(pipeline.produce)
app.command()(pipeline.consume)
app.command()(pipeline.status)
app.command("report")(dashboards.report_command)
app.command()(pipeline.demo)
app.add_typer(stack.stack_app, name="stack")
app.add_typer(pipeline.dlq_app, name="dlq")
app.add_typer(dashboards.dashboards_app, name="dashboards")


class LogLevel(StrEnum):
    """Log levels, quietest last."""

    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


def _version(value: bool) -> None:
    if value:
        from clickstream import __version__  # noqa: PLC0415 - reading metadata is slow

        context.terminal.stdout.write(f"clickstream {__version__}\n")
        raise typer.Exit


@app.callback()
def _global(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="Configuration file [default: conf/clickstream.toml, or $CLICKSTREAM_CONFIG].",
            dir_okay=False,
        ),
    ] = None,
    log_level: Annotated[
        LogLevel | None, typer.Option("--log-level", help="How much to log.", case_sensitive=False)
    ] = None,
    _version_flag: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", callback=_version, is_eager=True
        ),
    ] = False,
) -> None:
    """Global options, read before any command."""
    context.state.config = config
    context.state.log_level = None if log_level is None else log_level.value


# -- entry point ------------------------------------------------------------------------------


def _interrupt(_signum: int, _frame: object) -> None:
    raise Interrupted("interrupted")


def main(argv: list[str] | None = None) -> None:
    """Run the command line; expected failures print one line and set the exit code."""
    signal.signal(signal.SIGINT, _interrupt)
    try:
        app(args=argv, prog_name="clickstream")
    except ClickstreamError as exc:
        context.terminal.error(str(exc))
        sys.exit(exc.exit_code)
