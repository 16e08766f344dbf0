"""What to simulate (`SimulationConfig`) and where real time comes from (`Clock`).

A leaf of `clickstream.simulate`: the catalog, the traffic and the simulator all read it.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Protocol

from clickstream.events import EARLIEST, SCHEMA_VERSION, SCHEMA_VERSIONS


class Clock(Protocol):
    """Where real-time mode reads the time of each event."""

    def millis(self) -> int:
        """The current time in milliseconds since the Unix epoch."""
        ...


class WallClock:
    """The real time, for real-time mode."""

    def millis(self) -> int:
        return time.time_ns() // 1_000_000

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate; `clickstream.simulate.scenarios` has named presets of these knobs."""

    users: int = 1000
    #: Articles live in the catalog at any time.
    articles: int = 400
    seed: int | None = None
    #: Backfill from `start` to `end` (never beyond now); without a start, real time.
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    #: Sessions per reader per day, on average over the day.
    visits_per_day: float = 3.0
    #: Exponent of the Zipf law of article appeal (higher: a few hits take more).
    zipf_exponent: float = 1.1
    publish_per_day: float = 48.0
    half_life_hours: float = 12.0
    #: Breaking stories per day (Poisson), and when the first one comes, if it is planned.
    breaking_per_day: float = 0.5
    first_breaking_after_hours: float | None = None
    #: Share of a reader's page views in their favourite categories.
    favourite_share: float = 0.7
    #: Mean page views of a human session.
    views_per_session: float = 4.5
    #: Chances, after each page view, of a like, a comment and a share.
    like_rate: float = 0.08
    comment_rate: float = 0.02
    share_rate: float = 0.008
    #: Share of sessions that end with a logout; the rest time out silently.
    logout_share: float = 0.85
    #: 0: as busy at night as by day; 1: the full day and night contrast.
    daily_cycle: float = 1.0
    #: Share of sessions run by bots, and how many bot accounts share them.
    bot_share: float = 0.02
    bot_accounts: int = 25
    #: The event schema version to write: the current one, or an older one for readers
    #: that need it (and to test that both flow through the pipeline).
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.schema_version not in SCHEMA_VERSIONS:
            raise ValueError(
                f"schema_version must be one of {', '.join(map(str, SCHEMA_VERSIONS))}"
            )
        if self.users < 1 or self.articles < 1 or self.bot_accounts < 1:
            raise ValueError("users, articles and bot_accounts must be at least 1")
        shares = (self.favourite_share, self.like_rate, self.comment_rate, self.share_rate,
                  self.logout_share, self.daily_cycle)  # fmt: skip
        if not all(0 <= share <= 1 for share in shares) or not 0 <= self.bot_share < 1:
            raise ValueError("shares and rates per view must be between 0 and 1")
        if self.like_rate + self.comment_rate + self.share_rate > 1:
            raise ValueError("a view gets at most one reaction: the rates must add up to <= 1")
        if self.visits_per_day <= 0 or min(self.publish_per_day, self.breaking_per_day) < 0:
            raise ValueError("visits per day must be > 0, publications and breaking stories >= 0")
        if self.views_per_session < 1 or self.half_life_hours <= 0:
            raise ValueError("views_per_session must be >= 1 and half_life_hours > 0")
        for moment in (self.start, self.end):
            if moment is not None and moment.tzinfo is None:
                raise ValueError("start and end must carry a time zone (use UTC)")
        if self.start is not None and self.start < EARLIEST:
            raise ValueError(
                f"start {self.start.isoformat()} is before {EARLIEST.year}: consume refuses "
                "events that old"
            )
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError("end must be after start")
