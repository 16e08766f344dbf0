"""Bad input to the dashboards commands is one clear error, never a traceback."""

from __future__ import annotations

import datetime as dt

import pytest

from clickstream.dashboards import charts, saved_objects
from clickstream.errors import ConfigError

NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


class TestSince:
    """--since takes a duration or a time, and refuses what cannot be one."""

    @pytest.mark.parametrize("value", ["999999999d", "99999999999w", "1e30s"])
    def test_a_duration_past_year_one(self, value):
        """A duration reaching back before year 1 is a ConfigError, not an OverflowError."""
        with pytest.raises(ConfigError, match="--since"):
            charts.parse_since(value, NOW)

    def test_a_duration_within_range(self):
        """An ordinary duration still works."""
        assert charts.parse_since("2d", NOW) == NOW - dt.timedelta(days=2)


class TestSavedObjectsFile:
    """A saved-objects file that is not ndjson of saved objects is refused with its reason."""

    def test_not_utf8(self, tmp_path):
        """A file that is not UTF-8 is a ConfigError naming the file."""
        path = tmp_path / "latin1.ndjson"
        path.write_bytes('{"type": "caf\xe9"}\n'.encode("latin-1"))
        with pytest.raises(ConfigError, match="not UTF-8"):
            saved_objects.read_objects(path)

    @pytest.mark.parametrize("content", ["", "\n\n", '{"exportedCount": 0}\n'])
    def test_empty(self, tmp_path, content):
        """A file with no saved objects is refused instead of importing nothing."""
        path = tmp_path / "empty.ndjson"
        path.write_text(content)
        with pytest.raises(ConfigError, match="no saved objects"):
            saved_objects.read_objects(path)
