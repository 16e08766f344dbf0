"""The simulated news site: sessions, users, articles, time and determinism."""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter, defaultdict
from itertools import islice, pairwise

import pytest

from clickstream.events import ARTICLE_EVENTS, DeviceType, Event, EventType
from clickstream.simulation import CATEGORIES, SimulationConfig, Simulator

START = dt.datetime(2025, 1, 6, 8, 0, tzinfo=dt.UTC)
ENGAGEMENTS = {EventType.LIKE, EventType.COMMENT, EventType.SHARE}


def take(n: int, **config) -> list[Event]:
    config.setdefault("start", START)
    return list(islice(Simulator(SimulationConfig(**config)), n))


def by_session(events: list[Event]) -> dict[object, list[Event]]:
    sessions: dict[object, list[Event]] = defaultdict(list)
    for event in events:
        sessions[event.session_id].append(event)
    return sessions


@pytest.fixture(scope="module")
def events() -> list[Event]:
    return take(15_000, seed=7)


@pytest.fixture(scope="module")
def sessions(events) -> dict[object, list[Event]]:
    return by_session(events)


class FakeClock:
    """A clock that advances one millisecond each time it is read."""

    def __init__(self, start: dt.datetime) -> None:
        self.current = start
        self.readings: list[dt.datetime] = []

    def now(self) -> dt.datetime:
        self.current += dt.timedelta(milliseconds=1)
        self.readings.append(self.current)
        return self.current


class TestSessions:
    def test_every_session_starts_with_login(self, sessions):
        """The first event of every session is its login, and there is only one login."""
        assert len(sessions) > 1000
        for session in sessions.values():
            assert session[0].event_type is EventType.LOGIN
            assert [e.event_type for e in session].count(EventType.LOGIN) == 1

    def test_engagement_only_on_an_article_viewed_earlier(self, sessions):
        """Likes, comments and shares follow a page view of that article in the same session."""
        engaged = 0
        for session in sessions.values():
            viewed: set[str | None] = set()
            for event in session:
                if event.event_type is EventType.PAGE_VIEW:
                    viewed.add(event.article_id)
                elif event.event_type in ENGAGEMENTS:
                    engaged += 1
                    assert event.article_id in viewed, event
        assert engaged > 1000

    def test_session_keeps_its_user_device_agent_and_ip(self, sessions):
        """user, device_type, user_agent, ip and country are the same throughout a session."""
        for session in sessions.values():
            contexts = {(e.user_id, e.device_type, e.user_agent, e.ip, e.country) for e in session}
            assert len(contexts) == 1

    def test_most_sessions_end_with_logout_and_nothing_follows_it(self, events, sessions):
        """About 85% of finished sessions log out, and a logout is a session's last event."""
        early = {
            e.session_id for e in events[: len(events) // 2] if e.event_type is EventType.LOGIN
        }
        logged_out = 0
        for session_id in early:
            types = [e.event_type for e in sessions[session_id]]
            if EventType.LOGOUT in types:
                logged_out += 1
                assert types.index(EventType.LOGOUT) == len(types) - 1
        assert 0.78 < logged_out / len(early) < 0.92

    def test_engagements_get_rarer_from_likes_to_comments_to_shares(self, events):
        """Comments are rarer than likes, and shares rarer than comments."""
        counts = Counter(e.event_type for e in events)
        assert counts[EventType.PAGE_VIEW] > counts[EventType.LIKE]
        assert counts[EventType.LIKE] > 2 * counts[EventType.COMMENT] > 0
        assert counts[EventType.COMMENT] > 1.5 * counts[EventType.SHARE] > 0

    def test_only_comments_carry_text_and_page_views_carry_referrers(self, events):
        """comment_text is on comments only; referrers appear on page views only, often external."""
        referrers = Counter(e.referrer for e in events if e.event_type is EventType.PAGE_VIEW)
        assert all(e.referrer is None for e in events if e.event_type is not EventType.PAGE_VIEW)
        assert referrers[None] > 0
        assert referrers["https://www.google.com/"] > 0
        assert any(r and r.startswith("https://news.example.com/") for r in referrers)
        comments = [e.comment_text for e in events if e.event_type is EventType.COMMENT]
        assert all(text and text.endswith(".") for text in comments)
        assert len(set(comments)) > 50

    def test_device_mix_is_mobile_heavy(self, sessions):
        """Sessions are mostly mobile, then desktop, then tablet, each with a matching agent."""
        devices = Counter(session[0].device_type for session in sessions.values())
        share = {device: count / len(sessions) for device, count in devices.items()}
        assert 0.5 < share[DeviceType.MOBILE] < 0.7
        assert 0.22 < share[DeviceType.DESKTOP] < 0.42
        assert 0.03 < share[DeviceType.TABLET] < 0.14
        for session in sessions.values():
            agent, device = session[0].user_agent, session[0].device_type
            handheld = any(word in agent for word in ("iPhone", "iPad", "Android"))
            assert handheld == (device is not DeviceType.DESKTOP), agent
            assert ("Mobile" in agent and "iPad" not in agent) == (device is DeviceType.MOBILE)


class TestCatalog:
    def test_article_popularity_is_skewed(self, events):
        """The 10% most viewed articles get far more than 10% of the page views."""
        views = Counter(e.article_id for e in events if e.event_type is EventType.PAGE_VIEW)
        top = sum(count for _, count in views.most_common(400 // 10))
        assert top / sum(views.values()) > 0.45

    def test_articles_are_stable_and_well_formed(self, events):
        """Each article id has one title and one category, from the known categories."""
        seen: dict[str | None, tuple[str | None, str | None]] = {}
        for event in events:
            if event.event_type in ARTICLE_EVENTS:
                assert re.fullmatch(r"art-\d{5}", event.article_id or "")
                assert event.category in CATEGORIES
                assert event.article_title
                expected = seen.setdefault(event.article_id, (event.article_title, event.category))
                assert (event.article_title, event.category) == expected
            else:
                assert event.article_id is event.article_title is event.category is None
        assert len({article for article, _ in seen.items()}) > 200

    def test_catalog_size_is_respected(self):
        """No article id beyond the configured catalog size appears."""
        ids = {e.article_id for e in take(3000, seed=3, articles=12) if e.article_id}
        assert ids <= {f"art-{n:05d}" for n in range(1, 13)}
        assert len(ids) > 6

    def test_readers_favour_their_categories(self, events):
        """A regular reader's favourite category takes well over its catalog share of views."""
        reads: dict[str, Counter[str | None]] = defaultdict(Counter)
        for event in events:
            if event.event_type is EventType.PAGE_VIEW:
                reads[event.user_id][event.category] += 1
        regulars = [counts for counts in reads.values() if sum(counts.values()) >= 30]
        assert len(regulars) > 10
        top_shares = [counts.most_common(1)[0][1] / sum(counts.values()) for counts in regulars]
        assert sum(top_shares) / len(top_shares) > 0.35


class TestUsers:
    def test_users_never_exceed_the_population(self):
        """A small population is filled up to its cap and never beyond it."""
        users = {e.user_id for e in take(4000, seed=5, users=25)}
        assert users == {f"user-{n:06d}" for n in range(1, 26)}

    def test_population_starts_small_and_grows(self, events):
        """New users keep signing up, while returning users get most sessions."""
        early = {e.user_id for e in events[:1000]}
        everyone = {e.user_id for e in events}
        assert len(early) < 200
        assert len(early) < len(everyone) <= 1000
        logins = [e for e in events if e.event_type is EventType.LOGIN]
        first_logins = len({e.user_id for e in logins})
        assert first_logins / len(logins) < 0.3

    def test_a_user_keeps_country_and_home_ip(self, events):
        """Every user has one country and one IP address across all their sessions."""
        places: dict[str, set[tuple[str, str]]] = defaultdict(set)
        for event in events:
            assert re.fullmatch(r"user-\d{6}", event.user_id)
            places[event.user_id].add((event.country, event.ip))
        assert all(len(place) == 1 for place in places.values())
        assert len({place for user in places.values() for place in user}) > 100


class TestTime:
    def test_simulated_time_starts_at_start_and_never_goes_back(self, events):
        """Timestamps begin right after the start and are non-decreasing, at human pace."""
        stamps = [e.timestamp for e in events]
        assert START <= stamps[0] < START + dt.timedelta(minutes=2)
        assert stamps == sorted(stamps)
        assert dt.timedelta(hours=1) < stamps[-1] - stamps[0] < dt.timedelta(days=1)

    def test_gaps_within_a_session_are_seconds_to_minutes(self, sessions):
        """Consecutive events of one session are apart by at least a second, at most 15 minutes."""
        for session in sessions.values():
            for before, after in pairwise(session):
                assert dt.timedelta(seconds=1) <= after.timestamp - before.timestamp
                assert after.timestamp - before.timestamp <= dt.timedelta(minutes=15)

    def test_real_time_mode_stamps_events_with_the_clock(self):
        """With a clock, each event has the clock's time, and the actions keep simulated order."""
        clock = FakeClock(dt.datetime(2025, 5, 5, 12, tzinfo=dt.UTC))
        live = list(islice(Simulator(SimulationConfig(seed=9), clock), 500))
        simulated = take(500, seed=9)
        assert [e.timestamp for e in live] == clock.readings
        strip = {"timestamp"}
        assert [e.model_dump(exclude=strip) for e in live] == [
            e.model_dump(exclude=strip) for e in simulated
        ]

    def test_default_start_is_now_floored_to_the_second(self):
        """Without a start, simulated time starts at the current second."""
        before = dt.datetime.now(dt.UTC).replace(microsecond=0)
        simulator = Simulator(SimulationConfig(seed=1))
        assert before <= simulator.start <= dt.datetime.now(dt.UTC)
        assert simulator.start.microsecond == 0

    def test_naive_start_is_refused(self):
        """A start without a time zone is an error, not a guess."""
        with pytest.raises(ValueError, match="time zone"):
            Simulator(SimulationConfig(start=dt.datetime(2025, 1, 1)))


class TestDeterminism:
    def test_same_seed_and_start_give_identical_bytes(self):
        """Two simulators with the same seed and start emit byte-identical events."""
        first = [e.to_json() for e in take(5000, seed=42)]
        second = [e.to_json() for e in take(5000, seed=42)]
        assert first == second

    def test_different_seed_gives_different_events(self):
        """Another seed gives another stream."""
        one = [e.to_json() for e in take(200, seed=42)]
        other = [e.to_json() for e in take(200, seed=43)]
        assert not set(one) & set(other)

    def test_iterating_again_replays_the_stream(self):
        """Each iteration over one simulator starts the same stream afresh."""
        simulator = Simulator(SimulationConfig(seed=11, start=START))
        assert list(islice(simulator, 300)) == list(islice(simulator, 300))

    def test_a_drawn_seed_is_exposed_for_replay(self):
        """Without a seed one is drawn, and passing it back replays the run."""
        drawn = Simulator(SimulationConfig(start=START))
        replay = Simulator(SimulationConfig(seed=drawn.seed, start=START))
        assert list(islice(drawn, 300)) == list(islice(replay, 300))


class TestSerialization:
    def test_every_event_round_trips_through_json(self, events):
        """Each event survives to_json and Event.from_json unchanged."""
        for event in events[:5000]:
            assert Event.from_json(event.to_json()) == event
