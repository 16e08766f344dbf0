"""clickstream: simulate a news site's users, stream their actions through Kafka into OpenSearch."""

from __future__ import annotations


def __getattr__(name: str) -> str:
    # `__version__` is looked up when asked for: reading the installed metadata costs more
    # than the rest of `clickstream --help`, and only `--version` needs it.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

        try:
            return version("clickstream")
        except PackageNotFoundError:  # running from a source tree that is not installed
            return "0.0.0"
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
