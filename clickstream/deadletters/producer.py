"""The dead-letter producer: sends dead letters and waits for them through broker outages.

Its librdkafka producer never gives up on a letter (no delivery timeout); while the broker
is away the caller's `keep_alive` runs between flushes (the consumer keeps polling, paused,
so that it stays in its group). A letter the broker refuses fails the batch: its offsets
are not committed.

A letter too large to send whole (a poison message of about the size limit, plus our
headers) is sent with its value cut to fit the producer's `message.max.bytes`, and headers
that say so (see `truncation_headers`). Should the broker still refuse it as too large
(the topic's own `max.message.bytes` may be smaller), it is sent again, alone, cut much
shorter each time, down to no value at all: a poison message never stops the consumer.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from clickstream import kafka, logs
from clickstream.deadletters.letter import (
    DeadLetter,
    Headers,
    dead_letter_headers,
    truncation_headers,
)
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
#: librdkafka's default `message.max.bytes`: the largest message a producer sends.
MESSAGE_MAX_BYTES = 1_000_000
#: Bytes of that limit kept for what is counted besides key, value and headers (a record's
#: and a record batch's own fields), so that a letter cut to fit is not refused after all.
SIZE_MARGIN = 1024
#: Per header, bytes counted besides its name and value (lengths, as varints).
HEADER_OVERHEAD = 12
#: A value the broker refused as too large is sent again this many times shorter ...
SHRINK = 16
#: ... and with no value at all once it would be shorter than this.
SMALLEST_CUT = 64
#: Error codes that mean "this message is too large" (from `produce` or a delivery report).
TOO_LARGE_CODES = frozenset({KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.RECORD_LIST_TOO_LARGE})


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


class DeadLetterClient(Producer):
    """librdkafka's producer, knowing the largest message it may send."""

    message_max_bytes: int = MESSAGE_MAX_BYTES


def message_max_bytes(settings: KafkaSettings) -> int:
    """The dead-letter producer's effective `message.max.bytes`: the user's `kafka.extra`,
    else librdkafka's default."""
    value = kafka.client_config(settings, DLQ_PRODUCER_DEFAULTS).get("message.max.bytes")
    try:
        return int(value) if value is not None else MESSAGE_MAX_BYTES
    except ValueError:
        return MESSAGE_MAX_BYTES  # librdkafka refuses it when the producer is built


def make_producer(settings: KafkaSettings, error_cb: Callable[[KafkaError], None]) -> KafkaProducer:
    """The librdkafka producer of the dead letters."""
    client = DeadLetterClient(
        kafka.client_config(settings, DLQ_PRODUCER_DEFAULTS, error_cb=error_cb)
    )
    client.message_max_bytes = message_max_bytes(settings)
    return client


def _too_large(error: KafkaError | KafkaException) -> bool:
    if isinstance(error, KafkaException):
        inner = error.args[0] if error.args else None
        return isinstance(inner, KafkaError) and inner.code() in TOO_LARGE_CODES
    return error.code() in TOO_LARGE_CODES


def _headers_size(headers: Headers) -> int:
    return sum(len(k) + len(v or b"") + HEADER_OVERHEAD for k, v in headers)


@dataclass
class _Outgoing:
    """A dead letter on its way: the value and headers it is sent with, and what the
    broker said of it."""

    letter: DeadLetter
    value: bytes | None
    headers: Headers
    truncated: bool = False
    failure: KafkaError | None = None
    too_large: bool = False

    def cut(self, size: int) -> None:
        """Send at most `size` bytes of the value, with headers saying it was cut."""
        if not self.truncated:
            self.truncated = True
            self.headers = [*self.headers, *truncation_headers(self.letter.message)]
        self.value = (self.letter.message.value() or b"")[: max(size, 0)]

    def on_delivery(self, error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            if error.code() in TOO_LARGE_CODES:
                self.too_large = True
            else:
                self.failure = error


class DeadLetterProducer:
    """Sends dead letters to `topic`, waiting until the broker has every one of them."""

    def __init__(
        self,
        producer: KafkaProducer,
        topic: str,
        outage: Outage,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_bytes: int | None = None,
    ) -> None:
        """`max_bytes` is the producer's `message.max.bytes` (by default what a
        `DeadLetterClient` knows, else librdkafka's default)."""
        self._producer = producer
        self.topic = topic
        self._outage = outage
        self._clock = clock
        known = getattr(producer, "message_max_bytes", MESSAGE_MAX_BYTES)
        self.max_bytes: int = max_bytes or int(known)

    def _prepare(self, letter: DeadLetter, now: dt.datetime) -> _Outgoing:
        """The letter as it is first sent: whole, or cut to fit `max_bytes`."""
        msg = letter.message
        out = _Outgoing(letter, msg.value(), dead_letter_headers(letter, now))
        value, key = msg.value() or b"", msg.key() or b""
        budget = self.max_bytes - SIZE_MARGIN - len(key) - _headers_size(out.headers)
        if len(value) > budget:
            extra = _headers_size(truncation_headers(msg))
            out.cut(budget - extra)
        return out

    def send(self, letters: Sequence[DeadLetter], *, keep_alive: Callable[[], None]) -> None:
        """Send `letters` and wait until all are delivered; `keep_alive` runs between waits.
        A letter too large for the broker is cut shorter until it is taken. Raises
        `KafkaFailure` if the broker refuses one for another reason."""
        now = dt.datetime.now(dt.UTC)
        outgoing = [self._prepare(letter, now) for letter in letters]
        refused = self._deliver(outgoing, keep_alive)
        for out in refused:
            # Alone, so that a refusal is about this letter, not the batch it was sent in.
            while self._deliver([out], keep_alive):
                if out.value == b"":
                    msg = out.letter.message
                    raise KafkaFailure(
                        f"dead-letter topic {self.topic!r} refuses even the headers of the "
                        f"dead letter of {msg.topic()}[{msg.partition()}]@{msg.offset()} "
                        "as too large; offsets not committed",
                        hint="check the topic's max.message.bytes",
                    )
                size = len(out.value or b"") // SHRINK
                out.cut(size if size >= SMALLEST_CUT else 0)
        self._summarise(letters, outgoing)

    def _deliver(
        self, outgoing: list[_Outgoing], keep_alive: Callable[[], None]
    ) -> list[_Outgoing]:
        """Produce `outgoing` and wait for every delivery report; the letters refused as too
        large, to be sent again shorter."""
        topic = self.topic
        for out in outgoing:
            out.too_large, out.failure = False, None
            msg = out.letter.message
            while True:
                try:
                    self._producer.produce(
                        topic,
                        out.value,
                        msg.key(),
                        headers=out.headers,
                        on_delivery=out.on_delivery,
                    )
                except BufferError:  # librdkafka's queue is full: let it drain, then again
                    self._producer.flush(1.0)
                    continue
                except KafkaException as exc:
                    if not _too_large(exc):
                        raise KafkaFailure(
                            f"could not write to dead-letter topic {topic!r}: "
                            f"{kafka.describe(exc)}; offsets not committed"
                        ) from None
                    out.too_large = True
                break
        started = self._clock()
        while True:
            remaining = self._producer.flush(1.0)
            failed = next((out.failure for out in outgoing if out.failure is not None), None)
            if failed is not None:
                raise KafkaFailure(
                    f"could not write to dead-letter topic {topic!r}: {kafka.describe(failed)}; "
                    "offsets not committed"
                )
            if not remaining:
                break
            if self._clock() - started > UNDELIVERED_OUTAGE:
                self._outage.failed(f"{remaining} dead letters not delivered", topic=topic)
            keep_alive()
        return [out for out in outgoing if out.too_large]

    def _summarise(self, letters: Sequence[DeadLetter], outgoing: list[_Outgoing]) -> None:
        topic = self.topic
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
            truncated=sum(out.truncated for out in outgoing),
        )
