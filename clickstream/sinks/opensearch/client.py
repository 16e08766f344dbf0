"""The OpenSearch client and what goes with it: the index template, our errors for the
client's, and the counts and summary that `status` and the demo show.

Bulk indexing, the hot path of `consume`, is in `clickstream.sinks.opensearch.bulk`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypedDict

import orjson
from opensearchpy import JSONSerializer, OpenSearch
from opensearchpy.exceptions import (
    AuthenticationException,
    AuthorizationException,
    NotFoundError,
    OpenSearchException,
    SerializationError,
    SSLError,
    TransportError,
)
from opensearchpy.exceptions import ConnectionError as OpenSearchConnectionError

from clickstream.errors import (
    ConfigError,
    NotOpenSearch,
    OpenSearchFailure,
    OpenSearchForbidden,
    OpenSearchTlsFailure,
    OpenSearchUnavailable,
    TemplateMissing,
)
from clickstream.events import FIELDS_SINCE, SCHEMA_VERSION
from clickstream.settings import OpenSearchSettings


class _Orjson(JSONSerializer):
    """The client's JSON parsing, by orjson: a `_bulk` answer has an item per document."""

    def loads(self, s: str) -> Any:
        try:
            return orjson.loads(s)
        except orjson.JSONDecodeError as exc:
            raise SerializationError(s, exc) from None


def make_client(settings: OpenSearchSettings) -> OpenSearch:
    """An OpenSearch client for `settings`; it never retries by itself (`BulkIndexer` does)."""
    if (settings.username is None) != (settings.password is None):
        raise ConfigError("opensearch.username and opensearch.password must be set together")
    if settings.ca_file is not None and not settings.ca_file.is_file():
        raise ConfigError(f"OpenSearch CA file {settings.ca_file} does not exist or is not a file")
    # The client logs a WARNING for every failed request; we report failures ourselves.
    logging.getLogger("opensearch").setLevel(logging.ERROR)
    auth = None
    if settings.username is not None and settings.password is not None:
        auth = (settings.username, settings.password.get_secret_value())
    return OpenSearch(
        hosts=[settings.url],
        http_auth=auth,
        verify_certs=settings.verify_certs,
        ca_certs=str(settings.ca_file) if settings.ca_file else None,
        ssl_show_warn=False,
        timeout=settings.timeout,
        max_retries=0,
        retry_on_timeout=False,
        serializer=_Orjson(),
    )


def _text(ignore_above: int) -> dict[str, Any]:
    """Full-text field with an exact `keyword` sub-field for terms aggregations."""
    return {
        "type": "text",
        "fields": {"keyword": {"type": "keyword", "ignore_above": ignore_above}},
    }


def index_template(prefix: str) -> dict[str, Any]:
    """The composable index template (`PUT _index_template/<prefix>`) for `<prefix>-*`."""
    keyword = {"type": "keyword"}
    return {
        "index_patterns": [f"{prefix}-*"],
        # Overlapping templates may not share a priority; a longer prefix is more specific,
        # so it wins, and two overlapping `<prefix>-*` patterns never have equal lengths.
        "priority": 100 + len(prefix),
        "version": SCHEMA_VERSION,
        "_meta": {"managed_by": "clickstream", "schema_version": SCHEMA_VERSION},
        "template": {
            "settings": {"number_of_shards": 1},
            "mappings": {
                # strict: events are validated against the model (extra="forbid") before they
                # get here, so an unknown field is a bug or a schema mismatch. Rejecting it
                # (the item is dead-lettered with OpenSearch's reason) is loud; `false` would
                # keep it in _source unsearchable and unnoticed. A new schema version ships a
                # new template, which `ensure_template` installs for the next daily index.
                "dynamic": "strict",
                "properties": {
                    "schema_version": {"type": "short"},
                    "event_id": keyword,
                    "event_type": keyword,
                    "timestamp": {"type": "date", "format": "strict_date_optional_time"},
                    "user_id": keyword,
                    "session_id": keyword,
                    "article_id": keyword,
                    "article_title": _text(300),
                    "category": keyword,
                    "device_type": keyword,
                    "user_agent": _text(512),
                    "ip": {"type": "ip"},
                    "country": keyword,
                    "referrer": keyword,
                    # Comments are read and searched, never grouped: no keyword sub-field.
                    "comment_text": {"type": "text"},
                    # Since schema version 2; absent from version 1 documents.
                    "session_seq": {"type": "integer"},
                },
            },
        },
    }


def _canonical(value: Any) -> Any:
    """`value` as OpenSearch stores it back: scalars as strings, booleans lower case."""
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _flat_settings(settings: Mapping[str, Any], path: str = "") -> dict[str, Any]:
    """Settings flattened, without the `index.` prefix OpenSearch adds when storing them."""
    out: dict[str, Any] = {}
    for key, value in settings.items():
        name = f"{path}{key}"
        if isinstance(value, Mapping):
            out.update(_flat_settings(value, f"{name}."))
        else:
            out[name.removeprefix("index.")] = _canonical(value)
    return out


def _comparable(body: Mapping[str, Any]) -> dict[str, Any]:
    template = body.get("template") or {}
    return {
        "index_patterns": _canonical(body.get("index_patterns", [])),
        "composed_of": _canonical(body.get("composed_of", [])),
        "priority": _canonical(body.get("priority")),
        "version": _canonical(body.get("version")),
        "_meta": _canonical(body.get("_meta", {})),
        "mappings": _canonical(template.get("mappings", {})),
        "settings": _flat_settings(template.get("settings", {})),
        "aliases": _canonical(template.get("aliases", {})),
    }


def ensure_template(client: OpenSearch, prefix: str) -> bool:
    """Install our index template; False if the stored one already equals it."""
    ours = index_template(prefix)
    with translate_errors(f"reading index template {prefix}", client):
        try:
            stored = client.transport.perform_request("GET", f"/_index_template/{prefix}")
        except NotFoundError:
            stored = {}
    found = [t["index_template"] for t in stored.get("index_templates", []) if t["name"] == prefix]
    if found and _comparable(found[0]) == _comparable(ours):
        return False
    with translate_errors(f"writing index template {prefix}", client):
        client.transport.perform_request("PUT", f"/_index_template/{prefix}", body=ours)
    # The template shapes the next daily indices; today's (and older ones) gain the fields
    # the later schema versions added, or their events would be refused by a strict mapping.
    # Adding a field is always allowed, and putting one an index has is a no-op.
    properties = ours["template"]["mappings"]["properties"]
    added = {name: properties[name] for name in FIELDS_SINCE}
    with translate_errors(f"adding new fields to the indices {prefix}-*", client):
        client.transport.perform_request(
            "PUT",
            f"/{prefix}-*/_mapping",
            params={"allow_no_indices": "true"},
            body={"properties": added},
        )
    return True


def require_template(client: OpenSearch, prefix: str, doing: str | None = None) -> None:
    """Fail with `TemplateMissing` unless the index template `prefix` exists."""
    with translate_errors(f"reading index template {prefix}", client):
        try:
            client.transport.perform_request("GET", f"/_index_template/{prefix}")
        except NotFoundError:
            pass
        else:
            return
    while_ = f" (while {doing}; nothing committed or dead-lettered)" if doing else ""
    raise TemplateMissing(f"index template {prefix} is missing: run `clickstream setup`{while_}")


def transient(status: object) -> bool:
    """Whether an HTTP status says "busy or broken for now": 429 or any 5xx."""
    return isinstance(status, int) and (status == 429 or status >= 500)


def url_of(client: OpenSearch) -> str:
    """The URL `client` talks to (without credentials), for messages."""
    hosts = getattr(getattr(client, "transport", None), "hosts", None) or [{}]
    host = hosts[0]
    scheme = "https" if host.get("use_ssl") or host.get("scheme") == "https" else "http"
    name = str(host.get("host", "?"))
    name = f"[{name}]" if ":" in name else name
    return f"{scheme}://{name}:{host.get('port', '?')}{host.get('url_prefix', '')}"


#: An HTML page's title, the only part of one worth a message.
_TITLE = re.compile(r"<title>\s*(.*?)\s*</title>", re.IGNORECASE | re.DOTALL)


def _answer(exc: TransportError) -> tuple[str, bool]:
    """A short reason from an error answer, and whether it came from OpenSearch (JSON with
    an `error`), never the body of an HTML page."""
    info = exc.info
    if isinstance(info, Mapping) and "error" in info:
        error = info["error"]
        if isinstance(error, Mapping):
            return f"{error.get('type')}: {error.get('reason')}"[:500], True
        return str(error)[:500], True
    text = info if isinstance(info, str) else str(exc.error)
    title = _TITLE.search(text)
    if title is not None:
        return f"an HTML page titled {title[1]!r}", False
    if "<" in text and ">" in text:
        return "an HTML page", False
    return " ".join(text.split())[:200] or "no reason given", isinstance(info, Mapping)


def failure(what: str, exc: TransportError, url: str = "OpenSearch") -> OpenSearchFailure:
    """Our error for a request refused: credentials and permissions are configuration
    (exit 2), and so is a URL that answers like another web server; never an HTML body."""
    reason, from_opensearch = _answer(exc)
    status = exc.status_code
    if status == 401 or isinstance(exc, AuthenticationException):
        return OpenSearchForbidden(
            f"{what}: OpenSearch at {url} refused the credentials: authentication failed "
            f"(HTTP 401)",
            hint="check opensearch.username and opensearch.password",
        )
    if status == 403 or isinstance(exc, AuthorizationException):
        return OpenSearchForbidden(
            f"{what}: OpenSearch at {url} denied the request: not permitted (HTTP 403: {reason})",
            hint="give the user the permissions `clickstream` needs on its indices and templates",
        )
    if not from_opensearch:
        return NotOpenSearch(
            f"{what}: the server at {url} is not OpenSearch: it answered HTTP {status} with "
            f"{reason}",
            hint="check opensearch.url",
        )
    hint = "lower consumer.batch_size" if status == 413 else None
    return OpenSearchFailure(f"{what} failed: HTTP {status} {reason}", hint=hint)


def _connect_reason(exc: OpenSearchConnectionError) -> str:
    """Why a connection failed, in a few words (urllib3's own are long)."""
    text = str(exc.info)
    for needle, said in (
        ("Connection refused", "connection refused"),
        ("Name or service not known", "unknown host name"),
        ("nodename nor servname", "unknown host name"),
        ("timed out", "timed out"),
        ("Connection reset", "connection reset"),
        ("No route to host", "no route to host"),
    ):
        if needle in text:
            return said
    return " ".join(text.split())[:200]


def _tls_reason(exc: OpenSearchConnectionError) -> str:
    """OpenSSL's reason from a TLS failure, without urllib3's wrapping."""
    text = str(exc.info)
    found = re.search(r"certificate verify failed: ([^(]+?)\s*(\(_ssl|\)|$)", text)
    if found:
        return f"certificate verify failed: {found[1].rstrip('. ')}"
    found = re.search(r"\[SSL: [A-Z_]+\] ([^(]+?)\s*\(_ssl", text)
    return found[1] if found else " ".join(text.split())[:200]


@contextmanager
def translate_errors(what: str, client: OpenSearch | None = None) -> Iterator[None]:
    """Turn the client's exceptions into ours, saying what we were doing, where."""
    url = url_of(client) if client is not None else "OpenSearch"
    try:
        yield
    except SSLError as exc:
        raise OpenSearchTlsFailure(
            f"{what}: TLS with OpenSearch at {url} failed: {_tls_reason(exc)}",
            hint="check opensearch.url, opensearch.ca_file and opensearch.verify_certs",
        ) from None
    except OpenSearchConnectionError as exc:
        raise OpenSearchUnavailable(
            f"{what}: cannot reach OpenSearch at {url}: {_connect_reason(exc)}",
            hint="is it running? check opensearch.url",
        ) from None
    except TransportError as exc:
        if transient(exc.status_code):
            raise OpenSearchUnavailable(
                f"{what}: OpenSearch at {url} answered HTTP {exc.status_code}"
            ) from None
        raise failure(what, exc, url) from None
    except OpenSearchException as exc:
        raise OpenSearchFailure(f"{what} failed: {exc}") from None


def check(client: OpenSearch, url: str) -> None:
    """Fail fast, with a clear message, if OpenSearch cannot be reached or refuses us."""
    with translate_errors(f"connecting to OpenSearch at {url}", client):
        client.cluster.health()


def count(client: OpenSearch, prefix: str) -> int:
    """How many events the `<prefix>-*` indices hold, after a refresh."""
    pattern = f"{prefix}-*"
    with translate_errors(f"counting {pattern}", client):
        client.indices.refresh(index=pattern)
        return int(client.count(index=pattern)["count"])


class Summary(TypedDict):
    """What the demo prints: totals by event type, category, device, and the busiest users."""

    total: int
    by_event_type: dict[str, int]
    by_category: dict[str, int]
    by_device_type: dict[str, int]
    top_users: dict[str, int]


def summary(client: OpenSearch, prefix: str) -> Summary:
    """Event counts over `<prefix>-*` by type, category and device, and the top 10 users."""
    pattern = f"{prefix}-*"
    aggs = {
        "by_event_type": {"terms": {"field": "event_type", "size": 20}},
        "by_category": {"terms": {"field": "category", "size": 50}},
        "by_device_type": {"terms": {"field": "device_type", "size": 10}},
        "top_users": {"terms": {"field": "user_id", "size": 10}},
    }
    body = {"size": 0, "track_total_hits": True, "aggs": aggs}
    with translate_errors(f"summarising {pattern}", client):
        client.indices.refresh(index=pattern)
        response = client.search(index=pattern, body=body)
    found = response.get("aggregations", {})

    def buckets(name: str) -> dict[str, int]:
        return {str(b["key"]): int(b["doc_count"]) for b in found.get(name, {}).get("buckets", [])}

    return Summary(
        total=int(response["hits"]["total"]["value"]),
        by_event_type=buckets("by_event_type"),
        by_category=buckets("by_category"),
        by_device_type=buckets("by_device_type"),
        top_users=buckets("top_users"),
    )
