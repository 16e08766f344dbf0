"""No input makes a traceback: random flags, configuration files and environment values end
with an exit code of the README's (0, 1, 2, 3), never an unexpected exception.

The command line runs in-process. Every service it could reach is a closed port on loopback,
so that a command that gets as far as connecting fails at once (exit 3) instead of waiting.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clickstream.cli import app, context
from clickstream.cli.terminal import Terminal

#: Where every service points: nothing listens on port 1.
CLOSED = "127.0.0.1:1"
EXIT_CODES = {0, 1, 2, 3}

text = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=30)
numbers = st.one_of(
    st.integers(-(10**12), 10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    text,
)
times = st.one_of(
    st.datetimes().map(lambda d: d.isoformat()),
    st.sampled_from(["1999-12-31T23:00:00Z", "2026-01-01T00:00:00Z", "now", "", "9999-99-99"]),
    text,
)
durations = st.one_of(
    st.sampled_from(["1h", "30m", "999999999d", "1e30s", "-1h", "0s", "2w"]),
    st.integers(-(10**15), 10**15).map(lambda n: f"{n}d"),
    times,
)

produce_args = st.lists(
    st.one_of(
        st.tuples(st.just("--count"), st.integers(-5, 50).map(str)),
        st.tuples(st.just("--rate"), st.sampled_from(["0", "-1", "1e9", "nan", "x"])),
        st.tuples(st.just("--users"), numbers),
        st.tuples(st.just("--seed"), numbers),
        st.tuples(st.just("--start"), times),
        st.tuples(st.just("--end"), times),
        st.tuples(
            st.just("--scenario"), st.one_of(st.sampled_from(["steady", "bot-attack"]), text)
        ),
        st.tuples(st.just("--topic"), text),
    ),
    max_size=4,
).map(lambda pairs: ["produce", "--dry-run", "--count", "20", *[x for p in pairs for x in p]])

other_commands = st.one_of(
    st.tuples(st.just("report"), st.just("--since"), durations).map(list),
    st.tuples(st.just("report"), st.just("--opensearch-url"), text).map(list),
    st.tuples(st.just("report"), st.just("--index-prefix"), text).map(list),
    st.tuples(st.just("dashboards"), st.just("render"), st.just("--since"), durations).map(list),
    st.just(["dashboards", "render", "--file", "{file}"]),
    st.just(["dashboards", "import", "--file", "{file}"]),
    st.tuples(st.just("consume"), st.just("--batch-size"), numbers).map(list),
    st.tuples(st.just("status"), st.just("--topic"), text).map(list),
    st.lists(text, max_size=3),
)

settings_keys = [
    "KAFKA__BOOTSTRAP_SERVERS",
    "KAFKA__TOPIC",
    "KAFKA__PARTITIONS",
    "KAFKA__EXTRA",
    "KAFKA__SECURITY_PROTOCOL",
    "OPENSEARCH__URL",
    "OPENSEARCH__INDEX_PREFIX",
    "OPENSEARCH__TIMEOUT",
    "DASHBOARDS__URL",
    "CONSUMER__BATCH_SIZE",
    "SIMULATION__USERS",
    "LOG_LEVEL",
    "KAFKA",
]
environments = st.dictionaries(
    st.sampled_from(settings_keys).map(lambda k: f"CLICKSTREAM_{k}"),
    st.one_of(numbers, st.sampled_from(["{bad", "[]", '{"a": 1}', "SSL", "https://u:p@h:1"])),
    max_size=3,
)
toml_files = st.one_of(
    text,
    st.sampled_from(
        [
            "",
            "[kafka]\npartitions = 0\n",
            "[kafka]\ntopik = 1\n",
            "[opensearch]\nurl = 'ht!tp://::::'\n",
            "[opensearch]\nindex_prefix = 'Click-Events'\n",
            "log_level = 'loud'\n",
            "[[kafka]]\n",
            "= broken",
        ]
    ),
    st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
)


@pytest.fixture
def quiet_services(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No user configuration: no CLICKSTREAM_* variables, no conf/ directory."""
    for key in [k for k in os.environ if k.startswith("CLICKSTREAM_")]:
        monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


def run(argv: list[str], env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> int:
    """Run the command line in-process with `env` on top of closed-port services."""
    base = {
        "CLICKSTREAM_KAFKA__BOOTSTRAP_SERVERS": CLOSED,
        "CLICKSTREAM_OPENSEARCH__URL": f"http://{CLOSED}",
        "CLICKSTREAM_DASHBOARDS__URL": f"http://{CLOSED}",
    }
    with monkeypatch.context() as patch:
        for key, value in {**base, **env}.items():
            patch.setenv(key, value)
        out, err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8"), io.StringIO()
        patch.setattr(context, "terminal", Terminal(stdout=out, stderr=err))
        patch.setattr(context, "state", context.State())
        try:
            app.main(argv)
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else 1
        else:
            code = 0
    out.flush()
    assert isinstance(out.buffer, io.BytesIO)
    assert b"Traceback" not in out.buffer.getvalue()
    assert "Traceback" not in err.getvalue()
    return code


class TestAnyInput:
    """Random input ends with one of the README's exit codes, never a traceback."""

    @settings(
        max_examples=60,
        deadline=None,
        derandomize=True,  # the same examples on every run: CI is not a lottery
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(argv=produce_args, env=environments)
    def test_produce_options_and_environment(self, quiet_services, monkeypatch, argv, env):
        """`produce --dry-run` with random option values and CLICKSTREAM_* variables."""
        assert run(argv, env, monkeypatch) in EXIT_CODES

    @settings(
        max_examples=80,
        deadline=None,
        derandomize=True,  # the same examples on every run: CI is not a lottery
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(argv=other_commands, content=toml_files, env=st.one_of(st.just({}), environments))
    def test_other_commands(self, quiet_services, monkeypatch, tmp_path, argv, content, env):
        """report, dashboards, consume and status with random values, and a random file to
        import or render."""
        data = tmp_path / "objects.ndjson"
        data.write_text(content, encoding="utf-8", errors="surrogateescape")
        argv = [a.replace("{file}", str(data)) for a in argv]
        assert run(argv, env, monkeypatch) in EXIT_CODES

    @settings(
        max_examples=60,
        deadline=None,
        derandomize=True,  # the same examples on every run: CI is not a lottery
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        content=toml_files,
        command=st.sampled_from([["report"], ["produce", "--dry-run", "--count", "5"]]),
    )
    def test_random_config_files(self, quiet_services, monkeypatch, tmp_path, content, command):
        """A random --config file: a configuration error or a run, never a traceback."""
        config = tmp_path / "random.toml"
        config.write_text(content, encoding="utf-8", errors="surrogateescape")
        assert run(["--config", str(config), *command], {}, monkeypatch) in EXIT_CODES
