"""The Kafka edge: a refused connection is named with librdkafka's reason."""

from __future__ import annotations

import uuid

from confluent_kafka import KafkaError, KafkaException

from clickstream import kafka
from clickstream.errors import ExitCode, KafkaRefused, KafkaUnavailable

HANDSHAKE = (
    "ssl://127.0.0.1:9093/bootstrap: SSL handshake failed: error:0A000086:SSL routines::"
    "certificate verify failed: broker certificate could not be verified "
    "(after 3ms in state SSL_HANDSHAKE)"
)


def _bootstrap() -> str:
    return f"{uuid.uuid4().hex}.invalid:9093"


class TestRefusals:
    """A TLS or SASL refusal seen by any client turns 'unreachable' into its real reason."""

    def test_a_refused_handshake_is_a_configuration_error(self):
        """After an SSL error, a failed request says why, as a configuration error (exit 2)."""
        where = _bootstrap()
        kafka.REFUSALS.note(where, KafkaError(KafkaError._SSL, HANDSHAKE))
        found = kafka.wrap(
            KafkaException(KafkaError(KafkaError._TRANSPORT, "Broker transport failure")),
            "reading cluster metadata",
            where,
        )
        assert isinstance(found, KafkaRefused)
        assert found.exit_code == ExitCode.USAGE
        assert str(found).startswith(f"Kafka at {where} refused the connection: SSL handshake")
        assert "ssl://" not in str(found)
        assert "after 3ms" not in str(found)

    def test_sasl_failures_are_refusals(self):
        """A SASL authentication failure is noted like a TLS one."""
        where = _bootstrap()
        sasl = KafkaError(KafkaError._AUTHENTICATION, "SASL authentication error: bad user")
        kafka.REFUSALS.note(where, sasl)
        assert "SASL authentication error" in str(kafka.refused(where))

    def test_a_refused_connect_stays_unavailable(self):
        """Connection refused (nothing listening) is not a refusal: still exit 3."""
        where = _bootstrap()
        refused_connect = KafkaError(KafkaError._TRANSPORT, f"{where}: Connection refused")
        kafka.REFUSALS.note(where, refused_connect)
        found = kafka.wrap(KafkaException(refused_connect), "reading cluster metadata", where)
        assert isinstance(found, KafkaUnavailable)
        assert found.exit_code == ExitCode.UNAVAILABLE

    def test_refusals_are_per_cluster(self):
        """A refusal by one cluster says nothing about another."""
        one, other = _bootstrap(), _bootstrap()
        kafka.REFUSALS.note(one, KafkaError(KafkaError._SSL, HANDSHAKE))
        assert kafka.refused(other) is None
