"""docker-compose.yml: it parses, its ports and names match the configuration, its images are
pinned, and security is switched off explicitly (it cannot be started here)."""

from __future__ import annotations

import base64
import json
import re
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from clickstream.dashboards import saved_objects
from clickstream.dashboards.grafana import board
from clickstream.settings import ClickHouseSettings, KafkaSettings, OpenSearchSettings

ROOT = Path(__file__).resolve().parents[2]
PINNED = re.compile(r"^[\w./-]+:\d+\.\d+\.\d+$")


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def conf():
    return tomllib.loads((ROOT / "conf" / "clickstream.toml").read_text(encoding="utf-8"))


def _published(service) -> dict[int, tuple[str, int]]:
    """container port -> (host address, host port) of a service's `ports`."""
    out = {}
    for entry in service["ports"]:
        host, host_port, container = str(entry).split(":")
        out[int(container)] = (host, int(host_port))
    return out


class TestCompose:
    def test_services_and_pinned_images(self, compose):
        """Kafka, OpenSearch, Dashboards, ClickHouse and Grafana, each image pinned to an
        exact x.y.z version, OpenSearch and Dashboards on the same version."""
        services = compose["services"]
        assert set(services) == {"kafka", "opensearch", "dashboards", "clickhouse", "grafana"}
        images = {name: s["image"] for name, s in services.items()}
        for image in images.values():
            assert PINNED.match(image), image
        assert images["kafka"].startswith("apache/kafka:")
        assert images["opensearch"].startswith("opensearchproject/opensearch:")
        assert images["dashboards"].startswith("opensearchproject/opensearch-dashboards:")
        assert images["opensearch"].split(":")[1] == images["dashboards"].split(":")[1]
        assert images["clickhouse"].startswith("clickhouse/clickhouse-server:24.7.")
        assert images["grafana"] == "grafana/grafana:11.1.0"

    def test_ports_match_the_configuration(self, compose, conf):
        """Published on 127.0.0.1 at the ports of conf/clickstream.toml and the settings'
        defaults; the Dashboards port is the one the configuration suggests."""
        services = compose["services"]
        kafka_port = int(conf["kafka"]["bootstrap_servers"].rsplit(":", 1)[1])
        search = urlsplit(conf["opensearch"]["url"])
        assert kafka_port == int(KafkaSettings().bootstrap_servers.rsplit(":", 1)[1])
        assert search.port == urlsplit(OpenSearchSettings().url).port
        assert _published(services["kafka"])[9092] == ("127.0.0.1", kafka_port)
        assert _published(services["opensearch"])[9200] == ("127.0.0.1", search.port)
        text = (ROOT / "conf" / "clickstream.toml").read_text(encoding="utf-8")
        suggested = re.search(r'^# url = "(http://[^"]+)"', text, re.M)
        assert suggested is not None
        assert _published(services["dashboards"])[5601] == (
            "127.0.0.1",
            urlsplit(suggested[1]).port,
        )

    def test_kafka_is_kraft_and_advertises_the_configured_address(self, compose, conf):
        """A single KRaft broker+controller (no ZooKeeper) that tells host clients to use
        exactly kafka.bootstrap_servers, with a valid cluster id and no auto-created topics."""
        kafka = compose["services"]["kafka"]
        env = kafka["environment"]
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert not any("ZOOKEEPER" in key for key in env)
        assert f"{env['KAFKA_NODE_ID']}@kafka:9093" == env["KAFKA_CONTROLLER_QUORUM_VOTERS"]
        advertised = dict(
            item.split("://") for item in env["KAFKA_ADVERTISED_LISTENERS"].split(",")
        )
        assert advertised["HOST"] == conf["kafka"]["bootstrap_servers"]
        assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == 1
        assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
        cluster_id = env["CLUSTER_ID"]
        assert len(cluster_id) == 22
        assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16

    def test_security_is_disabled_explicitly(self, compose):
        """Both security plugins are switched off by name, for local use, and the file says so."""
        services = compose["services"]
        assert services["opensearch"]["environment"]["DISABLE_SECURITY_PLUGIN"] == "true"
        assert services["opensearch"]["environment"]["DISABLE_INSTALL_DEMO_CONFIG"] == "true"
        assert services["dashboards"]["environment"]["DISABLE_SECURITY_DASHBOARDS_PLUGIN"] == "true"
        assert "FOR LOCAL USE ONLY" in (ROOT / "docker-compose.yml").read_text(encoding="utf-8")

    def test_dashboards_reach_opensearch_by_service_name(self, compose):
        """Dashboards talks to the `opensearch` service on its container port, after it is
        healthy; every service has a health check."""
        services = compose["services"]
        hosts = json.loads(services["dashboards"]["environment"]["OPENSEARCH_HOSTS"])
        assert hosts == ["http://opensearch:9200"]
        assert services["dashboards"]["depends_on"] == {
            "opensearch": {"condition": "service_healthy"}
        }
        for service in services.values():
            assert service["healthcheck"]["test"][0] == "CMD-SHELL"

    def test_saved_objects_name_the_dashboards_version(self, compose):
        """The dashboard's panels record the Dashboards version the compose file runs."""
        version = compose["services"]["dashboards"]["image"].split(":")[1]
        ndjson = saved_objects.DEFAULT_FILE.read_text(encoding="utf-8")
        board = json.loads(ndjson.splitlines()[-1])
        panels = json.loads(board["attributes"]["panelsJSON"])
        assert {p["version"] for p in panels} == {version}

    def test_readme_explains_it(self):
        """The README has the section a Docker user follows, with the commands in order."""
        readme = (ROOT / "README.md").read_text(encoding="utf-8")
        section = readme.split("## Run on real Kafka and OpenSearch with Docker", 1)[1]
        section = section.split("\n## ", 1)[0]
        steps = ["clickstream stack down", "docker compose up", "clickstream setup", "Open http"]
        positions = [section.index(step) for step in steps]
        assert positions == sorted(positions)


def _mounts(service) -> dict[str, str]:
    """container path -> host path (relative to the compose file) of a service's binds."""
    out = {}
    for entry in service["volumes"]:
        source, target, *_ = str(entry).split(":")
        if source.startswith("."):
            out[target] = source
    return out


@pytest.fixture(scope="module")
def provisioning():
    base = ROOT / "dashboards" / "grafana" / "provisioning"
    return {
        kind: yaml.safe_load((base / kind / name).read_text(encoding="utf-8"))
        for kind, name in (
            ("datasources", "clickhouse.yaml"),
            ("dashboards", "clickstream.yaml"),
            ("alerting", "clickstream.yaml"),
        )
    }


class TestComposeGrafana:
    """ClickHouse and Grafana in docker-compose.yml, and Grafana's provisioning files."""

    def test_clickhouse_is_where_the_settings_look(self, compose, conf):
        """ClickHouse's HTTP port is published on 127.0.0.1 at the port of the [clickhouse]
        url in conf/clickstream.toml and in the settings' default."""
        url = urlsplit(conf["clickhouse"]["url"])
        assert url.port == urlsplit(ClickHouseSettings().url).port
        assert _published(compose["services"]["clickhouse"])[8123] == ("127.0.0.1", url.port)

    def test_grafana_is_published_on_loopback(self, compose):
        """Grafana answers on 127.0.0.1:3000 only, and starts after ClickHouse is healthy."""
        grafana = compose["services"]["grafana"]
        assert _published(grafana)[3000] == ("127.0.0.1", 3000)
        assert grafana["depends_on"] == {"clickhouse": {"condition": "service_healthy"}}

    def test_plugin_is_pinned_to_the_dashboards_version(self, compose):
        """GF_INSTALL_PLUGINS names the ClickHouse plugin with a version, the one every
        query of the dashboard was written for."""
        plugin, version = compose["services"]["grafana"]["environment"]["GF_INSTALL_PLUGINS"].split(
            " "
        )
        assert plugin == board.PLUGIN
        assert re.fullmatch(r"\d+\.\d+\.\d+", version)
        dashboard = board.read_dashboard()
        versions = {t["pluginVersion"] for p in dashboard["panels"] for t in p.get("targets", [])}
        assert versions == {version}

    def test_mounted_paths_exist(self, compose):
        """Every file and directory the Grafana service mounts is in the repository."""
        mounts = _mounts(compose["services"]["grafana"])
        assert mounts["/etc/grafana/provisioning"] == "./dashboards/grafana/provisioning"
        for source in mounts.values():
            assert (ROOT / source).exists(), source

    def test_the_provisioned_dashboard_is_the_one_the_report_reads(self, compose, provisioning):
        """The dashboard provider's folder holds, through the mount, the package's own
        clickstream.json: one file for Grafana and for `report --from clickhouse`."""
        mounts = _mounts(compose["services"]["grafana"])
        (provider,) = provisioning["dashboards"]["providers"]
        folder = provider["options"]["path"]
        mounted = {t: s for t, s in mounts.items() if t.startswith(folder + "/")}
        assert list(mounted.values()) == ["./clickstream/dashboards/grafana/clickstream.json"]
        assert (ROOT / mounted[next(iter(mounted))]).resolve() == board.DEFAULT_FILE

    def test_datasource_points_at_the_compose_clickhouse(self, compose, provisioning):
        """The data source reaches the `clickhouse` service over HTTP on its container port,
        as the settings' default user, with the uid the dashboard and the alerts use."""
        (source,) = provisioning["datasources"]["datasources"]
        assert source["type"] == board.PLUGIN
        data = source["jsonData"]
        assert data["host"] == "clickhouse"
        assert "clickhouse" in compose["services"]
        assert data["protocol"] == "http"
        assert data["port"] in _published(compose["services"]["clickhouse"])
        assert data["username"] == ClickHouseSettings().username
        assert data["defaultDatabase"] == ClickHouseSettings().database
        variables = {v["name"]: v for v in board.read_dashboard()["templating"]["list"]}
        assert variables["datasource"]["current"]["value"] == source["uid"]
        rules = provisioning["alerting"]["groups"][0]["rules"]
        queries = [q for r in rules for q in r["data"] if q["datasourceUid"] != "__expr__"]
        assert {q["datasourceUid"] for q in queries} == {source["uid"]}

    def test_alert_rules_are_complete(self, provisioning):
        """Each alert rule has a unique uid, a condition that names one of its queries, a
        threshold on the SQL query, a pending period and a summary."""
        rules = provisioning["alerting"]["groups"][0]["rules"]
        assert {r["uid"] for r in rules} == {"clickstream-ingest-delay", "clickstream-dead-letters"}
        for rule in rules:
            refs = {q["refId"]: q for q in rule["data"]}
            assert rule["condition"] in refs
            condition = refs[rule["condition"]]["model"]
            assert condition["type"] == "threshold"
            assert refs[condition["expression"]]["model"]["editorType"] == "sql"
            assert rule["for"]
            assert rule["annotations"]["summary"]

    def test_readme_shows_the_grafana_dashboard(self):
        """The README's Docker section tells how to see the Grafana dashboard, in order."""
        readme = (ROOT / "README.md").read_text(encoding="utf-8")
        section = readme.split("## Run on real Kafka and OpenSearch with Docker", 1)[1]
        section = section.split("\n## ", 1)[0]
        steps = ["docker compose up", "consume --sink clickhouse", "http://127.0.0.1:3000"]
        positions = [section.index(step) for step in steps]
        assert positions == sorted(positions)
