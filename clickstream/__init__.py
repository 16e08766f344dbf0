"""clickstream: simulate a news site's users, stream their actions through Kafka into OpenSearch."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("clickstream")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"
