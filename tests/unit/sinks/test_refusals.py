"""Refusals about the index or the cluster stop the consumer; an event's own is dead-lettered."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from opensearchpy.exceptions import AuthorizationException, NotFoundError, TransportError

from clickstream.errors import ExitCode, OpenSearchRefused, SinkRefused, TemplateMissing
from clickstream.events import Document
from clickstream.sinks.opensearch.bulk import classify
from clickstream.sinks.opensearch.refusals import batch_refused, request_refused, shape
from clickstream.sinks.opensearch.sink import OpenSearchSink
from tests.helpers import make_event

PREFIX = "test-events"


def _item(status: int, kind: str | None = None, reason: str = "") -> dict[str, Any]:
    body: dict[str, Any] = {"status": status}
    if kind is not None:
        body["error"] = {"type": kind, "reason": reason}
    return {"index": body}


def _refusal(*items: dict[str, Any]) -> OpenSearchRefused | None:
    """What a `_bulk` answer with `items` (one per document sent) means for the batch."""
    outcome = classify({"errors": True, "items": list(items)}, expected=len(items))
    return batch_refused(outcome.rejected, len(items))


def _mapping(doc_id: str, value: str) -> dict[str, Any]:
    reason = (
        f"failed to parse field [user_id] of type [integer] in document with id '{doc_id}'. "
        f"Preview of field's value: '{value}'"
    )
    return _item(400, "mapper_parsing_exception", reason)


BLOCKED = _item(
    403,
    "cluster_block_exception",
    "index [e-2026.02.01] blocked by: [FORBIDDEN/8/index write (api)];",
)


class TestItemRefusals:
    """Item errors whose type is about the index or the cluster refuse the whole batch."""

    @pytest.mark.parametrize(
        ("kind", "status"),
        [
            ("invalid_index_name_exception", 400),
            ("index_closed_exception", 400),
            ("cluster_block_exception", 403),
            ("index_not_found_exception", 404),
        ],
    )
    def test_index_errors_refuse_the_batch(self, kind, status):
        """One such item among indexed ones refuses the batch, exit 1, naming the type."""
        refused = _refusal(_item(201), _item(status, kind, "the reason"))
        assert isinstance(refused, SinkRefused)
        assert refused.exit_code == ExitCode.ERROR
        assert f"1 of 2 documents of a batch with {kind}: the reason" in str(refused)

    def test_a_write_block_is_not_taken_for_a_permission_problem(self):
        """A read-only index answers 403 too, but it is the index's state: exit 1."""
        refused = _refusal(BLOCKED, BLOCKED)
        assert refused is not None
        assert refused.exit_code == ExitCode.ERROR
        assert "2 of 2" in str(refused)
        assert "index.blocks.write" in str(refused)

    @pytest.mark.parametrize(
        ("kind", "status"), [("security_exception", 403), ("some_exception", 401), (None, 403)]
    )
    def test_permissions_are_configuration(self, kind, status):
        """security_exception, 401 and 403 say the credentials or permissions are wrong: exit 2."""
        refused = _refusal(_item(201), _item(status, kind, "no permission"))
        assert refused is not None
        assert refused.exit_code == ExitCode.USAGE
        assert "opensearch.username" in str(refused)

    def test_the_error_is_one_line(self):
        """A reason with newlines or of any length is shown on one bounded line."""
        refused = _refusal(_item(400, "index_closed_exception", "closed\n" * 500))
        assert refused is not None
        assert "\n" not in str(refused)
        assert len(str(refused)) < 600


class TestMappingRefusals:
    """Every document of a batch rejected the same way is the mapping's fault, not theirs."""

    def test_every_document_rejected_alike_refuses_the_batch(self):
        """Three documents, the same mapping error but for the values: the batch is refused,
        saying the type and how many."""
        refused = _refusal(_mapping("a", "u-1"), _mapping("b", "u-2"), _mapping("c", "it's"))
        assert refused is not None
        assert "all 3 documents of a batch with mapper_parsing_exception" in str(refused)
        assert "u-1" not in str(refused)

    def test_strict_mapping_for_every_document_refuses_the_batch(self):
        """strict_dynamic_mapping_exception for every document: refused."""
        strict = _item(
            400,
            "strict_dynamic_mapping_exception",
            "mapping set to strict, dynamic introduction of [foo] within [_doc] is not allowed",
        )
        assert _refusal(strict, strict) is not None

    def test_one_poison_event_among_good_ones_is_dead_lettered(self):
        """A single rejected document among indexed ones is the event's fault."""
        assert _refusal(_item(201), _mapping("a", "u-1"), _item(201)) is None

    def test_a_batch_of_one_rejected_document_is_dead_lettered(self):
        """One document alone tells nothing about the others: it is dead-lettered."""
        assert _refusal(_mapping("a", "u-1")) is None

    def test_different_errors_are_the_events_own(self):
        """Every document rejected, but for different fields: dead-lettered."""
        other = _item(
            400,
            "mapper_parsing_exception",
            "failed to parse field [ip] of type [ip] in document with id 'b'. "
            "Preview of field's value: 'x'",
        )
        assert _refusal(_mapping("a", "u-1"), other) is None

    def test_shape_keeps_field_names_and_drops_values(self):
        """Quoted values go, bracketed field names and `field's` stay."""
        assert shape("field [a] in document with id 'x1'. Preview of field's value: 'v'") == (
            "field [a] in document with id '...'. Preview of field's value: '...'"
        )


def _transport_error(status: int, kind: str, cls: type[TransportError] = TransportError):
    return cls(status, kind, {"error": {"type": kind, "reason": "why"}, "status": status})


class TestRequestRefusals:
    """A whole `_bulk` request refused (not 429 or 5xx) stops the consumer."""

    def test_forbidden_is_configuration(self):
        """HTTP 403 security_exception: exit 2, with what to check."""
        refused = request_refused(
            _transport_error(403, "security_exception", AuthorizationException)
        )
        assert refused.exit_code == ExitCode.USAGE
        assert "HTTP 403 security_exception: why" in str(refused)

    def test_a_cluster_block_is_not_forbidden(self):
        """A request-level cluster_block_exception (403) is the cluster's state: exit 1."""
        refused = request_refused(_transport_error(403, "cluster_block_exception"))
        assert refused.exit_code == ExitCode.ERROR
        assert isinstance(refused, SinkRefused)


class FakeClient:
    """Answers `GET _index_template/<name>` (exists or 404) and `_bulk` (all created)."""

    def __init__(self, template: bool = True) -> None:
        self.template = template
        self.requests: list[tuple[str, str]] = []
        self.transport = self
        self.cluster = self

    def health(self) -> dict[str, Any]:
        return {"status": "green"}

    def perform_request(self, method: str, url: str, **kwargs: Any) -> Any:
        self.requests.append((method, url))
        if url.startswith("/_index_template/"):
            if not self.template:
                raise NotFoundError(404, "resource_not_found_exception", {})
            return {"index_templates": [{"name": PREFIX, "index_template": {}}]}
        count = len(kwargs["body"].splitlines()) // 2
        return {"errors": False, "items": [_item(201)] * count}

    def templates_read(self) -> int:
        return sum(url.startswith("/_index_template/") for _, url in self.requests)


def _documents(day: int, count: int = 2) -> list[Document]:
    when = dt.datetime(2026, 2, day, 12, tzinfo=dt.UTC)
    return [Document.of(make_event(timestamp=when)) for _ in range(count)]


def _sink(client: FakeClient) -> OpenSearchSink:
    return OpenSearchSink(client, PREFIX, "http://opensearch")  # type: ignore[arg-type]


class TestTemplateCheck:
    """The index template is checked before the first write to each daily index."""

    def test_one_look_per_new_day(self):
        """Writes to a day already checked send no request for the template."""
        client = FakeClient()
        sink = _sink(client)
        sink.write(_documents(1))
        sink.write(_documents(1))
        assert client.templates_read() == 1
        sink.write([*_documents(1), *_documents(2)])
        assert client.templates_read() == 2

    def test_a_deleted_template_refuses_the_new_days_batch(self):
        """Deleted mid-run: the first batch of a new day is refused before it is written,
        exit 2, saying to run setup."""
        client = FakeClient()
        sink = _sink(client)
        sink.write(_documents(1))
        client.template = False
        sink.write(_documents(1))  # its index exists: no look, no harm
        sent = len(client.requests)
        with pytest.raises(TemplateMissing, match="run `clickstream setup`") as caught:
            sink.write(_documents(2))
        assert caught.value.exit_code == ExitCode.USAGE
        assert client.requests[sent:] == [("GET", f"/_index_template/{PREFIX}")]

    def test_check_fails_without_the_template(self):
        """At startup, a missing template is one configuration error."""
        client = FakeClient(template=False)
        sink = _sink(client)
        with pytest.raises(TemplateMissing, match=f"index template {PREFIX} is missing"):
            sink.check()

    def test_a_refused_batch_is_raised_from_write(self):
        """The sink raises, rather than returning every item as rejected."""

        class Blocked(FakeClient):
            def perform_request(self, method: str, url: str, **kwargs: Any) -> Any:
                if url == "/_bulk":
                    return {"errors": True, "items": [BLOCKED, BLOCKED]}
                return super().perform_request(method, url, **kwargs)

        with pytest.raises(SinkRefused, match="cluster_block_exception"):
            _sink(Blocked()).write(_documents(1))
