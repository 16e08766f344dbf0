"""The simulated traffic: who visits the news site when, and what each session does.

A `Run` is one pass over a `Simulator`'s stream. Candidate visits arrive at the busiest-hour
rate and each is kept with the activity at its reader's local hour; readers sign up as the
population grows; crawlers come at their own rate. Sessions start in order of their start
time, and each one schedules all its events at once, as pieces of their JSON (see
`clickstream.simulate.eventjson`); whatever is scheduled before the next session's start is
final, so it is sorted by time and sent.

Everything that runs once per event is written for CPython's speed: local names, choices
from tables with one random number, bisect on cumulative weights, few calls; comments say
where that makes the code less obvious than it could be.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Protocol

from clickstream.events import DeviceType
from clickstream.simulate import eventjson, site
from clickstream.simulate.catalog import DAY_MS, HOUR_MS, Catalog, Weighted, json_string, mix
from clickstream.simulate.config import Clock, SimulationConfig
from clickstream.simulate.eventjson import (
    AT,
    COMMENT,
    LIKE,
    LOGIN,
    LOGOUT,
    NO_ARTICLE,
    PAGE_VIEW,
    PLAIN_END,
    SHARE,
    Pending,
    uuid4_stream,
    view_end,
)
from clickstream.simulate.site import CATEGORIES, SITE

__all__ = ["Run", "User"]

#: Of new sessions while the population is below its cap, the share by new sign-ups.
SIGNUP_SHARE = 0.15
#: Sessions are started until about this many new events are scheduled, then what is final
#: of them is sorted and sent (see `Run._batches`).
BATCH = 512


_DEVICE_MIX = mix(site.DEVICES)
_COUNTRY_MIX = mix({country: share for country, (share, _) in site.COUNTRIES.items()})
_BOT_COUNTRY_MIX = mix(site.BOT_COUNTRIES)
_CATEGORY_MIX = mix(CATEGORIES)


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
    #: The JSON from the end of the timestamp to the session id's value.
    who: bytes = field(default=b"", compare=False)
    usual_context: bytes = field(default=b"", compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", self.user_id.encode())
        object.__setattr__(self, "who", b'","user_id":"%b","session_id":"' % self.key)
        object.__setattr__(self, "usual_context", self.context(self.device, self.user_agent))

    def context(self, device: DeviceType, user_agent: str) -> bytes:
        """The JSON of the session context fields, as events carry them."""
        return b'"device_type":"%b","user_agent":%b,"ip":"%b","country":"%b",' % (
            device.value.encode(),
            json_string(user_agent),
            self.ip.encode(),
            self.country.encode(),
        )


# -- what a page view looks like --------------------------------------------------------------
# Choices made for every page view are tables of 4,096 entries, indexed with 12 random bits:
# one call, where drawing from a law or a mix takes several.


def _table(shares: Mapping[bytes, float]) -> list[bytes]:
    """4,096 entries, each item in proportion to its share (to the nearest 1/4,096)."""
    total = sum(shares.values())
    exact = {item: 4096 * share / total for item, share in shares.items()}
    counts = {item: int(entries) for item, entries in exact.items()}
    left_over = 4096 - sum(counts.values())  # to the largest remainders
    for item in sorted(exact, key=lambda item: counts[item] - exact[item])[:left_over]:
        counts[item] += 1
    return [item for item, count in counts.items() for _ in range(count)]


_EXTERNAL = {view_end(url): share for url, share in site.EXTERNAL_REFERRERS.items()}
#: How a session's first page view ends: its referrer is outside, by EXTERNAL_REFERRERS.
_FIRST_VIEW_ENDS = _table(_EXTERNAL)
#: The next ones: from outside a quarter of the time, else from the page read before (70%:
#: the empty entry, which stands for that page's `as_referrer`) or the home page (30%).
_FROM_PREVIOUS = b""
_NEXT_VIEW_ENDS = _table(
    {**{end: 0.25 * share / sum(_EXTERNAL.values()) for end, share in _EXTERNAL.items()},
     _FROM_PREVIOUS: 0.75 * 0.7, view_end(f"{SITE}/"): 0.75 * 0.3}
)  # fmt: skip

#: How long a reader stays on a page before the next one, in ms: a log-normal law (median
#: 45 s, a quarter under 26 s, a quarter over 77 s) cut to 2 s - 15 min, as 4,096 quantiles.
#: Floats, as the times of `encoding.Pending` are.
_READING_MS = [
    float(int(1000 * min(max(math.exp(3.8 + 0.8 * NormalDist().inv_cdf((i + 0.5) / 4096)), 2),
                         900)))
    for i in range(4096)
]  # fmt: skip
#: From login to the first page view: 1 to 15 s, uniformly.
_FIRST_VIEW_MS = [float(1_000 + int(14_000 * (i + 0.5) / 4096)) for i in range(4096)]
#: A session's first page view, then the next ones: when (after the event before) and how
#: they end (where the reader came from).
_FIRST_VIEW = (_FIRST_VIEW_MS, _FIRST_VIEW_ENDS)
_NEXT_VIEW = (_READING_MS, _NEXT_VIEW_ENDS)


class Plan(Protocol):
    """What a run is drawn from: a `Simulator`'s configuration, seed, time span and clock."""

    config: SimulationConfig
    seed: int
    id_seed: str
    comments: list[bytes]
    clock: Clock | None
    start: dt.datetime
    end: dt.datetime | None


class Run:
    """The state of one pass over the simulation: catalog, population, pending events."""

    def __init__(self, simulator: Plan) -> None:
        config = self.config = simulator.config
        seed = simulator.seed
        self.rng = random.Random(f"clickstream-events-{seed}")
        # bound once: binding a method of a Random costs more than reading an attribute
        self.random, self.bits = self.rng.random, self.rng.getrandbits
        # ids have random generators of their own, drawn from in bulk
        self.ids = uuid4_stream(random.Random(f"clickstream-event-ids-{simulator.id_seed}"))
        #: Session ids, with the JSON that follows them in every event: `who` is a user's
        #: `User.who` and one of these.
        self.session_ids = uuid4_stream(
            random.Random(f"clickstream-session-ids-{simulator.id_seed}"), b'",'
        )
        self.comments = simulator.comments
        self.head = eventjson.event_head(config.schema_version)
        #: The last piece of each event's JSON by its number in its session.
        self.seqs = eventjson.seq_ends(config.schema_version)
        self.clock = simulator.clock
        start_ms = int(simulator.start.timestamp() * 1000)
        end = simulator.end
        self.end_ms = 2**62 if end is None else int(end.timestamp() * 1000)
        self.catalog = Catalog(config, random.Random(f"clickstream-catalog-{seed}"), start_ms)
        self.population: Weighted[User] = Weighted([], [])
        self.bots: dict[int, User] = {}
        cycle = [1 - config.daily_cycle * (1 - a) for a in site.ACTIVITY_BY_LOCAL_HOUR]
        self.activity = cycle
        # candidate visits arrive at the busiest-hour rate: kept with the activity at their
        # reader's local hour, they leave `visits_per_day` on average
        visits_per_ms = config.users * config.visits_per_day / DAY_MS
        self.candidate_mean_ms = (sum(cycle) / 24) / visits_per_ms
        bots_per_ms = visits_per_ms * config.bot_share / (1 - config.bot_share)
        self.bot_mean_ms = 1 / bots_per_ms if bots_per_ms else 0.0
        # page views after the first: geometric with mean views_per_session - 1 (the floor
        # of an exponential with this rate)
        extra = config.views_per_session - 1
        self.more_views = math.log1p(1 / extra) if extra > 0 else 0.0
        self.reaction_rate = config.like_rate + config.comment_rate + config.share_rate
        self.next_visit = start_ms + self._gap(self.candidate_mean_ms)
        self.next_bot = start_ms + self._gap(self.bot_mean_ms)

    def _gap(self, mean_ms: float) -> int:
        """The wait until the next of a Poisson stream of sessions (never, for a mean of 0)."""
        return int(-math.log(1.0 - self.random()) * mean_ms) + 1 if mean_ms else 2**62

    def messages(self) -> Iterator[tuple[bytes, bytes]]:
        """(key, JSON) messages, stamped with simulated time or, in real time, the clock's."""
        if self.clock is None:
            return eventjson.backfill(self._batches(), self.ids, self.head)
        return eventjson.live(self._batches(), self.ids, self.clock.millis, self.head)

    def _batches(self) -> Iterator[list[Pending]]:
        """The events, in batches, in order of time.

        Sessions are generated whole, in order of their start, so the events pending before
        the next start are final: sorted by time, they are the next batch; the others wait
        for the next. Starting at least as many events as are left over keeps re-sorting
        them linear; small batches keep the pending events in the CPU's cache. (A heap of
        pending events costs a push and a pop per event, in Python: several times more.)"""
        pending: list[Pending] = []
        end_ms = self.end_ms
        while True:
            horizon = min(self._start_sessions(pending, max(BATCH, len(pending))), end_ms)
            pending.sort(key=AT)  # stable: events of the same millisecond keep their order
            ready = bisect.bisect_left(pending, horizon, key=AT)
            yield pending[:ready]
            if horizon >= end_ms:
                return
            del pending[:ready]

    # -- who visits, and when ---------------------------------------------------------------

    def _start_sessions(self, pending: list[Pending], events: int) -> int:
        """Start sessions, in order, until `events` more events are pending (or the end is
        reached); return when the next session starts.

        Candidate visits arrive at the busiest-hour rate (more while a breaking story is
        hot); each is kept with the activity at its reader's local hour. Crawlers come at
        their own rate."""
        catalog, rng, log, floor = self.catalog, self.rng, math.log, math.floor
        random, activity, favourite_share = self.random, self.activity, self.config.favourite_share
        population, cap = self.population, self.config.users
        users, cumulative = population.items, population.cumulative  # grown in place
        first_users = max(1, cap // 10)  # until this many have signed up, all visits sign up
        goal, end_ms, visit_mean_ms = len(pending) + events, self.end_ms, self.candidate_mean_ms
        next_visit, next_bot = self.next_visit, self.next_bot
        while len(pending) < goal:
            crawler = next_bot < next_visit
            at_ms = next_bot if crawler else next_visit
            if at_ms >= end_ms:
                break
            if at_ms >= catalog.next_change_ms:
                catalog.advance(at_ms)
            if crawler:
                self._bot_session(pending, at_ms)
                next_bot += self._gap(self.bot_mean_ms)
                continue
            boost = catalog.traffic_boost(at_ms)
            next_visit += floor(-log(1.0 - random()) * visit_mean_ms / boost) + 1
            known = len(users)
            signs_up = known < cap and (known < first_users or random() < SIGNUP_SHARE)
            if signs_up:
                user = self._sign_up(known + 1)
            else:  # a reader, by how active they are (`Weighted.pick`, inline)
                user = users[bisect.bisect(cumulative, random() * cumulative[-1])]
            if random() >= activity[(at_ms + user.tz_offset_ms) // HOUR_MS % 24]:
                continue  # asleep or busy: no visit
            if signs_up:
                population.add(user, min(rng.paretovariate(1.2), 50.0))  # a few are very active
            # a breaking story pulls readers from their usual sections to the front page
            self._human_session(pending, at_ms, user, favourite_share / boost)
        self.next_visit, self.next_bot = next_visit, next_bot
        return min(next_visit, next_bot)

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
    # A session appends all its events to `pending` when it starts, each as the pieces of its
    # JSON. These loops run for every event: they keep to local names, draw from tables of
    # 4,096 entries with 12 random bits, and bisect instead of calling helpers.

    def _human_session(
        self, pending: list[Pending], at_ms: int, user: User, loyalty: float
    ) -> None:
        """Login, page views with now and then a reaction to the page, then a logout unless
        the session times out. `loyalty`: the share of views in favourite categories now."""
        at = float(at_ms)
        rng, catalog, random, bits = self.rng, self.catalog, self.random, self.bits
        append, floor = pending.append, math.floor
        bisect_right, draw_of = bisect.bisect, catalog.draw_of
        device, agent, context = user.device, user.user_agent, user.usual_context
        if random() >= 0.85:  # now and then, another device than the usual one
            device = _DEVICE_MIX.pick(rng)
            if device is not user.device:
                agent = rng.choice(site.USER_AGENTS[device])
                context = user.context(device, agent)
        who, key, seqs = user.who + next(self.session_ids), user.key, self.seqs
        append((at, LOGIN, who, NO_ARTICLE, context, PLAIN_END, seqs[1], key))
        seq = 1  # the number of the session's last event
        # Where pages are picked: a favourite category `loyalty` of the time, else anywhere.
        # One random number decides both whether and which favourite: below `loyalty`, it is
        # uniform over [0, loyalty). The last favourite is listed twice, in case rounding
        # takes the index one past the end.
        favourites = [draw_of[category] for category in user.categories]
        overall = catalog.overall.draw
        if favourites and loyalty:
            per_favourite = len(favourites) / loyalty
            favourites.append(favourites[-1])
        else:
            loyalty = per_favourite = 0.0
        decay = catalog.decay(at_ms)
        more, reaction_rate = self.more_views, self.reaction_rate
        # one page view, then a geometric number more (at most 60)
        views = 1 + min(floor(-math.log(1.0 - random()) / more), 60) if more else 1
        # the first view's table never says _FROM_PREVIOUS: `previous` is read from the second
        previous = catalog.overall.items[0]
        for gaps, ends in [_FIRST_VIEW, *[_NEXT_VIEW] * (views - 1)]:
            chance = random()
            items, evergreen, fresh, evergreen_total, fresh_total, last = (
                favourites[floor(chance * per_favourite)] if chance < loyalty else overall
            )
            point = random() * (evergreen_total + fresh_total * decay)  # see catalog.Draw
            if point < evergreen_total:
                article = items[bisect_right(evergreen, point)]
            else:
                article = items[bisect_right(fresh, (point - evergreen_total) / decay, 0, last)]
            at += gaps[bits(12)]
            seq += 1
            append((at, PAGE_VIEW, who, article.fields, context,
                    ends[bits(12)] or previous.as_referrer, seqs[seq], key))  # fmt: skip
            if random() < reaction_rate:  # at most one reaction per view, to what was just read
                seq += 1
                at = self._react(pending, at, who, article.fields, context, seqs[seq], key)
            previous = article
        if random() < self.config.logout_share:
            at += 2_000 + floor(58_000 * random())
            append((at, LOGOUT, who, NO_ARTICLE, context, PLAIN_END, seqs[seq + 1], key))

    def _react(
        self, pending: list[Pending], at: float, who: bytes, fields: bytes, context: bytes,
        seq: bytes, key: bytes,
    ) -> float:  # fmt: skip
        """A like, a comment or a share, by their rates, 3 to 40 s after the view; returns
        its time."""
        random, config = self.random, self.config
        at += 3_000 + math.floor(37_000 * random())
        kind = random() * self.reaction_rate
        if kind < config.like_rate:
            pending.append((at, LIKE, who, fields, context, PLAIN_END, seq, key))
        elif kind < config.like_rate + config.comment_rate:
            text = self.comments[math.floor(random() * len(self.comments))]
            pending.append((at, COMMENT, who, fields, context, text, seq, key))
        else:
            pending.append((at, SHARE, who, fields, context, PLAIN_END, seq, key))
        return at

    def _bot_session(self, pending: list[Pending], at_ms: int) -> None:
        """A crawler: logs in, fetches 5 to 40 pages 1 to 3 s apart, never reacts."""
        at = float(at_ms)
        random, append, floor = self.random, pending.append, math.floor
        bot = self._bot()
        who, context, key = bot.who + next(self.session_ids), bot.usual_context, bot.key
        seqs = self.seqs
        append((at, LOGIN, who, NO_ARTICLE, context, PLAIN_END, seqs[1], key))
        articles = self.catalog.overall.items  # all alike: a crawler follows every link
        pages = 5 + floor(36 * random())
        for seq in range(2, pages + 2):
            at += 1_000 + floor(2_001 * random())
            fields = articles[floor(random() * len(articles))].fields
            append((at, PAGE_VIEW, who, fields, context, PLAIN_END, seqs[seq], key))
        if random() < 0.5:
            at += 1_000 + floor(2_001 * random())
            append((at, LOGOUT, who, NO_ARTICLE, context, PLAIN_END, seqs[pages + 2], key))
