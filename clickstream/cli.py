"""The `clickstream` command. Commands stay thin; this is the one place errors become exit codes."""

from __future__ import annotations

import datetime as dt
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from clickstream import __version__, logs, pipeline, report
from clickstream.errors import ClickstreamError, ConfigError, ExitCode, Interrupted
from clickstream.settings import Settings, load_settings
from clickstream.terminal import Terminal

app = typer.Typer(
    name="clickstream",
    help="Simulate a news site's users, stream their actions through Kafka, index them into "
    "OpenSearch.\n\nStart with `clickstream demo`: it runs the whole pipeline on a local stack.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)
stack_app = typer.Typer(
    help="Start, stop and inspect the local broker and search server.", no_args_is_help=True
)
app.add_typer(stack_app, name="stack")
dlq_app = typer.Typer(help="The dead-letter topic: try its messages again.", no_args_is_help=True)
app.add_typer(dlq_app, name="dlq")
dashboards_app = typer.Typer(
    help="OpenSearch Dashboards saved objects: import, export, and render them offline.",
    no_args_is_help=True,
)
app.add_typer(dashboards_app, name="dashboards")

terminal = Terminal()


class LogLevel(StrEnum):
    """Log levels, quietest last."""

    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class State:
    """What the global options decided, shared by every command."""

    config: Path | None = None
    log_level: str | None = None


state = State()


def _settings(**overrides: Any) -> Settings:
    settings = load_settings(state.config, {"log_level": state.log_level, **overrides})
    logs.configure(settings.log_level)
    return settings


@contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
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


def _version(value: bool) -> None:
    if value:
        terminal.stdout.write(f"clickstream {__version__}\n")
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
    state.config = config
    state.log_level = None if log_level is None else log_level.value


# -- stack ------------------------------------------------------------------------------------


def _stack_settings(kafka_port: int | None, opensearch_port: int | None) -> Settings:
    return _settings(stack={"kafka_port": kafka_port, "opensearch_port": opensearch_port})


KafkaPort = Annotated[int | None, typer.Option("--kafka-port", help="Broker port [default: 9092].")]
SearchPort = Annotated[
    int | None, typer.Option("--opensearch-port", help="Search server port [default: 9200].")
]


@stack_app.command("up")
def stack_up(kafka_port: KafkaPort = None, opensearch_port: SearchPort = None) -> None:
    """Start the local Kafka-compatible broker and OpenSearch-compatible server; wait until
    both answer. Running it again starts nothing."""
    from clickstream import stack  # noqa: PLC0415 - imported lazily to keep --help fast

    settings = _stack_settings(kafka_port, opensearch_port)
    status, started = stack.up(settings.stack)
    terminal.say(report.stack_status(status, started=started))


@stack_app.command("down")
def stack_down() -> None:
    """Stop exactly the processes `stack up` started."""
    from clickstream import stack  # noqa: PLC0415

    settings = _settings()
    terminal.say(report.stack_status(stack.down(settings.stack)))


@stack_app.command("status")
def stack_status() -> None:
    """Show what runs where."""
    from clickstream import stack  # noqa: PLC0415

    settings = _settings()
    terminal.say(report.stack_status(stack.status(settings.stack)))


# -- setup ------------------------------------------------------------------------------------


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


@app.command()
def setup(
    bootstrap_servers: Bootstrap = None,
    topic: Topic = None,
    partitions: Annotated[
        int | None, typer.Option(help="Partitions of a new events topic.", min=1)
    ] = None,
    opensearch_url: SearchUrl = None,
    index_prefix: IndexPrefix = None,
) -> None:
    """Create the events topic, the dead-letter topic and the index template. Idempotent:
    existing topics and an identical template are left alone."""
    settings = _settings(
        kafka={"bootstrap_servers": bootstrap_servers, "topic": topic, "partitions": partitions},
        opensearch={"url": opensearch_url, "index_prefix": index_prefix},
    )
    changes = pipeline.setup(settings)
    terminal.say(report.setup_lines(changes))


# -- produce ----------------------------------------------------------------------------------


def _parse_time(value: str | None, flag: str) -> dt.datetime | None:
    if value is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"{flag} {value!r} is not an ISO 8601 time such as 2026-01-01T00:00:00Z"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


@app.command()
def produce(
    count: Annotated[
        int | None, typer.Option("--count", "-n", min=0, help="Stop after this many events.")
    ] = None,
    duration: Annotated[
        float | None, typer.Option(min=0, help="Stop after this many seconds.")
    ] = None,
    rate: Annotated[
        float, typer.Option(min=0, help="Events per second; 0 = as fast as possible.")
    ] = 0.0,
    users: Annotated[int | None, typer.Option(min=1, help="Size of the user population.")] = None,
    seed: Annotated[
        int | None,
        typer.Option(
            help="Random seed: the same seed (with the same --start) gives the same stream."
        ),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(
            help="Backfill: events are stamped in simulated time from this ISO 8601 time on, "
            "spaced as real sessions are, as fast as possible, until --end (or now). Without "
            "it, events are stamped with the wall clock."
        ),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option(help="Where a backfill stops (ISO 8601) [default: now; never later]."),
    ] = None,
    scenario: Annotated[
        str,
        typer.Option(
            help="Preset of the simulation: typical, steady (flat, no bots), breaking-news, "
            "bot-attack."
        ),
    ] = "typical",
    topic: Topic = None,
    bootstrap_servers: Bootstrap = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Write JSON lines to stdout instead of Kafka.")
    ] = False,
) -> None:
    """Simulate the news site's users and publish one JSON event per action, keyed by user.

    Runs until --count, --duration, the end of a backfill, or Ctrl-C (which flushes what is
    in flight first)."""
    from clickstream import producer, scenarios  # noqa: PLC0415
    from clickstream.simulation import Simulator  # noqa: PLC0415

    settings = _settings(
        kafka={"bootstrap_servers": bootstrap_servers, "topic": topic},
        simulation={"users": users, "seed": seed},
    )
    sim = settings.simulation
    begin, finish = _parse_time(start, "--start"), _parse_time(end, "--end")
    if finish is not None and begin is None:
        raise ConfigError("--end needs --start: it is where a backfill stops")
    try:
        config = scenarios.config(
            scenario, users=sim.users, articles=sim.articles, seed=sim.seed, start=begin, end=finish
        )
        simulator = Simulator(config)
    except ValueError as exc:
        raise ConfigError(f"cannot simulate: {exc}") from None
    stats = producer.ProduceStats()
    sink: producer.Sink
    if dry_run:
        sink = producer.StreamSink(terminal.data, stats)
    else:
        sink = producer.KafkaSink(settings.kafka, settings.kafka.topic, stats)
    where = "stdout" if dry_run else f"{settings.kafka.topic} on {settings.kafka.bootstrap_servers}"
    log = logs.get("produce")
    log.info(
        "producing",
        to=where,
        count=count,
        duration=duration,
        rate=rate,
        seed=simulator.seed,
        scenario=scenario,
        start=begin and begin.isoformat(),
        end=simulator.end and simulator.end.isoformat(),
    )
    with _stop_on_signals() as stop, terminal.progress("producing", count) as bar:

        def progress(s: producer.ProduceStats) -> None:
            bar.update(s.produced, detail=f"{s.rate:,.0f}/s, {s.delivered:,} delivered")

        try:
            producer.run(
                simulator.messages(),
                sink,
                stats,
                count=count,
                duration=duration,
                rate=rate,
                stop=stop,
                on_progress=progress if not dry_run else None,
            )
        except BrokenPipeError:  # `--dry-run | head`: the reader has gone, which is fine
            sys.stderr.close()
            raise typer.Exit(0) from None
    log.info("produced", **stats.as_dict())
    terminal.say(report.produce_summary(stats, where))
    if stats.interrupted:
        raise typer.Exit(ExitCode.INTERRUPTED)
    if stats.failed or stats.in_flight:
        raise typer.Exit(ExitCode.ERROR)


# -- consume ----------------------------------------------------------------------------------


@app.command()
def consume(
    topic: Topic = None,
    group: Annotated[str | None, typer.Option("--group", "-g", help="Consumer group id.")] = None,
    bootstrap_servers: Bootstrap = None,
    opensearch_url: SearchUrl = None,
    index_prefix: IndexPrefix = None,
    batch_size: Annotated[
        int | None, typer.Option(min=1, help="Most messages per bulk request.")
    ] = None,
    batch_timeout: Annotated[
        float | None, typer.Option(min=0.001, help="Most seconds a batch waits to fill.")
    ] = None,
    until_idle: Annotated[
        float | None,
        typer.Option(
            "--until-idle",
            min=0,
            metavar="SECONDS",
            help="Stop after this long without messages (for scripts and tests).",
        ),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            "-w",
            min=1,
            help="Consumer processes in the group (useful up to the topic's partition count).",
        ),
    ] = 1,
) -> None:
    """Read the events topic in a consumer group and bulk-index the events into OpenSearch.

    Invalid messages go to the dead-letter topic with their reason. Offsets are committed only
    after every message of a batch is indexed or dead-lettered. While OpenSearch or Kafka is
    unreachable, consumption pauses and resumes by itself. Ctrl-C finishes the batch."""
    settings = _settings(
        kafka={"bootstrap_servers": bootstrap_servers, "topic": topic, "group_id": group},
        opensearch={"url": opensearch_url, "index_prefix": index_prefix},
        consumer={"batch_size": batch_size, "batch_timeout": batch_timeout},
    )
    with _stop_on_signals() as stop:
        if workers > 1:
            from clickstream import workers as pool  # noqa: PLC0415

            stats = pool.run(settings, workers=workers, until_idle=until_idle, stop=stop)
        else:
            stats = pipeline.consume(settings, terminal, until_idle=until_idle, stop=stop)
    terminal.say(report.consume_summary(stats))


# -- status and dead letters ------------------------------------------------------------------


@app.command()
def status(
    topic: Topic = None,
    group: Annotated[str | None, typer.Option("--group", "-g", help="Consumer group id.")] = None,
    bootstrap_servers: Bootstrap = None,
    opensearch_url: SearchUrl = None,
    index_prefix: IndexPrefix = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout, for machines.")] = False,
) -> None:
    """Where consumption stands: per partition the group's committed offset, the end offset
    and the lag; the documents in the index; the messages in the dead-letter topic."""
    from clickstream import status as state_of  # noqa: PLC0415

    settings = _settings(
        kafka={"bootstrap_servers": bootstrap_servers, "topic": topic, "group_id": group},
        opensearch={"url": opensearch_url, "index_prefix": index_prefix},
    )
    found = state_of.collect(settings)
    if as_json:
        terminal.json(found.to_dict())
    else:
        terminal.say(state_of.render(found))


@dlq_app.command("replay")
def dlq_replay(
    group: Annotated[
        str | None,
        typer.Option(
            "--group",
            "-g",
            help="Group that reads the dead-letter topic [default: GROUP.dlq-replay].",
        ),
    ] = None,
    bootstrap_servers: Bootstrap = None,
    opensearch_url: SearchUrl = None,
    index_prefix: IndexPrefix = None,
) -> None:
    """Try the dead-letter topic's messages again (after a fix), up to its end now: each is
    indexed or dead-lettered again with its reason, and the counts add up as in `consume`."""
    from clickstream import dlq  # noqa: PLC0415

    settings = _settings(
        kafka={"bootstrap_servers": bootstrap_servers},
        opensearch={"url": opensearch_url, "index_prefix": index_prefix},
    )
    with _stop_on_signals() as stop:
        stats = dlq.replay(settings, group=group, stop=stop)
    terminal.say(report.consume_summary(stats))


# -- dashboards and report --------------------------------------------------------------------


SavedObjects = Annotated[
    Path | None,
    typer.Option(
        "--file",
        "-f",
        help="Saved objects (ndjson) [default: dashboards/clickstream.ndjson].",
        dir_okay=False,
    ),
]
DashboardsUrl = Annotated[
    str | None, typer.Option("--dashboards-url", help="OpenSearch Dashboards URL.")
]
Since = Annotated[
    str | None,
    typer.Option(
        help="Only events since then: a duration back from now (30m, 1h, 2d, 1w) or an ISO "
        "8601 time [default: all events]."
    ),
]


def _since(value: str | None) -> dt.datetime | None:
    from clickstream.charts import parse_since  # noqa: PLC0415

    return None if value is None else parse_since(value, dt.datetime.now(dt.UTC))


@dashboards_app.command("import")
def dashboards_import(
    file: SavedObjects = None,
    dashboards_url: DashboardsUrl = None,
    index_prefix: IndexPrefix = None,
) -> None:
    """Import the index pattern, visualizations and dashboard into OpenSearch Dashboards,
    overwriting objects with the same ids."""
    from clickstream import dashboards  # noqa: PLC0415

    settings = _settings(
        dashboards={"url": dashboards_url}, opensearch={"index_prefix": index_prefix}
    )
    result = dashboards.install(settings, file)
    kinds = ", ".join(f"{n} {kind}" for kind, n in result.by_type.items())
    terminal.say(f"imported {result.count} saved objects ({kinds}) into {settings.dashboards.url}")


@dashboards_app.command("export")
def dashboards_export(
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Write here instead of stdout.", dir_okay=False),
    ] = None,
    dashboard: Annotated[str, typer.Option(help="The dashboard's id.")] = "clickstream-activity",
    dashboards_url: DashboardsUrl = None,
) -> None:
    """Export the dashboard and every object it references, as ndjson."""
    from clickstream import dashboards  # noqa: PLC0415

    settings = _settings(dashboards={"url": dashboards_url})
    exported = dashboards.export_objects(settings.dashboards, dashboard)
    if out is None:
        terminal.data.write(exported)
        terminal.data.flush()
        return
    try:
        out.write_bytes(exported)
    except OSError as exc:
        raise ConfigError(f"cannot write {out}: {exc.strerror}") from None
    terminal.say(f"exported dashboard {dashboard} to {out}")


@dashboards_app.command("render")
def dashboards_render(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="The HTML file to write.", dir_okay=False)
    ] = Path("report.html"),
    png: Annotated[bool, typer.Option("--png", help="Also write the charts as a PNG.")] = False,
    since: Since = None,
    file: SavedObjects = None,
    opensearch_url: SearchUrl = None,
    index_prefix: IndexPrefix = None,
) -> None:
    """Compute the dashboard's visualizations against OpenSearch and draw them in one
    self-contained HTML file that opens offline (and, with --png, one image)."""
    from clickstream import charts, render  # noqa: PLC0415

    settings = _settings(opensearch={"url": opensearch_url, "index_prefix": index_prefix})
    found = charts.report_for(settings, path=file, since=_since(since))
    for path in render.write(found, out, png=png):
        terminal.say(f"wrote {path.resolve()}")


@app.command("report")
def report_command(
    since: Since = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout, for machines.")] = False,
    file: SavedObjects = None,
    opensearch_url: SearchUrl = None,
    index_prefix: IndexPrefix = None,
) -> None:
    """The dashboard's numbers in the terminal: events by type, over time, top users,
    devices by category, most read, liked and commented articles."""
    from clickstream import charts  # noqa: PLC0415

    settings = _settings(opensearch={"url": opensearch_url, "index_prefix": index_prefix})
    found = charts.report_for(settings, path=file, since=_since(since))
    if as_json:
        terminal.json(found.as_dict())
    else:
        terminal.say(report.dashboard_report(found))


# -- demo -------------------------------------------------------------------------------------


@app.command()
def demo(
    events: Annotated[
        int, typer.Option("--events", "-n", min=1, help="How many events to simulate.")
    ] = 5000,
    seed: Annotated[int | None, typer.Option(help="Random seed for the simulation.")] = None,
) -> None:
    """The whole pipeline on the local stack: stack up, setup, produce, consume until idle,
    then show what is now in OpenSearch. The stack keeps running afterwards."""
    settings = _settings(simulation={"seed": seed})
    if state.log_level is None:  # the demo narrates itself; logs only for trouble
        logs.configure("warning")
    pipeline.demo(settings, terminal, events=events)


# -- entry point ------------------------------------------------------------------------------


def _interrupt(_signum: int, _frame: object) -> None:
    raise Interrupted("interrupted")


def main(argv: list[str] | None = None) -> None:
    """Run the command line; expected failures print one line and set the exit code."""
    signal.signal(signal.SIGINT, _interrupt)
    try:
        app(args=argv, prog_name="clickstream")
    except ClickstreamError as exc:
        terminal.error(str(exc))
        sys.exit(exc.exit_code)
