"""A local HTTP(S) server standing in for OpenSearch Dashboards' saved-objects API: it
records every request and answers what the test tells it to."""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Seen:
    """One request the server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeDashboards:
    """What the server answers next, and every request it saw."""

    url: str
    status: int = 200
    answer: Any = None
    raw: bytes | None = None
    seen: list[Seen] = field(default_factory=list)


@contextmanager
def serve_fake_dashboards(tls: ssl.SSLContext | None = None) -> Iterator[FakeDashboards]:
    """A local HTTP(S) server standing in for OpenSearch Dashboards."""
    state = FakeDashboards(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", 0))
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            state.seen.append(Seen("POST", self.path, headers, body))
            raw = state.raw if state.raw is not None else json.dumps(state.answer).encode()
            self.send_response(state.status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *_args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    scheme = "http"
    if tls is not None:
        httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
        scheme = "https"
    state.url = f"{scheme}://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
