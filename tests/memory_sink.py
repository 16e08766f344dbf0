"""A `Sink` that keeps documents in a dict: for unit tests of the consume loop."""

from __future__ import annotations

from collections.abc import Sequence

from clickstream.events import Document
from clickstream.sinks.base import Rejection, SetupResult, SinkUnavailable, Wait, WriteResult


class MemorySink:
    """Stores documents by event id. `reject` maps an event id to the reason it is refused
    with; `outages` is how many writes fail with `SinkUnavailable` before writes succeed;
    `reachable = False` makes every call fail as an unreachable store would."""

    name = "memory"
    location = "memory"

    def __init__(self, *, reject: dict[str, str] | None = None, outages: int = 0) -> None:
        self.documents: dict[str, bytes] = {}
        self.reject = reject or {}
        self.outages = outages
        self.reachable = True
        self.writes = 0
        self.prepared = False

    def _require(self) -> None:
        if not self.reachable:
            raise SinkUnavailable("memory store unreachable")

    def setup(self) -> SetupResult:
        self._require()
        changed, self.prepared = not self.prepared, True
        return SetupResult("memory store", changed, "in this process")

    def check(self) -> None:
        self._require()

    def write(
        self, batch: Sequence[Document], *, wait: Wait | None = None, attempts: int | None = None
    ) -> WriteResult:
        self._require()
        self.writes += 1
        if self.outages:
            self.outages -= 1
            raise SinkUnavailable("memory store busy")
        rejected = []
        for position, doc in enumerate(batch):
            reason = self.reject.get(doc.event_id)
            if reason is None:
                self.documents[doc.event_id] = doc.source
            else:
                rejected.append(Rejection(position, reason))
        return WriteResult(stored=len(batch) - len(rejected), rejected=rejected)

    def count(self) -> int:
        self._require()
        return len(self.documents)

    def close(self) -> None:
        """Nothing to let go of."""
