"""Logs and terminal text: data is shown, never interpreted by the terminal."""

from __future__ import annotations

import io
import json

import pytest

from clickstream import logs
from clickstream.printable import printable


class TestPrintable:
    """printable() makes what a terminal would act on visible."""

    @pytest.mark.parametrize(
        ("raw", "shown"),
        [
            ("\x1b[2J\x1b[H", "\\x1b[2J\\x1b[H"),  # clear the screen
            ("\x1b]0;pwned\x07", "\\x1b]0;pwned\\x07"),  # set the window title
            ("\x9b31m", "\\x9b31m"),  # an 8-bit CSI
            ("abc\u202edcba", "abc\\u202edcba"),  # a right-to-left override
            ("a\rb\x00c\x7f", "a\\rb\\x00c\\x7f"),
        ],
    )
    def test_controls_become_escapes(self, raw, shown):
        """Escape sequences, C1 controls, DEL, NUL, CR and bidi overrides are shown as escapes."""
        assert printable(raw) == shown

    def test_ordinary_text_is_untouched(self):
        """Letters in any script, tabs and newlines stay as they are."""
        text = "Ünïcödé, 日本語\tcolumns\nlines"
        assert printable(text) is text


class TestConsoleLogs:
    """The console renderer shows event data escaped; JSON lines escape it themselves."""

    def test_console_lines_escape_controls(self):
        """A value with an escape sequence reaches a console log as visible text."""
        out = io.StringIO()
        logs.configure("info", out, json=False)
        logs.get("test").warning("dead-lettered", first_reason="bad \x1b[2J title")
        assert "\x1b[2J" not in out.getvalue()
        assert "\\x1b[2J" in out.getvalue()

    def test_json_lines_keep_the_value(self):
        """JSON logs carry the exact value, escaped by JSON itself."""
        out = io.StringIO()
        logs.configure("info", out, json=True)
        logs.get("test").warning("dead-lettered", first_reason="bad \x1b[2J title")
        assert "\x1b" not in out.getvalue()
        assert json.loads(out.getvalue())["first_reason"] == "bad \x1b[2J title"
