"""The local ClickHouse server's reading of HTTP requests (no engine needed)."""

from __future__ import annotations

import gzip
import zlib

import pytest

from clickstream.stack.chserver import protocol


class TestSplitParams:
    """URL parameters."""

    def test_transport_settings_and_query_parameters_are_told_apart(self):
        """`param_x` binds {x:T}; transport names steer HTTP; the rest are settings."""
        transport, settings, params = protocol.split_params(
            [
                ("query", "SELECT 1"),
                ("database", "db"),
                ("session_id", "s"),
                ("param_kind", "like"),
                ("max_threads", "2"),
                ("date_time_input_format", "best_effort"),
            ]
        )
        assert transport == {"query": "SELECT 1", "database": "db", "session_id": "s"}
        assert params == {"kind": "like"}
        assert settings == {"max_threads": "2", "date_time_input_format": "best_effort"}


class TestSplitInsert:
    """INSERT statements with their data in the body."""

    def test_statement_format_and_data(self):
        """The statement ends before FORMAT; the data starts after the line break."""
        body = b"INSERT INTO db.t (`a`, `b`) FORMAT Native\n\x02\x01binary\nrest"
        assert protocol.split_insert(body) == (
            "INSERT INTO db.t (`a`, `b`)",
            "Native",
            b"\x02\x01binary\nrest",
        )

    def test_other_queries_are_not_inserts(self):
        """A SELECT, or an INSERT without a FORMAT clause, runs as a plain query."""
        assert protocol.split_insert(b"SELECT 1 FORMAT Native") is None
        assert protocol.split_insert(b"INSERT INTO t VALUES (1)") is None


class TestResultFormat:
    """The format named in the response headers."""

    @pytest.mark.parametrize(
        ("query", "expected"),
        [
            ("SELECT 1\n FORMAT Native", "Native"),
            ("SELECT 1 FORMAT JSONEachRow;", "JSONEachRow"),
            ("SELECT 1", "TabSeparated"),
        ],
    )
    def test_trailing_format_clause_wins(self, query, expected):
        """The query's own FORMAT clause, else the default format."""
        assert protocol.result_format(query, "TabSeparated") == expected


class TestDecompress:
    """Request bodies compressed as Content-Encoding says."""

    def test_gzip_and_deflate(self):
        """The standard encodings decode."""
        assert protocol.decompress(gzip.compress(b"abc"), "gzip") == b"abc"
        assert protocol.decompress(zlib.compress(b"abc"), "deflate") == b"abc"
        assert protocol.decompress(b"abc", None) == b"abc"

    def test_every_lz4_frame_is_read(self):
        """clickhouse-connect sends one LZ4 frame per insert block: all of them count."""
        frame = pytest.importorskip("lz4.frame")
        body = frame.compress(b"first block ") + frame.compress(b"second block")
        assert protocol.decompress(body, "lz4") == b"first block second block"

    def test_zstd(self):
        """zstd, clickhouse-connect's other choice, decodes."""
        zstd = pytest.importorskip("backports.zstd")
        assert protocol.decompress(zstd.compress(b"x" * 100), "zstd") == b"x" * 100

    def test_unknown_or_broken_encodings_are_server_errors(self):
        """An encoding we do not know, or a body that does not decode, is a coded error."""
        with pytest.raises(protocol.ServerError) as unknown:
            protocol.decompress(b"abc", "br")
        assert unknown.value.code == protocol.BAD_ARGUMENTS
        with pytest.raises(protocol.ServerError) as broken:
            protocol.decompress(b"not gzip", "gzip")
        assert broken.value.code == protocol.CANNOT_DECOMPRESS


class TestServerError:
    """Engine errors as the HTTP interface reports them."""

    def test_code_and_text_are_taken_from_the_engine_message(self):
        """The text starts at `Code: N.`, whatever chdb put before it."""
        error = protocol.ServerError.from_engine(
            RuntimeError("Streaming insert finish failed: Code: 27. DB::Exception: bad")
        )
        assert (error.code, error.text) == (27, "Code: 27. DB::Exception: bad")

    def test_a_message_without_a_code_gets_the_generic_one(self):
        """Anything else is reported as a std::exception, code 1001."""
        error = protocol.ServerError.from_engine(RuntimeError("boom"))
        assert error.code == protocol.STD_EXCEPTION
        assert error.text.startswith("Code: 1001. DB::Exception: boom")
