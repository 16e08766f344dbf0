"""Every command over TLS: Kafka through stunnel (server-only TLS, mutual TLS, SASL PLAIN
over TLS) and OpenSearch through nginx (HTTPS with basic auth), as a user configures them.

The settings name only the TLS ports. The brokers cannot be reached any other way (see
`secure.KafkaFronts`), and each command's traffic is read back from the terminators' own
logs, so a command that quietly skipped TLS, or went elsewhere, fails here.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient
from opensearchpy import OpenSearch

from tests.integration.secure import (
    USER,
    HttpFront,
    HttpsFronts,
    KafkaFronts,
    Pki,
    TlsBroker,
    kafka_env,
    opensearch_env,
)

#: The TLS fronts and their certificates, as fixtures.
pytest_plugins = ["tests.integration.secure"]
pytestmark = [pytest.mark.integration, pytest.mark.e2e]

CLI = shutil.which("clickstream") or str(Path(sys.executable).parent / "clickstream")
TIMEOUT = 60.0
EVENTS = 200

PRODUCED = re.compile(r"produced ([\d,]+) events to .*?: ([\d,]+) delivered, ([\d,]+) failed")
CONSUMED = re.compile(r"consumed ([\d,]+) messages: ([\d,]+) indexed")


@dataclass(frozen=True)
class Variant:
    """How one user reaches Kafka: which TLS broker, and whether with SASL."""

    broker: str
    sasl: bool = False


VARIANTS = {
    "ssl": Variant("ssl"),  # server-only TLS: security_protocol=SSL, ssl_ca_file
    "mtls": Variant("mtls"),  # Aiven: a client certificate too
    "sasl": Variant("sasl", sasl=True),  # Confluent, MSK: SASL_SSL
}


@dataclass(frozen=True)
class Command:
    """One step of a user's run, and which services it must reach."""

    name: str
    args: tuple[str, ...]
    kafka: bool
    opensearch: bool


def _commands(out: Path) -> list[Command]:
    start = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return [
        Command("setup", ("setup",), kafka=True, opensearch=True),
        Command("produce", ("produce", "--count", str(EVENTS), "--start", start), True, False),
        Command("consume", ("consume", "--until-idle", "3"), kafka=True, opensearch=True),
        Command("status", ("status",), kafka=True, opensearch=True),
        Command("report", ("report",), kafka=False, opensearch=True),
        Command("dlq replay", ("dlq", "replay"), kafka=True, opensearch=True),
        Command("dashboards render", ("dashboards", "render", "--out", str(out)), False, True),
    ]


COMMAND_NAMES = [c.name for c in _commands(Path("x.html"))]
KAFKA_COMMANDS = [c.name for c in _commands(Path("x.html")) if c.kafka]
OPENSEARCH_COMMANDS = [c.name for c in _commands(Path("x.html")) if c.opensearch]


@dataclass
class Step:
    """What one command did: its result and the traffic the terminators saw meanwhile."""

    code: int
    stdout: str
    stderr: str
    seconds: float
    kafka_connections: int
    verified_clients: int
    https_requests: list[str]


@dataclass
class Flow:
    """One variant's run of every command, in order, with its own names."""

    variant: Variant
    env: dict[str, str]
    broker: TlsBroker
    front: HttpFront
    out: Path
    topic: str
    index_prefix: str
    steps: dict[str, Step] = field(default_factory=dict)


def _run(args: tuple[str, ...], cwd: Path, env: dict[str, str]) -> tuple[int, str, str]:
    try:
        done = subprocess.run(
            [CLI, *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        return -9, "", f"(killed after {TIMEOUT:g}s)\n{err}"
    return done.returncode, done.stdout, done.stderr


def _poison(broker: TlsBroker, pki: Pki, topic: str, sasl: bool) -> None:
    """One message that is not an event, so that consume dead-letters it and replay retries it."""
    conf = {
        "bootstrap.servers": broker.bootstrap,
        "security.protocol": "SASL_SSL" if sasl else "SSL",
        "ssl.ca.location": str(pki.ca_file),
    }
    if broker.mutual:
        conf |= {
            "ssl.certificate.location": str(pki.client.cert),
            "ssl.key.location": str(pki.client.key),
        }
    if sasl:
        conf |= {"sasl.mechanism": "PLAIN", "sasl.username": USER, "sasl.password": "x"}
    producer = Producer(conf)
    producer.produce(topic, b"this is not an event", b"poison")
    assert producer.flush(15) == 0, "the poison message was not delivered"


def _run_flow(flow: Flow, cwd: Path, pki: Pki) -> None:
    for command in _commands(flow.out):
        if command.name == "consume":
            _poison(flow.broker, pki, flow.topic, flow.variant.sasl)
        broker, front = flow.broker, flow.front
        connections, verified = broker.accepted(), broker.verified_clients()
        requests = len(front.requests())
        started = time.monotonic()
        code, out, err = _run(command.args, cwd, flow.env)
        flow.steps[command.name] = Step(
            code,
            out,
            err,
            time.monotonic() - started,
            broker.accepted() - connections,
            broker.verified_clients() - verified,
            front.requests()[requests:],
        )
        if code != 0:
            return


@pytest.fixture(scope="module")
def flows(
    tmp_path_factory: pytest.TempPathFactory,
    pki: Pki,
    kafka_fronts: KafkaFronts,
    https_fronts: HttpsFronts,
    opensearch_client: OpenSearch,
) -> Iterator[dict[str, Flow]]:
    """Each variant's whole run, the variants side by side."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("CLICKSTREAM_")}
    flows: dict[str, Flow] = {}
    for name, variant in VARIANTS.items():
        broker, front = kafka_fronts[variant.broker], https_fronts[name]
        name_part = f"test-{uuid.uuid4().hex}"
        cwd = tmp_path_factory.mktemp(f"secure-{name}")
        env = {
            **base,
            **kafka_env(broker, pki, sasl=variant.sasl),
            **opensearch_env(front, pki),
            "CLICKSTREAM_KAFKA__TOPIC": name_part,
            "CLICKSTREAM_KAFKA__DLQ_TOPIC": f"{name_part}.dlq",
            "CLICKSTREAM_KAFKA__GROUP_ID": f"{name_part}-group",
            "CLICKSTREAM_OPENSEARCH__INDEX_PREFIX": name_part,
        }
        flows[name] = Flow(variant, env, broker, front, cwd / "report.html", name_part, name_part)
    threads = [
        threading.Thread(target=_run_flow, args=(flow, flow.out.parent, pki), daemon=True)
        for flow in flows.values()
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(len(COMMAND_NAMES) * TIMEOUT)
    yield flows
    for flow in flows.values():
        opensearch_client.indices.delete(
            index=f"{flow.index_prefix}*", ignore_unavailable=True, allow_no_indices=True
        )
        for template in opensearch_client.indices.get_index_template().get("index_templates", []):
            if template["name"].startswith(flow.index_prefix):
                opensearch_client.indices.delete_index_template(name=template["name"])


def _step(flows: dict[str, Flow], variant: str, command: str) -> Step:
    flow = flows[variant]
    if command not in flow.steps:
        ran = list(flow.steps)
        last = flow.steps[ran[-1]] if ran else None
        pytest.fail(
            f"{command!r} did not run: the run stopped after {ran[-1:]}"
            + (f" (exit {last.code}): {last.stderr}" if last else "")
        )
    return flow.steps[command]


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("command", COMMAND_NAMES)
class TestEveryCommand:
    """setup, produce, consume, status, report, dlq replay and dashboards render over TLS."""

    def test_succeeds(self, flows: dict[str, Flow], variant: str, command: str) -> None:
        """The command exits 0 without a traceback."""
        step = _step(flows, variant, command)
        assert step.code == 0, step.stderr
        assert "Traceback" not in step.stderr


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("command", KAFKA_COMMANDS)
class TestKafkaThroughStunnel:
    """Kafka traffic goes through the TLS terminator, never around it."""

    def test_connected_through_the_terminator(
        self, flows: dict[str, Flow], variant: str, command: str
    ) -> None:
        """stunnel accepted this command's connections to the broker."""
        step = _step(flows, variant, command)
        assert step.kafka_connections >= 1, step.stderr


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("command", OPENSEARCH_COMMANDS)
class TestOpenSearchThroughNginx:
    """OpenSearch requests go over HTTPS, authenticated, through the terminator."""

    def test_requests_in_the_access_log(
        self, flows: dict[str, Flow], variant: str, command: str
    ) -> None:
        """nginx logged this command's requests, each with our user, over TLS, none refused."""
        step = _step(flows, variant, command)
        assert step.https_requests, f"no request reached nginx; stderr: {step.stderr}"
        for line in step.https_requests:
            user, status, *_ = line.split(" ")
            assert user == USER, line
            assert status not in ("401", "403"), line
            assert line.endswith(("TLSv1.2", "TLSv1.3")), line


@pytest.mark.parametrize("variant", list(VARIANTS))
class TestTheRun:
    """What the run as a whole achieved over TLS."""

    def test_every_event_delivered(self, flows: dict[str, Flow], variant: str) -> None:
        """produce delivers all 200 events and fails none."""
        found = PRODUCED.search(_step(flows, variant, "produce").stderr)
        assert found is not None
        assert found.groups() == (str(EVENTS), str(EVENTS), "0")

    def test_every_event_indexed(
        self, flows: dict[str, Flow], variant: str, opensearch_client: OpenSearch
    ) -> None:
        """consume indexes all 200 events (and dead-letters the poison message), and the
        search server holds exactly them."""
        found = CONSUMED.search(_step(flows, variant, "consume").stderr)
        assert found is not None
        assert found.groups() == (str(EVENTS + 1), str(EVENTS))
        pattern = f"{flows[variant].index_prefix}-*"
        opensearch_client.indices.refresh(index=pattern)
        assert opensearch_client.count(index=pattern)["count"] == EVENTS

    def test_replay_reads_the_dead_letter(self, flows: dict[str, Flow], variant: str) -> None:
        """dlq replay reads the poison message back and dead-letters it again."""
        stderr = _step(flows, variant, "dlq replay").stderr
        found = CONSUMED.search(stderr)
        assert found is not None, stderr
        assert found.groups() == ("1", "0")
        assert "1 dead-lettered" in stderr

    def test_render_writes_the_page(self, flows: dict[str, Flow], variant: str) -> None:
        """dashboards render writes an HTML page of charts."""
        _step(flows, variant, "dashboards render")
        assert flows[variant].out.read_text().lstrip().lower().startswith("<!doctype html")


@pytest.mark.parametrize("command", KAFKA_COMMANDS)
class TestMutualTls:
    """Mutual TLS: every connection shows the client certificate the settings name."""

    def test_client_certificate_accepted(self, flows: dict[str, Flow], command: str) -> None:
        """stunnel accepted our client certificate on each of this command's connections."""
        step = _step(flows, "mtls", command)
        assert step.kafka_connections >= 1
        assert step.verified_clients == step.kafka_connections, step.stderr


class TestSaslOverTls:
    """SASL_SSL: the client authenticates inside TLS."""

    def test_broker_saw_sasl_authenticate(
        self, flows: dict[str, Flow], kafka_fronts: KafkaFronts
    ) -> None:
        """The broker's activity shows SaslHandshake and SaslAuthenticate requests. (It takes
        any password: that a wrong one is refused cannot be tested against noida-db.)"""
        _step(flows, "sasl", "produce")
        activity = kafka_fronts.activity("sasl")
        assert "SaslHandshake" in activity
        assert "SaslAuthenticate" in activity

    def test_no_sasl_without_asking(
        self, flows: dict[str, Flow], kafka_fronts: KafkaFronts
    ) -> None:
        """Plain SSL settings do no SASL: the check above can tell the two apart."""
        _step(flows, "ssl", "produce")
        assert "Sasl" not in kafka_fronts.activity("ssl")


class TestNoWayAround:
    """The fronts leave no plaintext path that a client could fall back to."""

    def test_broker_not_reachable_without_tls(self, kafka_fronts: KafkaFronts) -> None:
        """A PLAINTEXT client at a broker's address gets no metadata."""
        admin = AdminClient(
            {
                "bootstrap.servers": kafka_fronts["ssl"].bootstrap,
                "log_level": "0",
                "socket.connection.setup.timeout.ms": "1000",
            }
        )
        with pytest.raises(KafkaException):
            admin.list_topics(timeout=2)

    def test_https_front_wants_tls_and_a_password(
        self, https_fronts: HttpsFronts, pki: Pki
    ) -> None:
        """Plain HTTP to the HTTPS port is refused (400), and HTTPS without a password is 401."""
        front = https_fronts["failures"]
        plain = f"http://127.0.0.1:{front.port}/"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(plain, timeout=5)
        refused.value.close()
        assert refused.value.code == 400
        context = ssl.create_default_context(cafile=str(pki.ca_file))
        with pytest.raises(urllib.error.HTTPError) as unauthorized:
            urllib.request.urlopen(front.url, timeout=5, context=context)  # noqa: S310
        unauthorized.value.close()
        assert unauthorized.value.code == 401
