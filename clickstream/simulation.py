"""The simulated news site: articles, users and their sessions, as a pure stream of events.

Nothing here does I/O. A `Simulator` is a function of its `SimulationConfig` (and of an
optional injected `Clock`): the same seed and start give byte-identical events.

Every session is a small generator of actions (login, page views, likes, comments,
shares, logout) with simulated gaps between them. `concurrent_sessions` of them are
interleaved through a heap keyed by each session's next event time, so the stream is
ordered by time; a session that ends is replaced by a new one. The user population
starts at a tenth of `users` and grows as new users sign up; returning users (and,
among them, the most active) get most of the sessions.
"""

from __future__ import annotations

import bisect
import datetime as dt
import heapq
import itertools
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar
from uuid import UUID

from faker import Faker

from clickstream.events import DeviceType, Event, EventType

T = TypeVar("T")

SITE = "https://news.example.com"
#: Categories and their share of the catalog.
CATEGORIES = {
    "politics": 16, "world": 14, "business": 12, "tech": 12, "sports": 12,
    "entertainment": 10, "science": 8, "health": 8, "travel": 4, "culture": 4,
}  # fmt: skip
DEVICES = {DeviceType.MOBILE: 60, DeviceType.DESKTOP: 32, DeviceType.TABLET: 8}
USER_AGENTS = {
    DeviceType.MOBILE: (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/131.0.6778.81 Mobile Safari/537.36",
        "Mozilla/5.0 (Linux; Android 14; SM-S921B) AppleWebKit/537.36 "
        "(KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
        "Mozilla/5.0 (Android 14; Mobile; rv:132.0) Gecko/132.0 Firefox/132.0",
    ),
    DeviceType.DESKTOP: (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/18.1 Safari/605.1.15",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:132.0) Gecko/20100101 Firefox/132.0",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    ),
    DeviceType.TABLET: (
        "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Linux; Android 14; SM-X710) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/131.0.6778.81 Safari/537.36",
        "Mozilla/5.0 (Linux; Android 13; Lenovo TB-X606F) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/130.0.6723.102 Safari/537.36",
    ),
}
COUNTRIES = {
    "US": 30, "GB": 9, "IN": 9, "DE": 7, "CA": 5, "FR": 5, "BR": 5, "AU": 4, "JP": 3,
    "NL": 3, "ES": 3, "IT": 3, "MX": 3, "SE": 2, "PL": 2, "NG": 2, "ZA": 2, "FI": 1, "IE": 1,
}  # fmt: skip
#: Where a reader comes from when not from our own pages (None: typed or bookmarked).
EXTERNAL_REFERRERS: dict[str | None, int] = {
    "https://www.google.com/": 38, None: 25, "https://www.facebook.com/": 11,
    "https://news.google.com/": 6, "https://t.co/": 6, "https://www.reddit.com/": 5,
    "https://www.bing.com/": 4, "https://duckduckgo.com/": 3, "https://news.ycombinator.com/": 2,
}  # fmt: skip
#: First octets of public IPv4 blocks; home addresses are drawn inside them.
_IP_FIRST_OCTETS = (23, 31, 37, 45, 51, 62, 66, 73, 77, 81, 86, 91, 98, 104, 109, 121, 138,
                    151, 176, 185, 188, 203, 212, 217)  # fmt: skip
_HEADLINE_SUBJECTS = {
    "politics": ("Senate", "Lawmakers", "The governor", "Voters", "Opposition leaders"),
    "world": ("UN envoys", "Border talks", "Aid agencies", "Foreign ministers"),
    "business": ("Central bank", "Retail giant", "Start-up founders", "Markets"),
    "tech": ("Chipmakers", "New smartphone", "AI lab", "Open-source project"),
    "sports": ("Champions", "Rookie striker", "Coach", "Underdogs"),
    "entertainment": ("Box office", "Pop star", "Streaming series", "Festival jury"),
    "science": ("Researchers", "Space agency", "Physicists", "New study"),
    "health": ("Doctors", "Health officials", "Clinical trial", "Nutritionists"),
    "travel": ("Airlines", "Island resort", "Rail operators", "City guide"),
    "culture": ("Museum", "Novelist", "Theatre company", "Art fair"),
}
_HEADLINE_VERBS = ("unveil", "back", "question", "rethink", "embrace", "reject", "bet on", "weigh")

ZIPF_EXPONENT = 1.1
LOGOUT_SHARE = 0.85  # the rest of the sessions end by timing out
SIGNUP_SHARE = 0.15  # of new sessions, while the population is below its cap
#: After each page view, the chance of each reaction (to that article, or to one read before).
REACTIONS = ((EventType.LIKE, 0.20), (EventType.COMMENT, 0.05), (EventType.SHARE, 0.02))


class Weighted(Generic[T]):
    """Items drawn with fixed weights in O(log n): bisect on the cumulative weights."""

    def __init__(self, items: Sequence[T], weights: Sequence[float]) -> None:
        self.items = list(items)
        self.cumulative = list(itertools.accumulate(weights))

    def add(self, item: T, weight: float) -> None:
        """Append an item (the population grows this way)."""
        self.items.append(item)
        self.cumulative.append((self.cumulative[-1] if self.cumulative else 0.0) + weight)

    def pick(self, rng: random.Random) -> T:
        """One item, with probability proportional to its weight."""
        return self.items[bisect.bisect(self.cumulative, rng.random() * self.cumulative[-1])]


_DEVICE_MIX = Weighted(list(DEVICES), list(DEVICES.values()))
_COUNTRY_MIX = Weighted(list(COUNTRIES), list(COUNTRIES.values()))
_CATEGORY_MIX = Weighted(list(CATEGORIES), list(CATEGORIES.values()))
_REFERRER_MIX = Weighted(list(EXTERNAL_REFERRERS), list(EXTERNAL_REFERRERS.values()))


class Clock(Protocol):
    """Where real-time mode reads the time of each event."""

    def now(self) -> dt.datetime:
        """The current time, aware and in UTC."""
        ...


class WallClock:
    """The real time, for real-time mode."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate; see `SimulationSettings` for where the values come from."""

    users: int = 1000
    articles: int = 400
    seed: int | None = None
    start: dt.datetime | None = None
    concurrent_sessions: int = 50


@dataclass(frozen=True, slots=True)
class Article:
    """One article of the catalog."""

    article_id: str
    title: str
    category: str
    url: str


@dataclass(frozen=True, slots=True)
class User:
    """One reader: where they live, what they use and what they like to read."""

    user_id: str
    country: str
    ip: str
    device: DeviceType
    user_agent: str
    categories: tuple[str, ...]


#: One step of a session: (gap before it in ms, type, article, referrer, comment text).
_Step = tuple[int, EventType, Article | None, str | None, str | None]


def zipf_weights(n: int, exponent: float = ZIPF_EXPONENT) -> list[float]:
    """Popularity of the items of rank 1..n."""
    return [1.0 / rank**exponent for rank in range(1, n + 1)]


class Catalog:
    """The articles, each with a Zipf-like popularity, overall and within its category."""

    def __init__(self, size: int, rng: random.Random, fake: Faker) -> None:
        categories = rng.choices(list(CATEGORIES), weights=list(CATEGORIES.values()), k=size)
        self.articles: list[Article] = []
        for number, category in enumerate(categories, start=1):
            article_id = f"art-{number:05d}"
            subject = rng.choice(_HEADLINE_SUBJECTS[category])
            title = f"{subject} to {rng.choice(_HEADLINE_VERBS)} {fake.catch_phrase().lower()}"
            self.articles.append(
                Article(article_id, title, category, f"{SITE}/{category}/{article_id}")
            )
        popularity = zipf_weights(size)
        rng.shuffle(popularity)  # popularity does not follow the id or the category
        self.overall = Weighted(self.articles, popularity)
        self.by_category: dict[str, Weighted[Article]] = {}
        for article, weight in zip(self.articles, popularity, strict=True):
            self.by_category.setdefault(article.category, Weighted([], [])).add(article, weight)

    def pick(self, rng: random.Random, user: User) -> Article:
        """An article for this user: mostly from their favourite categories."""
        if rng.random() < 0.7:
            favourite = self.by_category.get(rng.choice(user.categories))
            if favourite is not None:
                return favourite.pick(rng)
        return self.overall.pick(rng)


@dataclass(slots=True)
class _Session:
    session_id: UUID
    user: User
    device: DeviceType
    user_agent: str
    actions: Iterator[_Step]
    pending: tuple[EventType, Article | None, str | None, str | None]


class Simulator:
    """An endless, time-ordered stream of the news site's events; slice it with `islice`."""

    def __init__(self, config: SimulationConfig, clock: Clock | None = None) -> None:
        if config.users < 1 or config.articles < 1 or config.concurrent_sessions < 1:
            raise ValueError("users, articles and concurrent_sessions must be at least 1")
        if config.start is not None and config.start.tzinfo is None:
            raise ValueError("start must carry a time zone (use UTC)")
        self.config = config
        self.clock = clock
        #: The seed in use, drawn at random when the config has none: log it to replay a run.
        self.seed = (
            config.seed if config.seed is not None else random.SystemRandom().getrandbits(64)
        )
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        self.start = config.start.astimezone(dt.UTC) if config.start is not None else now
        rng = random.Random(f"clickstream-catalog-{self.seed}")
        fake = Faker("en_US")
        fake.seed_instance(rng.getrandbits(64))
        self.catalog = Catalog(config.articles, rng, fake)
        self.comments = [fake.sentence(nb_words=rng.randint(3, 14)) for _ in range(500)]

    def __iter__(self) -> Iterator[Event]:
        rng = random.Random(f"clickstream-events-{self.seed}")
        population: Weighted[User] = Weighted([], [])  # grows as users sign up
        active: set[str] = set()
        heap: list[tuple[int, int, _Session]] = []
        order = itertools.count()  # breaks ties between sessions due at the same millisecond

        clock, start, getrandbits, heappop, heappush = (
            self.clock, self.start, rng.getrandbits, heapq.heappop, heapq.heappush
        )  # fmt: skip

        def begin(at_ms: int) -> None:
            session = self._new_session(rng, population, active)
            active.add(session.user.user_id)
            heappush(heap, (at_ms, next(order), session))

        for _ in range(self.config.concurrent_sessions):
            begin(rng.randint(0, 60_000))
        while True:
            at_ms, _, session = heappop(heap)
            event_type, article, referrer, comment = session.pending
            user = session.user
            yield Event(
                event_id=UUID(int=getrandbits(128), version=4),
                event_type=event_type,
                timestamp=start + dt.timedelta(0, 0, 0, at_ms) if clock is None else clock.now(),
                user_id=user.user_id,
                session_id=session.session_id,
                article_id=article.article_id if article else None,
                article_title=article.title if article else None,
                category=article.category if article else None,
                device_type=session.device,
                user_agent=session.user_agent,
                ip=user.ip,
                country=user.country,
                referrer=referrer,
                comment_text=comment,
            )
            step = next(session.actions, None)
            if step is None:
                active.discard(user.user_id)
                begin(at_ms + rng.randint(0, 30_000))
            else:
                session.pending = step[1:]
                heappush(heap, (at_ms + step[0], next(order), session))

    def _new_session(
        self, rng: random.Random, population: Weighted[User], active: set[str]
    ) -> _Session:
        user = self._pick_user(rng, population, active)
        device = user.device if rng.random() < 0.85 else _DEVICE_MIX.pick(rng)
        agent = user.user_agent if device is user.device else rng.choice(USER_AGENTS[device])
        session_id = UUID(int=rng.getrandbits(128), version=4)
        login = (EventType.LOGIN, None, None, None)
        return _Session(session_id, user, device, agent, self._actions(rng, user), login)

    def _pick_user(self, rng: random.Random, population: Weighted[User], active: set[str]) -> User:
        known = len(population.items)
        cap = self.config.users
        if known < cap and (known < max(1, cap // 10) or rng.random() < SIGNUP_SHARE):
            user = self._sign_up(rng, known + 1)
            population.add(user, min(rng.paretovariate(1.2), 50.0))  # a few users are very active
            return user
        user = population.pick(rng)
        for _ in range(3):  # prefer someone not already reading, if that is easy to find
            if user.user_id not in active:
                break
            user = population.pick(rng)
        return user

    @staticmethod
    def _sign_up(rng: random.Random, number: int) -> User:
        device = _DEVICE_MIX.pick(rng)
        octets = (
            rng.choice(_IP_FIRST_OCTETS),
            rng.randrange(256),
            rng.randrange(256),
            rng.randint(1, 254),
        )
        return User(
            user_id=f"user-{number:06d}",
            country=_COUNTRY_MIX.pick(rng),
            ip=".".join(map(str, octets)),
            device=device,
            user_agent=rng.choice(USER_AGENTS[device]),
            categories=tuple({_CATEGORY_MIX.pick(rng): None for _ in range(rng.randint(1, 3))}),
        )

    def _actions(self, rng: random.Random, user: User) -> Iterator[_Step]:
        """What one session does after its login: a few page views with reactions, a logout."""
        viewed: list[Article] = []
        for view in range(1 + min(int(rng.expovariate(1 / 3.5)), 40)):
            article = self.catalog.pick(rng, user)
            if view == 0 or rng.random() < 0.25:
                referrer = _REFERRER_MIX.pick(rng)
            else:
                referrer = viewed[-1].url if rng.random() < 0.7 else f"{SITE}/"
            # the first page right after login; later ones after reading (median ~45 s)
            gap = (
                rng.uniform(1, 15) if view == 0 else min(max(rng.lognormvariate(3.8, 0.8), 2), 900)
            )
            yield int(gap * 1000), EventType.PAGE_VIEW, article, referrer, None
            viewed.append(article)
            for kind, chance in REACTIONS:
                if rng.random() < chance:
                    target = article if rng.random() < 0.9 else rng.choice(viewed)
                    comment = rng.choice(self.comments) if kind is EventType.COMMENT else None
                    yield rng.randint(3_000, 40_000), kind, target, None, comment
        if rng.random() < LOGOUT_SHARE:
            yield rng.randint(2_000, 60_000), EventType.LOGOUT, None, None, None
