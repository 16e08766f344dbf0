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

`clickstream.simulate.traffic` generates the visits and what each session does;
`clickstream.simulate.eventjson` turns the events into the JSON bytes they travel as.
Iterating a `Simulator` parses them back into validated `Event`s, for code that wants objects.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator

from faker import Faker

from clickstream.events import Event
from clickstream.simulate import traffic
from clickstream.simulate.catalog import json_string
from clickstream.simulate.config import Clock, SimulationConfig, WallClock


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
        #: What event and session ids are drawn from. A backfill's events are a function of
        #: the seed and start, so its ids are too: replaying it rewrites the same documents.
        #: Events stamped in real time differ from run to run, so each run draws ids of its
        #: own, even with the same seed: another run's events never overwrite them.
        self.id_seed = (
            f"{self.seed}"
            if self.clock is None
            else f"{self.seed}-run-{random.SystemRandom().getrandbits(64):016x}"
        )
        rng = random.Random(f"clickstream-comments-{self.seed}")
        fake = Faker("en_US")
        fake.seed_instance(rng.getrandbits(64))
        #: Comment events end with one of these (no referrer, then the text).
        self.comments = [
            b'"referrer":null,"comment_text":%b'
            % json_string(fake.sentence(nb_words=rng.randint(3, 14)))
            for _ in range(500)
        ]

    def __iter__(self) -> Iterator[Event]:
        for _key, value in self.messages():
            yield Event.from_json(value)

    def messages(self) -> Iterator[tuple[bytes, bytes]]:
        """The events as (key, value) Kafka messages: user id and JSON, both UTF-8 bytes."""
        return traffic.Run(self).messages()
