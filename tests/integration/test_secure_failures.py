"""What a user sees when a secure connection cannot be made: one `error:` line on stderr that
names the service and the reason, no HTML, within 15 s, exit 2 for a configuration problem
(certificate, host name, client certificate, password, permission, wrong server) and 3 for a
service that is not there.

Every case runs `setup` (which needs both services) and the command that needs only the
broken one, side by side.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from clickstream.errors import ExitCode
from tests.integration.secure import (
    READER,
    READER_PASSWORD,
    HttpsFronts,
    KafkaFronts,
    Pki,
    kafka_env,
    opensearch_env,
)

#: The TLS fronts and their certificates, as fixtures.
pytest_plugins = ["tests.integration.secure"]
pytestmark = [pytest.mark.integration, pytest.mark.e2e]

CLI = shutil.which("clickstream") or str(Path(sys.executable).parent / "clickstream")
#: A user should know what is wrong within this many seconds.
WITHIN = 15.0
#: A command still running after this long is stopped and judged as it stands.
KILL_AFTER = 20.0
#: How many commands run at once.
PARALLEL = 4
HTML = re.compile(r"<\s*/?\s*(!doctype|html|head|body|title|h1|center|hr|p)\b", re.IGNORECASE)

Env = dict[str, str]
Fronts = tuple[Pki, KafkaFronts, HttpsFronts, Callable[[int], list[int]]]


@dataclass(frozen=True)
class Case:
    """A broken secure setting: what breaks, and what a user should be told."""

    service: str  #: "Kafka" or "OpenSearch": the one that cannot be used
    exit_code: ExitCode
    reasons: tuple[str, ...]  #: the error line says at least one of these (any case)
    env: Callable[[Fronts], Env]  #: the settings that break it, over working ones
    command: tuple[str, ...]  #: the command that needs only the broken service


def _kafka_ssl(f: Fronts, **change: str) -> Env:
    pki, kafka, _, _ = f
    env = kafka_env(kafka["ssl"], pki)
    env.update({f"CLICKSTREAM_KAFKA__{k.upper()}": v for k, v in change.items()})
    return env


def _search(f: Fronts, **change: str) -> Env:
    pki, _, https, _ = f
    env = opensearch_env(https["failures"], pki)
    env.update({f"CLICKSTREAM_OPENSEARCH__{k.upper()}": v for k, v in change.items()})
    return env


WRONG_PASSWORD = "not-the-password"  # noqa: S105  (wrong on purpose)
PRODUCE = ("produce", "--count", "10")
REPORT = ("report",)

CASES: dict[str, Case] = {
    "kafka untrusted certificate": Case(
        "Kafka",
        ExitCode.USAGE,
        ("certificate verify failed",),
        lambda f: _kafka_ssl(f, ssl_ca_file=str(f[0].other_ca_file)),
        PRODUCE,
    ),
    "kafka hostname mismatch": Case(
        "Kafka",
        ExitCode.USAGE,
        ("hostname mismatch", "does not match", "doesn't match"),
        lambda f: _kafka_ssl(f, bootstrap_servers=f[1].elsewhere.bootstrap),
        PRODUCE,
    ),
    "kafka client certificate missing": Case(
        "Kafka",
        ExitCode.USAGE,
        ("client certificate required", "certificate required", "handshake failure"),
        lambda f: _kafka_ssl(f, bootstrap_servers=f[1]["mtls"].bootstrap),
        PRODUCE,
    ),
    "kafka tls port closed": Case(
        "Kafka",
        ExitCode.UNAVAILABLE,
        ("127.0.0.1:",),
        lambda f: _kafka_ssl(f, bootstrap_servers=f"127.0.0.1:{f[3](1)[0]}"),
        PRODUCE,
    ),
    "opensearch untrusted certificate": Case(
        "OpenSearch",
        ExitCode.USAGE,
        ("certificate verify failed",),
        lambda f: _search(f, ca_file=str(f[0].other_ca_file)),
        REPORT,
    ),
    "opensearch hostname mismatch": Case(
        "OpenSearch",
        ExitCode.USAGE,
        ("hostname mismatch", "does not match", "doesn't match", "not valid for"),
        lambda f: _search(f, url=f[2].elsewhere.ip_url),
        REPORT,
    ),
    "opensearch wrong password": Case(
        "OpenSearch",
        ExitCode.USAGE,
        ("authentication failed (HTTP 401)", "HTTP 401"),
        lambda f: _search(f, password=WRONG_PASSWORD),
        REPORT,
    ),
    "opensearch no permission": Case(
        "OpenSearch",
        ExitCode.USAGE,
        ("HTTP 403",),
        lambda f: _search(f, username=READER, password=READER_PASSWORD),
        REPORT,
    ),
    "opensearch url is another web server": Case(
        "OpenSearch",
        ExitCode.USAGE,
        ("not OpenSearch", "not an OpenSearch", "HTTP 404", "HTTP 405"),
        lambda f: _search(f, url=f[2].web.url),
        REPORT,
    ),
    "opensearch https port closed": Case(
        "OpenSearch",
        ExitCode.UNAVAILABLE,
        ("https://localhost:",),
        lambda f: _search(f, url=f"https://localhost:{f[3](1)[0]}"),
        REPORT,
    ),
}


@dataclass(frozen=True)
class Outcome:
    """What one command printed and how it ended."""

    code: int
    stderr: str
    seconds: float
    killed: bool

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("error:")]


def _command_name(args: tuple[str, ...]) -> str:
    return args[0]


@pytest.fixture(scope="module")
def outcomes(
    tmp_path_factory: pytest.TempPathFactory,
    pki: Pki,
    kafka_fronts: KafkaFronts,
    https_fronts: HttpsFronts,
    free_ports: Callable[[int], list[int]],
) -> dict[tuple[str, str], Outcome]:
    """Every case's commands, all side by side: (case, command) -> outcome."""
    fronts: Fronts = (pki, kafka_fronts, https_fronts, free_ports)
    base = {k: v for k, v in os.environ.items() if not k.startswith("CLICKSTREAM_")}
    cwd = tmp_path_factory.mktemp("secure-failures")
    runs: list[tuple[tuple[str, str], list[str], Env]] = []
    for name, case in CASES.items():
        names = f"test-{uuid.uuid4().hex}"
        env = {
            **base,
            **_kafka_ssl(fronts),
            **_search(fronts),
            **case.env(fronts),
            "CLICKSTREAM_KAFKA__TOPIC": names,
            "CLICKSTREAM_KAFKA__DLQ_TOPIC": f"{names}.dlq",
            "CLICKSTREAM_KAFKA__GROUP_ID": f"{names}-group",
            "CLICKSTREAM_OPENSEARCH__INDEX_PREFIX": names,
        }
        runs += [((name, _command_name(a)), [CLI, *a], env) for a in (("setup",), case.command)]
    # A few at a time: twenty interpreters starting at once on a small machine would
    # measure the machine, not how soon a command gives up. Kafka's (slowest) go first.
    runs.sort(key=lambda run: CASES[run[0][0]].service != "Kafka")
    results: dict[tuple[str, str], Outcome] = {}
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        for key, argv, env in runs:
            pool.submit(_run, key, argv, env, cwd, results)
    return results


def _run(
    key: tuple[str, str], argv: list[str], env: Env, cwd: Path, into: dict[tuple[str, str], Outcome]
) -> None:
    """Run one command to its end (or KILL_AFTER), timing it from start to exit."""
    started = time.monotonic()
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    killed = False
    try:
        _, err = proc.communicate(timeout=KILL_AFTER)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        killed = True
    into[key] = Outcome(proc.returncode, err, time.monotonic() - started, killed)


PARAMS = [
    pytest.param(name, _command_name(args), id=f"{name}-{_command_name(args)}")
    for name, case in CASES.items()
    for args in (("setup",), case.command)
]


@pytest.mark.parametrize(("case", "command"), PARAMS)
class TestSecureFailures:
    """A broken certificate, host name, client certificate, password, permission or server."""

    @pytest.fixture
    def seen(self, outcomes: dict[tuple[str, str], Outcome], case: str, command: str) -> Outcome:
        """This case's outcome."""
        return outcomes[case, command]

    def test_exit_code(self, seen: Outcome, case: str) -> None:
        """Exit 2 for a configuration problem, 3 for a service that is not there."""
        assert seen.code == CASES[case].exit_code, seen.stderr

    def test_one_line(self, seen: Outcome) -> None:
        """stderr says it in one line starting `error:`; nothing else but log records."""
        said = [line for line in seen.stderr.splitlines() if not line.startswith("{")]
        assert said == seen.error_lines, seen.stderr
        assert len(said) == 1, seen.stderr

    def test_service_and_reason(self, seen: Outcome, case: str) -> None:
        """The error line names the service and says why."""
        expected = CASES[case]
        lines = seen.error_lines
        assert lines, seen.stderr
        assert expected.service in lines[0]
        assert any(r.lower() in lines[0].lower() for r in expected.reasons), lines[0]

    def test_no_html(self, seen: Outcome) -> None:
        """No HTML page (an error page of a proxy or web server) reaches the terminal."""
        assert HTML.search(seen.stderr) is None, seen.stderr

    def test_in_time(self, seen: Outcome) -> None:
        """The command gives up within 15 s."""
        assert not seen.killed, f"still running after {KILL_AFTER:g}s: {seen.stderr[-2000:]}"
        assert seen.seconds < WITHIN

    def test_no_traceback(self, seen: Outcome) -> None:
        """An expected failure shows no Python traceback."""
        assert "Traceback" not in seen.stderr
