"""Bulk indexing: `_bulk` requests built from events, and their answers sorted per item.

Documents go to one index per UTC day of the event's own timestamp
(`<prefix>-YYYY.MM.DD`) with `_id = event_id`, written with the `index` action, so a
replayed event overwrites itself instead of duplicating. A `_bulk` request answers
HTTP 200 even when items failed (`"errors": true`), so every item is looked at:
each one is indexed, retried (429, 5xx, rejected execution) or rejected with the
reason OpenSearch gave, for the caller to dead-letter.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson
import structlog
from opensearchpy import OpenSearch
from opensearchpy.exceptions import ConnectionError as OpenSearchConnectionError
from opensearchpy.exceptions import OpenSearchException, SSLError, TransportError

from clickstream.errors import OpenSearchFailure, OpenSearchUnavailable
from clickstream.events import Document, Event
from clickstream.retry import backoff_delay
from clickstream.settings import ConsumerSettings
from clickstream.sinks.opensearch import client as opensearch
from clickstream.sinks.opensearch import refusals

log = structlog.get_logger(__name__)


#: What `BulkIndexer.index` takes: events, events with their JSON, or ready documents.
BulkItem = Event | tuple[Event, bytes] | Document

#: Item-level error types that mean "overloaded, try again" whatever their status.
_RETRIABLE_TYPES = ("rejected_execution_exception", "circuit_breaking_exception")
_NDJSON = {"content-type": "application/x-ndjson"}
#: Only what `classify` reads; a smaller response for OpenSearch to write and us to parse.
_BULK_FILTER = "took,errors,items.*.status,items.*.error.type,items.*.error.reason"


def index_name(prefix: str, event: Event) -> str:
    """The daily index of `event`, by the UTC day of its own timestamp."""
    return daily_index(prefix, event.day)


def daily_index(prefix: str, day: str) -> str:
    """The index of the events of `day` (`YYYY.MM.DD`)."""
    return f"{prefix}-{day}"


def _bulk_lines(items: Sequence[BulkItem], prefix: str) -> list[bytes]:
    """Per item, its action line and document, newline-terminated."""
    out = []
    # The action line up to the id, per day: `{"index":{"_index":"<prefix>-<day>","_id":"`.
    heads: dict[str, bytes] = {}
    for item in items:
        doc = (
            item
            if type(item) is Document
            else (Document.of(item) if isinstance(item, Event) else Document.of(*item))
        )
        event_id, day, source = doc.event_id, doc.day, doc.source
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
    """One failed bulk item: its position in the request, HTTP status, `type: reason`, and
    the error's type alone (empty if OpenSearch gave none)."""

    position: int
    status: int
    reason: str
    kind: str = ""


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
            outcome.rejected.append(ItemError(position, 0, f"malformed bulk item: {item!r:.500}"))
            continue
        if error is None and 200 <= status < 300:
            outcome.ok.append(position)
            continue
        if isinstance(error, Mapping):
            kind = str(error.get("type", "error"))
            reason = f"{kind}: {error.get('reason', '')}"
        else:
            kind, reason = "", f"status {status}: {error}"
        retriable = opensearch.transient(status) or kind.endswith(_RETRIABLE_TYPES)
        (outcome.retriable if retriable else outcome.rejected).append(
            ItemError(position, status, reason, kind)
        )
    return outcome


class Rejected(NamedTuple):
    """An item OpenSearch refused for good, with its position in the batch, the reason and
    the error's type."""

    position: int
    item: BulkItem
    status: int
    reason: str
    kind: str = ""


@dataclass(frozen=True)
class IndexResult:
    """What one `BulkIndexer.index` call did; `indexed + len(rejected)` is the batch size."""

    indexed: int
    rejected: list[Rejected]
    retries: int


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
                    Rejected(
                        pending[e.position], items[pending[e.position]], e.status, e.reason, e.kind
                    )
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
            if opensearch.transient(exc.status_code):
                raise _RetriableError(
                    f"_bulk answered HTTP {exc.status_code}: {exc.error}"
                ) from None
            raise refusals.request_refused(exc) from None
        except OpenSearchException as exc:  # e.g. an answer that is not valid JSON
            raise OpenSearchFailure(f"indexing a batch failed: {exc}") from None
        if not isinstance(response, Mapping):
            raise OpenSearchFailure(f"_bulk answered with something not JSON: {response!r:.200}")
        return response


class _RetriableError(Exception):
    """A whole `_bulk` request failed in a way that may pass on another try."""
