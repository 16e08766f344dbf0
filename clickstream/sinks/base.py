"""The Sink contract: what the consumer needs of a store, and nothing about which one.

A sink sets up what its store needs (`setup`), writes a batch of documents and says, per
item, whether it was stored or rejected with a reason (`write`), counts what it holds
(`count`) and lets go of its connections (`close`). A write the store cannot take now, as
a whole, raises `SinkUnavailable`: the consumer keeps the batch, pauses and retries it
later. A write the store refuses for a reason that is not the events' fault (the index,
its template, a block, a permission) raises `SinkRefused`: the consumer stops without
committing or dead-lettering that batch, so that a fixed store gets every event. Writes
must be idempotent by `event_id`: a replayed batch overwrites itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from clickstream.errors import SinkRefused, SinkUnavailable
from clickstream.events import Document
from clickstream.settings import Settings

__all__ = [
    "Document",
    "Rejection",
    "SetupResult",
    "Sink",
    "SinkFactory",
    "SinkRefused",
    "SinkUnavailable",
    "Wait",
    "WriteResult",
]

#: How a sink waits between its own attempts (the consumer gives one that keeps it polling).
Wait = Callable[[float], None]


@dataclass(frozen=True)
class Rejection:
    """An item the store refused for good: its position in the batch, and the reason."""

    position: int
    reason: str


@dataclass(frozen=True)
class WriteResult:
    """What one `Sink.write` did: every item of the batch is either stored or rejected, so
    `stored + len(rejected)` is the batch's size; `retries` counts the sink's own retries."""

    stored: int
    rejected: list[Rejection] = field(default_factory=list)
    retries: int = 0


@dataclass(frozen=True)
class SetupResult:
    """What `Sink.setup` looked at (e.g. `index template events`), whether it changed it,
    and a detail for people."""

    what: str
    changed: bool
    detail: str


class Sink(Protocol):
    """A store the consumer writes batches of documents to."""

    #: What the store is, for logs (`service=` of an outage): e.g. "opensearch".
    name: str
    #: Where in the store the documents are (e.g. an index pattern), for `status`.
    location: str

    def setup(self) -> SetupResult:
        """Create what the store needs if it is missing; idempotent."""
        ...

    def check(self) -> None:
        """Fail fast, with a clear message, if the store cannot be reached or refuses us."""
        ...

    def write(
        self, batch: Sequence[Document], *, wait: Wait | None = None, attempts: int | None = None
    ) -> WriteResult:
        """Store `batch`; positions in the result refer to it. Items the store is too busy
        for are retried by the sink, waiting with `wait`, up to `attempts` attempts (None:
        the sink's own setting); raises `SinkUnavailable` if the batch cannot be finished
        now, `SinkRefused` if the store refuses it for a reason that is not the events'."""
        ...

    def count(self) -> int:
        """How many documents the store holds."""
        ...

    def close(self) -> None:
        """Let go of the store's connections."""
        ...


#: Builds the sink a run writes to; picklable (a module-level function), so that worker
#: processes can build their own.
SinkFactory = Callable[[Settings], Sink]
