"""Connecting to ClickHouse: one client library, clickhouse-connect, for every deployment.

The local server (`clickstream.stack.chserver`), a self-hosted server and ClickHouse Cloud
differ only in host, port, TLS and credentials.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from clickstream.sinks.clickhouse.errors import (
    FORBIDDEN_CODES,
    MISSING_CODES,
    RETRYABLE_CODES,
    ClickHouseBusy,
    ClickHouseFailure,
    ClickHouseForbidden,
    ClickHouseRefused,
    ClickHouseUnavailable,
    TablesMissing,
)

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

INSTALL_HINT = "pip install 'clickstream[clickhouse]'"
SETUP_HINT = "run `clickstream setup --sink clickhouse`"


def translate(exc: BaseException, doing: str) -> ClickHouseUnavailable | ClickHouseFailure:
    """`exc` from clickhouse-connect as the one-line error the user sees: unavailable (retry
    later), or refused for the store's sake (missing tables, credentials, types: stop)."""
    from clickhouse_connect.driver.exceptions import (  # noqa: PLC0415  (optional extra)
        DatabaseError,
        OperationalError,
    )

    code = getattr(exc, "code", None)
    text = " ".join(str(exc).split())
    first = text.split(" (for url ")[0]
    if isinstance(exc, OperationalError):
        return ClickHouseUnavailable(f"ClickHouse unavailable while {doing}: {first}")
    if code in RETRYABLE_CODES or (
        isinstance(exc, DatabaseError) and code is None and "HTTP status 5" in text
    ):
        return ClickHouseBusy(f"ClickHouse unavailable while {doing}: {first}")
    if code in FORBIDDEN_CODES:
        return ClickHouseForbidden(f"ClickHouse refused our credentials {doing}: {first}")
    if code in MISSING_CODES:
        return TablesMissing(f"ClickHouse refused {doing}: {first}", hint=SETUP_HINT)
    return ClickHouseRefused(f"ClickHouse refused {doing}: {first}")


def connect(
    host: str = "127.0.0.1",
    port: int = 8123,
    *,
    username: str = "default",
    password: str = "",
    secure: bool = False,
    database: str | None = None,
    **options: Any,
) -> Client:
    """A clickhouse-connect client; raises `ClickHouseUnavailable` if nothing answers."""
    try:
        import clickhouse_connect  # noqa: PLC0415  (optional extra, imported only when used)
    except ImportError:
        raise ClickHouseFailure("clickhouse-connect is not installed", hint=INSTALL_HINT) from None
    try:
        return clickhouse_connect.get_client(
            host=host,
            port=port,
            username=username,
            password=password,
            secure=secure,
            database=database,
            **options,
        )
    except Exception as exc:  # noqa: BLE001  (every clickhouse-connect error is translated)
        raise translate(exc, f"connecting to {host}:{port}") from None
