"""What can go wrong with ClickHouse, as the consumer must tell it apart.

The errors themselves live in `clickstream.errors` with the other services': an
unavailable server is a `SinkUnavailable` (retry the batch later, paused), a refusal about
the store (its tables, their types, a permission) a `SinkRefused` (stop, commit nothing).
Here: which server error codes mean which.
"""

from __future__ import annotations

from typing import Final

from clickstream.errors import (
    ClickHouseBusy,
    ClickHouseFailure,
    ClickHouseForbidden,
    ClickHouseRefused,
    ClickHouseUnavailable,
    TablesMissing,
)

__all__ = [
    "FORBIDDEN_CODES",
    "MISSING_CODES",
    "RETRYABLE_CODES",
    "ClickHouseBusy",
    "ClickHouseFailure",
    "ClickHouseForbidden",
    "ClickHouseRefused",
    "ClickHouseUnavailable",
    "TablesMissing",
]

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
#: Codes that say our credentials or their grants are wrong.
FORBIDDEN_CODES: Final = frozenset(
    {
        192,  # UNKNOWN_USER
        194,  # REQUIRED_PASSWORD
        195,  # IP_ADDRESS_NOT_ALLOWED
        497,  # ACCESS_DENIED
        516,  # AUTHENTICATION_FAILED
    }
)
#: Codes that say a database or table we write to is not there.
MISSING_CODES: Final = frozenset(
    {
        60,  # UNKNOWN_TABLE
        81,  # UNKNOWN_DATABASE
    }
)
