"""Bulk indexing without a server: daily indices, the `_bulk` body, per-item results,
retries and their backoff."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from opensearchpy.exceptions import ConnectionError as OpenSearchConnectionError
from opensearchpy.exceptions import ConnectionTimeout, SSLError, TransportError

from clickstream.errors import OpenSearchFailure, OpenSearchUnavailable
from clickstream.events import Event, EventType
from clickstream.retry import backoff_delay
from clickstream.settings import ConsumerSettings
from clickstream.sinks.opensearch.bulk import (
    BulkIndexer,
    build_bulk_body,
    classify,
    index_name,
)

PREFIX = "test-events"
T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
_ids = random.Random(7)


def make_event(
    timestamp: dt.datetime = T0, event_type: EventType = EventType.PAGE_VIEW, **fields: Any
) -> Event:
    """A valid event of `event_type`; article and comment fields only where they belong."""
    values: dict[str, Any] = {
        "event_id": uuid.UUID(int=_ids.getrandbits(128)),
        "event_type": event_type,
        "timestamp": timestamp,
        "user_id": "user-0001",
        "session_id": uuid.UUID(int=_ids.getrandbits(128)),
        "device_type": "desktop",
        "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0",
        "ip": "203.0.113.7",
        "country": "NL",
        "referrer": "https://www.example.org/",
    }
    if event_type in (EventType.PAGE_VIEW, EventType.LIKE, EventType.COMMENT, EventType.SHARE):
        values |= {"article_id": "art-42", "article_title": "Tulips bloom", "category": "nature"}
    if event_type is EventType.COMMENT:
        values["comment_text"] = "Lovely!\nReally."
    values |= fields
    return Event(**values)


def make_events(n: int) -> list[Event]:
    """`n` valid events a second apart."""
    return [make_event(T0 + dt.timedelta(seconds=i)) for i in range(n)]


_ERRORS = {
    400: ("mapper_parsing_exception", "failed to parse field [ip] of type [ip]"),
    429: ("es_rejected_execution_exception", "rejected execution of coordinating operation"),
    503: ("unavailable_shards_exception", "primary shard is not active"),
}


def bulk_response(statuses: list[int]) -> dict[str, Any]:
    """A `_bulk` response with one `index` item per status, errors where status >= 300."""
    items = []
    for status in statuses:
        item: dict[str, Any] = {"status": status}
        if status >= 300:
            kind, reason = _ERRORS.get(status, ("some_exception", "went wrong"))
            item["error"] = {"type": kind, "reason": reason}
        items.append({"index": item})
    return {"took": 3, "errors": any(s >= 300 for s in statuses), "items": items}


def sent_ids(body: bytes) -> list[str]:
    """The `_id` of every action line of a bulk body."""
    return [orjson.loads(line)["index"]["_id"] for line in body.splitlines()[::2]]


#: One scripted answer: raise this, or the statuses to give the items sent (by their ids).
Step = Exception | Callable[[list[str]], list[int]]


class FakeClient:
    """Stands in for `OpenSearch`: answers `_bulk` requests from a script, records them."""

    def __init__(self, *steps: Step) -> None:
        self.steps = list(steps)
        self.bodies: list[bytes] = []
        self.transport = self

    def perform_request(self, method: str, url: str, **kwargs: Any) -> Any:
        assert (method, url) == ("POST", "/_bulk")
        body = kwargs["body"]
        self.bodies.append(body)
        step = self.steps.pop(0)
        if isinstance(step, Exception):
            raise step
        return bulk_response(step(sent_ids(body)))


def all_ok(ids: list[str]) -> list[int]:
    """Every item indexed."""
    return [201] * len(ids)


def status_for(failing: dict[str, int]) -> Callable[[list[str]], list[int]]:
    """Items whose id is in `failing` get that status, the others 201."""
    return lambda ids: [failing.get(i, 201) for i in ids]


def indexer(client: FakeClient, attempts: int = 4) -> tuple[BulkIndexer, list[float]]:
    """A `BulkIndexer` over `client` that records its sleeps instead of sleeping."""
    slept: list[float] = []
    retry = ConsumerSettings(retry_initial=0.1, retry_max=1.0, retry_attempts=attempts)
    bulk = BulkIndexer(client, PREFIX, retry, sleep=slept.append, rng=random.Random(1))  # type: ignore[arg-type]
    return bulk, slept


class TestIndexName:
    def test_last_millisecond_and_midnight_land_in_different_indices(self):
        """23:59:59.999Z belongs to its day, 00:00:00.000Z to the next one."""
        late = make_event(dt.datetime(2026, 3, 1, 23, 59, 59, 999000, tzinfo=dt.UTC))
        midnight = make_event(dt.datetime(2026, 3, 2, tzinfo=dt.UTC))
        assert index_name(PREFIX, late) == "test-events-2026.03.01"
        assert index_name(PREFIX, midnight) == "test-events-2026.03.02"

    def test_day_is_the_utc_day(self):
        """An event at 01:30+02:00 on March 2nd is 23:30Z on March 1st."""
        event = make_event(
            dt.datetime(2026, 3, 2, 1, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))
        )
        assert index_name(PREFIX, event) == "test-events-2026.03.01"


class TestBuildBulkBody:
    def test_is_ndjson_with_event_id_and_round_trips(self):
        """One index action with `_id = event_id` per event, then the event, newline-ended."""
        events = [make_event(event_type=t) for t in EventType]
        body = build_bulk_body(events, PREFIX)
        assert body.endswith(b"\n")
        lines = body.split(b"\n")[:-1]
        assert len(lines) == 2 * len(events)
        for event, action, doc in zip(events, lines[::2], lines[1::2], strict=True):
            assert orjson.loads(action) == {
                "index": {"_index": index_name(PREFIX, event), "_id": str(event.event_id)}
            }
            assert Event.model_validate(orjson.loads(doc)) == event

    def test_uses_pre_serialized_documents(self):
        """A (event, bytes) item sends those bytes as the document."""
        event = make_event()
        doc = event.to_json()
        assert build_bulk_body([(event, doc)], PREFIX).split(b"\n")[1] == doc

    def test_multi_line_document_is_reserialized(self):
        """A pretty-printed document cannot break the newline-delimited body."""
        event = make_event()
        pretty = orjson.dumps(event.to_dict(), option=orjson.OPT_INDENT_2)
        body = build_bulk_body([(event, pretty)], PREFIX)
        assert body.count(b"\n") == 2
        assert Event.from_json(body.split(b"\n")[1]) == event

    def test_empty_batch_is_empty_body(self):
        """No events, no bytes."""
        assert build_bulk_body([], PREFIX) == b""


class TestClassify:
    def test_mixed_statuses(self):
        """201/200 are ok, 429/503 retriable, 400 rejected with `type: reason`."""
        outcome = classify(bulk_response([201, 200, 429, 503, 400]), expected=5)
        assert outcome.ok == [0, 1]
        assert [(e.position, e.status) for e in outcome.retriable] == [(2, 429), (3, 503)]
        assert [(e.position, e.status) for e in outcome.rejected] == [(4, 400)]
        assert outcome.rejected[0].reason == (
            "mapper_parsing_exception: failed to parse field [ip] of type [ip]"
        )

    def test_items_are_checked_even_without_the_errors_flag(self):
        """A failed item counts even if the response says `errors: false`."""
        response = bulk_response([201, 400])
        response["errors"] = False
        assert [e.position for e in classify(response).rejected] == [1]

    def test_rejected_execution_is_retriable_by_type(self):
        """An item refused for load is retried whatever its status says."""
        item = {"status": 400, "error": {"type": "rejected_execution_exception", "reason": "busy"}}
        outcome = classify({"errors": True, "items": [{"index": item}]})
        assert [e.position for e in outcome.retriable] == [0]

    def test_item_count_mismatch_is_a_failure(self):
        """Fewer items than actions sent is never taken as success."""
        with pytest.raises(OpenSearchFailure, match="2 items for 3 actions"):
            classify(bulk_response([201, 201]), expected=3)


class TestBulkIndexer:
    def test_all_indexed_in_one_request(self):
        """A clean batch is one request, no retries, no sleeping."""
        client = FakeClient(all_ok)
        bulk, slept = indexer(client)
        result = bulk.index(make_events(5))
        assert (result.indexed, result.rejected, result.retries) == (5, [], 0)
        assert len(client.bodies) == 1
        assert slept == []

    def test_retries_only_the_429_items(self):
        """Items answered 429 are sent again, alone, after a backoff, then succeed."""
        events = make_events(4)
        busy = {str(events[1].event_id): 429, str(events[3].event_id): 429}
        client = FakeClient(status_for(busy), all_ok)
        bulk, slept = indexer(client)
        result = bulk.index(events)
        assert (result.indexed, result.rejected, result.retries) == (4, [], 1)
        assert sent_ids(client.bodies[1]) == [str(events[1].event_id), str(events[3].event_id)]
        assert len(slept) == 1

    def test_rejects_400_items_with_reason(self):
        """A 400 item is reported with its event and OpenSearch's reason, never resent."""
        events = make_events(3)
        client = FakeClient(status_for({str(events[2].event_id): 400}))
        bulk, _ = indexer(client)
        result = bulk.index(events)
        assert result.indexed == 2
        assert [(r.position, r.item, r.status) for r in result.rejected] == [(2, events[2], 400)]
        assert result.rejected[0].reason.startswith("mapper_parsing_exception: ")
        assert len(client.bodies) == 1

    def test_positions_survive_retries(self):
        """A rejection on a retry still names the item's place in the original batch."""
        events = make_events(3)
        first, last = str(events[0].event_id), str(events[2].event_id)
        client = FakeClient(status_for({first: 503, last: 503}), status_for({last: 400}))
        bulk, _ = indexer(client)
        result = bulk.index(events)
        assert result.indexed == 2
        assert [(r.position, r.item) for r in result.rejected] == [(2, events[2])]

    def test_raises_after_attempts_are_exhausted(self):
        """Items still failing after the last attempt raise instead of being dropped."""
        client = FakeClient(*[lambda ids: [429] * len(ids)] * 3)
        bulk, slept = indexer(client, attempts=3)
        with pytest.raises(OpenSearchUnavailable, match="after 3 attempts, 2 of 2 documents"):
            bulk.index(make_events(2))
        assert len(client.bodies) == 3
        assert len(slept) == 2

    def test_retries_connection_errors_and_timeouts(self):
        """A refused connection or a timeout is retried with the whole batch."""
        refused = OpenSearchConnectionError("N/A", "refused", OSError("refused"))
        timeout = ConnectionTimeout("TIMEOUT", "timed out", TimeoutError())
        client = FakeClient(refused, timeout, all_ok)
        bulk, slept = indexer(client)
        result = bulk.index(make_events(3))
        assert (result.indexed, result.retries) == (3, 2)
        assert len(slept) == 2
        assert client.bodies[0] == client.bodies[2]

    def test_retries_http_429_and_5xx_of_the_whole_request(self):
        """A request answered 429 or 502 is sent again."""
        client = FakeClient(TransportError(429, "too_many"), TransportError(502, "bad"), all_ok)
        bulk, _ = indexer(client)
        assert bulk.index(make_events(2)).retries == 2

    def test_auth_failure_is_not_retried(self):
        """HTTP 401 fails at once with a hint about the credentials."""
        client = FakeClient(TransportError(401, "security_exception", {"error": "no"}))
        bulk, slept = indexer(client)
        with pytest.raises(OpenSearchFailure, match="HTTP 401"):
            bulk.index(make_events(1))
        assert slept == []

    def test_tls_failure_is_not_retried(self):
        """A certificate problem fails at once: waiting will not fix it."""
        client = FakeClient(SSLError("N/A", "cert", OSError("certificate verify failed")))
        bulk, slept = indexer(client)
        with pytest.raises(OpenSearchUnavailable, match="TLS"):
            bulk.index(make_events(1))
        assert slept == []

    def test_empty_batch_sends_nothing(self):
        """No events, no request."""
        client = FakeClient()
        bulk, _ = indexer(client)
        assert bulk.index([]).indexed == 0
        assert client.bodies == []


class TestBackoff:
    def test_grows_until_the_cap(self):
        """Each delay is at least the previous one until the maximum is reached."""
        rng = random.Random(3)
        delays = [backoff_delay(n, 0.1, 10.0, rng) for n in range(1, 8)]
        assert delays == sorted(delays)
        assert delays[0] <= 0.1
        assert delays[-1] >= 3.2

    def test_is_bounded(self):
        """No delay exceeds the maximum, however many attempts."""
        rng = random.Random(4)
        delays = [backoff_delay(n, 0.2, 10.0, rng) for n in [*range(1, 60), 1100, 10**6]]
        assert max(delays) <= 10.0
        assert min(delays[10:]) >= 5.0

    def test_is_jittered(self):
        """Two consumers retrying together do not wait the same time."""
        a = backoff_delay(5, 0.2, 10.0, random.Random(1))
        b = backoff_delay(5, 0.2, 10.0, random.Random(2))
        assert a != b
