"""Import and export against a local HTTP(S) server that checks what OpenSearch Dashboards'
saved-objects API expects: method, path, headers and the multipart body."""

from __future__ import annotations

import base64
import email.parser
import email.policy
import io
import json
import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from clickstream.cli import app, context
from clickstream.cli.terminal import Terminal
from clickstream.dashboards import saved_objects
from clickstream.errors import ConfigError, DashboardsError, DashboardsUnavailable, ExitCode
from clickstream.settings import DashboardsSettings
from tests.fake_dashboards import FakeDashboards, Seen, serve_fake_dashboards

NDJSON = saved_objects.DEFAULT_FILE


@pytest.fixture
def server() -> Iterator[FakeDashboards]:
    with serve_fake_dashboards() as state:
        yield state


@pytest.fixture
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _multipart(seen: Seen) -> tuple[str, str | None, bytes]:
    """The one part of a multipart/form-data body: field name, filename, content."""
    raw = f"content-type: {seen.headers['content-type']}\r\n\r\n".encode() + seen.body
    message = email.parser.BytesParser(policy=email.policy.HTTP).parse(io.BytesIO(raw))
    assert message.is_multipart()
    (part,) = list(message.iter_parts())
    name = part.get_param("name", header="content-disposition")
    content = part.get_payload(decode=True)
    assert isinstance(content, bytes)
    return str(name), part.get_filename(), content


def _settings(url: str, **extra: Any) -> DashboardsSettings:
    return DashboardsSettings(url=url, **extra)


SUCCESS = {"success": True, "successCount": 10, "successResults": []}


class TestImportRequest:
    def test_request_is_what_dashboards_expects(self, server):
        """POST /api/saved_objects/_import?overwrite=true with osd-xsrf, basic auth and a
        multipart body whose `file` part holds the saved objects as ndjson."""
        server.answer = SUCCESS
        objects = saved_objects.read_objects(NDJSON)
        settings = _settings(server.url, username="admin", password=SecretStr("s3cret"))
        result = saved_objects.import_objects(settings, objects)

        assert result.count == 10
        assert result.by_type == {"index-pattern": 1, "visualization": 8, "dashboard": 1}
        (seen,) = server.seen
        assert seen.method == "POST"
        assert seen.path == "/api/saved_objects/_import?overwrite=true"
        assert seen.headers["osd-xsrf"] == "true"
        token = base64.b64encode(b"admin:s3cret").decode()
        assert seen.headers["authorization"] == f"Basic {token}"
        assert seen.headers["content-type"].startswith("multipart/form-data; boundary=")
        name, filename, content = _multipart(seen)
        assert name == "file"
        assert filename is not None
        assert filename.endswith(".ndjson")
        sent = [json.loads(line) for line in content.decode().splitlines()]
        assert sent == objects

    def test_no_credentials_no_authorization_header(self, server):
        """Without a username nothing is sent as Authorization."""
        server.answer = SUCCESS
        saved_objects.import_objects(_settings(server.url), saved_objects.read_objects(NDJSON))
        assert "authorization" not in server.seen[0].headers

    def test_cli_import_for_another_prefix(self, server, monkeypatch):
        """`clickstream dashboards import` imports the committed file, with the index pattern
        retitled for the configured prefix, and says how many objects went in."""
        server.answer = SUCCESS
        monkeypatch.setenv("CLICKSTREAM_DASHBOARDS__URL", server.url)
        monkeypatch.setenv("CLICKSTREAM_OPENSEARCH__INDEX_PREFIX", "shop")
        err = io.StringIO()
        monkeypatch.setattr(context, "terminal", Terminal(stdout=io.StringIO(), stderr=err))
        with pytest.raises(SystemExit) as exit_info:
            app.main(["dashboards", "import"])
        assert exit_info.value.code in (None, 0)
        assert "imported 10 saved objects" in err.getvalue()
        _, _, content = _multipart(server.seen[0])
        titles = [json.loads(line)["attributes"]["title"] for line in content.decode().splitlines()]
        assert titles[0] == "shop-*"

    def test_cli_failure_is_one_error_line(self, server, monkeypatch):
        """A refused import exits 1 with one `error:` line naming what failed, no traceback."""
        server.status = 403
        server.answer = {"statusCode": 403, "message": "no permissions for [saved_objects]"}
        monkeypatch.setenv("CLICKSTREAM_DASHBOARDS__URL", server.url)
        err = io.StringIO()
        monkeypatch.setattr(context, "terminal", Terminal(stdout=io.StringIO(), stderr=err))
        with pytest.raises(SystemExit) as exit_info:
            app.main(["dashboards", "import"])
        assert exit_info.value.code == ExitCode.ERROR
        lines = err.getvalue().strip().splitlines()
        assert len(lines) == 1
        assert lines[0].startswith("error: importing saved objects")
        assert "HTTP 403: no permissions for [saved_objects]" in lines[0]
        assert "Traceback" not in err.getvalue()


class TestImportFailures:
    def test_partial_failure_names_the_objects(self, server):
        """`success: false` with errors is an error naming each failed object and why."""
        server.answer = {
            "success": False,
            "successCount": 8,
            "errors": [
                {
                    "id": "clickstream-most-read",
                    "type": "visualization",
                    "title": "most read",
                    "error": {
                        "type": "missing_references",
                        "references": [{"type": "index-pattern", "id": "clickstream-events"}],
                    },
                },
                {"id": "clickstream-activity", "type": "dashboard", "error": {"type": "conflict"}},
            ],
        }
        with pytest.raises(DashboardsError) as failure:
            saved_objects.import_objects(_settings(server.url), saved_objects.read_objects(NDJSON))
        message = str(failure.value)
        assert "imported 8 of 10" in message
        assert "visualization clickstream-most-read: missing_references" in message
        assert "index-pattern clickstream-events" in message
        assert "dashboard clickstream-activity: conflict" in message

    @pytest.mark.parametrize(
        ("status", "error_class", "hint"),
        [
            (400, DashboardsError, None),
            (401, DashboardsError, "check dashboards.username and dashboards.password"),
            (
                404,
                DashboardsError,
                "is dashboards.url the Dashboards address (not OpenSearch's)?",
            ),
            (500, DashboardsUnavailable, None),
        ],
    )
    def test_http_errors(self, server, status, error_class, hint):
        """HTTP 4xx and 5xx answers become one clear error with the status, the server's
        message and what to check; 5xx counts as unavailable (exit code 3)."""
        server.status = status
        server.answer = {"statusCode": status, "error": "Bad Request", "message": "boom"}
        with pytest.raises(error_class) as failure:
            saved_objects.import_objects(_settings(server.url), saved_objects.read_objects(NDJSON))
        assert f"answered HTTP {status}: boom" in str(failure.value)
        assert failure.value.hint == hint
        expected = ExitCode.UNAVAILABLE if status >= 500 else ExitCode.ERROR
        assert failure.value.exit_code == expected

    def test_answer_that_is_not_json(self, server):
        """A 200 answer that is not JSON (a proxy's page, say) is an error, not a success."""
        server.raw = b"<html>login</html>"
        with pytest.raises(DashboardsError, match="not JSON"):
            saved_objects.import_objects(_settings(server.url), saved_objects.read_objects(NDJSON))

    def test_unreachable(self, free_port):
        """Nothing listening: unavailable, naming the URL."""
        url = f"http://127.0.0.1:{free_port}"
        with pytest.raises(
            DashboardsUnavailable, match=f"cannot reach OpenSearch Dashboards at {url}"
        ):
            saved_objects.import_objects(_settings(url), [])

    def test_no_url_configured(self):
        """Without dashboards.url the error says where to set it."""
        with pytest.raises(ConfigError, match=r"dashboards\.url"):
            saved_objects.import_objects(DashboardsSettings(), [])

    def test_username_without_password(self, server):
        """A username without a password is a configuration error, before any request."""
        with pytest.raises(ConfigError, match="set together"):
            saved_objects.import_objects(_settings(server.url, username="admin"), [])
        assert server.seen == []


class TestExport:
    def test_export_request(self, server):
        """POST /api/saved_objects/_export with osd-xsrf and the dashboard with its references;
        the ndjson answer comes back as it is."""
        server.raw = NDJSON.read_bytes()
        exported = saved_objects.export_objects(_settings(server.url))
        assert exported == NDJSON.read_bytes()
        (seen,) = server.seen
        assert seen.path == "/api/saved_objects/_export"
        assert seen.headers["osd-xsrf"] == "true"
        assert seen.headers["content-type"] == "application/json"
        assert json.loads(seen.body) == {
            "objects": [{"type": "dashboard", "id": "clickstream-activity"}],
            "includeReferencesDeep": True,
        }

    def test_cli_export_to_a_file(self, server, monkeypatch, tmp_path):
        """`clickstream dashboards export --out FILE` writes what Dashboards returned."""
        server.raw = NDJSON.read_bytes()
        monkeypatch.setenv("CLICKSTREAM_DASHBOARDS__URL", server.url)
        monkeypatch.setattr(
            context, "terminal", Terminal(stdout=io.StringIO(), stderr=io.StringIO())
        )
        out = tmp_path / "export.ndjson"
        with pytest.raises(SystemExit) as exit_info:
            app.main(["dashboards", "export", "--out", str(out)])
        assert exit_info.value.code in (None, 0)
        assert out.read_bytes() == NDJSON.read_bytes()
        assert saved_objects.read_objects(out) == saved_objects.read_objects(NDJSON)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (made with the openssl command)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is needed to make a test certificate")
    tmp = tmp_path_factory.mktemp("tls")
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(
        [
            *(openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
def https(certificate) -> Iterator[FakeDashboards]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    with serve_fake_dashboards(context) as state:
        state.answer = SUCCESS
        yield state


class TestTls:
    def test_trusted_with_the_ca_file(self, https, certificate):
        """HTTPS with dashboards.ca_file naming the server's CA: the import goes through."""
        settings = _settings(https.url, ca_file=certificate[0])
        assert saved_objects.import_objects(settings, []).count == 10
        assert https.seen[0].headers["osd-xsrf"] == "true"

    def test_untrusted_certificate_is_a_clear_error(self, https):
        """An unknown CA fails the handshake, and the error says which settings to check."""
        with pytest.raises(DashboardsUnavailable, match=r"TLS .* failed.*dashboards.ca_file"):
            saved_objects.import_objects(_settings(https.url), [])
        assert https.seen == []

    def test_verify_certs_off(self, https):
        """dashboards.verify_certs = false accepts the self-signed certificate."""
        assert (
            saved_objects.import_objects(_settings(https.url, verify_certs=False), []).count == 10
        )

    def test_missing_ca_file(self, https, tmp_path):
        """A CA file that does not exist is a configuration error."""
        with pytest.raises(ConfigError, match="does not exist"):
            saved_objects.import_objects(_settings(https.url, ca_file=tmp_path / "nope.pem"), [])
