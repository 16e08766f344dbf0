"""What can go wrong with ClickHouse, as the consumer must tell it apart.

Kept here until the merger moves them to `clickstream.errors` with the other services'.
"""

from __future__ import annotations

from typing import Final

from clickstream.errors import ClickstreamError, ExitCode

#: Server error codes that say "not now" rather than "never": overload, limits, timeouts,
#: a replica or Keeper away. Everything else the server says is about the request.
RETRYABLE_CODES: Final = frozenset(
    {
        159,  # TIMEOUT_EXCEEDED
        202,  # TOO_MANY_SIMULTANEOUS_QUERIES
        209,  # SOCKET_TIMEOUT
        210,  # NETWORK_ERROR
        225,  # NO_ZOOKEEPER
        236,  # ABORTED
        241,  # MEMORY_LIMIT_EXCEEDED
        242,  # TABLE_IS_READ_ONLY (a replica lost Keeper)
        252,  # TOO_MANY_PARTS
        279,  # ALL_CONNECTION_TRIES_FAILED
        394,  # QUERY_WAS_CANCELLED
        999,  # KEEPER_EXCEPTION
    }
)


class ClickHouseUnavailable(ClickstreamError):
    """ClickHouse cannot be reached or is overloaded: retry the same batch later."""

    exit_code = ExitCode.UNAVAILABLE


class ClickHouseFailure(ClickstreamError):
    """ClickHouse refused the request in a way retrying will not fix (schema, types, access)."""
