"""Statistics of a seeded run of 120,000 events: the structure of real traffic, not noise.

Each test states a property of the output and checks it with a margin wide enough for any
seed, narrow enough that a broken model fails (uniform popularity, re-drawn devices,
no sessions, no daily cycle, reactions before views would all fail).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections import Counter, defaultdict
from itertools import islice, pairwise
from typing import Any

import orjson
import pytest

from clickstream.simulate import scenarios
from clickstream.simulate.config import SimulationConfig
from clickstream.simulate.simulator import Simulator
from clickstream.simulate.site import CATEGORIES, COUNTRIES, EXTERNAL_REFERRERS, SITE, is_bot

START = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)  # a Monday, midnight UTC
EVENTS = 120_000
REACTIONS = ("like", "comment", "share")

Record = dict[str, Any]


def run(n: int, config: SimulationConfig) -> list[Record]:
    return [orjson.loads(value) for _, value in islice(Simulator(config).messages(), n)]


def sessions_of(events: list[Record]) -> dict[str, list[Record]]:
    sessions: dict[str, list[Record]] = defaultdict(list)
    for event in events:
        sessions[event["session_id"]].append(event)
    return sessions


def hour(event: Record) -> int:
    return int(event["timestamp"][11:13])


@pytest.fixture(scope="module")
def events() -> list[Record]:
    return run(EVENTS, SimulationConfig(seed=7, start=START))


@pytest.fixture(scope="module")
def sessions(events) -> dict[str, list[Record]]:
    return sessions_of(events)


@pytest.fixture(scope="module")
def humans(sessions) -> list[list[Record]]:
    return [session for session in sessions.values() if not is_bot(session[0]["user_agent"])]


class TestSessions:
    """A visit is a session: login, page views, a few reactions, logout or silence."""

    def test_every_session_starts_with_its_only_login(self, sessions):
        """The first event of every session is a login, and no other event is."""
        assert len(sessions) > 10_000
        for session in sessions.values():
            assert session[0]["event_type"] == "login"
            assert sum(e["event_type"] == "login" for e in session) == 1

    def test_no_reaction_before_viewing_in_the_session(self, sessions):
        """Likes, comments and shares follow a page view of that article in the same session."""
        reactions = 0
        for session in sessions.values():
            viewed: set[str] = set()
            for event in session:
                if event["event_type"] == "page_view":
                    viewed.add(event["article_id"])
                elif event["event_type"] in REACTIONS:
                    reactions += 1
                    assert event["article_id"] in viewed, event
        assert reactions > 5000

    def test_reactions_are_a_small_and_ordered_fraction_of_views(self, humans):
        """Per human page view: likes ~8%, comments ~2%, shares ~0.8%: likes > comments > shares."""
        counts = Counter(e["event_type"] for session in humans for e in session)
        views = counts["page_view"]
        ratios = {kind: counts[kind] / views for kind in REACTIONS}
        assert 0.065 < ratios["like"] < 0.095, ratios
        assert 0.014 < ratios["comment"] < 0.026, ratios
        assert 0.005 < ratios["share"] < 0.011, ratios
        assert ratios["like"] > 2.5 * ratios["comment"] > 2.5 * ratios["share"]

    def test_most_sessions_log_out_and_nothing_follows(self, humans):
        """About 85% of human sessions end with a logout; a logout is always last."""
        finished = humans[: len(humans) // 2]  # the later ones may still be running
        logged_out = 0
        for session in finished:
            types = [e["event_type"] for e in session]
            if "logout" in types:
                logged_out += 1
                assert types.index("logout") == len(types) - 1
        assert 0.81 < logged_out / len(finished) < 0.89

    def test_a_session_keeps_its_user_device_agent_and_address(self, sessions):
        """user, device, user agent, IP and country are the same throughout a session."""
        for session in sessions.values():
            keys = ("user_id", "device_type", "user_agent", "ip", "country")
            assert len({tuple(e[key] for key in keys) for e in session}) == 1

    def test_sessions_have_several_page_views(self, humans):
        """A human session views 1 to 61 pages, about 4.5 on average."""
        finished = humans[: len(humans) // 2]  # the later ones may still be running
        views = [sum(e["event_type"] == "page_view" for e in session) for session in finished]
        assert min(views) >= 1
        assert max(views) <= 61
        assert 3.8 < sum(views) / len(views) < 5.2

    def test_readers_arrive_from_outside_then_follow_links(self, humans):
        """A session's first page view comes from outside, in the shares of
        EXTERNAL_REFERRERS; of the next ones, ~52% follow a link from the page read just
        before, ~22% come from the home page and ~25% from outside again."""
        first: Counter[str | None] = Counter()
        later: Counter[str] = Counter()
        for session in humans:
            views = [e for e in session if e["event_type"] == "page_view"]
            if not views:
                continue  # logged in just before the end of the run
            first[views[0]["referrer"]] += 1
            for before, view in pairwise(views):
                if view["referrer"] == f"{SITE}/{before['category']}/{before['article_id']}":
                    later["previous page"] += 1
                elif view["referrer"] == f"{SITE}/":
                    later["home page"] += 1
                else:
                    assert view["referrer"] in EXTERNAL_REFERRERS, view
                    later["outside"] += 1
        assert set(first) == set(EXTERNAL_REFERRERS)
        total = sum(EXTERNAL_REFERRERS.values())
        for referrer, share in EXTERNAL_REFERRERS.items():
            assert abs(first[referrer] / first.total() - share / total) < 0.02, (referrer, first)
        followed = sum(later.values())
        assert abs(later["previous page"] / followed - 0.525) < 0.02, later
        assert abs(later["home page"] / followed - 0.225) < 0.02, later
        assert abs(later["outside"] / followed - 0.25) < 0.02, later


class TestPopularity:
    """Articles: a heavy tail of popularity, publication over time, fading, preferences."""

    def test_popularity_has_a_heavy_tail(self, events):
        """The top 10% of articles take over half the views; rank-frequency is Zipf-like."""
        views = Counter(e["article_id"] for e in events if e["event_type"] == "page_view")
        counts = sorted(views.values(), reverse=True)
        top = sum(counts[: len(counts) // 10]) / sum(counts)
        assert top > 0.5, top
        # slope of log(views) against log(rank) over the first 100 ranks
        xs = [math.log(rank) for rank in range(1, 101)]
        ys = [math.log(count) for count in counts[:100]]
        mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
        slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sum(
            (x - mean_x) ** 2 for x in xs
        )
        assert -1.6 < slope < -0.6, slope

    def test_new_articles_appear_and_fade(self, events):
        """Articles first seen during the run get far more views in their first 12 hours than
        a day later."""
        first_seen: dict[str, dt.datetime] = {}
        early = late = 0
        end = dt.datetime.fromisoformat(events[-1]["timestamp"])
        for event in events:
            if event["event_type"] != "page_view":
                continue
            at = dt.datetime.fromisoformat(event["timestamp"])
            born = first_seen.setdefault(event["article_id"], at)
            if born < START + dt.timedelta(hours=12) or born > end - dt.timedelta(hours=36):
                continue  # only articles published during the run, followed for 36 hours
            age = at - born
            early += age < dt.timedelta(hours=12)
            late += dt.timedelta(hours=24) <= age < dt.timedelta(hours=36)
        assert len(first_seen) > 500
        assert early > 2 * late > 0, (early, late)

    def test_readers_favour_their_categories(self, humans):
        """A regular reader's top category takes well over its share of the catalog."""
        reads: dict[str, Counter[str]] = defaultdict(Counter)
        for session in humans:
            for event in session:
                if event["event_type"] == "page_view":
                    reads[event["user_id"]][event["category"]] += 1
        regulars = [counts for counts in reads.values() if sum(counts.values()) >= 30]
        assert len(regulars) > 100
        shares = [counts.most_common(1)[0][1] / sum(counts.values()) for counts in regulars]
        biggest_category = max(CATEGORIES.values()) / sum(CATEGORIES.values())
        assert sum(shares) / len(shares) > 2 * biggest_category


class TestDailyCycle:
    """More visits by day than by night, in the readers' own time zones."""

    def test_site_is_busier_in_the_evening_than_at_night(self, humans):
        """Over five days, 15-22 UTC (evening in Europe, day in the Americas) has over 1.25
        times the events of 3-10 UTC (night in Europe and the Americas); flat traffic has
        about the same in both."""
        by_hour = Counter(hour(e) for session in humans for e in session)
        assert len(by_hour) == 24
        busy = sum(by_hour[h] for h in range(15, 22))
        quiet = sum(by_hour[h] for h in range(3, 10))
        assert busy > 1.25 * quiet, by_hour

    def test_readers_sleep_at_night_in_their_own_time_zone(self, humans):
        """In the readers' local time (countries with one time zone), an hour of the day
        (9-22) has over 5 times the logins of an hour of the night (1-5)."""
        offsets = {
            code: zones[0] // 60
            for code, (_, zones) in COUNTRIES.items()
            if len(set(zones)) == 1 and zones[0] % 60 == 0
        }
        local = Counter(
            (hour(s[0]) + offsets[s[0]["country"]]) % 24
            for s in humans
            if s[0]["country"] in offsets
        )
        day = sum(local[h] for h in range(9, 23)) / 14
        night = sum(local[h] for h in range(1, 6)) / 5
        assert day > 5 * night, local

    def test_time_zones_shift_the_peak(self, humans):
        """UK/Irish logins (UTC+0) peak in the evening and sleep at night; Japan's busiest
        UTC hours are the UK's quietest."""
        uk = Counter(hour(s[0]) for s in humans if s[0]["country"] in ("GB", "IE"))
        japan = Counter(hour(s[0]) for s in humans if s[0]["country"] == "JP")
        assert sum(uk[h] for h in (19, 20, 21)) > 8 * sum(uk[h] for h in (2, 3, 4)), uk
        # 19-21 in Tokyo is 10-12 UTC; 2-4 in Tokyo is 17-19 UTC
        assert sum(japan[h] for h in (10, 11, 12)) > 4 * sum(japan[h] for h in (17, 18, 19))

    def test_a_steady_scenario_has_no_cycle(self):
        """The steady scenario is flat: over three whole days, every UTC hour within 25% of
        the mean (whole days: a cut mid-day would leave its last hours short). The typical
        scenario's hours stray 30-50% from theirs."""
        three_days = {"start": START, "end": START + dt.timedelta(days=3)}
        flat = run(10**9, scenarios.config("steady", seed=7, **three_days))
        by_hour = Counter(hour(e) for e in flat)
        mean = sum(by_hour.values()) / 24
        assert all(abs(count - mean) < 0.25 * mean for count in by_hour.values()), by_hour


class TestDevicesAndPlaces:
    """Devices in plausible proportions, addresses and countries stable per user."""

    def test_device_mix_is_mobile_heavy(self, humans):
        """Human sessions: ~60% mobile, ~32% desktop, ~8% tablet, each with a matching agent."""
        devices = Counter(session[0]["device_type"] for session in humans)
        share = {device: count / len(humans) for device, count in devices.items()}
        assert 0.55 < share["mobile"] < 0.65, share
        assert 0.27 < share["desktop"] < 0.37, share
        assert 0.05 < share["tablet"] < 0.11, share
        for session in humans:
            agent, device = session[0]["user_agent"], session[0]["device_type"]
            handheld = any(word in agent for word in ("iPhone", "iPad", "Android"))
            assert handheld == (device != "desktop"), agent
            assert ("Mobile" in agent and "iPad" not in agent) == (device == "mobile")

    def test_users_mostly_keep_their_device(self, humans):
        """Most of a regular reader's sessions are on one device (sticky, not re-drawn)."""
        devices: dict[str, Counter[str]] = defaultdict(Counter)
        for session in humans:
            devices[session[0]["user_id"]][session[0]["device_type"]] += 1
        regulars = [c for c in devices.values() if sum(c.values()) >= 10]
        usual = sum(c.most_common(1)[0][1] for c in regulars) / sum(
            sum(c.values()) for c in regulars
        )
        assert usual > 0.8, usual

    def test_a_user_keeps_country_and_address(self, events):
        """Every user has one country and one IP address across all their sessions."""
        places: dict[str, set[tuple[str, str]]] = defaultdict(set)
        for event in events:
            places[event["user_id"]].add((event["country"], event["ip"]))
        assert all(len(place) == 1 for place in places.values())
        assert len(places) > 900


class TestBots:
    """A small share of the traffic is automated, and says so in its user agent."""

    def test_bot_share_of_sessions(self, sessions):
        """About 2% of sessions are bots, recognisable by user agent, all on few accounts."""
        bots = [s for s in sessions.values() if is_bot(s[0]["user_agent"])]
        share = len(bots) / len(sessions)
        assert 0.012 < share < 0.03, share
        assert len({s[0]["user_id"] for s in bots}) <= SimulationConfig().bot_accounts

    def test_bots_crawl_and_never_react(self, sessions):
        """Bot sessions are page views (plus login/logout), a few seconds apart at most."""
        for session in sessions.values():
            if is_bot(session[0]["user_agent"]):
                assert not {e["event_type"] for e in session} & set(REACTIONS)
                assert session[0]["device_type"] == "desktop"

    def test_bot_attack_scenario_is_mostly_bots(self):
        """In the bot-attack scenario about 35% of sessions are bots from a handful of accounts."""
        attack = sessions_of(run(40_000, scenarios.config("bot-attack", seed=7, start=START)))
        bots = [s for s in attack.values() if is_bot(s[0]["user_agent"])]
        assert 0.28 < len(bots) / len(attack) < 0.42
        assert len({s[0]["user_id"] for s in bots}) <= 8


class TestBreakingNews:
    """A breaking story brings a burst of visits, most of them to it."""

    def test_breaking_news_brings_a_burst(self):
        """In the hour after a breaking story, logins are well above the same hour of the same
        site without breaking news, and the story is the most viewed article."""
        window = (START + dt.timedelta(minutes=20), START + dt.timedelta(minutes=80))

        def in_window(config: SimulationConfig) -> list[Record]:
            stop = window[1] + dt.timedelta(minutes=1)
            found = run(10**9, dataclasses.replace(config, end=stop))
            low, high = (moment.isoformat()[:19] for moment in window)
            return [e for e in found if low <= e["timestamp"][:19] < high]

        base = {"seed": 7, "start": START, "users": 20_000, "bot_share": 0.0}
        burst = in_window(scenarios.config("breaking-news", **base))
        calm = in_window(scenarios.config("typical", **base, breaking_per_day=0.0))
        logins = Counter(e["event_type"] for e in burst)["login"]
        calm_logins = Counter(e["event_type"] for e in calm)["login"]
        assert logins > 1.6 * calm_logins, (logins, calm_logins)
        views = Counter(e["article_title"] for e in burst if e["event_type"] == "page_view")
        top_title, top_views = views.most_common(1)[0]
        assert top_title.startswith("BREAKING: ")
        assert top_views > 0.15 * sum(views.values())


class TestReproducibility:
    """A seed and a start reproduce the whole statistical picture, byte for byte."""

    def test_same_seed_same_stream(self, events):
        """A second run with the same seed and start gives the same 120,000 events."""
        again = Simulator(SimulationConfig(seed=7, start=START)).messages()
        assert all(
            orjson.loads(value) == event
            for (_, value), event in zip(islice(again, EVENTS), events, strict=True)
        )
