"""The simulated news site: time, modes, determinism, configuration and the JSON it emits."""

from __future__ import annotations

import datetime as dt
import random
import re
import uuid
from collections import Counter
from itertools import islice, pairwise

import orjson
import pytest

from clickstream.events import ARTICLE_EVENTS, SCHEMA_VERSION, Event, EventType
from clickstream.simulate import eventjson, scenarios
from clickstream.simulate.config import SimulationConfig, WallClock
from clickstream.simulate.simulator import Simulator
from clickstream.simulate.site import CATEGORIES, is_bot

START = dt.datetime(2025, 1, 6, 8, 0, tzinfo=dt.UTC)


def lines(n: int, **config) -> list[bytes]:
    """The first `n` JSON values of a backfill from START (unless told otherwise)."""
    config.setdefault("start", START)
    return [value for _, value in islice(Simulator(SimulationConfig(**config)).messages(), n)]


def take(n: int, **config) -> list[Event]:
    config.setdefault("start", START)
    return list(islice(Simulator(SimulationConfig(**config)), n))


class FakeClock:
    """A clock that advances one millisecond each time it is read."""

    def __init__(self, start: dt.datetime) -> None:
        self.current = int(start.timestamp() * 1000)
        self.readings: list[dt.datetime] = []

    def millis(self) -> int:
        self.current += 1
        self.readings.append(dt.datetime.fromtimestamp(self.current / 1000, dt.UTC))
        return self.current


class ScriptedClock:
    """A clock that reads the given times, in order (in ms since the epoch)."""

    def __init__(self, readings: list[int]) -> None:
        self.readings = iter(readings)

    def millis(self) -> int:
        return next(self.readings)


class TestSerialization:
    """The JSON built directly by the simulator is exactly the Event model's JSON."""

    @pytest.mark.parametrize("scenario", list(scenarios.SCENARIOS))
    def test_every_line_validates_and_equals_the_model_serialization(self, scenario):
        """Each line parses as a valid Event whose own to_json gives back the same bytes."""
        config = scenarios.config(scenario, seed=21, start=START)
        values = [value for _, value in islice(Simulator(config).messages(), 12_000)]
        kinds: Counter[EventType] = Counter()
        for value in values:
            event = Event.from_json(value)
            assert event.to_json() == value
            kinds[event.event_type] += 1
        assert set(kinds) == set(EventType)

    @pytest.mark.parametrize("version", [1, 2])
    def test_each_schema_version_is_written_as_the_model_writes_it(self, version):
        """Version 1 lines carry no session_seq, version 2 lines do; both are the model's JSON."""
        for value in lines(3000, seed=4, schema_version=version):
            event = Event.from_json(value)
            assert event.schema_version == version
            assert event.to_json() == value
            assert (b'"session_seq":' in value) is (version == 2)

    def test_the_current_version_is_the_default(self):
        """Without the knob, the simulator writes the current schema version."""
        assert all(Event.from_json(value).schema_version == SCHEMA_VERSION for value in lines(50))

    def test_versions_differ_only_in_their_version_and_new_fields(self):
        """The same seed gives the same events in either version, but for what v2 adds."""
        old, new = lines(2000, seed=5, schema_version=1), lines(2000, seed=5, schema_version=2)
        for v1, v2 in zip(old, new, strict=True):
            assert orjson.loads(v1) | {"schema_version": 2} == {
                k: v for k, v in orjson.loads(v2).items() if k != "session_seq"
            }

    def test_session_seq_numbers_a_sessions_events_from_its_login(self):
        """Each session's events are numbered 1, 2, 3... in time order, bots' too."""
        numbers: dict[uuid.UUID, list[int | None]] = {}
        for event in take(20_000, seed=6, bot_share=0.2):
            numbers.setdefault(event.session_id, []).append(event.session_seq)
        assert max(map(len, numbers.values())) > 5
        for seqs in numbers.values():
            assert seqs == list(range(1, len(seqs) + 1))

    def test_key_is_the_user_id(self):
        """Each message is keyed by the user id of its event."""
        simulator = Simulator(SimulationConfig(seed=4, start=START))
        for key, value in islice(simulator.messages(), 2000):
            assert orjson.loads(value)["user_id"].encode() == key

    def test_iterating_gives_validated_events(self):
        """Iterating a simulator yields the Events of its messages, in the same order."""
        simulator = Simulator(SimulationConfig(seed=4, start=START))
        values = [value for _, value in islice(simulator.messages(), 300)]
        assert [event.to_json() for event in islice(simulator, 300)] == values

    def test_ids_are_unique_random_uuids(self):
        """Event and session ids are distinct version-4 UUIDs."""
        events = take(20_000, seed=8)
        assert len({e.event_id for e in events}) == len(events)
        assert all(e.event_id.version == 4 and e.session_id.version == 4 for e in events)
        assert len({e.session_id for e in events}) > 2000

    @pytest.mark.parametrize("count", [0, 1, 2, 1000])
    def test_uuids_drawn_in_bulk_are_random_version_4(self, count):
        """`encoding.uuid4s` gives exactly `count` distinct canonical version-4 UUIDs, with
        every digit that is not fixed by the format random."""
        texts = eventjson.uuid4s(random.Random(3), count)
        assert len(texts) == count
        parsed = [uuid.UUID(text.decode()) for text in texts]
        assert [str(u).encode() for u in parsed] == texts
        assert all(u.version == 4 and u.variant == uuid.RFC_4122 for u in parsed)
        assert len(set(texts)) == count
        if count == 1000:  # each free hex digit takes (nearly) all 16 values, the variant all 4
            free = [i for i in range(36) if i not in (8, 13, 14, 18, 19, 23)]
            assert all(len({text[i] for text in texts}) == 16 for i in free)
            assert {text[19:20] for text in texts} == {b"8", b"9", b"a", b"b"}


class TestTime:
    """Backfill runs in simulated time up to its end or now; real time uses the clock."""

    def test_backfill_starts_at_start_and_never_goes_back(self):
        """Timestamps begin shortly after the start and never decrease."""
        stamps = [e.timestamp for e in take(20_000, seed=7)]
        assert START <= stamps[0] < START + dt.timedelta(minutes=5)
        assert stamps == sorted(stamps)
        assert stamps[-1] - stamps[0] > dt.timedelta(hours=12)

    def test_backfill_stops_at_end(self):
        """With an end, the stream is finite and every event is before the end."""
        end = START + dt.timedelta(hours=6)
        events = take(10**9, seed=3, end=end)
        assert 1000 < len(events) < 100_000
        assert all(START <= e.timestamp < end for e in events)
        assert events[-1].timestamp > end - dt.timedelta(minutes=10)

    def test_backfill_never_reaches_the_future(self):
        """An end in the future (or none) is clipped to now: no event is stamped ahead."""
        now = dt.datetime.now(dt.UTC)
        start = now - dt.timedelta(hours=3)
        for end in (None, now + dt.timedelta(days=30)):
            simulator = Simulator(SimulationConfig(seed=5, users=5000, start=start, end=end))
            assert simulator.end is not None
            assert simulator.end <= dt.datetime.now(dt.UTC)
            events = [orjson.loads(value) for _, value in simulator.messages()]
            assert len(events) > 1000
            latest = max(e["timestamp"] for e in events)
            assert latest <= dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")[:23]

    def test_start_in_the_future_is_refused(self):
        """A backfill that would begin after now is an error, not an empty stream."""
        with pytest.raises(ValueError, match="not before now"):
            Simulator(SimulationConfig(start=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)))

    def test_real_time_mode_stamps_events_with_the_clock(self):
        """With a clock, each event has the clock's time, and the actions keep simulated order
        (with ids of the run's own: see TestEventIds)."""
        clock = FakeClock(dt.datetime(2025, 5, 5, 12, tzinfo=dt.UTC))
        live = list(islice(Simulator(SimulationConfig(seed=9, start=START), clock), 500))
        assert [e.timestamp for e in live] == clock.readings
        simulated = take(500, seed=9)
        strip = {"timestamp", "event_id", "session_id"}
        assert [e.model_dump(exclude=strip) for e in live] == [
            e.model_dump(exclude=strip) for e in simulated
        ]

    def test_real_time_stamps_are_the_clock_readings_whatever_they_do(self):
        """Each event is stamped with its own reading, also when readings repeat, cross a
        minute or a day, or step back."""
        midnight = int(dt.datetime(2025, 5, 6, tzinfo=dt.UTC).timestamp() * 1000)
        offsets = [-60_001, -60_001, -1, 0, 0, 59_999, 60_000, -120_000, 7]
        script = [midnight + offset for offset in offsets]
        simulator = Simulator(SimulationConfig(start=START), ScriptedClock(script))
        stamps = [e.timestamp for e in islice(simulator, len(script))]
        assert stamps == [dt.datetime.fromtimestamp(ms / 1000, dt.UTC) for ms in script]

    def test_order_holds_while_many_sessions_overlap(self):
        """With a large population many sessions are under way at once (more pending events
        than a batch): timestamps still never go back, and each session starts with its login
        and has its reactions after their page views."""
        events = take(40_000, seed=2, users=300_000)
        assert [e.timestamp for e in events] == sorted(e.timestamp for e in events)
        sessions: dict[object, list[Event]] = {}
        for event in events:
            sessions.setdefault(event.session_id, []).append(event)
        assert len(sessions) > 5000
        for session in sessions.values():
            assert session[0].event_type is EventType.LOGIN
            viewed = set()
            for event in session[1:]:
                assert event.event_type is not EventType.LOGIN
                if event.event_type is EventType.PAGE_VIEW:
                    viewed.add(event.article_id)
                elif event.event_type in ARTICLE_EVENTS:
                    assert event.article_id in viewed

    def test_without_start_it_is_real_time_on_the_wall_clock(self):
        """No start: the wall clock stamps the events, the stream does not end, start is now."""
        before = dt.datetime.now(dt.UTC).replace(microsecond=0)
        simulator = Simulator(SimulationConfig(seed=1))
        assert isinstance(simulator.clock, WallClock)
        assert simulator.end is None
        assert before <= simulator.start <= dt.datetime.now(dt.UTC)
        assert simulator.start.microsecond == 0
        events = list(islice(simulator, 3000))
        after = dt.datetime.now(dt.UTC)
        assert all(before <= e.timestamp <= after for e in events)

    def test_naive_start_is_refused(self):
        """A start without a time zone is an error, not a guess."""
        with pytest.raises(ValueError, match="time zone"):
            SimulationConfig(start=dt.datetime(2025, 1, 1))

    def test_gaps_within_a_human_session_are_seconds_to_minutes(self):
        """Consecutive events of a reader's session are 1 s to 15 min apart."""
        sessions: dict[object, list[Event]] = {}
        for event in take(20_000, seed=7):
            sessions.setdefault(event.session_id, []).append(event)
        gaps = [
            (after.timestamp - before.timestamp).total_seconds()
            for session in sessions.values()
            if not is_bot(session[0].user_agent)
            for before, after in pairwise(session)
        ]
        assert min(gaps) >= 1
        assert max(gaps) <= 15 * 60
        assert 20 < sorted(gaps)[len(gaps) // 2] < 90  # the median: under a minute or so


class TestDeterminism:
    """The same seed and start replay a stream byte for byte."""

    def test_same_seed_and_start_give_identical_bytes(self):
        """Two simulators with the same seed and start emit byte-identical messages."""
        assert lines(30_000, seed=42) == lines(30_000, seed=42)

    def test_different_seed_gives_different_events(self):
        """Another seed gives another stream."""
        assert not set(lines(300, seed=42)) & set(lines(300, seed=43))

    def test_iterating_again_replays_the_stream(self):
        """Each pass over one simulator starts the same stream afresh."""
        simulator = Simulator(SimulationConfig(seed=11, start=START))
        assert list(islice(simulator.messages(), 3000)) == list(islice(simulator.messages(), 3000))

    def test_a_drawn_seed_is_exposed_for_replay(self):
        """Without a seed one is drawn, and passing it back replays the run."""
        drawn = Simulator(SimulationConfig(start=START))
        replay = Simulator(SimulationConfig(seed=drawn.seed, start=START))
        assert list(islice(drawn.messages(), 300)) == list(islice(replay.messages(), 300))


class TestEventIds:
    """An event id names one event: never reused for another across runs."""

    @staticmethod
    def ids(simulator: Simulator, count: int) -> list[str]:
        return [
            orjson.loads(value)["event_id"] for _key, value in islice(simulator.messages(), count)
        ]

    def test_real_time_runs_with_one_seed_draw_their_own_ids(self):
        """Two real-time runs with the same seed share no event id and no session id."""
        first = Simulator(
            SimulationConfig(seed=7), FakeClock(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
        )
        second = Simulator(
            SimulationConfig(seed=7), FakeClock(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
        )
        one = [orjson.loads(v) for _k, v in islice(first.messages(), 5000)]
        two = [orjson.loads(v) for _k, v in islice(second.messages(), 5000)]
        assert not {e["event_id"] for e in one} & {e["event_id"] for e in two}
        assert not {e["session_id"] for e in one} & {e["session_id"] for e in two}

    def test_a_backfill_keeps_its_ids(self):
        """A seeded backfill draws the same ids every time, so a replay overwrites itself."""
        config = SimulationConfig(seed=7, start=START)
        assert self.ids(Simulator(config), 5000) == self.ids(Simulator(config), 5000)

    def test_ids_are_unique_within_a_run(self):
        """No id repeats inside one run."""
        drawn = self.ids(Simulator(SimulationConfig(seed=3, start=START)), 50_000)
        assert len(set(drawn)) == len(drawn)


class TestConfiguration:
    """Knobs are checked, and scenarios are presets of them."""

    @pytest.mark.parametrize(
        "knobs",
        [
            {"users": 0},
            {"articles": 0},
            {"like_rate": 1.5},
            {"bot_share": 1.0},
            {"views_per_session": 0.5},
            {"half_life_hours": 0},
            {"visits_per_day": -1},
            {"start": START, "end": START},
            {"schema_version": 0},
            {"schema_version": SCHEMA_VERSION + 1},
        ],
    )
    def test_nonsense_is_refused(self, knobs):
        """Out-of-range knobs raise ValueError with a message."""
        with pytest.raises(ValueError, match=r"\w"):
            SimulationConfig(**knobs)

    def test_a_start_before_2000_is_refused(self):
        """A backfill cannot start before 2000: consume would dead-letter every such event."""
        with pytest.raises(ValueError, match="before 2000"):
            SimulationConfig(start=dt.datetime(1999, 12, 31, 23, tzinfo=dt.UTC))
        assert SimulationConfig(start=dt.datetime(2000, 1, 1, tzinfo=dt.UTC)).start is not None

    def test_scenarios_change_only_what_they_name(self):
        """A scenario keeps the defaults it does not name; explicit settings win over it."""
        steady = scenarios.config("steady", users=50, seed=None)
        assert (steady.daily_cycle, steady.bot_share, steady.breaking_per_day) == (0, 0, 0)
        assert steady.users == 50
        assert steady.seed is None
        assert steady.like_rate == SimulationConfig().like_rate
        assert scenarios.config("typical") == SimulationConfig()

    def test_unknown_scenario_names_the_known_ones(self):
        """A typo lists the scenarios there are."""
        with pytest.raises(ValueError, match="bot-attack"):
            scenarios.config("bots")

    def test_catalog_size_is_the_live_catalog(self):
        """A small catalog shows few articles at once, but new ones keep being published."""
        config = SimulationConfig(seed=3, articles=12, start=START)
        events = [e for e in islice(Simulator(config), 20_000) if e.article_id]
        first_hour = {e.article_id for e in events if e.timestamp < START + dt.timedelta(hours=1)}
        assert 6 < len(first_hour) <= 12 + 4  # about two an hour are published
        ids = {e.article_id for e in events}
        assert len(ids) > 30
        assert all(re.fullmatch(r"art-\d{5}", article or "") for article in ids)

    def test_articles_are_stable_and_well_formed(self):
        """Each article id has one title and one category, from the known categories."""
        seen: dict[str | None, tuple[str | None, str | None]] = {}
        for event in take(20_000, seed=6):
            if event.event_type in ARTICLE_EVENTS:
                assert event.category in CATEGORIES
                assert event.article_title
                expected = seen.setdefault(event.article_id, (event.article_title, event.category))
                assert (event.article_title, event.category) == expected
            else:
                assert event.article_id is event.article_title is event.category is None
        assert len(seen) > 200

    def test_users_never_exceed_the_population(self):
        """A small population is filled up to its cap; bots have accounts of their own."""
        events = take(8000, seed=5, users=25, bot_share=0.0)
        assert {e.user_id for e in events} == {f"user-{n:06d}" for n in range(1, 26)}

    def test_without_bots_no_agent_is_a_bot(self):
        """bot_share 0: every user agent is a browser's."""
        assert not any(is_bot(e.user_agent) for e in take(10_000, seed=5, bot_share=0.0))
