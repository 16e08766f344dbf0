"""What produce and consume share about a run: when it started and ended, and its rate."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class RunClock:
    """A run's monotonic start and (once over) end; subclasses say what `done` counts."""

    started: float = field(default_factory=time.monotonic, kw_only=True)
    finished: float | None = field(default=None, kw_only=True)

    @property
    def done(self) -> int:
        """The events the run's rate is measured in."""
        raise NotImplementedError

    @property
    def elapsed(self) -> float:
        end = self.finished if self.finished is not None else time.monotonic()
        return max(end - self.started, 1e-9)

    @property
    def rate(self) -> float:
        """Events per second so far."""
        return self.done / self.elapsed
