"""How simulated events become Kafka messages: JSON joined from byte pieces, fast.

The simulator never builds an `Event`: each event's JSON is one `bytes.join` of pieces that
were encoded once (per article, user, session or event type), a random event id, and a
timestamp put together from tables. The tests check every line against the `Event` model.

Events wait as `Pending` tuples of pieces until their time comes; `backfill` and `live`
stamp them in time order (with their simulated time, or with a clock's) and join them.
"""

from __future__ import annotations

import binascii
import datetime as dt
import functools
import itertools
import math
import operator
import random
from collections.abc import Callable, Iterable, Iterator

from clickstream.events import FIELDS_SINCE, SCHEMA_VERSION, EventType
from clickstream.simulate.catalog import DAY_MS, json_string

__all__ = [
    "AT",
    "COMMENT",
    "EVENT_HEAD",
    "LIKE",
    "LOGIN",
    "LOGOUT",
    "MAX_SESSION_EVENTS",
    "NO_ARTICLE",
    "PAGE_VIEW",
    "PLAIN_END",
    "SHARE",
    "Pending",
    "backfill",
    "event_head",
    "live",
    "seq_ends",
    "uuid4_stream",
    "uuid4s",
    "view_end",
]

# Fixed pieces of every event's JSON, in the field order of `Event`: the head, the event id,
# the type up to the timestamp, the timestamp, then (per session) user and session ids,
# (per article) its fields, (per session) the context, the end (referrer and comment), and
# the session sequence number with the closing brace (of version 2; version 1 has none).


def event_head(version: int) -> bytes:
    """The start of an event's JSON of schema `version`, up to the event id's value."""
    return b'{"schema_version":%d,"event_id":"' % version


EVENT_HEAD = event_head(SCHEMA_VERSION)
#: The most events a simulated session has: a login, 61 page views, a reaction to each and a
#: logout (see `traffic`), with room to spare.
MAX_SESSION_EVENTS = 128


def seq_ends(version: int) -> list[bytes]:
    """The last piece of an event's JSON of schema `version`, by its number in its session
    (`session_seq`, from 1; index 0 unused): the number, if the version has it, and `}`."""
    if version < FIELDS_SINCE["session_seq"]:
        return [b"}"] * (MAX_SESSION_EVENTS + 1)
    return [b',"session_seq":%d}' % seq for seq in range(MAX_SESSION_EVENTS + 1)]


LOGIN, PAGE_VIEW, LIKE, COMMENT, SHARE, LOGOUT = (
    b'","event_type":"%b","timestamp":"' % kind.value.encode()
    for kind in (EventType.LOGIN, EventType.PAGE_VIEW, EventType.LIKE, EventType.COMMENT,
                 EventType.SHARE, EventType.LOGOUT)
)  # fmt: skip
NO_ARTICLE = b'"article_id":null,"article_title":null,"category":null,'
_NO_COMMENT = b'"comment_text":null'
#: The end of an event without referrer or comment (all but page views and comments).
PLAIN_END = b'"referrer":null,' + _NO_COMMENT


def view_end(url: str | None) -> bytes:
    """The end of a page view's JSON: its referrer, and no comment."""
    return b'"referrer":%b,%b' % (json_string(url) if url else b"null", _NO_COMMENT)


#: One event waiting to be sent: its time in epoch milliseconds, the pieces of its JSON
#: (type, who, article, context, end, sequence number) and its Kafka key. The time is a whole
#: number held in a float: epoch milliseconds are too large for CPython's fast small-int
#: arithmetic, while floats add, compare and sort fast.
Pending = tuple[float, bytes, bytes, bytes, bytes, bytes, bytes, bytes]
#: The time of a `Pending`, to sort and bisect by.
AT = operator.itemgetter(0)

# -- event ids ---------------------------------------------------------------------------

#: Maps a random hex digit to a UUID variant digit: 8, 9, a or b, each as likely.
_VARIANT = bytes.maketrans(b"0123456789abcdef", b"89ab" * 4)


def uuid4s(rng: random.Random, count: int) -> list[bytes]:
    """`count` random version-4 UUIDs as text, drawn in bulk.

    One hex string of random bytes holds them all, a space every 36 digits; extended slice
    assignments write the dashes, the version and the variant into all of them at once.
    Per UUID this is a few bytes of C work, where formatting random numbers would take
    several Python calls."""
    if count <= 0:
        return []
    text = bytearray(binascii.hexlify(rng.randbytes(18 * count), b" ", -18))
    for dash in (8, 13, 18, 23):
        text[dash::37] = b"-" * count
    text[14::37] = b"4" * count
    text[19::37] = text[19::37].translate(_VARIANT)
    return bytes(text).split(b" ")


def uuid4_stream(rng: random.Random, end: bytes = b"") -> Iterator[bytes]:
    """Endless random UUIDs, each followed by `end`, drawn 256 at a time: small draws stay in
    the CPU's cache, and the chain hands them out with no Python call per id."""

    def draw() -> list[bytes]:
        uuids = uuid4s(rng, 256)
        return [uuid + end for uuid in uuids] if end else uuids

    return itertools.chain.from_iterable(iter(draw, None))


# -- timestamps --------------------------------------------------------------------------
# "YYYY-MM-DDTHH:MM:SS.mmmZ": the minute's part is made once a minute, the rest comes from a
# table of every millisecond of a minute.

_HOURS_MINUTES = [b"%02d:%02d:" % divmod(minute, 60) for minute in range(1440)]
_SECONDS_MS = [b"%02d.%03dZ" % divmod(ms, 1000) for ms in range(60_000)]


@functools.lru_cache(maxsize=4)
def _day(day: int) -> bytes:
    return dt.datetime.fromtimestamp(day * 86_400, dt.UTC).strftime("%Y-%m-%dT").encode()


def _minute(at_ms: int) -> tuple[int, bytes]:
    """The start of the minute of `at_ms`, and its "YYYY-MM-DDTHH:MM:"."""
    start = at_ms - at_ms % 60_000
    day, ms_of_day = divmod(start, DAY_MS)
    return start, _day(day) + _HOURS_MINUTES[ms_of_day // 60_000]


# -- stamping --------------------------------------------------------------------------
# These loops run once per event: a tuple unpack, a timestamp from the tables, one join.


def backfill(
    batches: Iterable[list[Pending]], ids: Iterator[bytes], head: bytes = EVENT_HEAD
) -> Iterator[tuple[bytes, bytes]]:
    """(key, JSON) of each pending event, stamped with its own time (which only goes
    forward); `ids` gives the event ids, `head` the start of each (`event_head`)."""
    join, seconds, minute, minute_start, minute_end = b"".join, _SECONDS_MS, b"", 0.0, 0.0
    floor = math.floor  # float to int by a function call: int() is a slower type call
    for batch in batches:
        pieces = zip(batch, ids, strict=False)  # ids never end
        for (at, kind, who, article, context, end, seq, key), event_id in pieces:
            if at >= minute_end:
                start, minute = _minute(int(at))
                minute_start, minute_end = float(start), float(start + 60_000)
            stamp = seconds[floor(at - minute_start)]
            yield key, join((head, event_id, kind, minute, stamp, who, article, context, end,
                             seq))  # fmt: skip


def live(
    batches: Iterable[list[Pending]],
    ids: Iterator[bytes],
    millis: Callable[[], int],
    head: bytes = EVENT_HEAD,
) -> Iterator[tuple[bytes, bytes]]:
    """(key, JSON) of each pending event, in order, stamped with the clock's `millis()` as
    it is handed over; `ids` gives the event ids, `head` the start of each (`event_head`)."""
    join, seconds, minute, minute_start, minute_end = b"".join, _SECONDS_MS, b"", 0, 0
    last, stamp = -1, b""
    readings = iter(millis, None)  # read in the loop's header: one reading per event
    for batch in batches:
        pieces = zip(batch, ids, readings, strict=False)  # ids and readings never end
        for (_, kind, who, article, context, end, seq, key), event_id, at in pieces:
            if at != last:  # at full speed, many events share a millisecond, and a stamp
                last = at
                if not minute_start <= at < minute_end:  # a new minute, or the clock went back
                    minute_start, minute = _minute(at)
                    minute_end = minute_start + 60_000
                stamp = minute + seconds[at - minute_start]
            yield key, join((head, event_id, kind, stamp, who, article, context, end, seq))
