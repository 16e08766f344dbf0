"""The subset of the ClickHouse HTTP interface that clickhouse-connect uses, over chdb.

What a request may carry, as a real server reads it:
- the query in the `query` URL parameter, in the body, or begun in the one and continued
  in the other (`INSERT ... FORMAT Native` in the URL or at the head of the body, with the
  data after it); a body compressed as `Content-Encoding` says (lz4, zstd, gzip, deflate);
- `database`, `default_format`, `param_<name>` for `{name:Type}` placeholders, and any
  other URL parameter as a query setting; transport parameters (`session_id`, `query_id`,
  `wait_end_of_query`, ...) are accepted and have no effect here;
- answers: the result in the query's `FORMAT` (TabSeparated by default) with the
  `X-ClickHouse-Format`, `-Timezone`, `-Query-Id` and `-Summary` headers; errors as HTTP 500
  with `X-ClickHouse-Exception-Code` and the engine's `Code: N. DB::Exception: ...` text.

The engine runs one statement at a time: requests are served on threads and take turns.
Responses are never compressed (clients decompress only what `Content-Encoding` names).
"""

from __future__ import annotations

import gzip
import importlib
import json
import re
import socket
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

#: URL parameters that steer the HTTP exchange rather than the query.
TRANSPORT_PARAMS: Final = frozenset(
    {
        "query",
        "database",
        "default_format",
        "user",
        "password",
        "quota_key",
        "session_id",
        "session_timeout",
        "session_check",
        "query_id",
        "compress",
        "decompress",
        "enable_http_compression",
        "http_zlib_compression_level",
        "send_progress_in_http_headers",
        "http_headers_progress_interval_ms",
        "wait_end_of_query",
        "buffer_size",
        "cancel_http_readonly_queries_on_client_close",
        "client_protocol_version",
        "add_http_cors_header",
        "http_native_compression_disable_checksumming_on_decompress",
    }
)
DEFAULT_FORMAT: Final = "TabSeparated"
#: Error codes of the engine, for failures that happen before it runs anything.
UNKNOWN_SETTING: Final = 115
BAD_ARGUMENTS: Final = 36
CANNOT_DECOMPRESS: Final = 271
STD_EXCEPTION: Final = 1001

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_INSERT_HEAD = re.compile(
    rb"^\s*(INSERT\s+INTO\s.*?)\sFORMAT\s+([A-Za-z0-9_]+)[ \t]*(?:\r?\n)?",
    re.IGNORECASE | re.DOTALL,
)
_TRAILING_FORMAT = re.compile(r"\bFORMAT\s+([A-Za-z0-9_]+)\s*;?\s*$", re.IGNORECASE)
_ERROR_CODE = re.compile(r"Code: (\d+)\. ")
_INSERT_HEAD_LIMIT = 64 * 1024  # an INSERT statement longer than this is not ours to parse


class ServerError(Exception):
    """A failed request: the engine's error code and its one-paragraph text."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text

    @classmethod
    def from_engine(cls, exc: BaseException) -> ServerError:
        """The error chdb raised, with its `Code: N.` and text as the engine wrote them."""
        text = str(exc)
        found = _ERROR_CODE.search(text)
        if found is None:
            return cls(STD_EXCEPTION, f"Code: {STD_EXCEPTION}. DB::Exception: {text}")
        return cls(int(found.group(1)), text[found.start() :])


@dataclass(frozen=True)
class Request:
    """What one HTTP request asks of the engine."""

    query: bytes
    database: str | None = None
    default_format: str = DEFAULT_FORMAT
    settings: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)
    query_id: str = ""


@dataclass(frozen=True)
class Answer:
    """What the engine answered: the body, its format and the summary header's figures."""

    body: bytes
    fmt: str
    summary: dict[str, str]


def split_params(
    url_params: list[tuple[str, str]],
) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """URL parameters as (transport, settings, query parameters without `param_`)."""
    transport: dict[str, str] = {}
    settings: dict[str, str] = {}
    params: dict[str, str] = {}
    for name, value in url_params:
        if name.startswith("param_"):
            params[name.removeprefix("param_")] = value
        elif name in TRANSPORT_PARAMS:
            transport[name] = value
        else:
            settings[name] = value
    return transport, settings, params


def decompress(body: bytes, encoding: str | None) -> bytes:
    """`body` as sent before `Content-Encoding` was applied."""
    name = (encoding or "identity").strip().lower()
    try:
        if name in ("", "identity"):
            return body
        if name == "gzip":
            return gzip.decompress(body)
        if name == "deflate":
            return zlib.decompress(body)
        if name == "lz4":
            return _lz4_decompress(body)
        if name == "zstd":
            return _zstd_decompress(body)
    except Exception as exc:  # noqa: BLE001  (each codec raises its own error types)
        raise ServerError(
            CANNOT_DECOMPRESS, f"Code: {CANNOT_DECOMPRESS}. DB::Exception: {name}: {exc}"
        ) from None
    raise ServerError(
        BAD_ARGUMENTS, f"Code: {BAD_ARGUMENTS}. DB::Exception: Unknown Content-Encoding {name}"
    )


def _lz4_decompress(body: bytes) -> bytes:
    """Every LZ4 frame in `body`: clickhouse-connect compresses each insert block as one."""
    frame = importlib.import_module("lz4.frame")  # lz4 comes with clickhouse-connect
    out: list[bytes] = []
    rest = body
    while rest:
        decompressor = frame.LZ4FrameDecompressor()
        out.append(decompressor.decompress(rest))
        if not decompressor.eof:
            raise ValueError("truncated LZ4 frame")
        rest = decompressor.unused_data
    return b"".join(out)


def _zstd_decompress(body: bytes) -> bytes:
    """zstd from the standard library (3.14) or its backport, which clickhouse-connect uses."""
    try:
        zstd = importlib.import_module("compression.zstd")
    except ImportError:
        zstd = importlib.import_module("backports.zstd")
    return bytes(zstd.decompress(body))


def split_insert(query: bytes) -> tuple[str, str, bytes] | None:
    """(statement, format, data) of an `INSERT ... FORMAT F <data>`; None for anything else."""
    head = _INSERT_HEAD.match(query[:_INSERT_HEAD_LIMIT])
    if head is None:
        return None
    return head.group(1).decode(), head.group(2).decode(), query[head.end() :]


def result_format(query: str, default: str) -> str:
    """The format the answer has: the query's trailing `FORMAT` clause, else `default`."""
    found = _TRAILING_FORMAT.search(query)
    return found.group(1) if found else default


def _quote_identifier(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _quote_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class Engine:
    """One chdb connection to a data directory, run one statement at a time.

    Settings and the current database are connection state in chdb, so each request's are
    applied before it runs: only what differs from the previous request, and whatever that
    one set and this one does not is put back to its default.
    """

    def __init__(self, path: str) -> None:
        from chdb.state import sqlitelike  # noqa: PLC0415  (optional extra; 555 MB library)

        self._conn: Any = sqlitelike.Connection(path)  # chdb's API is untyped
        self._lock = threading.Lock()
        self._settings: dict[str, str | None] = {}  # None: unknown after a failed SET
        self._database = ""
        self.timezone = self._text("SELECT timezone()")
        self.version = self._text("SELECT version()")

    def _text(self, sql: str) -> str:
        return bytes(self._conn.query(sql, "TabSeparated").bytes()).decode().strip()

    def close(self) -> None:
        """Close the connection: the engine stops and flushes what it holds."""
        with self._lock:
            self._conn.close()

    def run(self, request: Request) -> Answer:
        """Run `request`; raises `ServerError` with the engine's code and text."""
        with self._lock:
            try:
                self._use(request.database or "default")
                self._apply(request.settings)
                insert = split_insert(request.query)
                if insert is not None:
                    return self._insert(*insert)
                return self._select(request)
            except ServerError:
                raise
            except Exception as exc:  # noqa: BLE001  (chdb raises RuntimeError subclasses)
                raise ServerError.from_engine(exc) from None

    def _use(self, database: str) -> None:
        if database != self._database:
            self._conn.query(f"USE {_quote_identifier(database)}", "TabSeparated")
            self._database = database

    def _apply(self, settings: Mapping[str, str]) -> None:
        for name in settings:
            if not _NAME.match(name):
                raise ServerError(
                    UNKNOWN_SETTING,
                    f"Code: {UNKNOWN_SETTING}. DB::Exception: Unknown setting {name!r}",
                )
        changes = [f"{name} = DEFAULT" for name in self._settings if name not in settings]
        changes += [
            f"{name} = {_quote_string(value)}"
            for name, value in settings.items()
            if self._settings.get(name) != value
        ]
        if not changes:
            return
        try:
            self._conn.query("SET " + ", ".join(changes), "TabSeparated")
        except Exception:
            self._settings = dict.fromkeys({*self._settings, *settings})
            raise
        self._settings = dict(settings)

    def _insert(self, statement: str, fmt: str, data: bytes) -> Answer:
        started = time.perf_counter_ns()
        inserter = self._conn.send_insert(statement, fmt)
        try:
            inserter.append(data)
            written = inserter.finish()
        except BaseException:
            inserter.cancel()
            raise
        summary = {
            "written_rows": str(written.rows_written),
            "written_bytes": str(written.bytes_written),
            "elapsed_ns": str(time.perf_counter_ns() - started),
        }
        return Answer(b"", DEFAULT_FORMAT, summary)

    def _select(self, request: Request) -> Answer:
        sql = request.query.decode()
        params = dict(request.params) or None
        result = self._conn.query(sql, request.default_format, params=params)
        summary = {
            "read_rows": str(result.rows_read()),
            "read_bytes": str(result.bytes_read()),
            "elapsed_ns": str(int(result.elapsed() * 1e9)),
        }
        return Answer(bytes(result.bytes()), result_format(sql, request.default_format), summary)


_CONTENT_TYPES: Final = {
    "TabSeparated": "text/tab-separated-values; charset=UTF-8",
    "TSV": "text/tab-separated-values; charset=UTF-8",
    "JSON": "application/json; charset=UTF-8",
    "JSONEachRow": "application/x-ndjson; charset=UTF-8",
    "CSV": "text/csv; charset=UTF-8",
}


class Handler(BaseHTTPRequestHandler):
    """One HTTP exchange: parse, run on the engine, answer."""

    protocol_version = "HTTP/1.1"  # keep-alive, as clickhouse-connect's pool expects
    server: ClickHouseHTTPServer

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: one line per failed request is written by `_fail`, nothing per success."""

    def _serve(self) -> None:
        url = urlsplit(self.path)
        transport, settings, params = split_params(parse_qsl(url.query, keep_blank_values=True))
        query_id = transport.get("query_id") or str(uuid.uuid4())
        try:
            body = decompress(self._read_body(), self.headers.get("Content-Encoding"))
        except ServerError as exc:
            self._fail(exc, query_id)
            return
        if url.path.rstrip("/") in ("/ping", "") and "query" not in transport and not body:
            self._send(200, b"Ok.\n", {"Content-Type": "text/plain; charset=UTF-8"})
            return
        query = transport["query"].encode() if "query" in transport else b""
        if query and body:
            query += b"\n"
        request = Request(
            query=query + body,
            database=transport.get("database"),
            default_format=transport.get("default_format", DEFAULT_FORMAT),
            settings=settings,
            params=params,
            query_id=query_id,
        )
        try:
            answer = self.server.engine.run(request)
        except ServerError as exc:
            self._fail(exc, query_id)
            return
        headers = {
            "Content-Type": _CONTENT_TYPES.get(answer.fmt, "application/octet-stream"),
            "X-ClickHouse-Format": answer.fmt,
            "X-ClickHouse-Timezone": self.server.engine.timezone,
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Summary": json.dumps(answer.summary),
        }
        self._send(200, answer.body, headers)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _fail(self, error: ServerError, query_id: str) -> None:
        self.server.log(f"query {query_id} failed: {error.text.splitlines()[0]}")
        headers = {
            "Content-Type": "text/plain; charset=UTF-8",
            "X-ClickHouse-Exception-Code": str(error.code),
            "X-ClickHouse-Query-Id": query_id,
        }
        self._send(500, (error.text.rstrip("\n") + "\n").encode(), headers)

    def _send(self, status: int, body: bytes, headers: Mapping[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("X-ClickHouse-Server-Display-Name", "clickstream-chdb")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class ClickHouseHTTPServer(ThreadingHTTPServer):
    """The HTTP server around one `Engine`."""

    daemon_threads = True

    engine: Engine

    def __init__(self, address: tuple[str, int], engine: Engine | None) -> None:
        """Listen at `address`; the engine may be given later, before `serve_forever`."""
        self.address_family = _family(address[0])
        super().__init__(address, Handler)
        if engine is not None:
            self.engine = engine

    def log(self, line: str) -> None:
        """One line to the server's log (its stderr)."""
        print(line, file=sys.stderr, flush=True)


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET
