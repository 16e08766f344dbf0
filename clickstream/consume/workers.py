"""`consume --workers N`: N consumer processes in one group, started and stopped together.

Each worker is a separate process (its own GIL, its own librdkafka client) running the same
consumer; the group spreads the topic's partitions over them. A stop request (Ctrl-C,
SIGTERM) is passed to every worker, each finishes or abandons its batch safely, and the
command reports their counts added up. If one worker fails, the others are stopped too.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.process
import os
import queue
import signal
import threading
import time
from collections.abc import Sequence
from typing import Any

from clickstream import logs
from clickstream.consume.loop import ConsumeStats, EventConsumer
from clickstream.errors import ClickstreamError, ExitCode
from clickstream.settings import Settings
from clickstream.sinks.base import SinkFactory

log = logs.get("workers")

#: How long stopped workers get to finish their batch before they are terminated.
STOP_GRACE = 60.0
_COUNTS = ("consumed", "indexed", "dead_lettered", "retried", "batches", "abandoned")


class WorkerFailed(ClickstreamError):
    """A worker process failed; its own error says why."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = ExitCode(exit_code) if exit_code in set(ExitCode) else ExitCode.ERROR


def _work(
    number: int,
    settings: dict[str, Any],
    open_sink: SinkFactory,
    until_idle: float | None,
    results: multiprocessing.Queue[tuple[int, str, Any]],
) -> None:
    """One worker: consume until stopped (SIGINT/SIGTERM) or idle; report counts or error."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda _signum, _frame: stop.set())
    ours = Settings(**settings)
    extra = ours.kafka.extra
    if "group.instance.id" in extra:  # static members need names of their own
        named = {**extra, "group.instance.id": f"{extra['group.instance.id']}-{number}"}
        ours = ours.model_copy(update={"kafka": ours.kafka.model_copy(update={"extra": named})})
    logs.configure(ours.log_level)
    logs.get("workers").info("worker started", worker=number)
    try:
        sink = open_sink(ours)
        stats = EventConsumer(ours, sink).run(until_idle=until_idle, stop=stop)
    except ClickstreamError as exc:
        results.put((number, "error", (str(exc), int(exc.exit_code))))
        return
    results.put((number, "stats", {name: getattr(stats, name) for name in _COUNTS}))


def run(
    settings: Settings,
    open_sink: SinkFactory,
    *,
    workers: int,
    until_idle: float | None = None,
    stop: threading.Event | None = None,
) -> ConsumeStats:
    """Run `workers` consumer processes in the configured group until stopped or idle;
    each writes to the sink `open_sink` builds (a module-level function: it is pickled)."""
    stop = stop or threading.Event()
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue[tuple[int, str, Any]] = context.Queue()
    data = settings.model_dump()
    procs = [
        context.Process(
            target=_work,
            args=(n, data, open_sink, until_idle, results),
            name=f"clickstream-worker-{n}",
        )
        for n in range(workers)
    ]
    total = ConsumeStats()
    for proc in procs:
        proc.start()
    log.info("workers started", workers=workers, pids=[p.pid for p in procs])
    failure: tuple[str, int] | None = None
    reported: set[int] = set()

    def handle(number: int, kind: str, value: Any) -> None:
        nonlocal failure
        reported.add(number)
        if kind == "error":
            failure = failure or (f"worker {number}: {value[0]}", int(value[1]))
        else:
            _add(total, value)

    stopping_since: float | None = None
    while len(reported) < workers:
        if (stop.is_set() or failure is not None) and stopping_since is None:
            stopping_since = time.monotonic()
            _signal_all(procs, signal.SIGTERM)
        if stopping_since is not None and time.monotonic() - stopping_since > STOP_GRACE:
            log.error("workers did not stop in time; killing them")
            _signal_all(procs, signal.SIGKILL)
            break
        try:
            handle(*results.get(timeout=0.2))
            continue
        except queue.Empty:
            pass
        for number, proc in enumerate(procs):
            if number in reported or proc.is_alive():
                continue
            # A worker puts its result before it exits: it is in the queue by now, if any.
            with contextlib.suppress(queue.Empty):
                while number not in reported:
                    handle(*results.get(timeout=0.5))
            if number not in reported:
                reported.add(number)
                failure = failure or (
                    f"worker {number} exited with code {proc.exitcode} without a result",
                    int(ExitCode.ERROR),
                )
    for proc in procs:
        proc.join(timeout=STOP_GRACE)
    total.finished = time.monotonic()
    if failure is not None:
        raise WorkerFailed(*failure)
    return total


def _add(total: ConsumeStats, counts: dict[str, int]) -> None:
    for name in _COUNTS:
        setattr(total, name, getattr(total, name) + counts[name])


def _signal_all(procs: Sequence[multiprocessing.process.BaseProcess], sig: int) -> None:
    for proc in procs:
        if proc.pid is not None and proc.is_alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, sig)
