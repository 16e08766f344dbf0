"""How fast `clickstream produce` is, against the fastest a Python producer can be, in one run.

Starts its own Kafka-compatible broker (noida-db, as the local stack does) on a free port,
unless --bootstrap-servers names one, and measures, each on its own fresh topic:

  (a) the ceiling: pre-serialized simulator messages (same sizes, same content), produced
      with confluent-kafka and the same producer settings in a bare loop, then flushed;
  (b) `clickstream produce --rate 0 --count N` in a subprocess: simulation, serialization,
      produce, delivery accounting, flush. Its rate is the one it reports itself.

and reports (b)/(a), events per CPU-second (user + system time of the whole process, so
librdkafka's compression threads included) and per second of the main thread, the peak
RSS of the `produce` process at two --count values, the speed of `--dry-run` to /dev/null,
the simulator alone (backfill and real time), and how closely `--rate` is held.

    .venv/bin/python bench/bench_produce.py                  # markdown table
    .venv/bin/python bench/bench_produce.py --count 2000000 --json

Figures depend on the machine and its load (printed with them): compare the ratio, not the
absolute numbers, between machines.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from clickstream.produce.publish import producer_config
from clickstream.settings import KafkaSettings
from clickstream.simulate.config import SimulationConfig
from clickstream.simulate.simulator import Simulator
from clickstream.stack import local as stack

SUMMARY = re.compile(r"produced ([\d,]+) events .*?: ([\d,]+) delivered, ([\d,]+) failed in "
                     r"([\d.]+)s \(([\d,]+) events/s\)")  # fmt: skip
CLICKSTREAM = str(Path(sys.executable).with_name("clickstream"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def broker(bootstrap: str | None) -> Iterator[str]:
    """The given broker, or a noida-db started (and stopped) here."""
    if bootstrap:
        yield bootstrap
        return
    noida = shutil.which("noida-db", path=str(Path(sys.executable).parent)) or "noida-db"
    with tempfile.TemporaryDirectory(prefix="bench-kafka-") as data:
        port = free_port()
        up = [noida, "up", "--only", "kafka", "--kafka-port", str(port), "--host", "127.0.0.1"]
        subprocess.run([*up, "--data-dir", data], check=True, capture_output=True, timeout=60)
        address = f"127.0.0.1:{port}"
        try:
            stack.wait_for_kafka(address, 60.0)
            yield address
        finally:
            down = [noida, "down", "--data-dir", data]
            subprocess.run(down, check=False, capture_output=True, timeout=120)


def new_topic(admin: AdminClient, partitions: int = 3) -> str:
    name = f"bench-{uuid.uuid4().hex[:12]}"
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(timeout=30)
    return name


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def ceiling(
    bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]], count: int
) -> dict[str, Any]:
    """(a): the same messages, the same settings, a bare produce loop, then flush."""
    conf = producer_config(KafkaSettings(bootstrap_servers=bootstrap))
    conf["on_delivery"] = lambda error, _message: None if error is None else print(error)
    producer = Producer(conf)
    produce, poll = producer.produce, producer.poll
    source = itertools.islice(itertools.cycle(messages), count)
    cpu, thread, start = cpu_seconds(), time.thread_time(), time.perf_counter()
    for index, (key, value) in enumerate(source):
        while True:
            try:
                produce(topic, value, key)
                break
            except BufferError:
                poll(0.05)
        if index % 1024 == 0:
            poll(0)
    left = producer.flush(120)
    seconds = time.perf_counter() - start
    cpu, thread = cpu_seconds() - cpu, time.thread_time() - thread
    assert left == 0, f"{left} messages not delivered"
    return {
        "events": count,
        "seconds": seconds,
        "events_per_second": count / seconds,
        "events_per_cpu_second": count / cpu,
        "events_per_main_thread_second": count / thread,
    }


#: Runs a command and prints its exit code and resource usage. A small process of its own
#: starts the measured one: on Linux a process started with vfork (as subprocess does)
#: inherits its parent's peak RSS through exec, so `clickstream` started from this big
#: process would report ours.
#: With `BENCH_ONE_CPU` set, it pins itself, and so the command with all its threads, to one CPU.
RUNNER = """
import json, os, subprocess, sys
if os.environ.pop("BENCH_ONE_CPU", None):
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(proc.pid, 0)
print(json.dumps({"code": os.waitstatus_to_exitcode(status), "cpu": usage.ru_utime
                  + usage.ru_stime, "maxrss_kb": usage.ru_maxrss}))
"""


def child(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run `clickstream ARGS`; its own summary, CPU time and peak RSS."""
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        runner = [sys.executable, "-c", RUNNER, CLICKSTREAM, *args]
        done = subprocess.run(runner, stdout=subprocess.PIPE, stderr=err, env=env, check=True)
        wall = time.perf_counter() - start
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    usage = json.loads(done.stdout)
    if usage["code"] != 0:
        raise SystemExit(f"clickstream {' '.join(args)} failed ({usage['code']}):\n{stderr}")
    found = SUMMARY.search(stderr)
    assert found is not None, stderr
    produced, delivered, failed = (int(found[i].replace(",", "")) for i in (1, 2, 3))
    assert delivered == produced, stderr
    assert failed == 0, stderr
    cpu = usage["cpu"]
    seconds = float(found[4])
    return {
        "events": produced,
        "seconds": seconds,
        "events_per_second": produced / seconds,
        "process_seconds": wall,
        "events_per_cpu_second": produced / cpu,
        "peak_rss_mb": usage["maxrss_kb"] / 1024,
    }


def simulator_only(count: int) -> dict[str, Any]:
    """`Simulator.messages()` alone, in a backfill and in real time (as `produce` runs it
    without --start: stamped by the wall clock)."""
    result: dict[str, Any] = {"events": count}
    for name, start in (("", dt.datetime(2026, 1, 5, tzinfo=dt.UTC)), ("real_time_", None)):
        messages = Simulator(SimulationConfig(seed=1, start=start)).messages()
        begin = time.thread_time()
        for _ in itertools.islice(messages, count):
            pass
        result[f"{name}events_per_cpu_second"] = count / (time.thread_time() - begin)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1_000_000, help="events per produce run")
    parser.add_argument("--small-count", type=int, default=200_000, help="second RSS point")
    parser.add_argument("--rate", type=float, default=20_000, help="target of the rate check")
    parser.add_argument("--rate-seconds", type=float, default=30, help="length of the rate check")
    parser.add_argument("--bootstrap-servers", help="use this broker instead of a local one")
    parser.add_argument("--json", action="store_true", help="JSON instead of markdown")
    options = parser.parse_args()

    env = {k: v for k, v in os.environ.items() if not k.startswith("CLICKSTREAM_")}
    env["CLICKSTREAM_LOG_LEVEL"] = "warning"
    load_before = os.getloadavg()
    results: dict[str, Any] = {"cpus": os.cpu_count(), "load_before": load_before}
    sample = list(itertools.islice(Simulator(SimulationConfig(seed=1)).messages(), 200_000))
    results["mean_message_bytes"] = sum(len(v) for _, v in sample) / len(sample)
    with broker(options.bootstrap_servers) as bootstrap:
        admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": "0"})
        topics: list[str] = []
        try:
            topics.append(new_topic(admin))
            results["a_ceiling"] = ceiling(bootstrap, topics[-1], sample, options.count)
            del sample
            common = ["produce", "--bootstrap-servers", bootstrap, "--rate", "0", "--seed", "1"]
            topics.append(new_topic(admin))
            large = [*common, "--count", str(options.count), "--topic", topics[-1]]
            results["b_produce"] = child(large, env)
            if hasattr(os, "sched_setaffinity"):  # Linux: the same on one CPU
                topics.append(new_topic(admin))
                pinned = [*common, "--count", str(options.count), "--topic", topics[-1]]
                results["b_produce_one_cpu"] = child(pinned, env | {"BENCH_ONE_CPU": "1"})
            topics.append(new_topic(admin))
            small = [*common, "--count", str(options.small_count), "--topic", topics[-1]]
            results["b_produce_small"] = child(small, env)
            topics.append(new_topic(admin))
            paced = ["produce", "--bootstrap-servers", bootstrap, "--topic", topics[-1]]
            paced += ["--rate", f"{options.rate:g}", "--duration", f"{options.rate_seconds:g}"]
            results["rate_check"] = child(paced, env)
        finally:
            admin.delete_topics(topics, operation_timeout=30)
    dry = ["produce", "--dry-run", "--count", str(options.count), "--seed", "1"]
    results["dry_run"] = child(dry, env)
    results["simulator_only"] = simulator_only(min(options.count, 500_000))
    results["load_after"] = os.getloadavg()
    results["ratio_b_over_a"] = (
        results["b_produce"]["events_per_second"] / results["a_ceiling"]["events_per_second"]
    )
    rate = results["rate_check"]["events_per_second"]
    results["rate_error_percent"] = 100 * (rate - options.rate) / options.rate
    if options.json:
        print(json.dumps(results, indent=2))
    else:
        print(markdown(results, options))


def markdown(r: dict[str, Any], options: argparse.Namespace) -> str:
    a, b, small, dry = r["a_ceiling"], r["b_produce"], r["b_produce_small"], r["dry_run"]
    produce = "clickstream produce"
    rows = [
        ("(a) ceiling: pre-serialized, bare confluent-kafka loop", a),
        (f"(b) {produce} --rate 0 --count {b['events']:,}", b),
    ]
    if "b_produce_one_cpu" in r:
        one = r["b_produce_one_cpu"]
        rows.append((f"(b) {produce} --rate 0 --count {one['events']:,}, on one CPU", one))
    rows += [
        (f"(b) {produce} --rate 0 --count {small['events']:,}", small),
        (f"{produce} --dry-run --count {dry['events']:,} > /dev/null", dry),
    ]
    lines = [
        f"{r['cpus']} CPUs, load average {r['load_before'][0]:.2f} before, "
        f"{r['load_after'][0]:.2f} after; mean message {r['mean_message_bytes']:.0f} bytes",
        "",
        "| run | events/s | events per CPU-second | peak RSS |",
        "|---|---:|---:|---:|",
    ]
    for name, row in rows:
        memory = f"{row['peak_rss_mb']:.0f} MB" if "peak_rss_mb" in row else "-"
        lines.append(f"| {name} | {row['events_per_second']:,.0f} | "
                     f"{row['events_per_cpu_second']:,.0f} | {memory} |")  # fmt: skip
    lines += [
        "",
        f"**(b)/(a) = {r['ratio_b_over_a']:.2f}**; ceiling main thread: "
        f"{a['events_per_main_thread_second']:,.0f} events per CPU-second; simulator alone: "
        f"{r['simulator_only']['events_per_cpu_second']:,.0f} events per CPU-second "
        f"(backfill), {r['simulator_only']['real_time_events_per_cpu_second']:,.0f} (real time)",
        f"--rate {options.rate:g} for {options.rate_seconds:g} s: "
        f"{r['rate_check']['events_per_second']:,.0f} events/s "
        f"({r['rate_error_percent']:+.2f}%)",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
