"""How fast `clickstream consume --sink clickhouse` stores, against a ceiling in the same run.

    python bench/bench_consume_clickhouse.py [--events 100000] [--rate 2000 --seconds 20]

Starts its own local stack (broker, search server and ClickHouse on free ports, in a
temporary directory), then measures:

(a) the ceiling: the same events inserted straight into an events table with the same
    schema and views (a sibling prefix in the same database), in a bare clickhouse-connect
    `insert` loop of the consumer's batch size: columns built before the clock starts, no
    Kafka; measured before and after (b), the best counts;
(b) `clickstream consume --sink clickhouse`, the installed command, from the topic, in its
    own process: steady throughput (as a fraction of the ceiling), CPU seconds per 100,000
    events (of the whole process, and without the fixed cost of starting, measured by a run
    over an empty topic), peak memory (RSS);
(c) latency: events produced at a steady rate while the consumer runs; the time from an
    event being produced to the events view counting it (`uniqExactMerge(events)` of
    `events_1m` reaching the number produced by then), p50 and p99.

Helpers (producing, the resource-measuring runner, steady rates) are `bench_consume`'s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from bench_consume import (
    BATCH,
    CLI,
    RUNNER,
    _batch_times,
    _env,
    _events,
    _free_ports,
    _produce,
    _steady_rate,
)
from confluent_kafka import Producer

from clickstream.cli import jobs
from clickstream.settings import ClickHouseSettings, KafkaSettings, Settings, StackSettings
from clickstream.sinks.clickhouse import schema
from clickstream.sinks.clickhouse.sink import ClickHouseSink
from clickstream.sinks.clickhouse.writer import COLUMN_NAMES, COLUMN_TYPES, Record, to_columns
from clickstream.stack import local as stack


def _ch_env(settings: Settings, group: str) -> dict[str, str]:
    ch = settings.clickhouse
    env: dict[str, str] = _env(settings, "not-ours")
    env.update(
        {
            "CLICKSTREAM_CLICKHOUSE__URL": ch.url,
            "CLICKSTREAM_CLICKHOUSE__DATABASE": ch.database,
            "CLICKSTREAM_CLICKHOUSE__GROUP_ID": group,
            "CLICKSTREAM_CLICKHOUSE__DLQ_TOPIC": settings.kafka.dlq_topic,
        }
    )
    return env


def ceiling(settings: Settings, docs: list[bytes]) -> float:
    """Events per second straight into a copy of the schema: one insert of typed columns
    per batch, columns built beforehand; measured between the first and the last insert."""
    tables = schema.Tables(settings.clickhouse.database, f"ceiling{uuid.uuid4().hex[:6]}_")
    sink = ClickHouseSink.from_settings(settings)
    client = sink.client
    for statement in schema.statements(tables):
        client.command(statement)
    batches = []
    for start in range(0, len(docs), BATCH):
        part = [Record(doc, 0, start + i) for i, doc in enumerate(docs[start : start + BATCH])]
        batches.append(to_columns(part)[0])
    done: list[tuple[float, int]] = []
    for columns in batches:
        client.insert(
            tables.events,
            columns,
            column_names=COLUMN_NAMES,
            column_type_names=COLUMN_TYPES,
            column_oriented=True,
        )
        done.append((time.perf_counter(), len(columns[0])))
    sink.close()
    return float(_steady_rate(done))


def _run_consume(settings: Settings) -> tuple[str, dict[str, Any], float]:
    args = [sys.executable, "-c", RUNNER, CLI, "consume", "--sink", "clickhouse"]
    args += ["--until-idle", "2"]
    started = time.perf_counter()
    done = subprocess.run(
        args,
        env=_ch_env(settings, f"bench-{uuid.uuid4().hex}"),
        capture_output=True,
        text=True,
        check=False,
        timeout=3600,
    )
    wall = time.perf_counter() - started
    usage = json.loads(done.stdout.strip().splitlines()[-1])
    assert usage["code"] == 0, done.stderr[-3000:]
    return done.stderr, usage, wall


def consume(settings: Settings, count: int, fixed_cpu: float) -> dict[str, Any]:
    """Run the command over the topic: steady throughput, CPU and memory."""
    log, usage, wall = _run_consume(settings)
    batches = _batch_times(log)
    assert sum(n for _, n in batches) >= count, "not everything was consumed"
    cpu = float(usage["cpu"])
    return {
        "events_per_second": _steady_rate(batches),
        "wall_seconds": wall,
        "cpu_seconds": cpu,
        "cpu_seconds_per_100k": cpu * 100_000 / count,
        "cpu_seconds_per_100k_after_start": (cpu - fixed_cpu) * 100_000 / count,
        "peak_rss_mb": usage["rss"] / 1024,
    }


def latency(settings: Settings, rate: float, seconds: float) -> dict[str, float]:
    """Produce at `rate` for `seconds` while the consumer runs; for each event, the time
    until the events view counts as many events as had been produced up to it."""
    events = _events(int(rate * seconds), seed=99)
    sink = ClickHouseSink.from_settings(settings)
    view = f"SELECT uniqExactMerge(events) FROM {sink.tables.events_1m}"  # noqa: S608
    consumer = subprocess.Popen(
        [CLI, "consume", "--sink", "clickhouse"],
        env=_ch_env(settings, f"latency-{uuid.uuid4().hex}"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    sent: list[float] = []
    seen: list[tuple[float, int]] = []
    done = threading.Event()

    def watch() -> None:
        client = ClickHouseSink.from_settings(settings).client
        while True:
            counted = int(client.query(view).result_rows[0][0])
            seen.append((time.monotonic(), counted))
            if done.is_set() and counted >= len(events):
                return
            time.sleep(0.02)

    try:
        time.sleep(5)  # let the consumer start and join its group
        producer = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers, "linger.ms": 5})
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        started = time.monotonic()
        for n, event in enumerate(events):
            pause = started + n / rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            producer.produce(settings.kafka.topic, event.to_json(), event.user_id.encode())
            producer.poll(0)
            sent.append(time.monotonic())
        producer.flush(30)
        achieved = len(events) / (time.monotonic() - started)
        done.set()
        watcher.join(timeout=120)
    finally:
        consumer.terminate()
        consumer.wait(timeout=60)
        sink.close()
    times = []
    cursor = 0
    for k, when in enumerate(sent, 1):
        while cursor < len(seen) and seen[cursor][1] < k:
            cursor += 1
        if cursor == len(seen):
            break
        times.append(max(seen[cursor][0] - when, 0.0))
    assert len(times) == len(sent), f"{len(sent) - len(times)} events never counted"
    times.sort()
    return {
        "rate": achieved,
        "samples": len(times),
        "p50_ms": 1000 * statistics.median(times),
        "p99_ms": 1000 * times[min(len(times) - 1, int(0.99 * len(times)))],
    }


def _settings(bootstrap: str, url: str, name: str) -> Settings:
    return Settings(
        kafka=KafkaSettings(
            bootstrap_servers=bootstrap, topic=name, dlq_topic=f"{name}.dlq", partitions=3
        ),
        clickhouse=ClickHouseSettings(url=url, database=name.replace("-", "_")),
    ).for_sink("clickhouse")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    options = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-consume-ch-") as tmp:
        kafka_port, search_port, ch_port = _free_ports(3)
        local = StackSettings(
            kafka_port=kafka_port,
            opensearch_port=search_port,
            clickhouse_port=ch_port,
            state_dir=Path(tmp),
        )
        stack.up(local)
        assert stack.status(local).clickhouse.running, "the local ClickHouse needs chdb"
        bootstrap, url = stack.kafka_address(local), stack.clickhouse_url(local)
        name = f"bench_{uuid.uuid4().hex[:8]}"
        settings = _settings(bootstrap, url, name)
        try:
            jobs.setup(settings)
            docs = [(e, e.to_json()) for e in _events(options.events, seed=7)]
            _produce(settings, docs)
            sources = [doc for _, doc in docs]
            before = ceiling(settings, sources)
            print(f"ceiling: {before:,.0f} events/s", file=sys.stderr)
            empty = _settings(bootstrap, url, f"{name}_empty")
            jobs.setup(empty)
            fixed = float(_run_consume(empty)[1]["cpu"])
            ours = consume(settings, len(docs), fixed)
            print(f"consume: {ours}", file=sys.stderr)
            after = ceiling(settings, sources)
            print(f"ceiling after consume: {after:,.0f} events/s", file=sys.stderr)
            top = max(before, after)
            live = _settings(bootstrap, url, f"{name}_live")
            jobs.setup(live)
            late = latency(live, options.rate, options.seconds)
        finally:
            stack.down(local)
    result = {
        "events": len(docs),
        "ceiling_events_per_second": round(top),
        "ceiling_before_and_after_consume": [round(before), round(after)],
        "consume_events_per_second": round(ours["events_per_second"]),
        "ratio_to_ceiling": round(ours["events_per_second"] / top, 3),
        "consume_cpu_seconds": round(ours["cpu_seconds"], 2),
        "consume_cpu_seconds_per_100k_events": round(ours["cpu_seconds_per_100k"], 2),
        "consume_cpu_seconds_of_starting": round(fixed, 2),
        "consume_cpu_seconds_per_100k_events_after_start": round(
            ours["cpu_seconds_per_100k_after_start"], 2
        ),
        "consume_peak_rss_mb": round(ours["peak_rss_mb"], 1),
        "latency_rate_events_per_second": round(late["rate"]),
        "latency_samples": late["samples"],
        "latency_p50_ms": round(late["p50_ms"]),
        "latency_p99_ms": round(late["p99_ms"]),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
