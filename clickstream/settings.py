"""Configuration: `conf/clickstream.toml` < `CLICKSTREAM_*` environment < command-line flags.

Files, lowest precedence first:

1. `conf/clickstream.toml` (committed; local-stack defaults), or the file given by
   `--config` / `CLICKSTREAM_CONFIG`;
2. `clickstream.local.toml` beside it (git-ignored; your own overrides and secrets);
3. `opensearch.json` beside it (git-ignored; the proof of concept's format with keys
   `host`, `username`, `password`, `index`).

Then environment variables (`CLICKSTREAM_KAFKA__BOOTSTRAP_SERVERS=...`, nested with
`__`), then flags. Secrets are `SecretStr`: they print as `**********`.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from clickstream import validation
from clickstream.errors import ConfigError

DEFAULT_CONFIG = Path("conf/clickstream.toml")
LOCAL_OVERRIDES = "clickstream.local.toml"
POC_OPENSEARCH_JSON = "opensearch.json"


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _existing_file(path: Path | None, what: str) -> Path | None:
    if path is not None and not path.is_file():
        raise ConfigError(f"{what} {path} does not exist or is not a file")
    return path


class KafkaSettings(_Section):
    """Where the events topic lives and how to reach it (Aiven, Confluent, MSK, local)."""

    bootstrap_servers: str = "127.0.0.1:9092"
    topic: str = "clickstream.events"
    dlq_topic: str = "clickstream.events.dlq"
    partitions: int = Field(default=3, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    group_id: str = "clickstream-indexer"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    ssl_ca_file: Path | None = None
    ssl_cert_file: Path | None = None
    ssl_key_file: Path | None = None
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    #: Extra librdkafka properties, passed through as they are.
    extra: dict[str, str] = Field(default_factory=dict)

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            yield name, validation.masked_properties(value) if name == "extra" else value

    @field_validator("topic", "dlq_topic")
    @classmethod
    def _legal_topic(cls, value: str) -> str:
        return validation.topic_name(value)

    @field_validator("group_id")
    @classmethod
    def _named_group(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a consumer group needs a name")
        return value

    def client_config(self) -> dict[str, str]:
        """The librdkafka properties shared by producer, consumer and admin client."""
        conf: dict[str, str] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
        }
        if self.security_protocol in ("SSL", "SASL_SSL"):
            files = {
                "ssl.ca.location": (self.ssl_ca_file, "Kafka CA file"),
                "ssl.certificate.location": (self.ssl_cert_file, "Kafka client certificate"),
                "ssl.key.location": (self.ssl_key_file, "Kafka client key"),
            }
            for key, (path, what) in files.items():
                if _existing_file(path, what) is not None:
                    conf[key] = str(path)
        if self.security_protocol.startswith("SASL"):
            if not (self.sasl_mechanism and self.sasl_username and self.sasl_password):
                raise ConfigError(
                    f"security_protocol {self.security_protocol} needs "
                    "kafka.sasl_mechanism, kafka.sasl_username and kafka.sasl_password"
                )
            conf["sasl.mechanism"] = self.sasl_mechanism
            conf["sasl.username"] = self.sasl_username
            conf["sasl.password"] = self.sasl_password.get_secret_value()
        # librdkafka would log every failed reconnect to stderr; our error callbacks and
        # wrapped exceptions report connection problems once. `kafka.extra` can override.
        conf["log_level"] = "0"
        conf.update(self.extra)
        return conf


class _HttpService(_Section):
    """A service reached over HTTP(S): its URL (checked; credentials written into it become
    `username` and `password`), its credentials and how its certificate is verified."""

    url: str | None
    username: str | None = None
    password: SecretStr | None = None
    ca_file: Path | None = None
    verify_certs: bool = True

    _url_credentials = model_validator(mode="before")(validation.credentials_from_url)

    @field_validator("url")
    @classmethod
    def _checked_url(cls, value: str | None) -> str | None:
        return None if value is None else validation.http_url(value)


class OpenSearchSettings(_HttpService):
    """The OpenSearch cluster that receives the events."""

    url: str = "http://127.0.0.1:9200"
    index_prefix: str = "clickstream-events"
    timeout: float = Field(default=30.0, gt=0)

    @field_validator("index_prefix")
    @classmethod
    def _legal_index_prefix(cls, value: str) -> str:
        return validation.index_prefix(value)

    @property
    def index_pattern(self) -> str:
        """The pattern matching every daily index, e.g. `clickstream-events-*`."""
        return f"{self.index_prefix}-*"


class DashboardsSettings(_HttpService):
    """OpenSearch Dashboards, if you have one; `setup` imports the saved objects there."""

    url: str | None = None


class ClickHouseSettings(_HttpService):
    """The ClickHouse server `consume --sink clickhouse` writes to (HTTP interface, as
    clickhouse-connect speaks it): the local stack's, a self-hosted one, ClickHouse Cloud."""

    url: str = "http://127.0.0.1:8123"
    username: str | None = "default"
    database: str = "clickstream"
    #: Prefix of the sink's table names inside `database` (e.g. `staging_`).
    table_prefix: str = ""
    #: The consumer group of `consume --sink clickhouse`: its own, so that each sink reads,
    #: lags and fails on its own.
    group_id: str = "clickstream-clickhouse"
    #: Where `consume --sink clickhouse` dead-letters (default `<kafka.topic>.clickhouse.dlq`):
    #: its own, so that each sink's dead letters are counted and replayed into it alone.
    dlq_topic: str | None = None
    timeout: float = Field(default=30.0, gt=0)

    @field_validator("dlq_topic")
    @classmethod
    def _legal_topic(cls, value: str | None) -> str | None:
        return None if value is None else validation.topic_name(value)

    @field_validator("database", "table_prefix")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if value and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
            raise ValueError(
                f"{value!r} is not a ClickHouse name: use letters, digits and '_', not "
                "starting with a digit"
            )
        return value


class SimulationSettings(_Section):
    """The simulated news site."""

    users: int = Field(default=1000, ge=1)
    articles: int = Field(default=400, ge=1)
    seed: int | None = None


#: The stores `consume` can write to.
SinkName = Literal["opensearch", "clickhouse"]


class ConsumerSettings(_Section):
    """Which store `consume` writes to, and how it batches and retries."""

    #: The store of `consume`, `status` and `dlq replay` (`--sink`).
    sink: SinkName = "opensearch"

    batch_size: int = Field(default=2000, ge=1, le=100_000)
    batch_timeout: float = Field(default=1.0, gt=0)
    #: While a backlog is read, offsets are committed at most this often (seconds; 0: after
    #: every batch). A consumer that has caught up, or stops, commits at once.
    commit_interval: float = Field(default=5.0, ge=0)
    retry_initial: float = Field(default=0.2, gt=0)
    retry_max: float = Field(default=10.0, gt=0)
    retry_attempts: int = Field(default=8, ge=1)
    #: Join the group as a static member with an id claimed per host and slot, so that a
    #: consumer restarted after a crash takes its partitions back at once (see README).
    static_membership: bool = True


class StackSettings(_Section):
    """The local stack that `clickstream stack up` runs."""

    host: str = "127.0.0.1"
    kafka_port: int = Field(default=9092, ge=1, le=65535)
    opensearch_port: int = Field(default=9200, ge=1, le=65535)
    clickhouse_port: int = Field(default=8123, ge=1, le=65535)
    state_dir: Path = Path(".clickstream")


class Settings(BaseSettings):
    """Everything `clickstream` can be told."""

    model_config = SettingsConfigDict(
        env_prefix="CLICKSTREAM_",
        env_nested_delimiter="__",
        frozen=True,
        extra="forbid",
    )

    kafka: KafkaSettings = KafkaSettings()
    opensearch: OpenSearchSettings = OpenSearchSettings()
    dashboards: DashboardsSettings = DashboardsSettings()
    clickhouse: ClickHouseSettings = ClickHouseSettings()
    simulation: SimulationSettings = SimulationSettings()
    consumer: ConsumerSettings = ConsumerSettings()
    stack: StackSettings = StackSettings()
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    def for_sink(self, sink: SinkName | None = None, *, group: str | None = None) -> Settings:
        """These settings as `consume`, `status` and `dlq replay` use them for `sink` (by
        default `consumer.sink`): `kafka.group_id` and `kafka.dlq_topic` become that sink's,
        so that each sink reads, lags, dead-letters and fails on its own. `group` (the
        `--group` flag) overrides the group."""
        sink = sink or self.consumer.sink
        kafka: dict[str, Any] = {}
        if sink == "clickhouse":
            ch = self.clickhouse
            kafka = {
                "group_id": ch.group_id,
                "dlq_topic": ch.dlq_topic or f"{self.kafka.topic}.clickhouse.dlq",
            }
        if group is not None:
            kafka["group_id"] = group
        return self.model_copy(
            update={
                "kafka": self.kafka.model_copy(update=kafka),
                "consumer": self.consumer.model_copy(update={"sink": sink}),
            }
        )

    def redacted(self) -> dict[str, Any]:
        """The settings as JSON-ready values with every secret masked."""
        dumped = self.model_dump(mode="json")
        dumped["kafka"]["extra"] = validation.masked_properties(self.kafka.extra)
        return dumped


def plaintext_secrets(settings: Settings) -> list[str]:
    """Where a password would travel unencrypted to another machine: one line each."""
    found = []
    sections = (
        ("opensearch", settings.opensearch),
        ("dashboards", settings.dashboards),
        ("clickhouse", settings.clickhouse),
    )
    for name, section in sections:
        if section.url is None or section.password is None:
            continue
        parts = urlsplit(section.url)
        if parts.scheme == "http" and not validation.loopback(parts.hostname or ""):
            found.append(f"{name}.password is sent over plain HTTP to {parts.hostname}")
    kafka = settings.kafka
    if kafka.security_protocol == "SASL_PLAINTEXT" and kafka.sasl_password is not None:
        hosts = [server.rpartition(":")[0] for server in kafka.bootstrap_servers.split(",")]
        remote = [host for host in hosts if not validation.loopback(host.strip())]
        if remote:
            found.append(f"kafka.sasl_password is sent unencrypted (SASL_PLAINTEXT) to {remote[0]}")
    return found


class _PocOpenSearchJson(PydanticBaseSettingsSource):
    """The proof of concept's `conf/opensearch.json`: host, username, password, index."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        super().__init__(settings_cls)
        self.path = path

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        if not self.path.is_file():
            return {}
        try:
            raw = json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read {self.path}: {exc}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{self.path} must hold a JSON object")
        keys = {
            "host": "url",
            "username": "username",
            "password": "password",
            "index": "index_prefix",
        }
        section = {ours: raw[theirs] for theirs, ours in keys.items() if raw.get(theirs)}
        return {"opensearch": section} if section else {}


def config_path(explicit: Path | None = None) -> Path:
    """The main configuration file: the flag, else `CLICKSTREAM_CONFIG`, else the default."""
    if explicit is not None:
        return explicit
    env = os.environ.get("CLICKSTREAM_CONFIG")
    return Path(env) if env else DEFAULT_CONFIG


def load_settings(config: Path | None = None, overrides: dict[str, Any] | None = None) -> Settings:
    """Build the settings from the files, the environment and `overrides` (the flags).

    `overrides` is nested like the settings, e.g. `{"kafka": {"topic": "t"}}`; keys whose
    value is None are ignored, so unset flags leave lower layers alone.
    """
    path = config_path(config)
    named = config is not None or bool(os.environ.get("CLICKSTREAM_CONFIG"))
    if named and not path.is_file():
        source = "--config" if config is not None else "CLICKSTREAM_CONFIG"
        raise ConfigError(
            f"configuration file {path} (from {source}) does not exist or is not a file"
        )
    files = [path, path.with_name(LOCAL_OVERRIDES)]

    class _Layered(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (
                init_settings,
                env_settings,
                _PocOpenSearchJson(settings_cls, path.with_name(POC_OPENSEARCH_JSON)),
                TomlConfigSettingsSource(settings_cls, toml_file=files, deep_merge=True),
            )

    try:
        return _Layered(**_drop_none(overrides or {}))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from None
    except SettingsError as exc:
        # pydantic-settings names the source: a CLICKSTREAM_* variable that is not valid JSON
        # (a section or a dict such as CLICKSTREAM_KAFKA__EXTRA) is not the file's fault.
        cause = exc.__cause__ or exc
        if "EnvSettingsSource" in str(exc):
            raise ConfigError(
                f"cannot parse a CLICKSTREAM_* environment variable: {exc} ({cause})",
                hint='dict values are JSON, e.g. CLICKSTREAM_KAFKA__EXTRA=\'{"linger.ms": "10"}\'',
            ) from None
        raise ConfigError(f"cannot read configuration {path}: {exc} ({cause})") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read configuration {path}: {exc}") from None


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            nested = _drop_none(value)
            if nested:
                out[key] = nested
        elif value is not None:
            out[key] = value
    return out
