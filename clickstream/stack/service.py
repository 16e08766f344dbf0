"""One service of the local stack: what is said of it (where it listens, whether it runs),
and the process behind it (alive or not, its command line, its pid file)."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ServiceStatus:
    """One service of the local stack: where it listens, whether it runs, and whether it is
    installed at all (an optional one, such as ClickHouse, may not be)."""

    name: str
    address: str
    running: bool
    pid: int | None
    detail: str
    installed: bool = True

    def render(self) -> str:
        state = "running" if self.running else "stopped" if self.installed else "absent"
        pid = f"pid {self.pid}" if self.pid is not None else "-"
        return f"{self.name:<11} {state:<8} {self.address:<24} {pid:<10} {self.detail}"


def read_pid(path: Path) -> int | None:
    """The pid written in `path`, or None if there is none."""
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def cmdline(pid: int) -> list[str] | None:
    """The process's arguments, [] for a zombie, None if there is no such process."""
    if not Path("/proc/self").is_dir():  # no procfs (macOS): ask ps, split on blanks
        ps = subprocess.run(
            ["ps", "-o", "command=", "-p", str(pid)],  # noqa: S607  (ps is on every PATH)
            capture_output=True,
            text=True,
            check=False,
        )
        return ps.stdout.split() if ps.returncode == 0 else None
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [arg.decode(errors="replace") for arg in raw.split(b"\0") if arg]


def alive(pid: int) -> bool:
    """True while process `pid` exists and has not exited (a zombie has exited)."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False  # our own child, which exited (and is now reaped)
    except ChildProcessError:
        pass  # not our child
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return cmdline(pid) != []  # no procfs: a zombie has an empty command line
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"
