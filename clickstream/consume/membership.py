"""Static group membership by default: a consumer restarted after a crash gets its
partitions back at once.

A consumer that dies without leaving its group (SIGKILL, a crash, a lost machine) stays a
member until the coordinator gives up on it: on Kafka after `session.timeout.ms` (45 s by
default), on some Kafka-compatible brokers never. Until then a rebalance waits for it, and a
restarted consumer with a new, dynamic member id reads nothing. A static member
(`group.instance.id`, KIP-345) that comes back under the same id simply takes the dead
one's place and its partitions, without a rebalance.

So each consumer claims a stable id of its own: `clickstream-<host>-<uid>-<slot>`. The
claim is an exclusive lock on a file per cluster, group and slot, which the kernel releases
when the process dies. A consumer first takes the slot of a member that died (a file that
is there but that nobody holds: its member may still be in the group, waiting for it), and
only then a new slot; a consumer that leaves its group cleanly deletes its file. So a
restarted consumer takes the dead one's id, and with it its place and its partitions. Two
consumers of one group on one host never claim the same id; should two processes on
different hosts still share one (the same host name, or an id set by hand in
`kafka.extra`), the broker fences the older one and it stops with an error saying so.

A consumer that stops cleanly leaves its group (see `clickstream.consume.group`), so its
partitions move at once. The price of static membership is for a consumer that crashes and
is not restarted: its partitions wait for it until `session.timeout.ms` (on Kafka), or until
the next consumer on its host takes its slot. `consumer.static_membership = false` opts out.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

#: librdkafka's property naming a static member.
INSTANCE_ID = "group.instance.id"


def _safe(text: str) -> str:
    """`text` in the characters Kafka allows in names (letters, digits, `.`, `_`, `-`)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)[:100] or "_"


def default_lock_dir() -> Path:
    """Where this user's claims live on this host."""
    return Path(tempfile.gettempdir()) / f"clickstream-{os.getuid()}-members"


@dataclass
class Claim:
    """A `group.instance.id` held by this process until `release` (or its death)."""

    instance_id: str
    slot: int
    path: Path
    _fd: int | None = field(default=None, repr=False)

    def release(self, *, left: bool = True) -> None:
        """Give the slot up. If the member `left` its group, its file goes: nobody waits
        for it. If not (the broker was away as it stopped), the file stays, so that the
        next consumer takes its place as it would a crashed one's."""
        if self._fd is None:
            return
        if left:
            with contextlib.suppress(OSError):
                self.path.unlink()
        with contextlib.suppress(OSError):
            os.close(self._fd)  # closing the file drops its lock
        self._fd = None


def _lock(path: Path) -> int | None:
    """An exclusive lock on `path` (created if missing), or None if another process has it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    if not path.exists():  # deleted by a leaving member between our open and our lock
        os.close(fd)
        return None
    return fd


def claim(
    group: str, *, cluster: str = "", lock_dir: Path | None = None, host: str | None = None
) -> Claim:
    """Claim a slot of `group` on `cluster` (its bootstrap servers) on this host: a dead
    member's if there is one, else the lowest new one; and the instance id it names."""
    where = lock_dir or default_lock_dir()
    where.mkdir(mode=0o700, parents=True, exist_ok=True)
    name = _safe(host or socket.gethostname())
    digest = hashlib.sha256(cluster.encode()).hexdigest()[:12]
    stem = f"{_safe(group)}.{digest}"
    taken = {
        int(path.name.removeprefix(f"{stem}.").removesuffix(".lock"))
        for path in where.glob(f"{stem}.*.lock")
        if path.name.removeprefix(f"{stem}.").removesuffix(".lock").isdigit()
    }

    def claimed(number: int) -> Claim | None:
        path = where / f"{stem}.{number}.lock"
        fd = _lock(path)
        if fd is None:
            return None
        return Claim(f"clickstream-{name}-{os.getuid()}-{number}", number, path, fd)

    for number in sorted(taken):  # a dead member's slot first (live ones are held)
        found = claimed(number)
        if found is not None:
            return found
    for number in range(len(taken) + 1000):  # then the lowest new one
        found = claimed(number) if number not in taken else None
        if found is not None:
            return found
    raise RuntimeError(f"no free member slot for group {group!r} in {where}")  # 1000+ members
