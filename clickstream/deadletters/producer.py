"""The dead-letter producer: sends dead letters and waits for them through broker outages.

Its librdkafka producer never gives up on a letter (no delivery timeout); while the broker
is away the caller's `keep_alive` runs between flushes (the consumer keeps polling, paused,
so that it stays in its group). A letter the broker refuses fails the batch: its offsets
are not committed.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from confluent_kafka import KafkaError, Message, Producer

from clickstream import kafka, logs
from clickstream.deadletters.letter import DeadLetter, dead_letter_headers
from clickstream.errors import KafkaFailure
from clickstream.retry import Outage
from clickstream.settings import KafkaSettings

log = logs.get("consumer")

#: librdkafka settings for the dead-letter producer: it waits out broker outages instead of
#: failing the letters (0 = no delivery timeout); the consumer stays paused meanwhile.
DLQ_PRODUCER_DEFAULTS: dict[str, Any] = {
    "enable.idempotence": True,
    "linger.ms": 5,
    "message.timeout.ms": 0,
}
#: After how long undelivered letters count as a Kafka outage.
UNDELIVERED_OUTAGE = 5.0


class KafkaProducer(Protocol):
    """What the dead-letter producer uses of `confluent_kafka.Producer`."""

    def produce(
        self,
        topic: str,
        value: bytes | None = ...,
        key: bytes | None = ...,
        *,
        headers: Any = ...,
        on_delivery: Any = ...,
    ) -> None: ...

    def flush(self, timeout: float) -> int: ...


def make_producer(settings: KafkaSettings, error_cb: Callable[[KafkaError], None]) -> KafkaProducer:
    """The librdkafka producer of the dead letters."""
    return Producer(kafka.client_config(settings, DLQ_PRODUCER_DEFAULTS, error_cb=error_cb))


class DeadLetterProducer:
    """Sends dead letters to `topic`, waiting until the broker has every one of them."""

    def __init__(
        self,
        producer: KafkaProducer,
        topic: str,
        outage: Outage,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._producer = producer
        self.topic = topic
        self._outage = outage
        self._clock = clock
        self._failures: list[str] = []

    def _on_delivery(self, error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            self._failures.append(kafka.describe(error))

    def send(self, letters: Sequence[DeadLetter], *, keep_alive: Callable[[], None]) -> None:
        """Send `letters` and wait until all are delivered; `keep_alive` runs between waits.
        Raises `KafkaFailure` if the broker refuses one."""
        now = dt.datetime.now(dt.UTC)
        topic = self.topic
        self._failures.clear()
        for letter in letters:
            msg = letter.message
            self._producer.produce(
                topic,
                msg.value(),
                msg.key(),
                headers=dead_letter_headers(letter, now),
                on_delivery=self._on_delivery,
            )
        started = self._clock()
        while True:
            remaining = self._producer.flush(1.0)
            if self._failures:
                raise KafkaFailure(
                    f"could not write to dead-letter topic {topic!r}: {self._failures[0]}; "
                    "offsets not committed"
                )
            if not remaining:
                break
            if self._clock() - started > UNDELIVERED_OUTAGE:
                self._outage.failed(f"{remaining} dead letters not delivered", topic=topic)
            keep_alive()
        kinds: dict[str, int] = {}
        for letter in letters:
            kinds[letter.kind] = kinds.get(letter.kind, 0) + 1
        first = letters[0]
        log.warning(
            "dead-lettered",
            topic=topic,
            count=len(letters),
            kinds=kinds,
            first_reason=first.reason[:200],
            first_partition=first.message.partition(),
            first_offset=first.message.offset(),
        )
