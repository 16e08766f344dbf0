"""Real broker, search server and ClickHouse processes, started once per test session.

The session's stack runs on free ports in a pytest temporary directory (ClickHouse only if
chdb is installed). Each test gets its own uuid-named topic, group, index prefix and
ClickHouse database, and what it made is deleted afterwards (osmem-server keeps everything
in RAM; noida-db keeps a group's offsets after its topic).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from opensearchpy import OpenSearch

from clickstream.errors import StackError
from clickstream.settings import KafkaSettings, OpenSearchSettings, Settings, StackSettings
from clickstream.stack import local as stack
from tests.helpers import port_below_ephemeral_range

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/integration is an integration test."""
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.integration)


def _free_ports(count: int) -> list[int]:
    """Distinct ports nothing listens on now, below the kernel's ephemeral range, so that no
    client connection (or a server's own random port) can take one before its server binds."""
    ports: list[int] = []
    while len(ports) < count:
        port = port_below_ephemeral_range()
        if port not in ports:
            ports.append(port)
    return ports


@pytest.fixture(scope="session")
def free_ports() -> Callable[[int], list[int]]:
    """`free_ports(n)`: n distinct ports free right now."""
    return _free_ports


@pytest.fixture(scope="session")
def stack_settings(
    tmp_path_factory: pytest.TempPathFactory, unavailable: Callable[[str], NoReturn]
) -> Iterator[StackSettings]:
    """A broker and a search server for the whole session, stopped at its end."""
    kafka_port, opensearch_port, clickhouse_port = _free_ports(3)
    settings = StackSettings(
        kafka_port=kafka_port,
        opensearch_port=opensearch_port,
        clickhouse_port=clickhouse_port,
        state_dir=tmp_path_factory.mktemp("stack"),
    )
    problem: str | None = None
    try:
        stack.up(settings, timeout=60.0)
    except StackError as exc:
        problem = str(exc)
    if problem is not None:  # outside the except: a chained traceback would add nothing
        unavailable(f"the local stack did not start: {problem}")
    try:
        yield settings
    finally:
        stack.down(settings)


@pytest.fixture(scope="session")
def kafka_bootstrap(stack_settings: StackSettings) -> str:
    return stack.kafka_address(stack_settings)


@pytest.fixture(scope="session")
def opensearch_url(stack_settings: StackSettings) -> str:
    return stack.opensearch_url(stack_settings)


@pytest.fixture(scope="session")
def kafka_admin(kafka_bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": kafka_bootstrap, "log.connection.close": "false"})


@pytest.fixture(scope="session")
def opensearch_client(opensearch_url: str) -> Iterator[OpenSearch]:
    client = OpenSearch(hosts=[opensearch_url], timeout=30)
    yield client
    client.close()


def _delete_topics(admin: AdminClient, names: list[str]) -> None:
    for future in admin.delete_topics(names, operation_timeout=10).values():
        try:
            future.result(timeout=15)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise


@pytest.fixture
def topic(kafka_admin: AdminClient) -> Iterator[str]:
    """A fresh topic name (not created); it and its `.dlq` are deleted afterwards."""
    name = f"test-{uuid.uuid4().hex}"
    yield name
    _delete_topics(kafka_admin, [name, f"{name}.dlq"])


@pytest.fixture
def dlq_topic(topic: str) -> str:
    return f"{topic}.dlq"


@pytest.fixture
def group_id() -> str:
    """A fresh consumer group: noida-db keeps a group's offsets after its topic is gone."""
    return f"test-group-{uuid.uuid4().hex}"


@pytest.fixture
def index_prefix(opensearch_client: OpenSearch) -> Iterator[str]:
    """A fresh index prefix; its indices and templates are deleted afterwards."""
    prefix = f"test-{uuid.uuid4().hex}"
    yield prefix
    indices = opensearch_client.indices
    indices.delete(
        index=f"{prefix}*", ignore_unavailable=True, allow_no_indices=True, expand_wildcards="all"
    )
    for template in indices.get_index_template().get("index_templates", []):
        if template["name"].startswith(prefix):
            indices.delete_index_template(name=template["name"])
    for name in indices.get_template():
        if name.startswith(prefix):
            indices.delete_template(name=name)


@pytest.fixture(scope="session")
def clickhouse_url(stack_settings: StackSettings, unavailable: Callable[[str], NoReturn]) -> str:
    """The session's ClickHouse (the local server, chdb behind the HTTP interface)."""
    if not stack.status(stack_settings).clickhouse.running:
        unavailable(f"the local ClickHouse is not running ({stack.status(stack_settings)})")
    return stack.clickhouse_url(stack_settings)


@pytest.fixture
def clickhouse_database(stack_settings: StackSettings) -> Iterator[str]:
    """A fresh ClickHouse database name (not created); dropped afterwards if it was."""
    name = f"test_{uuid.uuid4().hex}"
    yield name
    if stack.status(stack_settings).clickhouse.running:
        from clickstream.sinks.clickhouse.client import connect  # noqa: PLC0415

        client = connect(stack_settings.host, stack_settings.clickhouse_port)
        try:
            client.command(f"DROP DATABASE IF EXISTS {name}")
        finally:
            client.close()


@pytest.fixture
def make_settings(
    stack_settings: StackSettings, topic: str, dlq_topic: str, group_id: str, index_prefix: str
) -> Callable[..., Settings]:
    """`make_settings(kafka={...}, consumer={...}, ...)`: this test's Settings, with overrides."""

    def make(**sections: Any) -> Settings:
        kafka = {
            "bootstrap_servers": stack.kafka_address(stack_settings),
            "topic": topic,
            "dlq_topic": dlq_topic,
            "group_id": group_id,
            **sections.pop("kafka", {}),
        }
        opensearch = {"url": stack.opensearch_url(stack_settings), "index_prefix": index_prefix}
        opensearch.update(sections.pop("opensearch", {}))
        return Settings(
            kafka=KafkaSettings(**kafka),
            opensearch=OpenSearchSettings(**opensearch),
            stack=stack_settings,
            **sections,
        )

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """This test's Settings: the session's servers, its own topic, group and index prefix."""
    return make_settings()


@pytest.fixture
def settings_env(settings: Settings) -> dict[str, str]:
    """An environment for a `clickstream` subprocess that points it where `settings` do."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("CLICKSTREAM_")}
    kafka, opensearch, local = settings.kafka, settings.opensearch, settings.stack
    env.update(
        {
            "CLICKSTREAM_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "CLICKSTREAM_KAFKA__TOPIC": kafka.topic,
            "CLICKSTREAM_KAFKA__DLQ_TOPIC": kafka.dlq_topic,
            "CLICKSTREAM_KAFKA__GROUP_ID": kafka.group_id,
            "CLICKSTREAM_OPENSEARCH__URL": opensearch.url,
            "CLICKSTREAM_OPENSEARCH__INDEX_PREFIX": opensearch.index_prefix,
            "CLICKSTREAM_STACK__HOST": local.host,
            "CLICKSTREAM_STACK__KAFKA_PORT": str(local.kafka_port),
            "CLICKSTREAM_STACK__OPENSEARCH_PORT": str(local.opensearch_port),
            "CLICKSTREAM_STACK__STATE_DIR": str(local.state_dir),
        }
    )
    return env
