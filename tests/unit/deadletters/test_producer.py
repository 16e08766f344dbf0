"""The dead-letter producer: letters too large for the broker are cut, never a crash."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from clickstream.deadletters.letter import DeadLetter, ErrorKind
from clickstream.deadletters.producer import (
    MESSAGE_MAX_BYTES,
    DeadLetterProducer,
    message_max_bytes,
)
from clickstream.errors import KafkaFailure
from clickstream.retry import Outage
from clickstream.settings import KafkaSettings
from tests.helpers import make_message

Delivery = Callable[[KafkaError | None, Any], None]


def _size(value: bytes | None, key: bytes | None, headers: list[tuple[str, Any]]) -> int:
    return len(value or b"") + len(key or b"") + sum(len(k) + len(v or b"") for k, v in headers)


@dataclass
class ScriptedProducer:
    """A dead-letter producer's client with a broker behind it that has size limits.

    `client_limit`: what `produce` itself refuses (librdkafka's `message.max.bytes`);
    `broker_limit`: the topic's `max.message.bytes`: a flush containing a message over it
    fails every message of that flush as too large, as a refused record batch does;
    `fail_with`: an error code every delivery report carries.
    """

    client_limit: int = MESSAGE_MAX_BYTES
    broker_limit: int = 10_000_000
    fail_with: int | None = None
    delivered: list[dict[str, Any]] = field(default_factory=list)
    attempts: list[int] = field(default_factory=list)
    _queued: list[tuple[dict[str, Any], Delivery]] = field(default_factory=list)

    def produce(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        *,
        headers: Any = None,
        on_delivery: Any = None,
    ) -> None:
        headers = list(headers or [])
        size = _size(value, key, headers)
        self.attempts.append(size)
        if size > self.client_limit:
            raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
        sent = {"topic": topic, "value": value, "key": key, "headers": dict(headers), "size": size}
        self._queued.append((sent, on_delivery))

    def flush(self, timeout: float) -> int:
        queued, self._queued = self._queued, []
        too_large = any(sent["size"] > self.broker_limit for sent, _ in queued)
        for sent, deliver in queued:
            if self.fail_with is not None:
                deliver(KafkaError(self.fail_with), None)
            elif too_large:
                deliver(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE), None)
            else:
                self.delivered.append(sent)
                deliver(None, None)
        return 0


def _letter(
    value: bytes, offset: int = 0, headers: list[tuple[str, str | bytes | None]] | None = None
) -> DeadLetter:
    return DeadLetter(
        make_message(value, offset=offset, headers=headers), ErrorKind.INVALID_JSON, "not JSON"
    )


def _send(producer: ScriptedProducer, *letters: DeadLetter, max_bytes: int | None = None) -> None:
    sender = DeadLetterProducer(producer, "events.dlq", Outage("kafka"), max_bytes=max_bytes)
    sender.send(letters, keep_alive=lambda: None)


class TestWholeLetters:
    """Letters within the size limit are sent as they came."""

    def test_a_small_letter_is_sent_whole_without_truncation_headers(self):
        """A letter that fits keeps its whole value and gets no truncation headers."""
        producer = ScriptedProducer()
        _send(producer, _letter(b"not json"))
        (sent,) = producer.delivered
        assert sent["value"] == b"not json"
        assert "clickstream.value.truncated" not in sent["headers"]

    def test_other_delivery_errors_still_fail_the_batch(self):
        """A refusal that is not about size fails the batch (its offsets stay uncommitted)."""
        producer = ScriptedProducer(fail_with=KafkaError.TOPIC_AUTHORIZATION_FAILED)
        with pytest.raises(KafkaFailure, match="TOPIC_AUTHORIZATION_FAILED"):
            _send(producer, _letter(b"x"))


class TestOversizedLetters:
    """A letter larger than the producer may send is cut to fit, with headers saying so."""

    def test_a_letter_of_the_size_limit_is_cut_to_fit(self):
        """1,000,000 bytes plus headers would exceed librdkafka's default limit: the value is
        cut so that key, value and headers fit, and produce never raises."""
        value = b"y" * 1_000_000
        producer = ScriptedProducer()
        _send(producer, _letter(value, offset=7))
        (sent,) = producer.delivered
        assert 0 < len(sent["value"]) < len(value)
        assert sent["size"] <= MESSAGE_MAX_BYTES
        assert value.startswith(sent["value"])
        headers = sent["headers"]
        assert headers["clickstream.value.truncated"] == b"true"
        assert headers["clickstream.value.size"] == b"1000000"
        assert headers["clickstream.value.sha256"] == hashlib.sha256(value).hexdigest().encode()
        assert headers["clickstream.source.offset"] == b"7"
        assert producer.attempts == [sent["size"]]

    def test_the_budget_follows_the_producers_limit(self):
        """With a larger `message.max.bytes` the same letter goes whole."""
        value = b"y" * 1_000_000
        producer = ScriptedProducer(client_limit=4_000_000)
        _send(producer, _letter(value), max_bytes=4_000_000)
        assert producer.delivered[0]["value"] == value

    def test_a_letter_refused_by_the_broker_is_sent_again_shorter(self):
        """A topic whose max.message.bytes is below the producer's: the letter is sent again,
        alone and much shorter, until the broker takes it; its batch-mates go whole."""
        value = b"y" * 900_000
        producer = ScriptedProducer(broker_limit=100_000)
        _send(producer, _letter(b"small", offset=1), _letter(value, offset=2))
        by_offset = {s["headers"]["clickstream.source.offset"]: s for s in producer.delivered}
        assert set(by_offset) == {b"1", b"2"}
        assert by_offset[b"1"]["value"] == b"small"
        assert "clickstream.value.truncated" not in by_offset[b"1"]["headers"]
        big = by_offset[b"2"]
        assert big["value"]
        assert big["size"] <= 100_000
        assert big["headers"]["clickstream.value.size"] == b"900000"

    def test_a_letter_produce_refuses_is_cut_shorter(self):
        """A letter `produce` itself refuses as too large (a smaller limit than we were told)
        is cut shorter and sent, without an exception."""
        producer = ScriptedProducer(client_limit=50_000)
        _send(producer, _letter(b"y" * 900_000))
        (sent,) = producer.delivered
        assert sent["size"] <= 50_000
        assert sent["headers"]["clickstream.value.truncated"] == b"true"

    def test_at_worst_only_the_headers_are_sent(self):
        """A broker that takes hardly anything still gets the letter, with an empty value."""
        producer = ScriptedProducer(broker_limit=400)
        _send(producer, _letter(b"y" * 900_000))
        (sent,) = producer.delivered
        assert sent["value"] == b""
        assert sent["headers"]["clickstream.value.size"] == b"900000"

    def test_a_broker_refusing_even_the_headers_fails_the_batch(self):
        """If not even the headers fit, the batch fails with one line (no endless loop)."""
        producer = ScriptedProducer(broker_limit=100)
        with pytest.raises(KafkaFailure, match="refuses even the headers"):
            _send(producer, _letter(b"y" * 900_000))

    def test_a_replayed_cut_letter_keeps_its_first_size_and_hash(self):
        """A cut letter replayed and dead-lettered again says the size and hash of the value
        it first had, not of the cut one."""
        first: list[tuple[str, str | bytes | None]] = [
            ("clickstream.source.topic", b"events"),
            ("clickstream.source.partition", b"0"),
            ("clickstream.source.offset", b"5"),
            ("clickstream.value.truncated", b"true"),
            ("clickstream.value.size", b"1500000"),
            ("clickstream.value.sha256", b"ab" * 32),
        ]
        producer = ScriptedProducer()
        _send(producer, _letter(b"y" * 990_000, headers=first))
        headers = producer.delivered[0]["headers"]
        assert headers["clickstream.value.size"] == b"1500000"
        assert headers["clickstream.value.sha256"] == b"ab" * 32
        assert headers["clickstream.source.offset"] == b"5"


class TestMessageMaxBytes:
    """The limit the budget is derived from: the user's `kafka.extra`, else librdkafka's."""

    def test_librdkafkas_default(self):
        """Without `kafka.extra`, librdkafka's default 1,000,000 bytes."""
        assert message_max_bytes(KafkaSettings()) == 1_000_000

    def test_the_users_setting(self):
        """`kafka.extra` sets the dead-letter producer's limit too."""
        settings = KafkaSettings(extra={"message.max.bytes": "4000000"})
        assert message_max_bytes(settings) == 4_000_000
