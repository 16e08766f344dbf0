"""Outages of the services the consumer depends on, said without flooding the log, and the
backoff between attempts.

While OpenSearch or the broker stays away, the consumer retries for as long as it takes;
an `Outage` turns those repeated failures into one line when the outage starts, a reminder
now and then, and one line when the service is back.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from clickstream import logs

# Outages are the consumer's to report: their lines keep the consumer's component name.
log = logs.get("consumer")

#: While a service stays unavailable, how often the consumer says so again.
OUTAGE_LOG_EVERY = 30.0
#: How much of a service's problem an outage line shows.
MAX_PROBLEM = 1000


class Outage:
    """A service that stopped answering: said once when it starts, then every `every` seconds,
    and once more when it is back."""

    def __init__(
        self,
        service: str,
        *,
        every: float = OUTAGE_LOG_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.service = service
        self.every = every
        self.since: float | None = None
        self.count = 0
        self._clock = clock
        self._said = 0.0

    @property
    def active(self) -> bool:
        return self.since is not None

    def failed(self, problem: str, **context: Any) -> None:
        """The service failed again; log it if this starts an outage or it is time to remind."""
        now = self._clock()
        if self.since is None:
            self.since = self._said = now
            self.count += 1
            log.error(
                "service unavailable; consumption paused until it is back",
                service=self.service,
                problem=problem[:MAX_PROBLEM],
                **context,
            )
        elif now - self._said >= self.every:
            self._said = now
            log.warning(
                "service still unavailable",
                service=self.service,
                seconds=round(now - self.since),
                problem=problem[:MAX_PROBLEM],
                **context,
            )

    def recovered(self) -> None:
        """The service answered: end the outage, if there was one."""
        if self.since is not None:
            seconds = self._clock() - self.since
            self.since = None
            log.warning(
                "service is back; resuming",
                service=self.service,
                outage_seconds=round(seconds, 1),
            )


def backoff_delay(attempt: int, initial: float, maximum: float, rng: random.Random) -> float:
    """Delay before retry `attempt` (1, 2, ...): exponential, capped, half of it jittered."""
    # The exponent is capped: a retry loop outlasting a long outage counts past 1,000
    # attempts, and 2.0 ** 1024 does not fit a float.
    ceiling = min(maximum, initial * 2.0 ** min(attempt - 1, 64))
    return rng.uniform(ceiling / 2, ceiling)
