"""The local ClickHouse server, driven by clickhouse-connect exactly as a real server is."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from clickstream.errors import StackError
from clickstream.stack.chserver import control
from tests.helpers import port_below_ephemeral_range

clickhouse_connect = pytest.importorskip("clickhouse_connect")
pytest.importorskip("chdb")

from clickhouse_connect.driver.exceptions import DatabaseError  # noqa: E402


class Server:
    """A server started under its own state dir, stopped by the fixture."""

    def __init__(self, state_dir: Path, unavailable: Callable[[str], NoReturn]) -> None:
        self.state_dir = state_dir
        self.port = port_below_ephemeral_range()
        self.url = control.url("127.0.0.1", self.port)
        self._unavailable = unavailable

    def start(self) -> int:
        pid = control.start(self.state_dir, "127.0.0.1", self.port)
        try:
            control.wait_until_ready(self.url, 60.0, pid=pid)
        except StackError as exc:
            control.stop(self.state_dir)
            log = control.paths(self.state_dir).log.read_text(errors="replace")
            self._unavailable(f"the local ClickHouse did not start: {exc}: {log[-500:]}")
        return pid

    def client(self, **options: object):
        return clickhouse_connect.get_client(host="127.0.0.1", port=self.port, **options)


@pytest.fixture(scope="module")
def server(tmp_path_factory, unavailable) -> Iterator[Server]:
    """One server for the module's tests."""
    running = Server(tmp_path_factory.mktemp("chserver"), unavailable)
    running.start()
    yield running
    control.stop(running.state_dir)


@pytest.fixture
def database(server: Server) -> Iterator[str]:
    """A fresh database, dropped afterwards."""
    name = f"test_{uuid.uuid4().hex}"
    client = server.client()
    client.command(f"CREATE DATABASE {name}")
    yield name
    client.command(f"DROP DATABASE IF EXISTS {name}")
    client.close()


def _events_table(client, database: str) -> None:
    client.command(
        f"CREATE TABLE {database}.t (id UUID, at DateTime64(3, 'UTC'), "
        "kind LowCardinality(String), note Nullable(String)) "
        "ENGINE = ReplacingMergeTree ORDER BY id"
    )


class TestClickHouseServer:
    """What clickhouse-connect needs of a ClickHouse server, over HTTP."""

    def test_typed_columnar_insert_and_parameterised_query(self, server, database):
        """A columnar insert of typed columns is stored, and query parameters bind."""
        client = server.client(database=database)
        _events_table(client, database)
        ids = [uuid.uuid4() for _ in range(1000)]
        at = [dt.datetime(2026, 3, 1, 12, 0, 0, 123000, tzinfo=dt.UTC)] * 1000
        kinds = ["login" if i % 10 == 0 else "page_view" for i in range(1000)]
        notes = [None if i % 2 else f"n{i}" for i in range(1000)]
        summary = client.insert(
            "t",
            [ids, at, kinds, notes],
            column_names=["id", "at", "kind", "note"],
            column_oriented=True,
        )
        assert summary.written_rows == 1000
        rows = client.query(
            "SELECT kind, count() FROM t WHERE kind = {kind:String} GROUP BY kind",
            parameters={"kind": "login"},
        ).result_rows
        assert rows == [("login", 100)]
        first = client.query(
            "SELECT id, at, note FROM t WHERE id = {id:UUID}", parameters={"id": ids[0]}
        ).result_rows
        ((got_id, got_at, got_note),) = first
        assert (got_id, got_note) == (ids[0], "n0")
        assert got_at.replace(tzinfo=got_at.tzinfo or dt.UTC) == at[0]

    def test_final_collapses_duplicates(self, server, database):
        """FINAL reads a ReplacingMergeTree as if its parts were merged."""
        client = server.client(database=database)
        _events_table(client, database)
        ids = [uuid.uuid4() for _ in range(10)]
        at = [dt.datetime(2026, 3, 1, tzinfo=dt.UTC)] * 10
        for _ in range(2):
            client.insert(
                "t",
                [ids, at, ["like"] * 10, [None] * 10],
                column_names=["id", "at", "kind", "note"],
                column_oriented=True,
            )
        assert client.query("SELECT count() FROM t").result_rows == [(20,)]
        assert client.query("SELECT count() FROM t FINAL").result_rows == [(10,)]

    def test_materialized_view_with_aggregate_states(self, server, database):
        """A materialized view keeps uniqExact states that -Merge reads back."""
        client = server.client(database=database)
        _events_table(client, database)
        client.command(
            "CREATE TABLE agg (kind LowCardinality(String), "
            "ids AggregateFunction(uniqExact, UUID)) ENGINE = AggregatingMergeTree ORDER BY kind"
        )
        client.command(
            "CREATE MATERIALIZED VIEW agg_mv TO agg AS "
            "SELECT kind, uniqExactState(id) AS ids FROM t GROUP BY kind"
        )
        ids = [uuid.uuid4() for _ in range(50)]
        at = [dt.datetime(2026, 3, 1, tzinfo=dt.UTC)] * 50
        for _ in range(3):
            client.insert(
                "t",
                [ids, at, ["share"] * 50, [None] * 50],
                column_names=["id", "at", "kind", "note"],
                column_oriented=True,
            )
        merged = client.query("SELECT kind, uniqExactMerge(ids) FROM agg GROUP BY kind")
        assert merged.result_rows == [("share", 50)]

    def test_errors_carry_the_engine_code(self, server):
        """A failed query raises DatabaseError with ClickHouse's error code and text."""
        client = server.client()
        with pytest.raises(DatabaseError, match="UNKNOWN_TABLE") as caught:
            client.query("SELECT * FROM no_such_table")
        assert caught.value.code == 60

    def test_settings_apply_to_their_request_only(self, server):
        """A setting sent with one request is not in force for the next."""
        client = server.client()
        probe = "SELECT value FROM system.settings WHERE name = 'max_block_size'"
        default = client.query(probe).result_rows
        assert client.query(probe, settings={"max_block_size": 1234}).result_rows == [("1234",)]
        assert client.query(probe).result_rows == default

    def test_two_clients_at_once(self, server, database):
        """One client inserts while another queries; both finish with consistent answers."""
        writer, reader = server.client(database=database), server.client(database=database)
        _events_table(writer, database)
        failures: list[BaseException] = []

        def insert() -> None:
            try:
                for _ in range(20):
                    ids = [uuid.uuid4() for _ in range(500)]
                    at = [dt.datetime(2026, 3, 1, tzinfo=dt.UTC)] * 500
                    writer.insert(
                        "t",
                        [ids, at, ["like"] * 500, [None] * 500],
                        column_names=["id", "at", "kind", "note"],
                        column_oriented=True,
                    )
            except BaseException as exc:  # noqa: BLE001  (reported by the assertion below)
                failures.append(exc)

        thread = threading.Thread(target=insert)
        thread.start()
        seen = []
        while thread.is_alive():
            seen.append(reader.query("SELECT count() FROM t").result_rows[0][0])
        thread.join()
        assert failures == []
        assert all(count % 500 == 0 for count in seen)  # an insert is atomic
        assert reader.query("SELECT count() FROM t").result_rows == [(10_000,)]


class TestServerProcess:
    """Starting, stopping and restarting the server process."""

    def test_restart_keeps_data(self, tmp_path, unavailable):
        """Data inserted before a stop is there after the next start."""
        server = Server(tmp_path, unavailable)
        server.start()
        try:
            client = server.client()
            client.command("CREATE TABLE kept (n UInt32) ENGINE = MergeTree ORDER BY n")
            client.insert("kept", [[1, 2, 3]], column_names=["n"], column_oriented=True)
            client.close()
            control.stop(tmp_path)
            assert not control.status(tmp_path, "127.0.0.1", server.port).running
            server.start()
            client = server.client()
            assert client.query("SELECT sum(n) FROM kept").result_rows == [(6,)]
        finally:
            control.stop(tmp_path)

    def test_status_reports_the_running_server(self, server):
        """status() names the pid and the address the server listens on."""
        state = control.status(server.state_dir, "127.0.0.1", server.port)
        assert state.running
        assert state.address == server.url
        assert state.pid == control.running_pid(server.state_dir)

    def test_a_second_server_on_the_same_directory_fails(self, server):
        """The data directory has one owner: another server on it exits with the reason."""
        argv = [sys.executable, "-m", control.MODULE, "--path"]
        argv += [str(control.paths(server.state_dir).data_dir), "--port"]
        argv += [str(port_below_ephemeral_range())]
        second = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        assert second.returncode == 1
        assert "cannot open" in second.stderr
