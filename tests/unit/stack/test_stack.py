"""`clickstream.stack.local` without starting any server: status, safety of down, messages."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from clickstream.errors import StackError
from clickstream.settings import StackSettings
from clickstream.stack import local as stack


@pytest.fixture
def settings(tmp_path):
    return StackSettings(kafka_port=29092, opensearch_port=29200, state_dir=tmp_path / "state")


class TestStatus:
    def test_nothing_started(self, settings):
        """A fresh state dir: both stopped, at the configured addresses, without pids."""
        status = stack.status(settings)
        assert not status.running
        assert status.kafka.address == "127.0.0.1:29092"
        assert status.opensearch.address == "http://127.0.0.1:29200"
        assert status.kafka.pid is None
        assert status.opensearch.pid is None

    def test_render_and_dict(self, settings):
        """render gives one line per service; to_dict is JSON-ready."""
        status = stack.status(settings)
        lines = status.render().splitlines()
        assert [line.split()[:2] for line in lines] == [
            ["kafka", "stopped"],
            ["opensearch", "stopped"],
            ["clickhouse", "stopped"],
        ]
        assert json.loads(json.dumps(status.to_dict()))["kafka"]["address"] == "127.0.0.1:29092"

    def test_pid_of_another_program_is_not_opensearch(self, settings):
        """A recorded pid that now belongs to some other program is reported as stale."""
        stack.paths(settings).pid_file.parent.mkdir(parents=True)
        stack.paths(settings).pid_file.write_text(f"{os.getpid()}\n")
        status = stack.status(settings).opensearch
        assert not status.running
        assert "stale" in status.detail

    def test_paths_are_absolute_under_the_state_dir(self, settings):
        """The state files live under state_dir, as absolute paths."""
        where = stack.paths(settings)
        assert where.kafka_dir == (settings.state_dir / "kafka").resolve()
        assert where.pid_file.name == "opensearch.pid"
        assert where.opensearch_log.is_absolute()


class TestClickHouseAbsent:
    """Without chdb (an optional extra) the stack runs without ClickHouse, and says so."""

    def test_status_says_how_to_install_it(self, settings, monkeypatch):
        """ClickHouse shows as absent with the extra to install; the stack counts as
        running without it."""
        monkeypatch.setattr(stack, "clickhouse_installed", lambda: False)
        status = stack.status(settings)
        assert not status.clickhouse.installed
        assert "clickstream[clickhouse-local]" in status.clickhouse.detail
        assert status.clickhouse.render().split()[:2] == ["clickhouse", "absent"]
        running = stack.ServiceStatus("kafka", "a", True, 1, "")
        whole = stack.StackStatus(running, running, status.clickhouse)
        assert whole.running


class TestDown:
    def test_nothing_started_is_a_no_op(self, settings):
        """down on a fresh state dir succeeds and creates nothing."""
        assert not stack.down(settings).running
        assert not settings.state_dir.exists()

    def test_leaves_a_reused_pid_alone(self, settings):
        """down never signals a recorded pid that is no osmem-server, and forgets it."""
        other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        try:
            stack.paths(settings).pid_file.parent.mkdir(parents=True)
            stack.paths(settings).pid_file.write_text(f"{other.pid}\n")
            stack.down(settings)
            assert other.poll() is None
            assert not stack.paths(settings).pid_file.exists()
        finally:
            other.kill()
            other.wait()


class TestMissingEmulators:
    def test_up_names_the_extra(self, settings, monkeypatch):
        """Without the emulator packages, up says how to install them, starting nothing."""
        monkeypatch.setitem(sys.modules, "noida_db", None)
        with pytest.raises(StackError) as caught:
            stack.up(settings)
        assert stack.INSTALL_HINT in str(caught.value)
        assert not settings.state_dir.exists()

    def test_osmem_missing_names_the_extra(self, monkeypatch):
        """A missing osmem-server package is a StackError with the install hint."""
        monkeypatch.setitem(sys.modules, "osmem_server", None)
        with pytest.raises(StackError, match=r"pip install 'clickstream\[stack\]'"):
            stack._osmem_binary()

    def test_status_still_works(self, settings, monkeypatch):
        """status needs no emulator package when nothing was started."""
        monkeypatch.setitem(sys.modules, "noida_db", None)
        monkeypatch.setitem(sys.modules, "osmem_server", None)
        assert not stack.status(settings).running


class TestOutput:
    def test_glibc_warning_is_dropped(self):
        """The noida-db binary's glibc warning never reaches users."""
        noisy = (
            "/x/noida-db: /lib/libc.so.6: weak version `GLIBC_2.39' not found\n"
            "error: kafka: port 1 is already in use\n"
        )
        assert stack._clean(noisy) == "error: kafka: port 1 is already in use"

    def test_ipv6_addresses_are_bracketed(self):
        """An IPv6 host gets brackets in the broker address and URL."""
        settings = StackSettings(host="::1", kafka_port=1, opensearch_port=2)
        assert stack.kafka_address(settings) == "[::1]:1"
        assert stack.opensearch_url(settings) == "http://[::1]:2"
