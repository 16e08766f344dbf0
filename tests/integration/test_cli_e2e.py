"""End to end: the installed `clickstream` command, run in a subprocess as a user runs it.

Each command runs in a temporary working directory (so no repository `conf/` applies) with
an environment that names the test's own servers, topic and index prefix, or none at all.
Slow commands that do not depend on each other run side by side to keep the file fast.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import NoReturn

import pytest
from confluent_kafka import Consumer, TopicPartition
from opensearchpy import OpenSearch

from clickstream.errors import ExitCode
from clickstream.events import Event, EventType

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

CLI = shutil.which("clickstream") or str(Path(sys.executable).parent / "clickstream")
#: The most any one command may take here; a hang fails the test instead of stalling it.
TIMEOUT = 60.0
#: How long an unreachable broker may take to be reported (librdkafka gives up after ~10s).
UNREACHABLE_WITHIN = 30.0
START = "2026-01-05T08:00:00Z"

PRODUCED = re.compile(
    r"produced (?P<produced>[\d,]+) events to .*?: (?P<delivered>[\d,]+) delivered, "
    r"(?P<failed>[\d,]+) failed"
)
CONSUMED = re.compile(r"consumed (?P<consumed>[\d,]+) messages: (?P<indexed>[\d,]+) indexed")


# -- helpers ---------------------------------------------------------------------------------


def _clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without any CLICKSTREAM_* setting, plus `extra`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("CLICKSTREAM_")}
    env.update(extra or {})
    return env


def _run(
    args: Sequence[str],
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    """Run `clickstream ARGS` to completion, capturing its output as text."""
    return subprocess.run(
        [CLI, *args],
        cwd=cwd,
        env=dict(env) if env is not None else _clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _start(args: Sequence[str], cwd: Path, env: Mapping[str, str]) -> subprocess.Popen[str]:
    """Start `clickstream ARGS` in the background with stdout and stderr piped."""
    return subprocess.Popen(
        [CLI, *args],
        cwd=cwd,
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen[str], timeout: float = TIMEOUT) -> tuple[int, str, str]:
    """Wait for `proc`; kill it if it overstays. Returns (exit code, stdout, stderr)."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"`clickstream` did not finish within {timeout:g}s; stderr:\n{err}")
    return proc.returncode, out, err


def _number(text: str) -> int:
    return int(text.replace(",", ""))


def _produce_counts(stderr: str) -> dict[str, int]:
    """produced / delivered / failed from the produce summary line."""
    found = PRODUCED.search(stderr)
    assert found is not None, f"no produce summary in stderr:\n{stderr}"
    return {key: _number(value) for key, value in found.groupdict().items()}


def _consume_counts(stderr: str) -> dict[str, int]:
    """consumed / indexed from the consume summary line."""
    found = CONSUMED.search(stderr)
    assert found is not None, f"no consume summary in stderr:\n{stderr}"
    return {key: _number(value) for key, value in found.groupdict().items()}


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def _bindable(port: int) -> bool:
    """True if a server could listen on 127.0.0.1:`port` now."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _dry_run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return _run(["produce", "--dry-run", *args], cwd)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """An empty working directory: no conf/ of the repository applies."""
    path = tmp_path / "cwd"
    path.mkdir()
    return path


@pytest.fixture
def set_up(settings_env: dict[str, str], workdir: Path) -> dict[str, str]:
    """Run `clickstream setup` for this test's topic and index; returns the environment."""
    result = _run(["setup"], workdir, settings_env)
    assert result.returncode == 0, result.stderr
    return settings_env


# -- produce --dry-run -----------------------------------------------------------------------


DryRuns = dict[str, subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def dry_runs(tmp_path_factory: pytest.TempPathFactory) -> DryRuns:
    """Two runs with seed 7 and one with seed 8, all from the same start, run side by side."""
    cwd = tmp_path_factory.mktemp("dry-run")
    common = ["produce", "--dry-run", "--count", "500", "--start", START]
    procs = {
        name: _start([*common, "--seed", seed], cwd, _clean_env())
        for name, seed in (("first", "7"), ("again", "7"), ("other", "8"))
    }
    runs: DryRuns = {}
    for name, proc in procs.items():
        code, out, err = _finish(proc)
        runs[name] = subprocess.CompletedProcess(proc.args, code, out, err)
    return runs


class TestDryRun:
    """`produce --dry-run`: a reproducible stream of valid events on stdout, nothing else."""

    def test_succeeds(self, dry_runs: DryRuns) -> None:
        """Every dry run exits 0 without a traceback."""
        for name, run in dry_runs.items():
            assert run.returncode == 0, f"{name}: {run.stderr}"
            assert "Traceback" not in run.stderr

    def test_same_seed_same_bytes(self, dry_runs: DryRuns) -> None:
        """The same seed and start give byte-identical output."""
        assert dry_runs["first"].stdout
        assert dry_runs["first"].stdout == dry_runs["again"].stdout

    def test_writes_count_lines(self, dry_runs: DryRuns) -> None:
        """--count 500 writes exactly 500 newline-terminated lines."""
        out = dry_runs["first"].stdout
        assert out.endswith("\n")
        assert len(out.splitlines()) == 500

    def test_every_line_is_an_event(self, dry_runs: DryRuns) -> None:
        """Every stdout line parses as a valid Event: logs never reach stdout."""
        events = [Event.from_json(line) for line in dry_runs["first"].stdout.splitlines()]
        assert len({event.event_id for event in events}) == len(events)
        start = dt.datetime(2026, 1, 5, 8, tzinfo=dt.UTC)
        assert all(event.timestamp >= start for event in events)

    def test_sessions_start_with_login(self, dry_runs: DryRuns) -> None:
        """The first event of every session is its user's login."""
        first: dict[uuid.UUID, Event] = {}
        for line in dry_runs["first"].stdout.splitlines():
            event = Event.from_json(line)
            first.setdefault(event.session_id, event)
        assert len(first) > 1
        not_login = [e for e in first.values() if e.event_type is not EventType.LOGIN]
        assert not_login == []

    def test_other_seed_other_stream(self, dry_runs: DryRuns) -> None:
        """A different seed gives a different stream of the same length."""
        other = dry_runs["other"]
        assert other.returncode == 0, other.stderr
        assert len(other.stdout.splitlines()) == 500
        assert other.stdout != dry_runs["first"].stdout

    def test_summary_goes_to_stderr(self, dry_runs: DryRuns) -> None:
        """The summary for people is on stderr and counts all 500 events."""
        counts = _produce_counts(dry_runs["first"].stderr)
        assert counts == {"produced": 500, "delivered": 500, "failed": 0}
        assert "produced" not in dry_runs["first"].stdout

    @pytest.mark.parametrize("count", [10, 100_000])
    def test_reader_going_away_is_fine(self, workdir: Path, count: int) -> None:
        """`| head -1`: the reader closing stdout early ends the run quietly, exit 0."""
        proc = _start(["produce", "--dry-run", "--count", str(count)], workdir, _clean_env())
        assert proc.stdout is not None
        line = proc.stdout.readline()
        proc.stdout.close()
        code, _, err = _finish(proc)
        Event.from_json(line)
        assert "Traceback" not in err
        assert "Exception ignored" not in err
        assert "BrokenPipeError" not in err
        assert code == 0, err


# -- an unreachable broker -------------------------------------------------------------------


class Unreachable:
    """What each command did against a broker address nothing listens on."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.results: dict[str, tuple[int, str, float]] = {}


UNREACHABLE_COMMANDS = {
    "produce": ["produce", "--count", "10"],
    "consume": ["consume", "--until-idle", "1"],
    "setup": ["setup"],
}


@pytest.fixture(scope="class")
def unreachable(
    tmp_path_factory: pytest.TempPathFactory,
    free_ports: Callable[[int], list[int]],
    opensearch_url: str,
) -> Unreachable:
    """produce, consume and setup against a dead broker address, run side by side.

    OpenSearch is the test server's, so the broker is the only thing missing.
    """
    cwd = tmp_path_factory.mktemp("unreachable")
    (port,) = free_ports(1)
    outcome = Unreachable(f"127.0.0.1:{port}")
    env = _clean_env(
        {
            "CLICKSTREAM_OPENSEARCH__URL": opensearch_url,
            "CLICKSTREAM_OPENSEARCH__INDEX_PREFIX": f"test-{uuid.uuid4().hex}",
            "CLICKSTREAM_KAFKA__TOPIC": f"test-{uuid.uuid4().hex}",
        }
    )
    started = time.monotonic()
    procs = {
        name: _start([*args, "-b", outcome.address], cwd, env)
        for name, args in UNREACHABLE_COMMANDS.items()
    }
    for name, proc in procs.items():
        code, _, err = _finish(proc)
        outcome.results[name] = (code, err, time.monotonic() - started)
    return outcome


@pytest.mark.parametrize("command", list(UNREACHABLE_COMMANDS))
class TestUnreachableBroker:
    """Against a broker that is not there: one clear line, exit 3, no traceback, no hang."""

    def test_exit_code_is_unavailable(self, unreachable: Unreachable, command: str) -> None:
        """The exit code says 'unavailable' (3), not a generic failure."""
        code, err, _ = unreachable.results[command]
        assert code == ExitCode.UNAVAILABLE, err

    def test_one_error_line_naming_the_address(
        self, unreachable: Unreachable, command: str
    ) -> None:
        """stderr has exactly one `error:` line, and it names the broker address."""
        _, err, _ = unreachable.results[command]
        lines = _error_lines(err)
        assert len(lines) == 1, err
        assert unreachable.address in lines[0]
        assert "Kafka" in lines[0]

    def test_no_traceback(self, unreachable: Unreachable, command: str) -> None:
        """An expected failure shows no Python traceback."""
        _, err, _ = unreachable.results[command]
        assert "Traceback" not in err

    def test_gives_up_in_time(self, unreachable: Unreachable, command: str) -> None:
        """The command gives up within a bounded time instead of retrying forever."""
        _, _, seconds = unreachable.results[command]
        assert seconds < UNREACHABLE_WITHIN

    def test_no_client_library_noise(self, unreachable: Unreachable, command: str) -> None:
        """stderr carries our message only, not one librdkafka log line per reconnect."""
        _, err, _ = unreachable.results[command]
        noise = [line for line in err.splitlines() if "rdkafka#" in line]
        assert noise == [], f"{len(noise)} librdkafka lines, first: {noise[:1]}"


# -- setup -----------------------------------------------------------------------------------


class TestSetup:
    """`setup` against the test servers: creates once, then changes nothing."""

    def test_twice_creates_then_leaves_alone(
        self, settings_env: dict[str, str], workdir: Path
    ) -> None:
        """The first run creates topics and template; the second finds everything in place."""
        first = _run(["setup"], workdir, settings_env)
        assert first.returncode == 0, first.stderr
        topic = settings_env["CLICKSTREAM_KAFKA__TOPIC"]
        prefix = settings_env["CLICKSTREAM_OPENSEARCH__INDEX_PREFIX"]
        created = [line for line in first.stderr.splitlines() if "created" in line]
        for what in (f"topic {topic} ", f"topic {topic}.dlq ", f"index template {prefix} "):
            assert any(what in line for line in created), f"{what!r} not created:\n{first.stderr}"
        assert "nothing changed" not in first.stderr

        second = _run(["setup"], workdir, settings_env)
        assert second.returncode == 0, second.stderr
        assert "nothing changed" in second.stderr
        assert "created" not in second.stderr
        assert "Traceback" not in first.stderr + second.stderr


# -- produce, then consume -------------------------------------------------------------------


class TestProduceConsume:
    """`produce` then `consume --until-idle` against the test servers."""

    def test_2000_events_reach_the_index(
        self, set_up: dict[str, str], workdir: Path, opensearch_client: OpenSearch
    ) -> None:
        """2,000 produced events are all delivered, consumed and indexed, exactly once."""
        produced = _run(["produce", "--count", "2000", "--seed", "3"], workdir, set_up)
        assert produced.returncode == 0, produced.stderr
        assert _produce_counts(produced.stderr) == {
            "produced": 2000,
            "delivered": 2000,
            "failed": 0,
        }
        assert produced.stdout == ""

        consumed = _run(["consume", "--until-idle", "2"], workdir, set_up)
        assert consumed.returncode == 0, consumed.stderr
        assert _consume_counts(consumed.stderr) == {"consumed": 2000, "indexed": 2000}
        assert "2,000 indexed" in consumed.stderr
        assert "Traceback" not in produced.stderr + consumed.stderr

        pattern = f"{set_up['CLICKSTREAM_OPENSEARCH__INDEX_PREFIX']}-*"
        opensearch_client.indices.refresh(index=pattern)
        assert opensearch_client.count(index=pattern)["count"] == 2000


# -- demo ------------------------------------------------------------------------------------


class TestDemo:
    """`demo` on a stack of its own, stopped afterwards by `stack down`."""

    def test_1500_events(
        self,
        tmp_path: Path,
        workdir: Path,
        free_ports: Callable[[int], list[int]],
        unavailable: Callable[[str], NoReturn],
    ) -> None:
        """The demo starts a stack, indexes 1,500 events and reports them, stores the same
        1,500 in ClickHouse (when chdb is installed) and summarises its views; down frees
        ports."""
        kafka_port, opensearch_port, clickhouse_port = free_ports(3)
        name = f"test-{uuid.uuid4().hex}"
        env = _clean_env(
            {
                "CLICKSTREAM_STACK__KAFKA_PORT": str(kafka_port),
                "CLICKSTREAM_STACK__OPENSEARCH_PORT": str(opensearch_port),
                "CLICKSTREAM_STACK__CLICKHOUSE_PORT": str(clickhouse_port),
                "CLICKSTREAM_STACK__STATE_DIR": str(tmp_path / "state"),
                "CLICKSTREAM_KAFKA__TOPIC": name,
                "CLICKSTREAM_KAFKA__DLQ_TOPIC": f"{name}.dlq",
                "CLICKSTREAM_KAFKA__GROUP_ID": f"{name}-group",
                "CLICKSTREAM_OPENSEARCH__INDEX_PREFIX": name,
            }
        )
        try:
            demo = _run(["demo", "--events", "1500", "--seed", "5"], workdir, env, timeout=120)
        finally:
            down = _run(["stack", "down"], workdir, env)
        if demo.returncode != 0 and "did not start" in demo.stderr:
            unavailable(f"the demo's stack did not start: {demo.stderr}")
        assert demo.returncode == 0, demo.stderr
        output = demo.stdout + demo.stderr
        assert f"1,500 events in {name}-*" in output
        assert "1,500 indexed" in output
        if importlib.util.find_spec("chdb") is not None:
            assert "1,500 events from" in output, output[-3000:]
            assert "(ClickHouse)" in output
        assert "Traceback" not in output
        assert down.returncode == 0, down.stderr
        assert "running" not in down.stderr.replace("not running", "")
        assert _bindable(kafka_port), f"kafka port {kafka_port} still taken after stack down"
        assert _bindable(opensearch_port), f"opensearch port {opensearch_port} still taken"
        assert _bindable(clickhouse_port), f"clickhouse port {clickhouse_port} still taken"


# -- usage errors and help -------------------------------------------------------------------


HELP_COMMANDS = [[], ["stack", "up"], ["setup"], ["produce"], ["consume"], ["demo"]]


@pytest.fixture(scope="class")
def helps(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, str, str]]:
    """`--help` of every command, run side by side."""
    cwd = tmp_path_factory.mktemp("help")
    procs = {" ".join(cmd): _start([*cmd, "--help"], cwd, _clean_env()) for cmd in HELP_COMMANDS}
    return {name: _finish(proc) for name, proc in procs.items()}


class TestUsage:
    """Bad flags and files are usage errors (exit 2); help works everywhere."""

    def test_negative_rate(self, workdir: Path) -> None:
        """--rate -1 is refused as a usage error naming the option."""
        result = _dry_run(workdir, "--rate", "-1", "--count", "1")
        assert result.returncode == ExitCode.USAGE, result.stderr
        assert "--rate" in result.stderr
        assert result.stdout == ""
        assert "Traceback" not in result.stderr

    def test_missing_config_file(self, workdir: Path) -> None:
        """A --config file that does not exist: exit 2, one line naming the file."""
        result = _run(
            ["--config", "/nonexistent.toml", "produce", "--dry-run", "--count", "1"], workdir
        )
        assert result.returncode == ExitCode.USAGE, result.stderr
        lines = _error_lines(result.stderr)
        assert len(lines) == 1, result.stderr
        assert "/nonexistent.toml" in lines[0]
        assert "does not exist" in lines[0]
        assert result.stdout == ""
        assert "Traceback" not in result.stderr

    @pytest.mark.parametrize("command", [" ".join(cmd) for cmd in HELP_COMMANDS])
    def test_help(self, helps: dict[str, tuple[int, str, str]], command: str) -> None:
        """`COMMAND --help` exits 0 and prints its usage to stdout."""
        code, out, err = helps[command]
        assert code == 0, err
        assert f"Usage: clickstream {command}".rstrip() in out
        assert "--help" in out


# -- Ctrl-C ----------------------------------------------------------------------------------


def _collect(stream: Iterator[str], into: list[str], seen: threading.Event, marker: str) -> None:
    for line in stream:
        into.append(line)
        if marker in line:
            seen.set()


class TestInterrupt:
    """Ctrl-C during `produce`: flush what is in flight, report, exit 130."""

    def test_sigint_flushes_and_exits_130(
        self, set_up: dict[str, str], workdir: Path, group_id: str
    ) -> None:
        """SIGINT mid-run: exit 130, every produced event delivered and on the topic."""
        proc = _start(["produce", "--rate", "200"], workdir, set_up)
        assert proc.stderr is not None
        lines: list[str] = []
        producing = threading.Event()
        reader = threading.Thread(
            target=_collect, args=(proc.stderr, lines, producing, '"producing"'), daemon=True
        )
        reader.start()
        try:
            assert producing.wait(TIMEOUT), "produce never started: " + "".join(lines)
            time.sleep(2.0)
            assert proc.poll() is None, "produce stopped on its own: " + "".join(lines)
            proc.send_signal(signal.SIGINT)
            code = proc.wait(timeout=TIMEOUT)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            reader.join(timeout=10)
            proc.stderr.close()
            if proc.stdout is not None:
                proc.stdout.close()
        err = "".join(lines)
        assert code == ExitCode.INTERRUPTED, err
        assert "Traceback" not in err
        assert "(interrupted)" in err
        counts = _produce_counts(err)
        assert counts["produced"] > 50, err  # about 400 in 2s at 200/s
        assert counts["delivered"] == counts["produced"]
        assert counts["failed"] == 0

        topic = set_up["CLICKSTREAM_KAFKA__TOPIC"]
        reader_client = Consumer(
            {
                "bootstrap.servers": set_up["CLICKSTREAM_KAFKA__BOOTSTRAP_SERVERS"],
                "group.id": group_id,
            }
        )
        try:
            partitions = reader_client.list_topics(topic, timeout=10).topics[topic].partitions
            on_topic = sum(
                reader_client.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in partitions
            )
        finally:
            reader_client.close()
        assert on_topic == counts["produced"]
