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

Events are built directly as the JSON bytes they travel as (see `messages`); iterating a
`Simulator` parses them back into validated `Event`s, for code that wants objects.
"""

from __future__ import annotations

import datetime as dt
import heapq
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Protocol

from faker import Faker

from clickstream import site
from clickstream.catalog import DAY_MS, HOUR_MS, Article, Catalog, Weighted, json_string, mix
from clickstream.events import DeviceType, Event, EventType
from clickstream.site import CATEGORIES, SITE

__all__ = ["CATEGORIES", "SITE", "Clock", "SimulationConfig", "Simulator", "WallClock"]

#: Of new sessions while the population is below its cap, the share by new sign-ups.
SIGNUP_SHARE = 0.15


_DEVICE_MIX = mix(site.DEVICES)
_COUNTRY_MIX = mix({country: share for country, (share, _) in site.COUNTRIES.items()})
_BOT_COUNTRY_MIX = mix(site.BOT_COUNTRIES)
_CATEGORY_MIX = mix(CATEGORIES)


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


@dataclass(frozen=True, slots=True)
class User:
    """One account: where it is, what it uses and what it likes to read."""

    user_id: str
    country: str
    tz_offset_ms: int
    ip: str
    device: DeviceType
    user_agent: str
    categories: tuple[str, ...]
    bot: bool = False
    key: bytes = field(default=b"", compare=False)
    usual_context: bytes = field(default=b"", compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", self.user_id.encode())
        object.__setattr__(self, "usual_context", self.context(self.device, self.user_agent))

    def context(self, device: DeviceType, user_agent: str) -> bytes:
        """The JSON of the session context fields, as events carry them."""
        return b'"device_type":"%b","user_agent":%b,"ip":"%b","country":"%b",' % (
            device.value.encode(),
            json_string(user_agent),
            self.ip.encode(),
            self.country.encode(),
        )


# Fixed pieces of every event's JSON, in the field order of `Event`.
_EVENT_HEAD = b'{"schema_version":1,"event_id":"'
_TYPE_AND_TIMESTAMP = {
    kind: b'","event_type":"%b","timestamp":"' % kind.value.encode() for kind in EventType
}
_NO_ARTICLE = b'"article_id":null,"article_title":null,"category":null,'
_NO_REFERRER = b'"referrer":null,'
_NO_COMMENT = b'"comment_text":null}'
_HOME_REFERRER = b'"referrer":%b,' % json_string(f"{SITE}/")
_REFERRER_MIX = mix(
    {
        _NO_REFERRER if url is None else b'"referrer":%b,' % json_string(url): share
        for url, share in site.EXTERNAL_REFERRERS.items()
    }
)
#: "SS.mmmZ" for every millisecond of a minute: a timestamp is a minute prefix plus one of these.
_SECOND_AND_MS = [b"%02d.%03dZ" % divmod(ms, 1000) for ms in range(60_000)]

#: How long a reader stays on a page before the next one, in ms: a log-normal law (median
#: 45 s, a quarter under 26 s, a quarter over 77 s) cut to 2 s - 15 min, as 4,096 quantiles
#: to draw from (cheaper than drawing the law itself for every page view).
_READING_MS = [
    int(1000 * min(max(math.exp(3.8 + 0.8 * NormalDist().inv_cdf((i + 0.5) / 4096)), 2), 900))
    for i in range(4096)
]

#: One scheduled event: epoch ms, the JSON up to the timestamp, the pieces of JSON after it
#: (who, article, context, referrer, comment) and the Kafka key.
_Pending = tuple[int, bytes, bytes, bytes, bytes, bytes, bytes, bytes]


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
        self.comments = [
            b'"comment_text":%b}' % json_string(fake.sentence(nb_words=rng.randint(3, 14)))
            for _ in range(500)
        ]

    def __iter__(self) -> Iterator[Event]:
        for _key, value in self.messages():
            yield Event.from_json(value)

    def messages(self) -> Iterator[tuple[bytes, bytes]]:
        """The events as (key, value) Kafka messages: user id and JSON, both UTF-8 bytes."""
        return _Run(self).messages()


class _Run:
    """The state of one pass over the simulation: catalog, population, pending events."""

    def __init__(self, simulator: Simulator) -> None:
        config = self.config = simulator.config
        self.rng = random.Random(f"clickstream-events-{simulator.seed}")
        self.comments = simulator.comments
        self.clock = simulator.clock
        self.start_ms = int(simulator.start.timestamp() * 1000)
        end = simulator.end
        self.end_ms = 2**62 if end is None else int(end.timestamp() * 1000)
        self.catalog = Catalog(config, random.Random(f"clickstream-catalog-{simulator.seed}"),
                               self.start_ms)  # fmt: skip
        self.population: Weighted[User] = Weighted([], [])
        self.bots: dict[int, User] = {}
        self.heap: list[_Pending] = []
        cycle = [1 - config.daily_cycle * (1 - a) for a in site.ACTIVITY_BY_LOCAL_HOUR]
        self.activity = cycle
        # Candidate visits arrive at the busiest-hour rate; each is kept with the activity
        # at its reader's local hour, which leaves `visits_per_day` on average.
        visits_per_ms = config.users * config.visits_per_day / DAY_MS
        self.candidate_mean_ms = (sum(cycle) / 24) / visits_per_ms
        bots_per_ms = visits_per_ms * config.bot_share / (1 - config.bot_share)
        # page views after the first: geometric with mean views_per_session - 1 (the floor
        # of an exponential with this rate)
        extra = config.views_per_session - 1
        self.more_views = math.log1p(1 / extra) if extra > 0 else 0.0
        self.bot_mean_ms = 1 / bots_per_ms if bots_per_ms else 0.0

    def _gap(self, mean_ms: float) -> int:
        return int(self.rng.expovariate(1 / mean_ms)) + 1 if mean_ms else 2**62

    def messages(self) -> Iterator[tuple[bytes, bytes]]:
        heap, heappop, clock, end_ms = self.heap, heapq.heappop, self.clock, self.end_ms
        seconds, minute, minute_prefix, join = _SECOND_AND_MS, -1, b"", b"".join
        next_visit = self.start_ms + self._gap(self.candidate_mean_ms / self._boost(self.start_ms))
        next_bot = self.start_ms + self._gap(self.bot_mean_ms)
        next_session = min(next_visit, next_bot)
        while True:
            if not heap or heap[0][0] >= next_session:  # a session starts before the next event
                if next_bot < next_visit:
                    self._bot_session(next_bot)
                    next_bot += self._gap(self.bot_mean_ms)
                else:
                    self._visit(next_visit)
                    next_visit += self._gap(self.candidate_mean_ms / self._boost(next_visit))
                next_session = min(next_visit, next_bot)
                continue
            at_ms, head, who, article, context, referrer, comment, key = heappop(heap)
            if at_ms >= end_ms:
                return
            if clock is not None:
                at_ms = clock.millis()
            if at_ms // 60_000 != minute:
                minute = at_ms // 60_000
                moment = dt.datetime.fromtimestamp(minute * 60, dt.UTC)
                minute_prefix = moment.strftime("%Y-%m-%dT%H:%M:").encode()
            stamp = seconds[at_ms % 60_000]
            yield key, join((head, minute_prefix, stamp, who, article, context, referrer, comment))

    def _boost(self, at_ms: int) -> float:
        return self.catalog.traffic_boost(at_ms)

    # -- who visits --------------------------------------------------------------------------

    def _visit(self, at_ms: int) -> None:
        """A candidate visit: kept if its reader is awake enough at their local hour."""
        if at_ms >= self.catalog.next_change_ms:
            self.catalog.advance(at_ms)
        rng, population = self.rng, self.population
        known, cap = len(population.items), self.config.users
        signs_up = known < cap and (known < max(1, cap // 10) or rng.random() < SIGNUP_SHARE)
        user = self._sign_up(known + 1) if signs_up else population.pick(rng)
        local_hour = (at_ms + user.tz_offset_ms) // HOUR_MS % 24
        if rng.random() >= self.activity[local_hour]:
            return  # asleep or busy: no visit
        if signs_up:
            population.add(user, min(rng.paretovariate(1.2), 50.0))  # a few users are very active
        self._human_session(at_ms, user)

    def _sign_up(self, number: int) -> User:
        rng = self.rng
        country = _COUNTRY_MIX.pick(rng)
        device = _DEVICE_MIX.pick(rng)
        user_id = f"user-{number:06d}"
        return User(
            user_id=user_id,
            country=country,
            tz_offset_ms=rng.choice(site.COUNTRIES[country][1]) * 60_000,
            ip=self._ip(site.HOME_IP_FIRST_OCTETS),
            device=device,
            user_agent=rng.choice(site.USER_AGENTS[device]),
            categories=tuple({_CATEGORY_MIX.pick(rng): None for _ in range(rng.randint(1, 3))}),
        )

    def _ip(self, first_octets: tuple[int, ...]) -> str:
        rng = self.rng
        octets = (rng.choice(first_octets), rng.randrange(256), rng.randrange(256),
                  rng.randint(1, 254))  # fmt: skip
        return ".".join(map(str, octets))

    def _bot(self) -> User:
        number = self.rng.randrange(self.config.bot_accounts)
        bot = self.bots.get(number)
        if bot is None:
            user_id = f"user-{self.config.users + number + 1:06d}"
            bot = self.bots[number] = User(
                user_id=user_id,
                country=_BOT_COUNTRY_MIX.pick(self.rng),
                tz_offset_ms=0,
                ip=self._ip(site.DATACENTER_IP_FIRST_OCTETS),
                device=DeviceType.DESKTOP,
                user_agent=self.rng.choice(site.BOT_USER_AGENTS),
                categories=(),
                bot=True,
            )
        return bot

    # -- what a session does -----------------------------------------------------------------

    def _session(self, user: User, device: DeviceType, user_agent: str) -> _Emit:
        bits = self.rng.getrandbits
        session_id = b"%08x-%04x-4%03x-%04x-%012x" % (
            bits(32), bits(16), bits(12), 0x8000 | bits(14), bits(48)
        )  # fmt: skip
        who = b'","user_id":"%b","session_id":"%b",' % (user.key, session_id)
        usual = device is user.device and user_agent is user.user_agent
        context = user.usual_context if usual else user.context(device, user_agent)
        return _scheduler(self.heap, bits, user.key, who, context)

    def _human_session(self, at_ms: int, user: User) -> None:
        rng, config, catalog, comments = self.rng, self.config, self.catalog, self.comments
        pick, favourites = catalog.pick, user.categories
        decay, loyalty = catalog.decay(at_ms), catalog.loyalty(at_ms)
        random, reading = rng.random, _READING_MS
        device, agent = user.device, user.user_agent
        if random() >= 0.85:  # now and then, another device than the usual one
            device = _DEVICE_MIX.pick(rng)
            agent = agent if device is user.device else rng.choice(site.USER_AGENTS[device])
        emit = self._session(user, device, agent)
        at = at_ms
        emit(at, EventType.LOGIN, _NO_ARTICLE, _NO_REFERRER, _NO_COMMENT)
        views = 1 + min(int(rng.expovariate(self.more_views)), 60) if self.more_views else 1
        like = config.like_rate
        comment = like + config.comment_rate
        share = comment + config.share_rate
        previous: Article | None = None
        for view in range(views):
            entry = pick(rng, favourites, decay, loyalty)
            if previous is None or random() < 0.25:
                referrer = _REFERRER_MIX.pick(rng)
            else:
                referrer = previous.as_referrer if random() < 0.7 else _HOME_REFERRER
            # the first page right after login; later ones after reading the previous one
            at += 1_000 + int(14_000 * random()) if view == 0 else reading[int(random() * 4096)]
            emit(at, EventType.PAGE_VIEW, entry.fields, referrer, _NO_COMMENT)
            reaction = random()
            if reaction < share:  # at most one reaction per view, to what was just read
                at += 3_000 + int(37_000 * random())
                if reaction < like:
                    emit(at, EventType.LIKE, entry.fields, _NO_REFERRER, _NO_COMMENT)
                elif reaction < comment:
                    text = comments[int(random() * len(comments))]
                    emit(at, EventType.COMMENT, entry.fields, _NO_REFERRER, text)
                else:
                    emit(at, EventType.SHARE, entry.fields, _NO_REFERRER, _NO_COMMENT)
            previous = entry
        if random() < config.logout_share:
            at += 2_000 + int(58_000 * random())
            emit(at, EventType.LOGOUT, _NO_ARTICLE, _NO_REFERRER, _NO_COMMENT)

    def _bot_session(self, at_ms: int) -> None:
        """A crawler: logs in, fetches many pages a second or two apart, never reacts."""
        if at_ms >= self.catalog.next_change_ms:
            self.catalog.advance(at_ms)
        rng, catalog = self.rng, self.catalog
        bot = self._bot()
        emit = self._session(bot, bot.device, bot.user_agent)
        at = at_ms
        emit(at, EventType.LOGIN, _NO_ARTICLE, _NO_REFERRER, _NO_COMMENT)
        for _ in range(rng.randint(5, 40)):
            at += rng.randint(1_000, 3_000)
            emit(at, EventType.PAGE_VIEW, catalog.any(rng).fields, _NO_REFERRER, _NO_COMMENT)
        if rng.random() < 0.5:
            at += rng.randint(1_000, 3_000)
            emit(at, EventType.LOGOUT, _NO_ARTICLE, _NO_REFERRER, _NO_COMMENT)


#: Schedules one event of a session: (epoch ms, type, article, referrer and comment JSON).
_Emit = Callable[[int, EventType, bytes, bytes, bytes], None]


def _scheduler(
    heap: list[_Pending], bits: Callable[[int], int], key: bytes, who: bytes, context: bytes
) -> _Emit:
    """The `emit` of one session: each event goes on the heap as its JSON around the timestamp.

    `who` closes the timestamp and holds user_id and session_id; `context` holds device_type,
    user_agent, ip and country. Event ids are random UUIDv4s whose first 80 bits are drawn
    once per session and the last 48 per event.
    """
    head = _EVENT_HEAD + b"%08x-%04x-4%03x-%x%03x-" % (
        bits(32), bits(16), bits(12), 8 | bits(2), bits(12)
    )  # fmt: skip
    push, types = heapq.heappush, _TYPE_AND_TIMESTAMP

    def emit(at_ms: int, kind: EventType, article: bytes, referrer: bytes, comment: bytes) -> None:
        event_head = head + b"%012x" % bits(48) + types[kind]
        push(heap, (at_ms, event_head, who, article, context, referrer, comment, key))

    return emit
