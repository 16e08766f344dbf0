"""What the local stack says of one of its services: where it listens and whether it runs."""

from __future__ import annotations

from dataclasses import dataclass


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
