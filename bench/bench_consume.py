"""How fast `clickstream consume` indexes, against a ceiling measured in the same run.

    python bench/bench_consume.py [--events 100000] [--workers 1] [--rate 2000 --seconds 20]

Starts its own local stack (broker and search server on free ports, in a temporary
directory) unless `--bootstrap` and `--opensearch` name running ones, then measures:

(a) the ceiling: the same documents sent straight to `_bulk`, no Kafka: request bodies built
    before the clock starts, raw keep-alive HTTP connections, as many requests in flight as
    the consumer has workers and one more; measured before and after (b), the best counts;
(b) `clickstream consume`, the installed command, from the topic, in its own process:
    throughput (as a fraction of the ceiling), its CPU seconds per 100,000 events (of the
    whole process, and without the fixed cost of starting, measured by a run over an empty
    topic), its peak memory (RSS);
    The same once more with `consumer.commit_interval` at an hour (offsets committed at
    the end only), and the local servers' CPU during each run: what the broker spends
    on offset commits while a backlog is read is taken from the two CPUs the search
    server shares with it;
(c) latency: events produced at a steady rate while a consumer runs; for a sample of them,
    the time from being produced to being found by a search, p50 and p99.

Throughput is measured between the first and the last batch (steady state: no process
start, no group join, no idle wait at the end); CPU and memory are the whole process's.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from confluent_kafka import Producer

from clickstream.cli import jobs
from clickstream.events import Event
from clickstream.settings import KafkaSettings, OpenSearchSettings, Settings, StackSettings
from clickstream.simulate.config import SimulationConfig
from clickstream.simulate.simulator import Simulator
from clickstream.sinks.opensearch import bulk
from clickstream.sinks.opensearch import client as opensearch
from clickstream.stack import local as stack

CLI = str(Path(sys.executable).parent / "clickstream")
#: A configuration with nothing in it: the consume runs read only their environment.
EMPTY_CONFIG = Path(__file__).resolve().parents[1] / "tests" / "data" / "empty.toml"
START = "2026-03-01T08:00:00+00:00"
BATCH = 2000
_COMMIT_ENV = "CLICKSTREAM_CONSUMER__COMMIT_INTERVAL"


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _events(count: int, seed: int) -> list[Event]:
    import datetime as dt  # noqa: PLC0415

    config = SimulationConfig(users=2000, seed=seed, start=dt.datetime.fromisoformat(START))
    return list(itertools.islice(Simulator(config), count))


def _produce(settings: Settings, docs: list[tuple[Event, bytes]]) -> None:
    producer = Producer(
        {"bootstrap.servers": settings.kafka.bootstrap_servers, "linger.ms": 20, "acks": "all"}
    )
    for event, doc in docs:
        while True:
            try:
                producer.produce(settings.kafka.topic, doc, event.user_id.encode())
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    assert producer.flush(60) == 0


def _delete(settings: Settings, prefix: str) -> None:
    client = opensearch.make_client(settings.opensearch)
    client.indices.delete(
        index=f"{prefix}-*", ignore_unavailable=True, allow_no_indices=True, expand_wildcards="all"
    )


def ceiling(settings: Settings, docs: list[tuple[Event, bytes]], in_flight: int) -> float:
    """Events per second straight into `_bulk`: bodies pre-built, keep-alive connections,
    `in_flight` requests at a time; measured as consume is, between the first and the last
    response (no connection set-up, no index creation in the figure)."""
    prefix = f"{settings.opensearch.index_prefix}-ceiling-{uuid.uuid4().hex[:6]}"
    opensearch.ensure_template(opensearch.make_client(settings.opensearch), prefix)
    batches = [docs[i : i + BATCH] for i in range(0, len(docs), BATCH)]
    bodies = [(len(batch), bulk.build_bulk_body(batch, prefix)) for batch in batches]
    url = urlsplit(settings.opensearch.url)
    local = threading.local()
    answered: list[tuple[float, int]] = []

    def send(size_and_body: tuple[int, bytes]) -> None:
        size, body = size_and_body
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = http.client.HTTPConnection(
                url.hostname or "", url.port, timeout=120
            )
        conn.request(
            "POST",
            "/_bulk?filter_path=errors",
            body=body,
            headers={"content-type": "application/x-ndjson"},
        )
        response = conn.getresponse()
        answer = response.read()
        assert response.status == 200, answer[:300]
        assert b'"errors":false' in answer, answer[:300]
        answered.append((time.perf_counter(), size))

    with ThreadPoolExecutor(in_flight) as pool:
        list(pool.map(send, bodies))
    _delete(settings, prefix)
    return _steady_rate(sorted(answered))


def _steady_rate(done: list[tuple[float, int]]) -> float:
    """Events per second between the first and the last of `done` (when, how many), in
    order: what came after the first, over the time since it."""
    first, last = done[0][0], done[-1][0]
    return sum(n for _, n in done[1:]) / max(last - first, 1e-9)


def best_ceiling(settings: Settings, docs: list[tuple[Event, bytes]], workers: int) -> float:
    """The best of the ceiling with as many requests in flight as consume has workers and
    with one more: the fastest the server indexes these documents, right now."""
    return max(ceiling(settings, docs, n) for n in (workers, workers + 1))


def _env(settings: Settings, group: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLICKSTREAM_")}
    env.update(
        {
            "CLICKSTREAM_CONFIG": str(EMPTY_CONFIG),
            "CLICKSTREAM_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
            "CLICKSTREAM_KAFKA__TOPIC": settings.kafka.topic,
            "CLICKSTREAM_KAFKA__DLQ_TOPIC": settings.kafka.dlq_topic,
            "CLICKSTREAM_KAFKA__GROUP_ID": group,
            "CLICKSTREAM_OPENSEARCH__URL": settings.opensearch.url,
            "CLICKSTREAM_OPENSEARCH__INDEX_PREFIX": settings.opensearch.index_prefix,
        }
    )
    return env


def _batch_times(log: str) -> list[tuple[float, int]]:
    import datetime as dt  # noqa: PLC0415

    out = []
    for line in log.splitlines():
        if line.startswith("{") and '"event": "batch"' in line:
            entry = json.loads(line)
            when = dt.datetime.fromisoformat(entry["timestamp"].replace("Z", "+00:00"))
            out.append((when.timestamp(), int(entry["messages"])))
    return out


#: Runs a command and prints its resource usage: so that only the command (and its own
#: children, the workers) is measured, not the servers this benchmark started.
RUNNER = """
import json, resource, subprocess, sys
code = subprocess.run(sys.argv[1:], check=False).returncode
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"code": code, "cpu": usage.ru_utime + usage.ru_stime, "rss": usage.ru_maxrss}))
"""


def _run_consume(
    settings: Settings, workers: int, extra_env: dict[str, str] | None = None
) -> tuple[str, dict[str, Any], float]:
    """`clickstream consume --until-idle 2` over the topic: its log, resource usage and
    wall time."""
    args = [sys.executable, "-c", RUNNER, CLI, "consume", "--until-idle", "2"]
    args += ["--batch-size", str(BATCH)]
    if workers > 1:
        args += ["--workers", str(workers)]
    started = time.perf_counter()
    done = subprocess.run(
        args,
        env=_env(settings, f"bench-{uuid.uuid4().hex}") | (extra_env or {}),
        capture_output=True,
        text=True,
        check=False,
        timeout=3600,
    )
    wall = time.perf_counter() - started
    usage = json.loads(done.stdout.strip().splitlines()[-1])
    assert done.returncode == 0, done.stderr[-3000:]
    assert usage["code"] == 0, done.stderr[-3000:]
    return done.stderr, usage, wall


def _cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds that process `pid` has used so far (Linux), else None."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Servers:
    """The CPU the local broker and search server use during a run (None if not local)."""

    def __init__(self, local: StackSettings | None) -> None:
        running = stack.status(local) if local is not None else None
        self.kafka = running.kafka.pid if running else None
        self.opensearch = running.opensearch.pid if running else None

    def used(self) -> Callable[[], dict[str, float | None]]:
        """Start counting; the returned function says how much each has used since."""
        before = (_cpu_seconds(self.kafka), _cpu_seconds(self.opensearch))

        def since() -> dict[str, float | None]:
            after = (_cpu_seconds(self.kafka), _cpu_seconds(self.opensearch))
            kafka, search = (
                None if a is None or b is None else round(a - b, 2)
                for a, b in zip(after, before, strict=True)
            )
            return {"broker_cpu_seconds": kafka, "search_server_cpu_seconds": search}

        return since


def consume(
    settings: Settings,
    count: int,
    workers: int,
    fixed_cpu: float,
    servers: Servers,
    extra_env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run `clickstream consume` over the topic; its steady throughput, CPU and memory,
    and what the servers used meanwhile.

    `fixed_cpu` is what a run over an empty topic costs (starting, joining the group, the
    idle wait at the end); the CPU per event leaves it out."""
    since = servers.used()
    log, usage, wall = _run_consume(settings, workers, extra_env)
    used = since()
    batches = _batch_times(log)
    assert sum(n for _, n in batches) >= count, "not everything was consumed"
    steady = _steady_rate(batches)
    cpu = float(usage["cpu"])
    return {
        "events_per_second": steady,
        "wall_seconds": wall,
        "cpu_seconds": cpu,
        "cpu_seconds_per_100k": cpu * 100_000 / count,
        "cpu_seconds_per_100k_after_start": (cpu - fixed_cpu) * 100_000 / count,
        "peak_rss_mb": usage["rss"] / 1024,
        **used,
    }


def fixed_cost(settings: Settings, workers: int) -> float:
    """CPU seconds of `clickstream consume` over an empty topic: the cost of starting."""
    _, usage, _ = _run_consume(settings, workers)
    return float(usage["cpu"])


def latency(settings: Settings, rate: float, seconds: float) -> dict[str, float]:
    """Produce at `rate` for `seconds` while a consumer runs; produced-to-searchable times."""
    docs = [(e, e.to_json()) for e in _events(int(rate * seconds), seed=99)]
    client = opensearch.make_client(settings.opensearch)
    pattern = settings.opensearch.index_pattern
    consumer = subprocess.Popen(
        [CLI, "consume", "--batch-size", str(BATCH)],
        env=_env(settings, f"latency-{uuid.uuid4().hex}"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    sent: dict[str, float] = {}
    found: dict[str, float] = {}
    done = threading.Event()

    def search() -> None:
        while not done.is_set() or len(found) < len(sent):
            waiting = [i for i in list(sent) if i not in found][:500]
            if waiting:
                hits = client.search(
                    index=pattern,
                    body={"query": {"ids": {"values": waiting}}, "_source": False},
                    size=len(waiting),
                    allow_no_indices=True,
                    ignore_unavailable=True,
                )["hits"]["hits"]
                now = time.monotonic()
                for hit in hits:
                    found.setdefault(hit["_id"], now)
            if done.is_set() and time.monotonic() > deadline:
                return
            time.sleep(0.05)

    try:
        time.sleep(5)  # let the consumer start and join its group
        producer = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers, "linger.ms": 5})
        deadline = float("inf")
        searcher = threading.Thread(target=search, daemon=True)
        searcher.start()
        started = time.monotonic()
        for n, (event, doc) in enumerate(docs):
            due = started + n / rate
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            producer.produce(settings.kafka.topic, doc, event.user_id.encode())
            producer.poll(0)
            if n % 20 == 0:  # a sample: 1 event in 20
                sent[str(event.event_id)] = time.monotonic()
        producer.flush(30)
        achieved = len(docs) / (time.monotonic() - started)
        deadline = time.monotonic() + 60
        done.set()
        searcher.join()
    finally:
        consumer.terminate()
        consumer.wait(timeout=60)
    times = sorted(found[i] - sent[i] for i in found)
    assert len(times) == len(sent), f"{len(sent) - len(times)} sampled events never found"
    return {
        "rate": achieved,
        "samples": len(times),
        "p50_ms": 1000 * statistics.median(times),
        "p99_ms": 1000 * times[min(len(times) - 1, int(0.99 * len(times)))],
    }


def _other_topic(settings: Settings, topic: str) -> Settings:
    kafka = settings.kafka.model_copy(update={"topic": topic, "dlq_topic": f"{topic}.dlq"})
    return settings.model_copy(update={"kafka": kafka})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--bootstrap", help="a running broker (default: start a local stack)")
    parser.add_argument("--opensearch", help="a running search server URL")
    options = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-consume-") as tmp:
        local = None
        if options.bootstrap and options.opensearch:
            bootstrap, url = options.bootstrap, options.opensearch
        else:
            kafka_port, search_port = _free_ports(2)
            local = StackSettings(
                kafka_port=kafka_port, opensearch_port=search_port, state_dir=Path(tmp)
            )
            stack.up(local)
            bootstrap, url = stack.kafka_address(local), stack.opensearch_url(local)
        name = f"bench-{uuid.uuid4().hex[:8]}"
        settings = Settings(
            kafka=KafkaSettings(
                bootstrap_servers=bootstrap, topic=name, dlq_topic=f"{name}.dlq", partitions=3
            ),
            opensearch=OpenSearchSettings(url=url, index_prefix=name),
        )
        try:
            jobs.setup(settings)
            docs = [(e, e.to_json()) for e in _events(options.events, seed=7)]
            _produce(settings, docs)
            before = best_ceiling(settings, docs, options.workers)
            print(f"ceiling: {before:,.0f} events/s", file=sys.stderr)
            # Topics of their own: an empty one, and one the latency consumer reads from
            # its beginning.
            empty, live = (_other_topic(settings, f"{name}-{what}") for what in ("empty", "live"))
            jobs.setup(empty)
            fixed = fixed_cost(empty, options.workers)
            servers = Servers(local)
            ours = consume(settings, len(docs), options.workers, fixed, servers)
            print(f"consume: {ours}", file=sys.stderr)
            _delete(settings, settings.opensearch.index_prefix)
            # Once more after consume: the server at its best, the broker idle by now.
            since = servers.used()
            after = best_ceiling(settings, docs, options.workers)
            ceiling_used = since()
            print(f"ceiling after consume: {after:,.0f} events/s", file=sys.stderr)
            top = max(before, after)
            # And consume committing only at its end: what the broker's offset commits
            # (every `commit_interval` while a backlog is read) cost the run.
            rare = consume(
                settings, len(docs), options.workers, fixed, servers, {_COMMIT_ENV: "3600"}
            )
            print(f"consume committing at the end only: {rare}", file=sys.stderr)
            _delete(settings, settings.opensearch.index_prefix)
            jobs.setup(live)
            late = latency(live, options.rate, options.seconds)
        finally:
            _delete(settings, settings.opensearch.index_prefix)
            if local is not None:
                stack.down(local)
    result = {
        "events": len(docs),
        "workers": options.workers,
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
        "broker_cpu_seconds_during_consume": ours["broker_cpu_seconds"],
        "search_server_cpu_seconds_during_consume": ours["search_server_cpu_seconds"],
        "search_server_cpu_seconds_during_ceilings_after": ceiling_used[
            "search_server_cpu_seconds"
        ],
        "committing_at_the_end_only": {
            "consume_events_per_second": round(rare["events_per_second"]),
            "ratio_to_ceiling": round(rare["events_per_second"] / top, 3),
            "broker_cpu_seconds_during_consume": rare["broker_cpu_seconds"],
        },
        "latency_rate_events_per_second": round(late["rate"]),
        "latency_samples": late["samples"],
        "latency_p50_ms": round(late["p50_ms"]),
        "latency_p99_ms": round(late["p99_ms"]),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
