"""OpenSearch side of the pipeline: index template, bulk requests and their per-item results.

Documents go to one index per UTC day of the event's own timestamp
(`<prefix>-YYYY.MM.DD`) with `_id = event_id`, written with the `index` action, so a
replayed event overwrites itself instead of duplicating. A `_bulk` request answers
HTTP 200 even when items failed (`"errors": true`), so every item is looked at:
each one is indexed, retried (429, 5xx, rejected execution) or rejected with the
reason OpenSearch gave, for the caller to dead-letter.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypedDict

import orjson
import structlog
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

from clickstream.errors import ConfigError, OpenSearchFailure, OpenSearchUnavailable
from clickstream.events import SCHEMA_VERSION, Event
from clickstream.settings import ConsumerSettings, OpenSearchSettings

log = structlog.get_logger(__name__)


class Document(NamedTuple):
    """An event ready to index: its id, its UTC day (`YYYY.MM.DD`, which names its daily
    index) and its JSON source on one line."""

    event_id: str
    day: str
    source: bytes

    @classmethod
    def of(cls, event: Event, source: bytes | None = None) -> Document:
        """`event` with `source` (e.g. the Kafka message it was validated from, which saves
        serializing it again) or, if that is missing or spans lines, its compact JSON."""
        if source is None or b"\n" in source or b"\r" in source:
            # A pretty-printed document would break the newline-delimited body.
            source = event.to_json()
        return cls(str(event.event_id), event.day, source)


#: What `BulkIndexer.index` takes: events, events with their JSON, or ready documents.
BulkItem = Event | tuple[Event, bytes] | Document

#: Item-level error types that mean "overloaded, try again" whatever their status.
_RETRIABLE_TYPES = ("rejected_execution_exception", "circuit_breaking_exception")
_NDJSON = {"content-type": "application/x-ndjson"}
#: Only what `classify` reads; a smaller response for OpenSearch to write and us to parse.
_BULK_FILTER = "took,errors,items.*.status,items.*.error.type,items.*.error.reason"


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


def index_name(prefix: str, event: Event) -> str:
    """The daily index of `event`, by the UTC day of its own timestamp."""
    return daily_index(prefix, event.day)


def daily_index(prefix: str, day: str) -> str:
    """The index of the events of `day` (`YYYY.MM.DD`)."""
    return f"{prefix}-{day}"


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
    with translate_errors(f"reading index template {prefix}"):
        try:
            stored = client.transport.perform_request("GET", f"/_index_template/{prefix}")
        except NotFoundError:
            stored = {}
    found = [t["index_template"] for t in stored.get("index_templates", []) if t["name"] == prefix]
    if found and _comparable(found[0]) == _comparable(ours):
        return False
    with translate_errors(f"writing index template {prefix}"):
        client.transport.perform_request("PUT", f"/_index_template/{prefix}", body=ours)
    return True


def _bulk_lines(items: Sequence[BulkItem], prefix: str) -> list[bytes]:
    """Per item, its action line and document, newline-terminated."""
    out = []
    # The action line up to the id, per day: `{"index":{"_index":"<prefix>-<day>","_id":"`.
    heads: dict[str, bytes] = {}
    for item in items:
        if type(item) is Document:
            event_id, day, source = item
        else:
            event_id, day, source = (
                Document.of(item) if isinstance(item, Event) else Document.of(*item)
            )
        head = heads.get(day)
        if head is None:
            name = orjson.dumps(daily_index(prefix, day))
            head = heads[day] = b'{"index":{"_index":%s,"_id":"' % name
        out.append(b'%s%s"}}\n%s\n' % (head, event_id.encode(), source))
    return out


def build_bulk_body(items: Sequence[BulkItem], prefix: str) -> bytes:
    """The NDJSON `_bulk` body indexing `items` under `_id = event_id` in their daily indices."""
    return b"".join(_bulk_lines(items, prefix))


@dataclass(frozen=True)
class ItemError:
    """One failed bulk item: its position in the request, HTTP status and `type: reason`."""

    position: int
    status: int
    reason: str


@dataclass(frozen=True)
class BulkOutcome:
    """A `_bulk` response sorted by item: indexed, worth retrying, or rejected for good."""

    ok: list[int] = field(default_factory=list)
    retriable: list[ItemError] = field(default_factory=list)
    rejected: list[ItemError] = field(default_factory=list)


def classify(response: Mapping[str, Any], expected: int | None = None) -> BulkOutcome:
    """Sort every item of a `_bulk` response; `expected` is how many actions were sent."""
    items = response.get("items")
    if not isinstance(items, list) or (expected is not None and len(items) != expected):
        got = len(items) if isinstance(items, list) else "no"
        raise OpenSearchFailure(f"_bulk answered with {got} items for {expected} actions")
    outcome = BulkOutcome()
    ok = outcome.ok
    for position, item in enumerate(items):
        # Fast path for the usual item, `{"index": {"status": 201}}`, checked exactly.
        if type(item) is dict and len(item) == 1:
            (first,) = item.values()
            if type(first) is dict and "error" not in first:
                code = first.get("status")
                if type(code) is int and 200 <= code < 300:
                    ok.append(position)
                    continue
        result: Mapping[str, Any] = {}
        if isinstance(item, Mapping) and item:
            result = next(iter(item.values()))
        status = result.get("status")
        error = result.get("error")
        if not isinstance(status, int):
            outcome.rejected.append(ItemError(position, 0, f"malformed bulk item: {item!r}"))
            continue
        if error is None and 200 <= status < 300:
            outcome.ok.append(position)
            continue
        if isinstance(error, Mapping):
            kind = str(error.get("type", "error"))
            reason = f"{kind}: {error.get('reason', '')}"
        else:
            kind, reason = "", f"status {status}: {error}"
        retriable = _transient(status) or kind.endswith(_RETRIABLE_TYPES)
        (outcome.retriable if retriable else outcome.rejected).append(
            ItemError(position, status, reason)
        )
    return outcome


class Rejected(NamedTuple):
    """An item OpenSearch refused for good, with its position in the batch and the reason."""

    position: int
    item: BulkItem
    status: int
    reason: str


@dataclass(frozen=True)
class IndexResult:
    """What one `BulkIndexer.index` call did; `indexed + len(rejected)` is the batch size."""

    indexed: int
    rejected: list[Rejected]
    retries: int


def backoff_delay(attempt: int, initial: float, maximum: float, rng: random.Random) -> float:
    """Delay before retry `attempt` (1, 2, ...): exponential, capped, half of it jittered."""
    ceiling = min(maximum, initial * 2 ** (attempt - 1))
    return rng.uniform(ceiling / 2, ceiling)


class BulkIndexer:
    """Indexes batches of events with one `_bulk` request each, retrying what may succeed."""

    def __init__(
        self,
        client: OpenSearch,
        prefix: str,
        retry: ConsumerSettings | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.retry = retry or ConsumerSettings()
        self._sleep = sleep
        self._rng = rng or random.Random()

    def index(
        self,
        items: Sequence[BulkItem],
        *,
        wait: Callable[[float], None] | None = None,
        attempts: int | None = None,
    ) -> IndexResult:
        """Index `items`; raises `OpenSearchUnavailable` if some still fail after every attempt.

        `wait` replaces the sleep between attempts (the consumer keeps its group membership
        alive while it waits); `attempts` overrides `retry_attempts` for this call.
        """
        sleep = wait or self._sleep
        most = attempts or self.retry.retry_attempts
        lines = _bulk_lines(items, self.prefix)
        pending = list(range(len(lines)))
        indexed, retries = 0, 0
        rejected: list[Rejected] = []
        attempt = 0
        while pending:
            attempt += 1
            body = b"".join([lines[p] for p in pending])
            try:
                response = self._send(body)
            except _RetriableError as exc:
                problem = str(exc)
            else:
                outcome = classify(response, expected=len(pending))
                indexed += len(outcome.ok)
                rejected.extend(
                    Rejected(pending[e.position], items[pending[e.position]], e.status, e.reason)
                    for e in outcome.rejected
                )
                if not outcome.retriable:
                    break
                problem = f"{len(outcome.retriable)} failed, e.g. {outcome.retriable[0].reason}"
                pending = [pending[e.position] for e in outcome.retriable]
            if attempt >= most:
                raise OpenSearchUnavailable(
                    f"OpenSearch still failing after {attempt} attempts, {len(pending)} of "
                    f"{len(lines)} documents not indexed: {problem}",
                    hint="check the cluster's health and load; the batch will be retried",
                )
            delay = backoff_delay(
                attempt, self.retry.retry_initial, self.retry.retry_max, self._rng
            )
            log.warning(
                "opensearch bulk retry",
                attempt=attempt,
                pending=len(pending),
                delay=round(delay, 3),
                problem=problem,
            )
            retries += 1
            sleep(delay)
        rejected.sort(key=lambda r: r.position)
        return IndexResult(indexed=indexed, rejected=rejected, retries=retries)

    def _send(self, body: bytes) -> Mapping[str, Any]:
        try:
            response = self.client.transport.perform_request(
                "POST", "/_bulk", params={"filter_path": _BULK_FILTER}, body=body, headers=_NDJSON
            )
        except SSLError as exc:
            raise OpenSearchUnavailable(
                f"TLS handshake with OpenSearch failed: {exc.info}",
                hint="check opensearch.url, opensearch.ca_file and opensearch.verify_certs",
            ) from None
        except OpenSearchConnectionError as exc:
            raise _RetriableError(f"cannot reach OpenSearch: {exc.info}") from None
        except TransportError as exc:
            if _transient(exc.status_code):
                raise _RetriableError(
                    f"_bulk answered HTTP {exc.status_code}: {exc.error}"
                ) from None
            raise _failure("indexing a batch", exc) from None
        except OpenSearchException as exc:  # e.g. an answer that is not valid JSON
            raise OpenSearchFailure(f"indexing a batch failed: {exc}") from None
        if not isinstance(response, Mapping):
            raise OpenSearchFailure(f"_bulk answered with something not JSON: {response!r:.200}")
        return response


class _RetriableError(Exception):
    """A whole `_bulk` request failed in a way that may pass on another try."""


def _transient(status: object) -> bool:
    """Whether an HTTP status says "busy or broken for now": 429 or any 5xx."""
    return isinstance(status, int) and (status == 429 or status >= 500)


def _failure(what: str, exc: TransportError) -> OpenSearchFailure:
    if isinstance(exc, AuthenticationException | AuthorizationException):
        hint = "check opensearch.username, opensearch.password and the user's permissions"
    elif exc.status_code == 413:
        hint = "lower consumer.batch_size"
    else:
        hint = None
    info = exc.info.get("error", exc.error) if isinstance(exc.info, dict) else exc.error
    if isinstance(info, Mapping):
        info = f"{info.get('type')}: {info.get('reason')}"
    return OpenSearchFailure(f"{what} failed: HTTP {exc.status_code} {info}", hint=hint)


@contextmanager
def translate_errors(what: str) -> Iterator[None]:
    """Turn the client's exceptions into ours, saying what we were doing."""
    try:
        yield
    except OpenSearchConnectionError as exc:
        raise OpenSearchUnavailable(
            f"{what}: cannot reach OpenSearch ({exc.info})",
            hint="is it running? check opensearch.url, ca_file and verify_certs",
        ) from None
    except TransportError as exc:
        if _transient(exc.status_code):
            raise OpenSearchUnavailable(
                f"{what}: OpenSearch answered HTTP {exc.status_code}"
            ) from None
        raise _failure(what, exc) from None
    except OpenSearchException as exc:
        raise OpenSearchFailure(f"{what} failed: {exc}") from None


def check(client: OpenSearch, url: str) -> None:
    """Fail fast, with a clear message, if OpenSearch cannot be reached or refuses us."""
    with translate_errors(f"connecting to OpenSearch at {url}"):
        client.cluster.health()


def count(client: OpenSearch, prefix: str) -> int:
    """How many events the `<prefix>-*` indices hold, after a refresh."""
    pattern = f"{prefix}-*"
    with translate_errors(f"counting {pattern}"):
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
    with translate_errors(f"summarising {pattern}"):
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
