"""One error hierarchy; `cli.py` is the one place these become exit codes."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes of the `clickstream` command."""

    OK = 0
    ERROR = 1
    USAGE = 2
    UNAVAILABLE = 3
    INTERRUPTED = 130


class ClickstreamError(Exception):
    """An expected failure, shown to the user as one line without a traceback."""

    exit_code: ExitCode = ExitCode.ERROR

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if self.hint is None else f"{self.message} ({self.hint})"


class ConfigError(ClickstreamError):
    """The configuration is invalid or a file it names cannot be read."""

    exit_code = ExitCode.USAGE


class KafkaUnavailable(ClickstreamError):
    """The Kafka brokers cannot be reached or refused a request."""

    exit_code = ExitCode.UNAVAILABLE


class KafkaFailure(ClickstreamError):
    """Kafka answered with an error that retrying will not fix."""


class KafkaRefused(ClickstreamError):
    """The cluster refused our connections: a TLS certificate or SASL credentials are wrong."""

    exit_code = ExitCode.USAGE


class SinkUnavailable(ClickstreamError):
    """A sink's store cannot take the batch now: retry the whole batch later, paused."""

    exit_code = ExitCode.UNAVAILABLE


class OpenSearchUnavailable(SinkUnavailable):
    """OpenSearch cannot be reached, or keeps failing after retries."""


class OpenSearchFailure(ClickstreamError):
    """OpenSearch rejected a request in a way that retrying will not fix."""


class OpenSearchTlsFailure(OpenSearchFailure):
    """The TLS handshake with OpenSearch failed: a certificate or CA setting is wrong."""

    exit_code = ExitCode.USAGE


class NotOpenSearch(OpenSearchFailure):
    """The configured URL answers, but not as OpenSearch does (another web server)."""

    exit_code = ExitCode.USAGE


class StackError(ClickstreamError):
    """The local stack could not be started, stopped or inspected."""


class DashboardsError(ClickstreamError):
    """OpenSearch Dashboards rejected a saved-objects request."""


class DashboardsUnavailable(DashboardsError):
    """OpenSearch Dashboards cannot be reached, or failed on its side (HTTP 5xx)."""

    exit_code = ExitCode.UNAVAILABLE


class Interrupted(ClickstreamError):
    """The user pressed Ctrl-C (or sent SIGINT) where no graceful stop was possible."""

    exit_code = ExitCode.INTERRUPTED


class MemberFenced(KafkaFailure):
    """Another consumer took this one's `group.instance.id`: two consumers share an id."""

    exit_code = ExitCode.USAGE


class GroupStalled(KafkaFailure):
    """`--until-idle` cannot report success: no partitions came, or nobody reads them."""


class SinkRefused(ClickstreamError):
    """A sink's store refuses the batch for a reason that is not the events' fault (the
    index, its template, a block, a permission): stop, commit nothing, dead-letter nothing;
    the events stay in Kafka until the store is fixed."""


class OpenSearchRefused(SinkRefused, OpenSearchFailure):
    """OpenSearch refuses a batch because of its indices, templates or cluster, not the
    events."""


class OpenSearchForbidden(OpenSearchRefused):
    """OpenSearch refuses our credentials or their permissions: the configuration's fault."""

    exit_code = ExitCode.USAGE


class TemplateMissing(OpenSearchRefused):
    """The index template the daily indices need is not there: `clickstream setup` makes it."""

    exit_code = ExitCode.USAGE


class ClickHouseUnavailable(SinkUnavailable):
    """ClickHouse cannot be reached or is overloaded: retry the same batch later."""


class ClickHouseBusy(ClickHouseUnavailable):
    """ClickHouse answered "not now" (overload, limits, a timeout on its side): the sink
    retries the batch itself before it gives up to the consumer."""


class ClickHouseFailure(ClickstreamError):
    """ClickHouse refused a request in a way retrying will not fix."""


class ClickHouseRefused(SinkRefused, ClickHouseFailure):
    """ClickHouse refuses a batch because of its tables, their types or the server, not the
    events: stop, commit nothing."""


class ClickHouseForbidden(ClickHouseRefused):
    """ClickHouse refuses our credentials or their grants: the configuration's fault."""

    exit_code = ExitCode.USAGE


class TablesMissing(ClickHouseRefused):
    """The ClickHouse tables are not there: `clickstream setup --sink clickhouse` makes them."""

    exit_code = ExitCode.USAGE
