"""OpenSearch as a `Sink`: the index template is its setup, a `_bulk` request its write.

Documents go to daily indices with `_id = event_id` (see `clickstream.sinks.opensearch.bulk`),
so a replayed batch overwrites itself. Item-level 429s and 5xx are retried here, with the
consumer's `wait`; a request that still fails raises `OpenSearchUnavailable`, a
`SinkUnavailable`. A batch refused because of the index or the cluster, not the events,
raises `OpenSearchRefused`, a `SinkRefused` (see `clickstream.sinks.opensearch.refusals`).

A daily index OpenSearch creates without our template would take any document, with
guessed field types: before the first write to a day's index in this process, the sink
checks that the template is still there (one request per new day).
"""

from __future__ import annotations

from collections.abc import Sequence

from opensearchpy import OpenSearch

from clickstream.events import Document
from clickstream.settings import ConsumerSettings, Settings
from clickstream.sinks.base import Rejection, SetupResult, Wait, WriteResult
from clickstream.sinks.opensearch import client as opensearch
from clickstream.sinks.opensearch import refusals
from clickstream.sinks.opensearch.bulk import BulkIndexer


class OpenSearchSink:
    """Writes batches to the `<prefix>-YYYY.MM.DD` indices of one OpenSearch cluster."""

    name = "opensearch"

    def __init__(
        self, client: OpenSearch, prefix: str, url: str, retry: ConsumerSettings | None = None
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.url = url
        self.location = f"{prefix}-*"
        self.indexer = BulkIndexer(client, prefix, retry)
        #: Days whose index this process has checked the template for.
        self._days: set[str] = set()

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenSearchSink:
        """The sink the settings describe (no request is made yet)."""
        search = settings.opensearch
        client = opensearch.make_client(search)
        return cls(client, search.index_prefix, search.url, settings.consumer)

    def setup(self) -> SetupResult:
        changed = opensearch.ensure_template(self.client, self.prefix)
        return SetupResult(f"index template {self.prefix}", changed, f"for {self.location}")

    def check(self) -> None:
        opensearch.check(self.client, self.url)
        opensearch.require_template(self.client, self.prefix)

    def write(
        self, batch: Sequence[Document], *, wait: Wait | None = None, attempts: int | None = None
    ) -> WriteResult:
        new = {doc.day for doc in batch} - self._days
        if new:
            opensearch.require_template(
                self.client, self.prefix, f"writing the first events of {min(new)}"
            )
            self._days |= new
        result = self.indexer.index(batch, wait=wait, attempts=attempts)
        refused = refusals.batch_refused(result.rejected, len(batch))
        if refused is not None:
            raise refused
        return WriteResult(
            stored=result.indexed,
            rejected=[Rejection(r.position, r.reason) for r in result.rejected],
            retries=result.retries,
        )

    def count(self) -> int:
        return opensearch.count(self.client, self.prefix)

    def close(self) -> None:
        self.client.close()


def open_sink(settings: Settings) -> OpenSearchSink:
    """A `SinkFactory`: the OpenSearch sink of `settings`."""
    return OpenSearchSink.from_settings(settings)
