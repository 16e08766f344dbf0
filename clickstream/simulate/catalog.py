"""The news site's articles: published over time, popular by a Zipf law, fading with age.

An article's weight (its chance of being the next one read) is its appeal times its
freshness: `appeal` is drawn from a Zipf law once, when it is published; freshness halves
every half-life, down to a floor, so old articles keep a trickle of readers.

Re-weighing every article as time passes would cost a pass over the catalog again and
again. It is not needed: with age = t - published,

    appeal * (floor + (1 - floor) * 2 ** (-age / half_life))
      = floor * appeal + 2 ** (-t / half_life) * (1 - floor) * appeal * 2 ** (published / half_life)

so each weight is a fixed "evergreen" part plus a fixed "fresh" part scaled by one factor
that is the same for every article. A draw first chooses between the two parts by their
totals at time t, then bisects that part's cumulative weights, which never change. New
articles are appended; the oldest are retired in batches, when the weights are rebuilt.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import orjson
from faker import Faker

from clickstream.simulate import site
from clickstream.simulate.config import SimulationConfig

T = TypeVar("T")

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
#: Freshness never falls below this share: old articles still get a trickle of readers.
FRESHNESS_FLOOR = 0.03
#: A breaking story's weight when published, relative to the rest of the catalog's then.
BREAKING_APPEAL = 0.5
#: A breaking story multiplies the visits by up to 1 + this, decaying by half every hour.
BREAKING_TRAFFIC = 2.0
BREAKING_HALF_LIFE_MS = HOUR_MS
#: After 30 half-lives the boost is under 1e-8: it is dropped.
BOOST_FADES_AFTER_MS = 30 * BREAKING_HALF_LIFE_MS
#: The catalog may hold this many times its size before the oldest are retired.
RETIRE_SLACK = 1.25
#: Weights are rebuilt at least this often (in half-lives), to keep the numbers small.
REBUILD_HALF_LIVES = 8


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


def mix(table: dict[T, int]) -> Weighted[T]:
    """A `Weighted` from a table of shares."""
    return Weighted(list(table), list(table.values()))


_CATEGORY_MIX = mix(site.CATEGORIES)


def json_string(value: str) -> bytes:
    """A JSON string, escaped exactly as the event's own serialization escapes it."""
    return orjson.dumps(value)


@dataclass(frozen=True, slots=True)
class Article:
    """One article, with the JSON of its fields pre-encoded as events carry them."""

    article_id: str
    title: str
    category: str
    published_ms: int
    appeal: float
    fields: bytes  # "article_id":...,"article_title":...,"category":...,
    #: The end of a page view's JSON when the reader came from this article:
    #: "referrer":"<its url>","comment_text":null (the end of its JSON but the last piece)
    as_referrer: bytes

    @property
    def url(self) -> str:
        return f"{site.SITE}/{self.category}/{self.article_id}"


#: A pool as a reader draws from it: its articles, their cumulative evergreen and fresh
#: weights, the totals of both, and the last index. A draw at time t takes a point below
#: evergreen total + fresh total * `Catalog.decay(t)`, then bisects the evergreen weights with
#: it, or the fresh ones with (point - evergreen total) / decay, no further than the last index.
Draw = tuple[list[Article], list[float], list[float], float, float, int]


class _Pool:
    """Articles with an evergreen and a fresh part of their weight (see the module doc)."""

    def __init__(self) -> None:
        self.items: list[Article] = []
        self.evergreen: list[float] = []  # cumulative
        self.fresh: list[float] = []  # cumulative, at the time of the last rebuild
        self.draw: Draw = (self.items, self.evergreen, self.fresh, 0.0, 0.0, -1)

    def add(self, article: Article, evergreen: float, fresh: float) -> None:
        self.items.append(article)
        self.evergreen.append((self.evergreen[-1] if self.evergreen else 0.0) + evergreen)
        self.fresh.append((self.fresh[-1] if self.fresh else 0.0) + fresh)
        # the lists are shared, the totals are copied: readers unpack one tuple per draw
        self.draw = (self.items, self.evergreen, self.fresh, self.evergreen[-1], self.fresh[-1],
                     len(self.items) - 1)  # fmt: skip


class Catalog:
    """The live articles, overall and per category; `advance` publishes and retires them."""

    def __init__(self, config: SimulationConfig, rng: random.Random, start_ms: int) -> None:
        self.config = config
        self.rng = rng
        self.fake = Faker("en_US")
        self.fake.seed_instance(rng.getrandbits(64))
        self.numbers = itertools.count(1)
        self.half_life_ms = config.half_life_hours * HOUR_MS
        self.rebuild_every_ms = int(REBUILD_HALF_LIVES * self.half_life_ms)
        self.publish_every_ms = DAY_MS / config.publish_per_day if config.publish_per_day else 0
        self.breaking_every_ms = DAY_MS / config.breaking_per_day if config.breaking_per_day else 0
        self.articles: list[Article] = []
        # the catalog already holds articles published before the start, oldest first
        span = self.publish_every_ms * config.articles or 7 * DAY_MS
        for age in sorted((rng.uniform(0, span) for _ in range(config.articles)), reverse=True):
            self.articles.append(self._new(start_ms - int(age)))
        self.next_publish = start_ms + self._gap(self.publish_every_ms)
        if config.first_breaking_after_hours is not None:
            self.next_breaking = start_ms + int(config.first_breaking_after_hours * HOUR_MS)
        else:
            self.next_breaking = start_ms + self._gap(self.breaking_every_ms)
        #: The latest breaking story's time, and when its boost of traffic has faded away.
        self.breaking_at = self.boost_until = 0
        self.overall = _Pool()
        self.by_category: dict[str, _Pool] = {}
        self.rebuilt_ms = start_ms
        self._rebuild(start_ms)
        #: When `advance` has something to do next.
        self.next_change_ms = self._next_change()
        #: The pool of each category, as readers draw from it (the whole catalog's for a
        #: category without articles); `overall.draw` is the whole catalog's.
        self.draw_of = self._draws()

    def decay(self, now_ms: int) -> float:
        """The factor of every fresh part at `now_ms` (see `Draw`)."""
        return math.exp2(-(now_ms - self.rebuilt_ms) / self.half_life_ms)

    def weight(self, article: Article, now_ms: int) -> float:
        """Appeal times freshness at `now_ms`."""
        age = max(now_ms - article.published_ms, 0)
        return article.appeal * (
            FRESHNESS_FLOOR + (1 - FRESHNESS_FLOOR) * math.exp2(-age / self.half_life_ms)
        )

    def traffic_boost(self, now_ms: int) -> float:
        """How much busier the site is than usual, because of a recent breaking story."""
        if not self.breaking_at <= now_ms < self.boost_until:
            return 1.0
        return 1.0 + BREAKING_TRAFFIC * math.exp2(
            -(now_ms - self.breaking_at) / BREAKING_HALF_LIFE_MS
        )

    def advance(self, now_ms: int) -> None:
        """Publish what is due by `now_ms` (and retire the oldest, now and then)."""
        while min(self.next_publish, self.next_breaking) <= now_ms:
            if self.next_publish <= self.next_breaking:
                self._publish(self._new(self.next_publish))
                self.next_publish += self._gap(self.publish_every_ms)
            else:
                at = self.next_breaking
                total = sum(self.weight(article, at) for article in self.articles)
                self._publish(self._new(at, BREAKING_APPEAL * total, "BREAKING: "))
                self.breaking_at, self.boost_until = at, at + BOOST_FADES_AFTER_MS
                self.next_breaking += self._gap(self.breaking_every_ms)
        if (
            len(self.articles) > self.config.articles * RETIRE_SLACK
            or now_ms >= self.rebuilt_ms + self.rebuild_every_ms
        ):
            self._rebuild(now_ms)
        self.next_change_ms = self._next_change()
        self.draw_of = self._draws()

    def _next_change(self) -> int:
        return min(self.next_publish, self.next_breaking, self.rebuilt_ms + self.rebuild_every_ms)

    def _draws(self) -> dict[str, Draw]:
        overall, pools = self.overall, self.by_category
        return {category: pools.get(category, overall).draw for category in site.CATEGORIES}

    def _gap(self, mean_ms: float) -> int:
        """The wait until the next of a Poisson stream of things (never, for a mean of 0)."""
        return int(self.rng.expovariate(1 / mean_ms)) + 1 if mean_ms else 2**62

    def _new(self, published_ms: int, appeal: float | None = None, prefix: str = "") -> Article:
        rng = self.rng
        category = _CATEGORY_MIX.pick(rng)
        if appeal is None:  # a Zipf law: the article's rank among a catalog of this size
            appeal = rng.randint(1, self.config.articles) ** -self.config.zipf_exponent
        subject = rng.choice(site.HEADLINE_SUBJECTS[category])
        verb = rng.choice(site.HEADLINE_VERBS)
        title = f"{prefix}{subject} to {verb} {self.fake.catch_phrase().lower()}"
        article_id = f"art-{next(self.numbers):05d}"
        fields = b'"article_id":%b,"article_title":%b,"category":%b,' % (
            json_string(article_id), json_string(title), json_string(category)
        )  # fmt: skip
        url = f"{site.SITE}/{category}/{article_id}"
        return Article(article_id, title, category, published_ms, appeal, fields,
                       b'"referrer":%b,"comment_text":null' % json_string(url))  # fmt: skip

    def _parts(self, article: Article) -> tuple[float, float]:
        age = (article.published_ms - self.rebuilt_ms) / self.half_life_ms
        return FRESHNESS_FLOOR * article.appeal, (1 - FRESHNESS_FLOOR) * article.appeal * math.exp2(
            age
        )

    def _publish(self, article: Article) -> None:
        self.articles.append(article)
        evergreen, fresh = self._parts(article)
        self.overall.add(article, evergreen, fresh)
        self.by_category.setdefault(article.category, _Pool()).add(article, evergreen, fresh)

    def _rebuild(self, now_ms: int) -> None:
        del self.articles[: -self.config.articles]  # retire the oldest
        self.rebuilt_ms = now_ms
        self.overall = _Pool()
        self.by_category = {}
        articles, self.articles = self.articles, []
        for article in articles:
            self._publish(article)
