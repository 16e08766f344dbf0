"""The Kafka edge shared by produce, consume and setup: clients, topics, errors.

Kafka errors are wrapped where they enter our code so that the error code and
text survive into the one-line message the user sees.
"""

from __future__ import annotations

import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from confluent_kafka import KafkaError, KafkaException, Message
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from clickstream.errors import KafkaFailure, KafkaRefused, KafkaUnavailable
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


#: librdkafka's words for a connection the broker (or a TLS front) refused to let in: the
#: configuration is wrong (certificates, credentials), retrying will not help.
_REFUSED = re.compile(
    r"SSL handshake failed|certificate verify failed|certificate required|handshake failure"
    r"|SASL authentication (error|failed)|Authentication failed|unsupported SASL mechanism"
    r"|ssl\.ca\.location failed|ssl\.(certificate|key)\.location failed",
    re.IGNORECASE,
)


class _Refusals:
    """The last reason each cluster refused a connection for, as librdkafka reported it to
    a client's error callback; read when a request then fails, to say why."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[str, str] = {}
        self._settings: dict[str, KafkaSettings] = {}

    def watch(self, settings: KafkaSettings) -> None:
        """Remember how a client reaches `settings.bootstrap_servers`, to diagnose it."""
        with self._lock:
            self._settings[settings.bootstrap_servers] = settings

    def note(self, bootstrap: str, error: KafkaError) -> None:
        if error.code() in (KafkaError._SSL, KafkaError._AUTHENTICATION) or _REFUSED.search(
            error.str()
        ):
            with self._lock:
                self._last[bootstrap] = error.str()

    def reason(self, bootstrap: str) -> str | None:
        with self._lock:
            return self._last.get(bootstrap)

    def settings(self, bootstrap: str) -> KafkaSettings | None:
        with self._lock:
            return self._settings.get(bootstrap)


REFUSALS = _Refusals()


def _noting(bootstrap: str, error_cb: Callable[[KafkaError], None]) -> Callable[[KafkaError], None]:
    def on_error(error: KafkaError) -> None:
        REFUSALS.note(bootstrap, error)
        error_cb(error)

    return on_error


def client_config(
    settings: KafkaSettings, defaults: Mapping[str, Any], **callbacks: Any
) -> dict[str, Any]:
    """librdkafka settings for one client, by the one rule every client follows: our
    connection settings, then the role's `defaults`, then the user's `kafka.extra` on top;
    `callbacks` (error_cb, on_commit: code, not settings) are added last. Every client's
    errors are also noted, so that a refused TLS or SASL handshake can be named."""
    error_cb = callbacks.get("error_cb", _silence)
    callbacks = {**callbacks, "error_cb": _noting(settings.bootstrap_servers, error_cb)}
    REFUSALS.watch(settings)
    return {**settings.client_config(), **defaults, **settings.extra, **callbacks}


def refused(bootstrap: str) -> KafkaRefused | None:
    """The error to stop with if the cluster refused our connections (TLS, SASL)."""
    reason = REFUSALS.reason(bootstrap)
    if reason is None:
        return None
    reason = _short(reason)
    settings = REFUSALS.settings(bootstrap)
    if "certificate verify failed" in reason.lower() and settings is not None:
        why = _certificate_problem(settings)
        if why is not None:
            reason = f"certificate verify failed: the broker's certificate {why}"
    return KafkaRefused(
        f"Kafka at {bootstrap} refused the connection: {reason}",
        hint="check kafka.security_protocol, kafka.ssl_ca_file, kafka.ssl_cert_file, "
        "kafka.ssl_key_file and the SASL settings",
    )


def _certificate_problem(settings: KafkaSettings) -> str | None:
    """OpenSSL's own words for why the first bootstrap server's certificate fails (a name
    that does not match, an unknown issuer), which librdkafka's message leaves out: one TLS
    handshake made with the configured CA, as librdkafka makes it."""
    host, _, port = settings.bootstrap_servers.split(",")[0].strip().rpartition(":")
    host = host.strip("[]")
    try:
        ca = str(settings.ssl_ca_file) if settings.ssl_ca_file is not None else None
        context = ssl.create_default_context(cafile=ca)
        with (
            socket.create_connection((host, int(port)), timeout=3) as raw,
            context.wrap_socket(raw, server_hostname=host),
        ):
            return None
    except ssl.SSLCertVerificationError as exc:
        message = str(exc.verify_message or exc)
        if "mismatch" in message.lower():
            return f"does not match {host} ({message.rstrip('.')})"
        return f"is not trusted ({message})"
    except (OSError, ValueError):
        return None


def _short(reason: str) -> str:
    """librdkafka's reason without its `ssl://host:port/id: ` prefix and timing suffix."""
    reason = re.sub(r"^\S+://\S+?: ", "", reason)
    return re.sub(r" \(after \d+ms in state \w+\)$", "", reason)


def describe(error: KafkaError | KafkaException | Exception) -> str:
    """`NAME: text` for a Kafka error, keeping librdkafka's code and message."""
    if isinstance(error, KafkaException) and error.args and isinstance(error.args[0], KafkaError):
        error = error.args[0]
    if isinstance(error, KafkaError):
        return f"{error.name()}: {error.str()}"
    return str(error)


def wrap(
    error: KafkaException, doing: str, bootstrap: str
) -> KafkaUnavailable | KafkaFailure | KafkaRefused:
    """Turn a librdkafka exception into our error, unavailable or not."""
    inner = error.args[0] if error.args and isinstance(error.args[0], KafkaError) else None
    if inner is not None and inner.code() in UNAVAILABLE_CODES:
        refusal = refused(bootstrap)
        if refusal is not None:
            return refusal
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


def topic_partitions(
    client: Any, bootstrap: str, topic: str, *, subscribed: bool = False
) -> int | None:
    """The partition count of `topic`, or None if it does not exist; fails if unreachable,
    and at once, with librdkafka's reason, if the cluster refuses our connections.

    Between attempts the client's `poll` serves the error callbacks that say why a
    connection was refused; not for a `subscribed` consumer, whose poll would take a
    message out of the loop's hands."""
    deadline = time.monotonic() + CONNECT_TIMEOUT
    while True:
        began = time.monotonic()
        try:
            metadata = client.list_topics(timeout=min(1.0, max(deadline - began, 0.1)))
            break
        except KafkaException as exc:
            if not subscribed:
                client.poll(0)  # error callbacks: a refused handshake says why
            refusal = refused(bootstrap)
            if refusal is not None:
                raise refusal from None
            if time.monotonic() >= deadline:
                raise wrap(exc, "reading cluster metadata", bootstrap) from None
            time.sleep(max(0.0, 1.0 - (time.monotonic() - began)))
    found = metadata.topics.get(topic)
    if found is None or found.error is not None:
        return None
    return len(found.partitions)


def require_topic(
    client: Any,
    bootstrap: str,
    topic: str,
    *,
    subscribed: bool = False,
    setup: str = "clickstream setup",
) -> int:
    """The partition count of an existing topic; a clear error, naming the `setup` command
    that creates it, if it is missing."""
    partitions = topic_partitions(client, bootstrap, topic, subscribed=subscribed)
    if partitions is None:
        raise KafkaFailure(
            f"topic {topic!r} does not exist on {bootstrap}",
            hint=f"run `{setup}` to create it",
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
