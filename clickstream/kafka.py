"""The Kafka edge shared by produce, consume and setup: clients, topics, errors.

Kafka errors are wrapped where they enter our code so that the error code and
text survive into the one-line message the user sees.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from confluent_kafka import KafkaError, KafkaException, Message
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from clickstream.errors import KafkaFailure, KafkaUnavailable
from clickstream.settings import KafkaSettings

#: How long to wait for the brokers to answer before saying they cannot be reached.
CONNECT_TIMEOUT = 10.0

#: Error codes that mean "cannot reach the brokers now" (worth waiting for).
UNAVAILABLE_CODES = frozenset(
    {
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._TIMED_OUT,
        KafkaError._RESOLVE,
    }
)
#: Error codes of an offset commit that mean "the group coordinator cannot answer now";
#: with the brokers unreachable, these are what a commit retries until they are back.
COMMIT_RETRIABLE_CODES = UNAVAILABLE_CODES | {
    KafkaError._WAIT_COORD,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.REQUEST_TIMED_OUT,
}


class PartitionKey(NamedTuple):
    """One partition of one topic: how the consumer keys whatever it tracks per partition."""

    topic: str
    partition: int

    @classmethod
    def of(cls, message: Message) -> PartitionKey:
        """The partition `message` came from."""
        return cls(message.topic() or "", message.partition() or 0)


def client_config(
    settings: KafkaSettings, defaults: Mapping[str, Any], **callbacks: Any
) -> dict[str, Any]:
    """librdkafka settings for one client, by the one rule every client follows: our
    connection settings, then the role's `defaults`, then the user's `kafka.extra` on top;
    `callbacks` (error_cb, on_commit: code, not settings) are added last."""
    return {**settings.client_config(), **defaults, **settings.extra, **callbacks}


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
    return AdminClient(client_config(settings, {}, error_cb=_silence))


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
