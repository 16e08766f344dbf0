"""TLS and password-protected endpoints in front of the session's local servers.

Users reach managed Kafka over TLS (Aiven: mutual TLS; Confluent, MSK: SASL over TLS) and
OpenSearch over HTTPS with a password. The local servers speak neither, so the tests put
real terminators in front of them, with certificates from a CA the tests make (`trustme`):

- `HttpsFronts`: nginx terminating TLS with basic auth, proxying to an HTTP server (the
  search server now; ClickHouse's HTTP interface fits the same way). It also serves one
  HTTPS server whose certificate names another host, and one plain web server that is not
  OpenSearch at all. Each server writes its own access log.
- `KafkaFronts`: stunnel terminating TLS (server-only or mutual) in front of noida-db brokers.
  Kafka clients connect to the address a broker advertises, and noida-db advertises the
  address it listens on (it has no advertised-listener option). So each broker runs in a
  network namespace of its own, listening on 127.0.0.1:P there, where P is the port its
  stunnel listens on out here; stunnel reaches it through a Unix socket that a relay in the
  namespace forwards to the broker. The broker advertises 127.0.0.1:P, which is stunnel's
  address, and it cannot be reached without TLS at all: no client can fall back to plaintext.

noida-db offers SASL PLAIN only and takes any user name and password, so SASL here proves
that the client authenticates over TLS (the broker's activity log shows SaslAuthenticate), not
that wrong credentials are refused; it does not offer SCRAM.

Run as `python -m tests.integration.secure relay SOCKET=HOST:PORT ...` (inside the namespace)
this module is that relay.

Test modules take its fixtures with `pytest_plugins = ["tests.integration.secure"]` after
importing its helpers; PYTEST_DONT_REWRITE spares pytest a warning about rewriting asserts in
an already imported plugin (its asserts need no rewriting).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import NoReturn

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: What the server certificates are valid for: every name of this machine's loopback.
LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
#: The only name on the certificate of the hostname-mismatch endpoints.
ELSEWHERE = "elsewhere.invalid"
#: The user that may do everything through the HTTPS fronts.
USER, PASSWORD = "clickstream", "Tls-and-a-passw0rd"
#: A user whose password is right but who may do nothing (every request: HTTP 403).
READER, READER_PASSWORD = "reader", "Read-0nly-passw0rd"
#: How long a terminator or broker may take to come up.
START_TIMEOUT = 30.0


class FrontError(Exception):
    """A terminator or a broker behind one did not start."""


# -- certificates ----------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyPair:
    """A PEM certificate and its private key."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class Pki:
    """A CA the tests made, and the certificates it signed."""

    ca_file: Path  #: trusts every certificate below
    other_ca_file: Path  #: a CA that signed none of them: trusting only it must fail
    server: KeyPair  #: valid for LOCAL_NAMES
    elsewhere: KeyPair  #: valid for ELSEWHERE only
    client: KeyPair  #: a client certificate for mutual TLS


def make_pki(directory: Path) -> Pki:
    """Write a CA, a second unrelated CA, server, wrong-name and client certificates."""
    import trustme  # noqa: PLC0415  (only the tests that build fronts need it)

    directory.mkdir(parents=True, exist_ok=True)
    ca, other = trustme.CA(organization_name="clickstream tests"), trustme.CA()

    def issue(name: str, *identities: str) -> KeyPair:
        issued = ca.issue_cert(*identities)
        pair = KeyPair(directory / f"{name}.pem", directory / f"{name}.key")
        pair.cert.write_bytes(b"".join(pem.bytes() for pem in issued.cert_chain_pems))
        issued.private_key_pem.write_to_path(str(pair.key))
        pair.key.chmod(0o600)
        return pair

    ca.cert_pem.write_to_path(str(directory / "ca.pem"))
    other.cert_pem.write_to_path(str(directory / "other-ca.pem"))
    return Pki(
        ca_file=directory / "ca.pem",
        other_ca_file=directory / "other-ca.pem",
        server=issue("server", *LOCAL_NAMES),
        elsewhere=issue("elsewhere", ELSEWHERE),
        client=issue("client", "clickstream-client"),
    )


# -- processes -------------------------------------------------------------------------------


def _binary(name: str) -> str:
    found = shutil.which(name) or next(
        (str(p) for d in ("/usr/sbin", "/usr/bin") if (p := Path(d) / name).is_file()), None
    )
    if found is None:
        raise FrontError(f"{name} is not installed (Debian: apt-get install nginx stunnel4)")
    return found


def _log_tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


def _wait_listening(
    ports: Sequence[int], proc: subprocess.Popen[bytes], what: str, log: Path
) -> None:
    """Return once something accepts on every 127.0.0.1 port; fail if `proc` exits first."""
    deadline = time.monotonic() + START_TIMEOUT
    for port in ports:
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
                break
            if proc.poll() is not None:
                raise FrontError(f"{what} exited with {proc.returncode}: {_log_tail(log)}")
            if time.monotonic() > deadline:
                raise FrontError(f"{what} does not listen on {port}: {_log_tail(log)}")
            time.sleep(0.05)


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return []


# -- HTTPS with basic auth (nginx) -----------------------------------------------------------


def _htpasswd(users: dict[str, str]) -> str:
    """nginx's `{SHA}` password lines (base64 of the SHA-1; no crypt(3) needed)."""
    return "".join(
        f"{user}:{{SHA}}{base64.b64encode(hashlib.sha1(pw.encode()).digest()).decode()}\n"  # noqa: S324  (the format nginx reads)
        for user, pw in users.items()
    )


#: What OpenSearch's security plugin answers a user without the permission.
_FORBIDDEN = (
    '{"error":{"root_cause":[{"type":"security_exception","reason":"no permissions for '
    '[indices:data/read/search] and User [name=reader, backend_roles=[], requestedTenant=null]"'
    '}],"type":"security_exception","reason":"no permissions for [indices:data/read/search] and '
    'User [name=reader, backend_roles=[], requestedTenant=null]"},"status":403}'
)
_WELCOME = (
    "<!DOCTYPE html>\n<html><head><title>Welcome to nginx!</title></head>\n"
    "<body><h1>Welcome to nginx!</h1><p>If you see this page, the web server works.</p>"
    "</body></html>\n"
)


@dataclass(frozen=True)
class HttpFront:
    """One server of the nginx in front: where it listens and what it logged."""

    name: str
    port: int
    access_log: Path
    tls: bool = True

    @property
    def url(self) -> str:
        """The URL a user configures: by name, as the certificate says."""
        return f"{'https' if self.tls else 'http'}://localhost:{self.port}"

    @property
    def ip_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def requests(self) -> list[str]:
        """Its access log: `user status "METHOD /path HTTP/1.1" tls-protocol` per request."""
        return _lines(self.access_log)


class HttpsFronts:
    """nginx: per name an HTTPS server with basic auth proxying to `upstream`, plus
    `elsewhere` (the same, with a certificate for another host) and `web` (plain HTTP, a
    static site that is not the upstream's API)."""

    def __init__(
        self, directory: Path, pki: Pki, upstream: str, names: Sequence[str], ports: list[int]
    ) -> None:
        self.directory, self.pki, self.upstream = directory, pki, upstream
        logs = directory / "logs"
        self.fronts = {
            name: HttpFront(name, port, logs / f"{name}.access.log")
            for name, port in zip(names, ports, strict=False)
        }
        extra = ports[len(names) :]
        if len(extra) != 3:
            raise ValueError("HttpsFronts needs len(names) + 3 ports")
        self.elsewhere = HttpFront("elsewhere", extra[0], logs / "elsewhere.access.log")
        self.web = HttpFront("web", extra[1], logs / "web.access.log", tls=False)
        self._forbidden_port = extra[2]
        self.error_log = logs / "error.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def __getitem__(self, name: str) -> HttpFront:
        return self.fronts[name]

    def _config(self) -> str:
        d, pki = self.directory, self.pki
        user = "user root;\n" if os.geteuid() == 0 else ""  # workers read the 0700 tmp dir
        servers = []
        for front, pair in [(f, pki.server) for f in self.fronts.values()] + [
            (self.elsewhere, pki.elsewhere)
        ]:
            servers.append(f"""
  server {{
    listen 127.0.0.1:{front.port} ssl;
    ssl_certificate {pair.cert};
    ssl_certificate_key {pair.key};
    ssl_protocols TLSv1.2 TLSv1.3;
    access_log {front.access_log} front;
    auth_basic "search";
    auth_basic_user_file {d}/htpasswd;
    location / {{
      proxy_pass http://$backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_read_timeout 120s;
    }}
  }}""")
        return f"""{user}worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {self.error_log} notice;
events {{ worker_connections 512; }}
http {{
  client_body_temp_path {d}/spool/body;
  proxy_temp_path {d}/spool/proxy;
  fastcgi_temp_path {d}/spool/fastcgi;
  uwsgi_temp_path {d}/spool/uwsgi;
  scgi_temp_path {d}/spool/scgi;
  client_max_body_size 512m;
  log_format front '$remote_user $status "$request" $ssl_protocol';
  access_log off;
  # authentication comes first (access phase); only then does the user pick the backend
  map $remote_user $backend {{
    {READER} 127.0.0.1:{self._forbidden_port};
    default {self.upstream};
  }}
  {"".join(servers)}
  server {{
    listen 127.0.0.1:{self._forbidden_port};
    access_log off;
    default_type application/json;
    location / {{ return 403 '{_FORBIDDEN}'; }}
  }}
  server {{
    listen 127.0.0.1:{self.web.port};
    access_log {self.web.access_log} front;
    root {d}/www;
    index index.html;
  }}
}}
"""

    def start(self) -> None:
        d = self.directory
        for sub in ("logs", "www", "spool"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        (d / "www" / "index.html").write_text(_WELCOME)
        (d / "htpasswd").write_text(_htpasswd({USER: PASSWORD, READER: READER_PASSWORD}))
        (d / "nginx.conf").write_text(self._config())
        argv = [
            _binary("nginx"),
            "-p",
            str(d),
            "-c",
            str(d / "nginx.conf"),
            "-e",
            str(self.error_log),
        ]
        self._proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        ports = [f.port for f in (*self.fronts.values(), self.elsewhere, self.web)]
        _wait_listening(ports, self._proc, "nginx", self.error_log)

    def stop(self) -> None:
        _stop(self._proc)


# -- Kafka over TLS (stunnel in front of namespaced noida-db brokers) -------------------------


#: stunnel's log tag of a connection: `LOG5[7]:` is connection 7.
_CONNECTION = re.compile(r"LOG\d\[(\d+)\]:")


@dataclass(frozen=True)
class TlsBroker:
    """A broker reachable only through stunnel's service `name` on 127.0.0.1:`port`."""

    name: str
    port: int
    mutual: bool  #: stunnel requires a client certificate signed by the CA
    stunnel_log: Path

    @property
    def bootstrap(self) -> str:
        """Its bootstrap address, the same as the address the broker advertises."""
        return f"127.0.0.1:{self.port}"

    def log(self) -> list[str]:
        """stunnel's log lines about this service."""
        tag = f"Service [{self.name}]"
        return [line for line in _lines(self.stunnel_log) if tag in line]

    def accepted(self) -> int:
        """How many TCP connections stunnel has accepted for it so far."""
        return sum("accepted connection" in line for line in self.log())

    def verified_clients(self) -> int:
        """How many of its connections presented a client certificate stunnel accepted."""
        ours: set[str] = set()
        verified = 0
        for line in _lines(self.stunnel_log):
            found = _CONNECTION.search(line)
            if found is None:
                continue
            if f"Service [{self.name}] accepted connection" in line:
                ours.add(found.group(1))
            elif "Certificate accepted at depth=0" in line and found.group(1) in ours:
                verified += 1
        return verified


class KafkaFronts:
    """noida-db brokers in a network namespace, each behind a stunnel service; plus
    `elsewhere`, a service with a certificate for another host in front of the first one."""

    def __init__(
        self, directory: Path, pki: Pki, brokers: dict[str, bool], ports: list[int]
    ) -> None:
        if len(ports) != len(brokers) + 1:
            raise ValueError("KafkaFronts needs one port per broker, plus one")
        self.directory, self.pki = directory, pki
        self.stunnel_log = directory / "stunnel.log"
        self.brokers = {
            name: TlsBroker(name, port, mutual, self.stunnel_log)
            for (name, mutual), port in zip(brokers.items(), ports, strict=False)
        }
        self.elsewhere = TlsBroker("elsewhere", ports[-1], False, self.stunnel_log)
        self._relay: subprocess.Popen[bytes] | None = None
        self._stunnel: subprocess.Popen[bytes] | None = None
        self._started: list[str] = []

    def __getitem__(self, name: str) -> TlsBroker:
        return self.brokers[name]

    def _socket(self, name: str) -> Path:
        return self.directory / f"{name}.sock"

    def _data_dir(self, name: str) -> Path:
        return self.directory / name

    def _in_namespace(self, *argv: str) -> subprocess.CompletedProcess[str]:
        assert self._relay is not None
        return subprocess.run(
            [_binary("nsenter"), f"--net=/proc/{self._relay.pid}/ns/net", *argv],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, "NO_COLOR": "1"},
        )

    def _noida(self, command: str, name: str, *args: str) -> subprocess.CompletedProcess[str]:
        binary = Path(str(resources.files("noida_db") / "noida-db"))
        if not os.access(binary, os.X_OK):
            binary.chmod(0o755)
        return self._in_namespace(
            str(binary), command, *args, "--data-dir", str(self._data_dir(name))
        )

    def activity(self, name: str) -> str:
        """What broker `name` recently did (request names), from `noida-db activity`."""
        return self._noida("activity", name).stdout

    def _start_relay(self) -> None:
        routes = [f"{self._socket(n)}=127.0.0.1:{b.port}" for n, b in self.brokers.items()]
        log = self.directory / "relay.log"
        with log.open("wb") as out:
            self._relay = subprocess.Popen(
                [
                    _binary("unshare"),
                    "--net",
                    "--",
                    sys.executable,
                    "-m",
                    __name__,
                    "relay",
                    *routes,
                ],
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not all(self._socket(n).exists() for n in self.brokers):
            if self._relay.poll() is not None:
                raise FrontError(f"the namespace relay exited: {_log_tail(log)}")
            if time.monotonic() > deadline:
                raise FrontError(f"the namespace relay did not start: {_log_tail(log)}")
            time.sleep(0.05)

    def _start_brokers(self) -> None:
        for name, broker in self.brokers.items():
            self._data_dir(name).mkdir(parents=True, exist_ok=True)
            up = self._noida("up", name, "--only", "kafka", "--kafka-port", str(broker.port))
            if up.returncode != 0:
                output = (up.stdout + up.stderr).replace("\n", " | ")
                raise FrontError(f"noida-db {name} did not start: {output}")
            self._started.append(name)

    def _stunnel_config(self) -> str:
        pki = self.pki
        lines = ["foreground = yes", "pid =", "debug = notice", ""]
        for broker, target, pair in [
            *((b, n, pki.server) for n, b in self.brokers.items()),
            (self.elsewhere, next(iter(self.brokers)), pki.elsewhere),
        ]:
            lines += [
                f"[{broker.name}]",
                f"accept = 127.0.0.1:{broker.port}",
                f"connect = {self._socket(target)}",
                f"cert = {pair.cert}",
                f"key = {pair.key}",
            ]
            if broker.mutual:
                lines += ["requireCert = yes", "verifyChain = yes", f"CAfile = {pki.ca_file}"]
            lines.append("")
        return "\n".join(lines)

    def _start_stunnel(self) -> None:
        config = self.directory / "stunnel.conf"
        config.write_text(self._stunnel_config())
        with self.stunnel_log.open("wb") as out:
            self._stunnel = subprocess.Popen(
                [_binary("stunnel"), str(config)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        ports = [b.port for b in (*self.brokers.values(), self.elsewhere)]
        _wait_listening(ports, self._stunnel, "stunnel", self.stunnel_log)

    def _wait_ready(self) -> None:
        """Each broker answers a metadata request through its front, advertising it."""
        from confluent_kafka import KafkaException  # noqa: PLC0415
        from confluent_kafka.admin import AdminClient  # noqa: PLC0415

        for broker in self.brokers.values():
            conf: dict[str, str | int | float | bool] = {
                "bootstrap.servers": broker.bootstrap,
                "security.protocol": "SSL",
                "ssl.ca.location": str(self.pki.ca_file),
                "log_level": "0",
            }
            if broker.mutual:
                conf["ssl.certificate.location"] = str(self.pki.client.cert)
                conf["ssl.key.location"] = str(self.pki.client.key)
            admin = AdminClient(conf)
            deadline, problem = time.monotonic() + START_TIMEOUT, "no answer"
            while time.monotonic() < deadline:
                try:
                    brokers = admin.list_topics(timeout=2).brokers.values()
                except KafkaException as exc:
                    problem = str(exc.args[0] if exc.args else exc)
                    continue
                advertised = [f"{b.host}:{b.port}" for b in brokers]
                if advertised == [broker.bootstrap]:
                    break
                problem = f"it advertises {advertised}"
            else:
                raise FrontError(f"broker {broker.name} not ready through stunnel: {problem}")

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._start_relay()
        self._start_brokers()
        self._start_stunnel()
        self._wait_ready()

    def stop(self) -> None:
        _stop(self._stunnel)
        if self._relay is not None and self._relay.poll() is None:
            for name in self._started:
                self._noida("down", name)
        _stop(self._relay)


# -- the relay that runs inside the namespace ------------------------------------------------


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()


async def _relay(routes: list[tuple[str, str, int]]) -> None:
    async def serve(path: str, host: str, port: int) -> asyncio.Server:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                up_reader, up_writer = await asyncio.open_connection(host, port)
            except OSError:
                writer.close()
                return
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            for w in (writer, up_writer):
                w.close()

        return await asyncio.start_unix_server(handle, path=path)

    servers = [await serve(*route) for route in routes]
    await asyncio.gather(*(s.serve_forever() for s in servers))


def relay_main(argv: list[str]) -> None:
    """`relay SOCKET=HOST:PORT ...`: bring the namespace's loopback up, then forward each
    Unix socket to its TCP address until terminated."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)  # noqa: S607
    routes = []
    for arg in argv:
        path, _, target = arg.partition("=")
        host, _, port = target.rpartition(":")
        Path(path).unlink(missing_ok=True)
        routes.append((path, host, int(port)))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_relay(routes))


# -- environments for `clickstream` ----------------------------------------------------------


def kafka_env(broker: TlsBroker, pki: Pki, *, sasl: bool = False) -> dict[str, str]:
    """CLICKSTREAM_KAFKA__* settings for `broker` as a user writes them."""
    env = {
        "CLICKSTREAM_KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap,
        "CLICKSTREAM_KAFKA__SECURITY_PROTOCOL": "SASL_SSL" if sasl else "SSL",
        "CLICKSTREAM_KAFKA__SSL_CA_FILE": str(pki.ca_file),
    }
    if broker.mutual:
        env["CLICKSTREAM_KAFKA__SSL_CERT_FILE"] = str(pki.client.cert)
        env["CLICKSTREAM_KAFKA__SSL_KEY_FILE"] = str(pki.client.key)
    if sasl:
        env["CLICKSTREAM_KAFKA__SASL_MECHANISM"] = "PLAIN"
        env["CLICKSTREAM_KAFKA__SASL_USERNAME"] = USER
        env["CLICKSTREAM_KAFKA__SASL_PASSWORD"] = PASSWORD
    return env


def opensearch_env(front: HttpFront, pki: Pki) -> dict[str, str]:
    """CLICKSTREAM_OPENSEARCH__* settings for `front` as a user writes them."""
    return {
        "CLICKSTREAM_OPENSEARCH__URL": front.url,
        "CLICKSTREAM_OPENSEARCH__USERNAME": USER,
        "CLICKSTREAM_OPENSEARCH__PASSWORD": PASSWORD,
        "CLICKSTREAM_OPENSEARCH__CA_FILE": str(pki.ca_file),
    }


# -- fixtures --------------------------------------------------------------------------------

#: The HTTPS fronts the session's nginx serves, one per group of tests that counts requests.
HTTPS_FRONT_NAMES = ("ssl", "mtls", "sasl", "failures")
#: The TLS brokers: name -> whether stunnel requires a client certificate.
TLS_BROKERS = {"ssl": False, "mtls": True, "sasl": False}


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA, an unrelated CA, and the server, wrong-name and client certificates."""
    return make_pki(tmp_path_factory.mktemp("pki"))


def _started(front: HttpsFronts | KafkaFronts, unavailable: Callable[[str], NoReturn]) -> None:
    try:
        front.start()
    except (FrontError, OSError, subprocess.SubprocessError) as exc:
        problem = str(exc)
    else:
        return
    front.stop()
    unavailable(f"{type(front).__name__} did not start: {problem}")


@pytest.fixture(scope="session")
def https_fronts(
    tmp_path_factory: pytest.TempPathFactory,
    pki: Pki,
    opensearch_url: str,
    free_ports: Callable[[int], list[int]],
    unavailable: Callable[[str], NoReturn],
) -> Iterator[HttpsFronts]:
    """nginx: HTTPS with basic auth in front of the session's search server."""
    upstream = opensearch_url.split("://", 1)[1].rstrip("/")
    fronts = HttpsFronts(
        tmp_path_factory.mktemp("nginx"),
        pki,
        upstream,
        HTTPS_FRONT_NAMES,
        free_ports(len(HTTPS_FRONT_NAMES) + 3),
    )
    _started(fronts, unavailable)
    try:
        yield fronts
    finally:
        fronts.stop()


@pytest.fixture(scope="session")
def kafka_fronts(
    pki: Pki,
    free_ports: Callable[[int], list[int]],
    unavailable: Callable[[str], NoReturn],
) -> Iterator[KafkaFronts]:
    """TLS-only brokers (server-only TLS, mutual TLS, and one for SASL over TLS)."""
    import tempfile  # noqa: PLC0415

    # Unix socket paths must stay under ~100 bytes: a short directory of our own.
    with tempfile.TemporaryDirectory(prefix="cs-tls-") as directory:
        fronts = KafkaFronts(Path(directory), pki, TLS_BROKERS, free_ports(len(TLS_BROKERS) + 1))
        _started(fronts, unavailable)
        try:
            yield fronts
        finally:
            fronts.stop()


if __name__ == "__main__":
    if sys.argv[1:2] != ["relay"]:
        sys.exit("usage: python -m tests.integration.secure relay SOCKET=HOST:PORT ...")
    relay_main(sys.argv[2:])
