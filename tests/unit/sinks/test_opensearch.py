"""Unit tests of the OpenSearch client side: the index template, the client, counts."""

from __future__ import annotations

import base64
import logging
from pathlib import Path
from typing import Any

import pytest
from opensearchpy.exceptions import ConnectionError as OpenSearchConnectionError
from opensearchpy.exceptions import NotFoundError
from pydantic import SecretStr

from clickstream.errors import ConfigError, OpenSearchUnavailable
from clickstream.events import Event
from clickstream.settings import OpenSearchSettings
from clickstream.sinks.opensearch import client as opensearch
from clickstream.sinks.opensearch.client import ensure_template, index_template, make_client

PREFIX = "test-events"


class TestIndexTemplate:
    def test_maps_every_event_field_strictly(self):
        """Each Event field has an explicit mapping, and unknown fields are refused."""
        template = index_template(PREFIX)
        mappings = template["template"]["mappings"]
        assert template["index_patterns"] == ["test-events-*"]
        assert mappings["dynamic"] == "strict"
        assert set(mappings["properties"]) == set(Event.model_fields)

    def test_field_types(self):
        """Time is a date, ip an ip, identifiers keywords, titles text with a keyword."""
        props = index_template(PREFIX)["template"]["mappings"]["properties"]
        assert props["timestamp"] == {"type": "date", "format": "strict_date_optional_time"}
        assert props["ip"] == {"type": "ip"}
        assert props["event_id"] == props["user_id"] == {"type": "keyword"}
        assert props["article_title"]["fields"]["keyword"]["type"] == "keyword"

    def test_longer_prefix_gets_higher_priority(self):
        """Overlapping `<prefix>-*` patterns never share a priority."""
        assert index_template("a-b")["priority"] > index_template("a")["priority"]


class TemplateClient:
    """Stands in for `OpenSearch` on `_index_template`: stores what is PUT."""

    def __init__(self, stored: dict[str, Any] | None = None) -> None:
        self.stored = stored
        self.puts = 0
        self.mappings: list[tuple[str, Any]] = []  # PUT _mapping: (url, body)
        self.transport = self

    def perform_request(self, method: str, url: str, body: Any = None, params: Any = None) -> Any:
        if url.endswith("/_mapping"):
            assert params == {"allow_no_indices": "true"}
            self.mappings.append((url, body))
            return {"acknowledged": True}
        name = url.rsplit("/", 1)[1]
        if method == "PUT":
            self.puts += 1
            self.stored = body
            return {"acknowledged": True}
        if self.stored is None:
            raise NotFoundError(404, "resource_not_found_exception", {})
        return {"index_templates": [{"name": name, "index_template": self.stored}]}


class TestEnsureTemplate:
    def test_creates_a_missing_template(self):
        """No template yet: it is written and the answer is True."""
        client = TemplateClient()
        assert ensure_template(client, PREFIX) is True  # type: ignore[arg-type]
        assert client.puts == 1
        assert client.stored == index_template(PREFIX)

    def test_equal_template_in_stored_form_is_left_alone(self):
        """OpenSearch's stored form (index.* settings as strings) counts as equal."""
        stored = index_template(PREFIX)
        stored["composed_of"] = []
        stored["template"]["settings"] = {"index": {"number_of_shards": "1"}}
        client = TemplateClient(stored)
        assert ensure_template(client, PREFIX) is False  # type: ignore[arg-type]
        assert client.puts == 0

    def test_changed_template_is_replaced(self):
        """A stored template whose mapping differs from ours is overwritten."""
        stored = index_template(PREFIX)
        stored["template"]["mappings"]["properties"]["ip"] = {"type": "keyword"}
        client = TemplateClient(stored)
        assert ensure_template(client, PREFIX) is True  # type: ignore[arg-type]
        assert client.puts == 1

    def test_a_new_template_adds_the_new_fields_to_existing_indices(self):
        """Today's index, made by the old template, gains the fields of later versions only."""
        stored = index_template(PREFIX)
        del stored["template"]["mappings"]["properties"]["session_seq"]
        client = TemplateClient(stored)
        assert ensure_template(client, PREFIX) is True  # type: ignore[arg-type]
        assert client.mappings == [
            ("/test-events-*/_mapping", {"properties": {"session_seq": {"type": "integer"}}})
        ]

    def test_an_equal_template_touches_no_index(self):
        """Nothing changed: no mapping is put."""
        client = TemplateClient(index_template(PREFIX))
        assert ensure_template(client, PREFIX) is False  # type: ignore[arg-type]
        assert client.mappings == []


class TestMakeClient:
    def test_basic_auth_and_no_client_retries(self):
        """Username and password become basic auth; the client itself never retries."""
        settings = OpenSearchSettings(
            url="https://search.example.com:443", username="avnadmin", password=SecretStr("pw")
        )
        client = make_client(settings)
        (connection,) = client.transport.connection_pool.connections
        expected = "Basic " + base64.b64encode(b"avnadmin:pw").decode()
        assert connection.headers["authorization"] == expected
        assert connection.use_ssl
        assert client.transport.max_retries == 0

    def test_quiets_the_client_logger(self):
        """The per-request warnings of the `opensearch` logger are silenced."""
        logging.getLogger("opensearch").setLevel(logging.NOTSET)
        make_client(OpenSearchSettings(url="http://127.0.0.1:9200"))
        assert not logging.getLogger("opensearch").isEnabledFor(logging.WARNING)

    def test_username_without_password_is_a_config_error(self):
        """Half a credential is refused before any request."""
        with pytest.raises(ConfigError, match="together"):
            make_client(OpenSearchSettings(username="avnadmin"))

    def test_missing_ca_file_is_a_config_error(self, tmp_path: Path):
        """A CA file that does not exist is named in the error."""
        with pytest.raises(ConfigError, match="CA file"):
            make_client(OpenSearchSettings(ca_file=tmp_path / "missing.pem"))


class SearchClient:
    """Stands in for `OpenSearch` on refresh, `_count` and `_search`."""

    def __init__(self, response: dict[str, Any]) -> None:
        self.response = response
        self.calls: list[str] = []
        self.indices = self

    def refresh(self, index: str) -> None:
        self.calls.append(f"refresh {index}")

    def count(self, index: str) -> dict[str, Any]:
        self.calls.append(f"count {index}")
        return self.response

    def search(self, index: str, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(f"search {index}")
        return self.response


class TestCountAndSummary:
    def test_count_refreshes_first(self):
        """Counting refreshes `<prefix>-*` so fresh writes are seen."""
        client = SearchClient({"count": 7})
        assert opensearch.count(client, PREFIX) == 7  # type: ignore[arg-type]
        assert client.calls == ["refresh test-events-*", "count test-events-*"]

    def test_summary_reads_the_buckets(self):
        """Terms buckets become name-to-count maps, in OpenSearch's order."""

        def agg(**counts: int) -> dict[str, Any]:
            return {"buckets": [{"key": k, "doc_count": v} for k, v in counts.items()]}

        response = {
            "hits": {"total": {"value": 9, "relation": "eq"}},
            "aggregations": {
                "by_event_type": agg(page_view=6, login=3),
                "by_category": agg(nature=6),
                "by_device_type": agg(mobile=5, desktop=4),
                "top_users": agg(u2=5, u1=4),
            },
        }
        client = SearchClient(response)
        result = opensearch.summary(client, PREFIX)  # type: ignore[arg-type]
        assert result["total"] == 9
        assert list(result["by_event_type"].items()) == [("page_view", 6), ("login", 3)]
        assert result["top_users"] == {"u2": 5, "u1": 4}
        assert client.calls[0] == "refresh test-events-*"

    def test_unreachable_server_is_unavailable(self):
        """A refused connection while counting becomes `OpenSearchUnavailable`."""
        client = SearchClient({})

        def refuse(index: str) -> None:
            raise OpenSearchConnectionError("N/A", "refused", OSError("refused"))

        client.refresh = refuse  # type: ignore[method-assign]
        with pytest.raises(OpenSearchUnavailable, match="counting test-events-\\*"):
            opensearch.count(client, PREFIX)  # type: ignore[arg-type]
