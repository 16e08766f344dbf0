"""The simulated news site: articles, readers and their sessions, as a pure stream of events.

Nothing here does I/O. A `Simulator` is a function of its `SimulationConfig` (and of an
optional injected `Clock`): the same seed and start give byte-identical events.

The model, each part tuned by a field of `SimulationConfig`:

- Articles: a live catalog of `articles`. Each has an appeal drawn from a Zipf law and a
  freshness that halves every `half_life_hours`; new articles are published over time
  (`publish_per_day`) and the oldest retire. Now and then a breaking story is published
  (`breaking_per_day`) with an outsized appeal, and it brings a burst of extra visits.
- Readers: a population that starts at a tenth of `users` and grows as people sign up.
  Each reader has a country (and its time zone), a home IP, a usual device and favourite
  categories (`favourite_share` of their reading, less while a breaking story is hot).
- Visits: readers visit `visits_per_day` times a day on average, more at their local day
  and evening than at night (`daily_cycle`). A session logs in, views pages with
  realistic gaps, likes, comments or shares a small fraction of the pages right after
  viewing them (`like_rate`, `comment_rate`, `share_rate`), then logs out or times out
  silently (`logout_share`).
- Bots: `bot_share` of the sessions are automated clients that say so in their user agent,
  crawl fast, never react, and ignore the time of day.

`clickstream.traffic` generates the visits and what each session does; `clickstream.encoding`
turns the events into the JSON bytes they travel as. Iterating a `Simulator` parses them
back into validated `Event`s, for code that wants objects.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from faker import Faker

from clickstream import traffic
from clickstream.catalog import json_string
from clickstream.events import Event
from clickstream.site import CATEGORIES, SITE

__all__ = ["CATEGORIES", "SITE", "Clock", "SimulationConfig", "Simulator", "WallClock"]


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
    """What to simulate; `clickstream.scenarios` has named presets of these knobs."""

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

    def __post_init__(self) -> None:
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
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError("end must be after start")


class Simulator:
    """A time-ordered stream of the news site's events: endless in real time, or a backfill
    from `start` to `end`. `messages()` gives (key, JSON) bytes; iterating gives `Event`s."""

    def __init__(self, config: SimulationConfig, clock: Clock | None = None) -> None:
        self.config = config
        #: The seed in use, drawn at random when the config has none: log it to replay a run.
        self.seed = (
            config.seed if config.seed is not None else random.SystemRandom().getrandbits(64)
        )
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        self.start = config.start.astimezone(dt.UTC) if config.start is not None else now
        #: Real time (events stamped by the clock) unless a start was given.
        self.clock = clock if clock is not None or config.start is not None else WallClock()
        #: Where a backfill stops: the configured end, but never later than now.
        self.end: dt.datetime | None = None
        if self.clock is None:
            self.end = min(config.end, now) if config.end is not None else now
            if self.end <= self.start:
                raise ValueError(f"start {self.start.isoformat()} is not before now (or end)")
        rng = random.Random(f"clickstream-comments-{self.seed}")
        fake = Faker("en_US")
        fake.seed_instance(rng.getrandbits(64))
        #: Comment events end with one of these (no referrer, then the text).
        self.comments = [
            b'"referrer":null,"comment_text":%b}'
            % json_string(fake.sentence(nb_words=rng.randint(3, 14)))
            for _ in range(500)
        ]

    def __iter__(self) -> Iterator[Event]:
        for _key, value in self.messages():
            yield Event.from_json(value)

    def messages(self) -> Iterator[tuple[bytes, bytes]]:
        """The events as (key, value) Kafka messages: user id and JSON, both UTF-8 bytes."""
        return traffic.Run(self).messages()
