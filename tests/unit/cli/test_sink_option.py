"""`--sink`: the settings a command that reads the topic for a store gets."""

from __future__ import annotations

import pytest

from clickstream.cli import context, jobs


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch, tmp_path):
    for key in list(__import__("os").environ):
        if key.startswith("CLICKSTREAM_"):
            monkeypatch.delenv(key)
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    monkeypatch.setattr(context.state, "config", empty)


class TestSinkSettings:
    def test_the_flag_picks_the_sink_and_its_group(self):
        """`--sink clickhouse` reads in the ClickHouse group, with the other flags kept."""
        settings = context.sink_settings(
            context.SinkChoice.CLICKHOUSE, consumer={"batch_size": 7}, kafka={"topic": "t"}
        )
        assert settings.consumer.sink == "clickhouse"
        assert settings.consumer.batch_size == 7
        assert settings.kafka.group_id == "clickstream-clickhouse"
        assert settings.kafka.dlq_topic == "t.clickhouse.dlq"

    def test_without_the_flag_opensearch(self):
        """No flag and no setting: OpenSearch, in the indexer group."""
        settings = context.sink_settings(None, "g")
        assert (settings.consumer.sink, settings.kafka.group_id) == ("opensearch", "g")


class TestOpenSink:
    def test_open_sink_follows_the_settings(self):
        """Workers and replay build the sink the settings name, without connecting."""
        clickhouse = context.sink_settings(context.SinkChoice.CLICKHOUSE)
        assert jobs.open_sink(clickhouse).name == "clickhouse"
        assert jobs.open_sink(context.sink_settings(None)).name == "opensearch"
