"""Settings layering: file < local file < opensearch.json < environment < flags."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from clickstream.errors import ConfigError
from clickstream.settings import Settings, load_settings, plaintext_secrets


@pytest.fixture
def conf(tmp_path, monkeypatch):
    """A config file in a temporary conf/ directory, and a clean environment."""
    for key in list(__import__("os").environ):
        if key.startswith("CLICKSTREAM_"):
            monkeypatch.delenv(key)
    path = tmp_path / "clickstream.toml"
    path.write_text(
        '[kafka]\ntopic = "from-file"\ngroup_id = "file-group"\n'
        '[opensearch]\nurl = "http://file:9200"\n'
    )
    return path


class TestLayering:
    def test_file_over_defaults(self, conf):
        """Values in the file replace the built-in defaults, others stay default."""
        settings = load_settings(conf)
        assert settings.kafka.topic == "from-file"
        assert settings.kafka.partitions == 3

    def test_env_over_file(self, conf, monkeypatch):
        """CLICKSTREAM_* variables (nested with __) override the file."""
        monkeypatch.setenv("CLICKSTREAM_KAFKA__TOPIC", "from-env")
        settings = load_settings(conf)
        assert settings.kafka.topic == "from-env"
        assert settings.kafka.group_id == "file-group"

    def test_flags_over_env(self, conf, monkeypatch):
        """Flags override the environment; unset flags (None) leave lower layers alone."""
        monkeypatch.setenv("CLICKSTREAM_KAFKA__TOPIC", "from-env")
        monkeypatch.setenv("CLICKSTREAM_KAFKA__GROUP_ID", "env-group")
        settings = load_settings(conf, {"kafka": {"topic": "from-flag", "group_id": None}})
        assert settings.kafka.topic == "from-flag"
        assert settings.kafka.group_id == "env-group"

    def test_local_file_over_main_file(self, conf):
        """clickstream.local.toml beside the main file overrides it."""
        conf.with_name("clickstream.local.toml").write_text('[kafka]\ntopic = "local"\n')
        settings = load_settings(conf)
        assert settings.kafka.topic == "local"
        assert settings.kafka.group_id == "file-group"

    def test_poc_opensearch_json(self, conf):
        """The proof of concept's opensearch.json sets url, credentials and index prefix."""
        conf.with_name("opensearch.json").write_text(
            json.dumps(
                {
                    "host": "search.example.com:443",
                    "username": "avnadmin",
                    "password": "s3cret",
                    "index": "clicks",
                }
            )
        )
        settings = load_settings(conf)
        assert settings.opensearch.url == "https://search.example.com:443"
        assert settings.opensearch.username == "avnadmin"
        assert settings.opensearch.password is not None
        assert settings.opensearch.password.get_secret_value() == "s3cret"
        assert settings.opensearch.index_prefix == "clicks"


class TestSecrets:
    def test_secrets_masked(self, conf, monkeypatch):
        """Passwords never appear in the printable form of the settings."""
        monkeypatch.setenv("CLICKSTREAM_OPENSEARCH__PASSWORD", "hunter2")
        monkeypatch.setenv("CLICKSTREAM_KAFKA__SASL_PASSWORD", "hunter3")
        settings = load_settings(conf)
        shown = json.dumps(settings.redacted()) + repr(settings) + str(settings)
        assert "hunter2" not in shown
        assert "hunter3" not in shown

    def test_sasl_config(self, conf, monkeypatch):
        """SASL settings become librdkafka properties, password included only there."""
        monkeypatch.setenv("CLICKSTREAM_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
        monkeypatch.setenv("CLICKSTREAM_KAFKA__SASL_MECHANISM", "SCRAM-SHA-256")
        monkeypatch.setenv("CLICKSTREAM_KAFKA__SASL_USERNAME", "avnadmin")
        monkeypatch.setenv("CLICKSTREAM_KAFKA__SASL_PASSWORD", "pw")
        config = load_settings(conf).kafka.client_config()
        assert config["sasl.mechanism"] == "SCRAM-SHA-256"
        assert config["sasl.password"] == "pw"
        assert config["security.protocol"] == "SASL_SSL"

    def test_ssl_files_must_exist(self, conf, monkeypatch, tmp_path):
        """A missing certificate file is a configuration error naming the file."""
        monkeypatch.setenv("CLICKSTREAM_KAFKA__SECURITY_PROTOCOL", "SSL")
        monkeypatch.setenv("CLICKSTREAM_KAFKA__SSL_CA_FILE", str(tmp_path / "ca.pem"))
        with pytest.raises(ConfigError, match=r"ca\.pem"):
            load_settings(conf).kafka.client_config()


class TestErrors:
    def test_invalid_value(self, conf):
        """A bad value is one ConfigError naming the setting."""
        with pytest.raises(ConfigError, match=r"kafka\.partitions"):
            load_settings(conf, {"kafka": {"partitions": 0}})

    def test_missing_explicit_file(self, tmp_path):
        """An explicitly named config file that is missing is an error."""
        with pytest.raises(ConfigError, match="does not exist"):
            load_settings(tmp_path / "nope.toml")

    def test_unknown_key_in_file(self, conf):
        """A misspelt key in the file is reported, not ignored."""
        conf.write_text('[kafka]\ntopik = "x"\n')
        with pytest.raises(ConfigError, match="topik"):
            load_settings(conf)

    def test_missing_file_named_by_the_environment(self, conf, tmp_path, monkeypatch):
        """CLICKSTREAM_CONFIG naming a missing file is an error, not a silent fallback."""
        monkeypatch.setenv("CLICKSTREAM_CONFIG", str(tmp_path / "nope.toml"))
        with pytest.raises(ConfigError, match=r"nope\.toml \(from CLICKSTREAM_CONFIG\) does not"):
            load_settings()


class TestNames:
    """Topic, group and index names are checked when settings load, not when a batch fails."""

    @pytest.mark.parametrize(
        "prefix",
        ["Click-Events", "click events", "-events", "_events", "a*b", "a#b", "", "x" * 250],
    )
    def test_illegal_index_prefix(self, conf, prefix):
        """An index prefix OpenSearch would refuse is a configuration error."""
        with pytest.raises(
            ConfigError, match=r"opensearch\.index_prefix: .* OpenSearch index name"
        ):
            load_settings(conf, {"opensearch": {"index_prefix": prefix}})

    @pytest.mark.parametrize("prefix", ["clickstream-events", "my.site_events-2", "a"])
    def test_legal_index_prefix(self, conf, prefix):
        """Lower case letters, digits, '.', '_' and '-' make a prefix."""
        assert (
            load_settings(conf, {"opensearch": {"index_prefix": prefix}}).opensearch.index_prefix
            == prefix
        )

    @pytest.mark.parametrize("field", ["topic", "dlq_topic"])
    @pytest.mark.parametrize("name", ["with space", "", "a/b", ".", "t" * 250, "émoji"])
    def test_illegal_topic(self, conf, field, name):
        """A topic name Kafka would refuse is a configuration error naming the setting."""
        with pytest.raises(ConfigError, match=rf"kafka\.{field}: .* not a Kafka topic name"):
            load_settings(conf, {"kafka": {field: name}})

    def test_blank_group(self, conf):
        """A consumer group needs a name."""
        with pytest.raises(ConfigError, match=r"kafka\.group_id"):
            load_settings(conf, {"kafka": {"group_id": "  "}})


class TestUrls:
    """Service URLs are checked when settings load, and credentials in them are secrets."""

    def test_credentials_move_out_of_the_url(self, conf):
        """user:password@ in the OpenSearch URL become username and a secret password."""
        search = load_settings(
            conf, {"opensearch": {"url": "https://admin:S3cret@h:9200"}}
        ).opensearch
        assert search.url == "https://h:9200"
        assert search.username == "admin"
        assert search.password is not None
        assert search.password.get_secret_value() == "S3cret"
        assert "S3cret" not in repr(search)

    def test_percent_encoded_credentials(self, conf):
        """Credentials in a URL are percent-decoded, as URLs carry them."""
        board = load_settings(conf, {"dashboards": {"url": "http://a%40b:p%3Aw@127.0.0.1:5601"}})
        assert board.dashboards.url == "http://127.0.0.1:5601"
        assert board.dashboards.username == "a@b"
        assert board.dashboards.password is not None
        assert board.dashboards.password.get_secret_value() == "p:w"

    def test_poc_json_host_with_credentials(self, conf):
        """The proof of concept's opensearch.json host may carry credentials; they are split."""
        (conf.parent / "opensearch.json").write_text('{"host": "https://u:pw@poc:9200"}')
        search = load_settings(conf).opensearch
        assert (search.url, search.username) == ("https://poc:9200", "u")

    def test_credentials_twice_are_refused(self, conf):
        """Credentials in the URL and in username/password at once: one error, no secret in it."""
        with pytest.raises(ConfigError, match="set them in one place") as caught:
            load_settings(
                conf, {"opensearch": {"url": "https://u:S3cret@h:9200", "password": "other"}}
            )
        assert "S3cret" not in str(caught.value)

    @pytest.mark.parametrize(
        "url",
        ["ht!tp://::::", "ftp://h", "http://", "http://h:99999", "https://\x1b", "https://\uf900"],
    )
    def test_nonsense_urls(self, conf, url):
        """A URL that is not http(s) with a host and a valid port is a configuration error."""
        with pytest.raises(ConfigError, match=r"opensearch\.url: .*"):
            load_settings(conf, {"opensearch": {"url": url}})

    def test_an_international_host_name(self, conf):
        """A host name in another script is accepted, as its IDNA form will be sent."""
        url = "https://bücher.example:9200"
        assert load_settings(conf, {"opensearch": {"url": url}}).opensearch.url == url

    def test_a_bad_url_hides_its_password(self, conf):
        """The error about a bad URL shows the URL with its password masked."""
        with pytest.raises(ConfigError) as caught:
            load_settings(conf, {"dashboards": {"url": "gopher://u:S3cret@h"}})
        assert "S3cret" not in str(caught.value)
        assert "gopher://h" in str(caught.value)


class TestSecretProperties:
    """librdkafka properties holding secrets are never shown."""

    def test_extra_secrets_are_masked(self, conf):
        """sasl.password and ssl.key.password in kafka.extra are masked in repr and redacted()."""
        extra = {"sasl.password": "hunter2", "ssl.key.password": "k3y", "linger.ms": "5"}
        settings = load_settings(conf, {"kafka": {"extra": extra}})
        assert "hunter2" not in repr(settings)
        assert "k3y" not in repr(settings.kafka)
        shown = settings.redacted()["kafka"]["extra"]
        assert shown == {
            "sasl.password": "**********",
            "ssl.key.password": "**********",
            "linger.ms": "5",
        }
        assert settings.kafka.extra["sasl.password"] == "hunter2"  # still passed to librdkafka


class TestEnvironmentErrors:
    """A bad environment value is blamed on the environment, not on a file."""

    def test_bad_json_in_an_environment_dict(self, conf, monkeypatch):
        """CLICKSTREAM_KAFKA__EXTRA that is not JSON names the environment, not the file."""
        monkeypatch.setenv("CLICKSTREAM_KAFKA__EXTRA", "{bad")
        with pytest.raises(ConfigError, match="CLICKSTREAM_\\* environment variable") as caught:
            load_settings(conf)
        assert str(conf) not in str(caught.value)


class TestPlaintextSecrets:
    """A password about to travel unencrypted to another machine is pointed out."""

    @pytest.mark.parametrize(
        ("url", "warned"),
        [
            ("http://u:p@search.example.com:9200", True),
            ("https://u:p@search.example.com:9200", False),
            ("http://u:p@127.0.0.1:9200", False),
            ("http://u:p@localhost:9200", False),
            ("http://search.example.com:9200", False),
        ],
    )
    def test_opensearch_password_over_http(self, conf, url, warned):
        """Only a password over plain HTTP to a host that is not loopback is flagged."""
        settings = load_settings(conf, {"opensearch": {"url": url}})
        assert bool(plaintext_secrets(settings)) is warned

    def test_sasl_plaintext(self, conf):
        """SASL_PLAINTEXT with a password to a remote broker is flagged."""
        settings = load_settings(
            conf,
            {
                "kafka": {
                    "bootstrap_servers": "kafka.example.com:9092",
                    "security_protocol": "SASL_PLAINTEXT",
                    "sasl_mechanism": "PLAIN",
                    "sasl_username": "u",
                    "sasl_password": "p",
                }
            },
        )
        assert plaintext_secrets(settings) == [
            "kafka.sasl_password is sent unencrypted (SASL_PLAINTEXT) to kafka.example.com"
        ]


class TestForSink:
    """Each sink reads in its own group and dead-letters to its own topic."""

    def test_opensearch_keeps_the_kafka_group(self, conf):
        """The default sink reads in `kafka.group_id` with `kafka.dlq_topic`."""
        settings = load_settings(conf).for_sink()
        assert settings.consumer.sink == "opensearch"
        assert settings.kafka.group_id == "file-group"
        assert settings.kafka.dlq_topic == "clickstream.events.dlq"

    def test_clickhouse_reads_in_its_own_group(self, conf):
        """ClickHouse reads in `clickhouse.group_id`, dead-letters to a topic of its own."""
        settings = load_settings(conf).for_sink("clickhouse")
        assert settings.consumer.sink == "clickhouse"
        assert settings.kafka.group_id == "clickstream-clickhouse"
        assert settings.kafka.dlq_topic == "from-file.clickhouse.dlq"

    def test_the_configured_sink_is_the_default(self, conf):
        """`consumer.sink` in the file picks the sink when no flag does."""
        conf.write_text(conf.read_text() + '[consumer]\nsink = "clickhouse"\n')
        settings = load_settings(conf).for_sink()
        assert settings.kafka.group_id == "clickstream-clickhouse"

    def test_a_named_group_wins(self, conf):
        """`--group` overrides the sink's group."""
        settings = load_settings(conf).for_sink("clickhouse", group="mine")
        assert settings.kafka.group_id == "mine"


class TestReadmeExamples:
    """The configuration examples in the README load, and make the librdkafka settings
    that the secure-connection tests run with."""

    @staticmethod
    def examples() -> list[str]:
        readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
        return re.findall(r"```toml\n(.*?)```", readme, flags=re.DOTALL)

    def _load(self, example: str, tmp_path, monkeypatch) -> Settings:
        for key in [k for k in os.environ if k.startswith("CLICKSTREAM_")]:
            monkeypatch.delenv(key)
        for name in ("ca.pem", "service.cert", "service.key", "opensearch-ca.pem"):
            (tmp_path / "conf").mkdir(exist_ok=True)
            (tmp_path / "conf" / name).write_text("not a real certificate")
        monkeypatch.chdir(tmp_path)
        config = tmp_path / "example.toml"
        config.write_text(example)
        return load_settings(config)

    def test_the_mutual_tls_example(self, tmp_path, monkeypatch):
        """The Aiven example gives SSL with a client certificate and key."""
        (example,) = [e for e in self.examples() if 'security_protocol = "SSL"' in e]
        conf = self._load(example, tmp_path, monkeypatch).kafka.client_config()
        assert conf["security.protocol"] == "SSL"
        assert conf["ssl.certificate.location"] == "conf/service.cert"
        assert conf["ssl.key.location"] == "conf/service.key"

    def test_the_sasl_ssl_example(self, tmp_path, monkeypatch):
        """The Confluent example gives SASL_SSL with PLAIN, and its URL's password a secret."""
        (example,) = [e for e in self.examples() if '"SASL_SSL"' in e]
        settings = self._load(example, tmp_path, monkeypatch)
        conf = settings.kafka.client_config()
        assert (conf["security.protocol"], conf["sasl.mechanism"]) == ("SASL_SSL", "PLAIN")
        assert settings.opensearch.url == "https://search.example.com:9200"
        assert settings.opensearch.username == "admin"
