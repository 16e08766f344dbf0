"""The commands that run the pipeline and look after it: `setup`, `produce`, `consume`,
`status`, `dlq replay`, and `demo`, which runs them all on the local stack.

`app.py` registers the top-level ones; `dlq` is a group of its own.
"""

from __future__ import annotations

import datetime as dt
import sys
from typing import Annotated

import typer

from clickstream.cli import context, summaries
from clickstream.cli.context import Bootstrap, IndexPrefix, SearchUrl, Sink, Topic
from clickstream.errors import ConfigError, ExitCode

dlq_app = typer.Typer(help="The dead-letter topic: try its messages again.", no_args_is_help=True)


# -- setup ------------------------------------------------------------------------------------


def setup(
    bootstrap_servers: Bootstrap = None,
    topic: Topic = None,
    partitions: Annotated[
        int | None, typer.Option(help="Partitions of a new events topic.", min=1)
    ] = None,
    opensearch_url: SearchUrl = None,
    index_prefix: IndexPrefix = None,
    sink: Sink = None,
) -> None:
    """Create the events topic, the sink's dead-letter topic and what the sink needs: the
    index template (opensearch), or the tables and views (clickhouse). Idempotent: what
    exists is left alone. Only the sink named is touched."""
    settings = context.sink_settings(
        sink,
        kafka={"bootstrap_servers": bootstrap_servers, "topic": topic, "partitions": partitions},
        opensearch={"url": opensearch_url, "index_prefix": index_prefix},
    )
    from clickstream.cli import jobs  # noqa: PLC0415 - Kafka and OpenSearch clients: slow

    changes = jobs.setup(settings)
    context.terminal.say(summaries.setup_lines(changes))


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
    from clickstream import logs  # noqa: PLC0415
    from clickstream.produce import publish  # noqa: PLC0415
    from clickstream.simulate import scenarios  # noqa: PLC0415
    from clickstream.simulate.simulator import Simulator  # noqa: PLC0415

    settings = context.settings(
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
    stats = publish.ProduceStats()
    sink: publish.Sink
    if dry_run:
        sink = publish.StreamSink(context.terminal.data, stats)
    else:
        sink = publish.KafkaSink(settings.kafka, settings.kafka.topic, stats)
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
    with (
        context.stop_on_signals() as stop,
        context.terminal.progress("producing", count) as bar,
    ):

        def progress(s: publish.ProduceStats) -> None:
            bar.update(s.produced, detail=f"{s.rate:,.0f}/s, {s.delivered:,} delivered")

        try:
            publish.run(
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
    context.terminal.say(summaries.produce_summary(stats, where))
    if stats.interrupted:
        raise typer.Exit(ExitCode.INTERRUPTED)
    if stats.failed or stats.in_flight:
        raise typer.Exit(ExitCode.ERROR)


# -- consume ----------------------------------------------------------------------------------


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
    sink: Sink = None,
) -> None:
    """Read the events topic in a consumer group and write the events to a store: OpenSearch
    (bulk-indexed) or ClickHouse (one insert per batch; its views keep the aggregates).

    Each store reads in its own group. Invalid messages go to the dead-letter topic with their
    reason. Offsets are committed only after every message of a batch is stored or
    dead-lettered. While the store or Kafka is unreachable, consumption pauses and resumes by
    itself. Ctrl-C finishes the batch."""
    settings = context.sink_settings(
        sink,
        group,
        kafka={"bootstrap_servers": bootstrap_servers, "topic": topic},
        opensearch={"url": opensearch_url, "index_prefix": index_prefix},
        consumer={"batch_size": batch_size, "batch_timeout": batch_timeout},
    )
    from clickstream.cli import jobs  # noqa: PLC0415

    with context.stop_on_signals() as stop:
        if workers > 1:
            from clickstream.consume import workers as pool  # noqa: PLC0415

            stats = pool.run(
                settings, jobs.open_sink, workers=workers, until_idle=until_idle, stop=stop
            )
        else:
            stats = jobs.consume(settings, context.terminal, until_idle=until_idle, stop=stop)
    context.terminal.say(summaries.consume_summary(stats))


# -- status and dead letters ------------------------------------------------------------------


def status(
    topic: Topic = None,
    group: Annotated[str | None, typer.Option("--group", "-g", help="Consumer group id.")] = None,
    bootstrap_servers: Bootstrap = None,
    opensearch_url: SearchUrl = None,
    index_prefix: IndexPrefix = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout, for machines.")] = False,
    sink: Sink = None,
) -> None:
    """Where consumption into a store stands: per partition its group's committed offset,
    the end offset and the lag; the events in the store; the messages in its dead-letter
    topic."""
    from clickstream.cli import jobs  # noqa: PLC0415
    from clickstream.consume import status as state_of  # noqa: PLC0415

    settings = context.sink_settings(
        sink,
        group,
        kafka={"bootstrap_servers": bootstrap_servers, "topic": topic},
        opensearch={"url": opensearch_url, "index_prefix": index_prefix},
    )
    found = state_of.collect(settings, jobs.open_sink(settings))
    if as_json:
        context.terminal.json(found.to_dict())
    else:
        context.terminal.say(state_of.render(found))


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
    sink: Sink = None,
) -> None:
    """Try the sink's dead-letter topic's messages again (after a fix), up to its end now:
    each is stored or dead-lettered again with its reason, and the counts add up as in
    `consume`."""
    from clickstream.cli import jobs  # noqa: PLC0415
    from clickstream.consume import replay  # noqa: PLC0415

    settings = context.sink_settings(
        sink,
        kafka={"bootstrap_servers": bootstrap_servers},
        opensearch={"url": opensearch_url, "index_prefix": index_prefix},
    )
    with context.stop_on_signals() as stop:
        stats = replay.replay(settings, jobs.open_sink, group=group, stop=stop)
    context.terminal.say(summaries.consume_summary(stats))


# -- demo -------------------------------------------------------------------------------------


def demo(
    events: Annotated[
        int, typer.Option("--events", "-n", min=1, help="How many events to simulate.")
    ] = 5000,
    seed: Annotated[int | None, typer.Option(help="Random seed for the simulation.")] = None,
) -> None:
    """The whole pipeline on the local stack: stack up, setup, produce, consume until idle,
    then show what is now in OpenSearch. The stack keeps running afterwards."""
    from clickstream import logs  # noqa: PLC0415

    settings = context.settings(simulation={"seed": seed})
    if context.state.log_level is None:  # the demo narrates itself; logs only for trouble
        logs.configure("warning")
    from clickstream.cli import demo as walkthrough  # noqa: PLC0415

    walkthrough.demo(settings, context.terminal, events=events)
