"""One batch, start to end: decoded, written to the sink (riding out its outages), the
rest dead-lettered, counted, and its offsets noted for the next commit.

Every message of a batch ends in exactly one of two places: stored by the sink, or in the
dead-letter topic with headers saying why. Only then are its offsets noted; until then a
crash or a revocation replays it, and a replay overwrites itself in the store.

A batch the sink refuses for a reason that is not the events' fault (`SinkRefused`: the
index, its template, a block, a permission) stops the consumer: none of it is noted or
dead-lettered, so that it is read again once the store is fixed.
"""

from __future__ import annotations

import contextlib
import random
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka import Message

from clickstream import logs
from clickstream.consume.decode import decode
from clickstream.consume.offsets import Offsets
from clickstream.deadletters.letter import DeadLetter, ErrorKind
from clickstream.deadletters.producer import DeadLetterProducer
from clickstream.errors import ClickstreamError, KafkaFailure
from clickstream.events import Document
from clickstream.kafka import PartitionKey
from clickstream.retry import Outage, backoff_delay
from clickstream.settings import ConsumerSettings
from clickstream.sinks.base import Sink, SinkRefused, SinkUnavailable, WriteResult
from clickstream.stats import RunClock

log = logs.get("consumer")


@dataclass
class ConsumeStats(RunClock):
    """Counts of one consume run; consumed == indexed + dead_lettered after every batch."""

    consumed: int = 0
    indexed: int = 0
    dead_lettered: int = 0
    retried: int = 0
    batches: int = 0
    abandoned: int = 0

    @property
    def done(self) -> int:
        return self.consumed

    def as_dict(self) -> dict[str, Any]:
        return {
            "consumed": self.consumed,
            "indexed": self.indexed,
            "dead_lettered": self.dead_lettered,
            "retried": self.retried,
            "batches": self.batches,
            "seconds": round(self.elapsed, 3),
            "events_per_second": round(self.rate, 1),
        }


class Abandon(Exception):
    """The in-flight batch is given up uncommitted: a stop was requested or it was revoked."""


class Membership(Protocol):
    """What the consume loop does for a batch while it is handled: it keeps polling, so
    that the consumer stays in its group and sees rebalances and stop requests."""

    #: Partitions of the in-flight batch revoked while it was handled.
    revoked: set[PartitionKey]

    def wait(self, seconds: float, *, revocable: bool = True) -> None:
        """Wait paused, polling; raises `Abandon` on a stop request or (if `revocable`) a
        revocation of the batch's partitions."""
        ...

    def await_write(self, write: Future[WriteResult], abandon: threading.Event) -> WriteResult:
        """Poll while `write` runs in the background; set `abandon` to cut its retries short."""
        ...

    def caught_up(self) -> bool:
        """Whether nothing more is pending after this batch."""
        ...


class BatchHandler:
    """Handles batches for the consume loop: sink, dead letters, offsets, counts."""

    def __init__(
        self,
        sink: Sink,
        dead_letters: DeadLetterProducer,
        offsets: Offsets,
        cfg: ConsumerSettings,
        stats: ConsumeStats,
        *,
        on_batch: Callable[[ConsumeStats], None] | None = None,
        clock: Callable[[], float],
        rng: random.Random | None = None,
    ) -> None:
        self._sink = sink
        self._dead_letters = dead_letters
        self._offsets = offsets
        self._cfg = cfg
        self.stats = stats
        self._on_batch = on_batch
        self._rng = rng or random.Random()
        self.sink_outage = Outage(sink.name, clock=clock)
        # Writing runs in this thread while the loop's reads ahead and keeps polling.
        self._writing = ThreadPoolExecutor(1, thread_name_prefix="clickstream-write")
        self._abandon = threading.Event()

    def handle(self, batch: list[Message], loop: Membership) -> None:
        """Store or dead-letter every message of `batch`, then note its offsets (and commit
        them if due). Raises `Abandon` if the loop gives the batch up meanwhile."""
        documents: list[Document] = []
        sources: list[Message] = []
        letters: list[DeadLetter] = []
        for msg in batch:
            decoded = decode(msg)
            if isinstance(decoded, DeadLetter):
                letters.append(decoded)
            else:
                documents.append(decoded)
                sources.append(msg)
        stored = retries = 0
        if documents:
            try:
                result = self._write(documents, loop)
            except SinkRefused as exc:
                self._refused(batch, exc)
                raise
            stored, retries = result.stored, result.retries
            rejected = ErrorKind.rejected_by(self._sink.name)
            letters.extend(
                DeadLetter(sources[r.position], rejected, r.reason) for r in result.rejected
            )
        if letters:
            self._dead_letters.send(letters, keep_alive=lambda: loop.wait(0.0, revocable=False))
        if stored + len(letters) != len(batch):
            raise KafkaFailure(
                f"batch accounting mismatch: {len(batch)} consumed, {stored} indexed, "
                f"{len(letters)} dead-lettered; offsets not committed"
            )
        self._offsets.handled(batch, loop.revoked)
        if self._offsets.due(caught_up=loop.caught_up()):
            self._offsets.commit()
        self._count(len(batch), stored, len(letters), retries)

    def _refused(self, batch: list[Message], exc: SinkRefused) -> None:
        """The sink refused `batch`: leave it unnoted, and commit what earlier batches earned
        so that only this one and what follows it are read again. The caller stops."""
        log.warning(
            "sink refused the batch; stopping without committing it",
            sink=self._sink.name,
            error_type=type(exc).__name__,
            messages=len(batch),
            first_partition=batch[0].partition(),
            first_offset=batch[0].offset(),
        )
        # A failing commit must not hide the refusal: what it would have committed is
        # replayed, over the same documents.
        with contextlib.suppress(ClickstreamError):
            self._offsets.commit()

    def _count(self, messages: int, stored: int, dead_lettered: int, retries: int) -> None:
        stats = self.stats
        stats.consumed += messages
        stats.indexed += stored
        stats.dead_lettered += dead_lettered
        stats.retried += retries
        stats.batches += 1
        log.info(
            "batch",
            messages=messages,
            indexed=stored,
            dead_lettered=dead_lettered,
            retried=retries,
            total=stats.consumed,
        )
        if self._on_batch is not None:
            self._on_batch(stats)

    def _write(self, documents: list[Document], loop: Membership) -> WriteResult:
        """Write `documents` to the sink, riding out an outage of any length."""
        outage, attempt = self.sink_outage, 0
        while True:
            attempts = 1 if outage.active else None
            self._abandon.clear()
            try:
                result = loop.await_write(
                    self._writing.submit(
                        self._sink.write, documents, wait=self._pause_writing, attempts=attempts
                    ),
                    self._abandon,
                )
            except SinkUnavailable as exc:
                outage.failed(str(exc), pending=len(documents))
                attempt += 1
                self.stats.retried += 1
                cfg = self._cfg
                loop.wait(backoff_delay(attempt, cfg.retry_initial, cfg.retry_max, self._rng))
                continue
            outage.recovered()
            return result

    def _pause_writing(self, seconds: float) -> None:
        """How the sink waits between its attempts: in its thread, and cut short by a stop
        request or a revocation (see `Membership.await_write`)."""
        if self._abandon.wait(seconds):
            raise Abandon("stop requested or partitions revoked")

    def close(self) -> None:
        self._writing.shutdown(wait=False)
