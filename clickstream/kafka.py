"""The Kafka edge shared by produce, consume and setup: clients, topics, errors.

Kafka errors are wrapped where they enter our code so that the error code and
text survive into the one-line message the user sees.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from clickstream.errors import KafkaFailure, KafkaUnavailable
from clickstream.settings import KafkaSettings

#: How long to wait for the brokers to answer before saying they cannot be reached.
CONNECT_TIMEOUT = 10.0

#: Error codes that mean "cannot reach the brokers now" (worth waiting for).
UNAVAILABLE_CODES = {
    KafkaError._TRANSPORT,
    KafkaError._ALL_BROKERS_DOWN,
    KafkaError._TIMED_OUT,
    KafkaError._RESOLVE,
}


def describe(error: KafkaError | KafkaException | Exception) -> str:
    """`NAME: text` for a Kafka error, keeping librdkafka's code and message."""
    if isinstance(error, KafkaException) and error.args and isinstance(error.args[0], KafkaError):
        error = error.args[0]
    if isinstance(error, KafkaError):
        return f"{error.name()}: {error.str()}"
    return str(error)


def wrap(error: KafkaException, doing: str, bootstrap: str) -> KafkaUnavailable | KafkaFailure:
    """Turn a librdkafka exception into our error, unavailable or not."""
    inner = error.args[0] if error.args and isinstance(error.args[0], KafkaError) else None
    if inner is not None and inner.code() in UNAVAILABLE_CODES:
        return KafkaUnavailable(
            f"cannot reach Kafka at {bootstrap} while {doing}: {describe(inner)}",
            hint="is the broker running? `clickstream stack up` starts a local one",
        )
    return KafkaFailure(f"Kafka refused {doing}: {describe(error)}")


def _silence(_error: KafkaError) -> None:
    """Connection errors are reported by our own checks, once, not by librdkafka's logger."""


def admin(settings: KafkaSettings) -> AdminClient:
    """An admin client for the configured cluster."""
    conf: dict[str, Any] = {**settings.client_config(), "error_cb": _silence}
    return AdminClient(conf)


def topic_partitions(client: Any, bootstrap: str, topic: str) -> int | None:
    """The partition count of `topic`, or None if it does not exist; fails if unreachable."""
    try:
        metadata = client.list_topics(timeout=CONNECT_TIMEOUT)
    except KafkaException as exc:
        raise wrap(exc, "reading cluster metadata", bootstrap) from None
    found = metadata.topics.get(topic)
    if found is None or found.error is not None:
        return None
    return len(found.partitions)


def require_topic(client: Any, bootstrap: str, topic: str) -> int:
    """The partition count of an existing topic; a clear error if it is missing."""
    partitions = topic_partitions(client, bootstrap, topic)
    if partitions is None:
        raise KafkaFailure(
            f"topic {topic!r} does not exist on {bootstrap}",
            hint="run `clickstream setup` to create it",
        )
    return partitions


@dataclass(frozen=True)
class TopicResult:
    """What `ensure_topic` found or did."""

    name: str
    partitions: int
    created: bool


def ensure_topic(settings: KafkaSettings, name: str, partitions: int) -> TopicResult:
    """Create `name` with `partitions` unless it exists; never changes an existing topic."""
    client = admin(settings)
    existing = topic_partitions(client, settings.bootstrap_servers, name)
    if existing is not None:
        return TopicResult(name, existing, created=False)
    new = NewTopic(name, num_partitions=partitions, replication_factor=settings.replication_factor)
    future = client.create_topics([new], operation_timeout=CONNECT_TIMEOUT)[name]
    try:
        future.result(timeout=CONNECT_TIMEOUT)
    except KafkaException as exc:
        inner = exc.args[0] if exc.args else None
        if isinstance(inner, KafkaError) and inner.code() == KafkaError.TOPIC_ALREADY_EXISTS:
            # Someone created it between our look and our request: fine.
            existing = topic_partitions(client, settings.bootstrap_servers, name)
            return TopicResult(name, existing or partitions, created=False)
        raise wrap(exc, f"creating topic {name!r}", settings.bootstrap_servers) from None
    return TopicResult(name, partitions, created=True)
