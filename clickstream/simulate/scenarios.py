"""Named presets of the simulation's knobs, for demos, load tests and dashboards to try.

A scenario only changes what it names; everything else keeps the defaults of
`SimulationConfig`, and explicit settings (users, seed, start, end) apply on top.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Final

from clickstream.simulate.config import SimulationConfig

#: What each scenario is, and how it differs from the defaults.
SCENARIOS: Final[dict[str, tuple[str, dict[str, Any]]]] = {
    "typical": (
        "day and night in the readers' time zones, a breaking story every other day or so, "
        "a few crawlers",
        {},
    ),
    "steady": (
        "the same traffic around the clock: no daily cycle, no breaking news, no bots",
        {"daily_cycle": 0.0, "breaking_per_day": 0.0, "bot_share": 0.0},
    ),
    "breaking-news": (
        "a breaking story 15 minutes in and about three a day: bursts of visits to one article",
        {"first_breaking_after_hours": 0.25, "breaking_per_day": 3.0},
    ),
    "bot-attack": (
        "a third of the sessions are scrapers from a handful of accounts and data-centre IPs",
        {"bot_share": 0.35, "bot_accounts": 8},
    ),
}
DEFAULT: Final = "typical"


def config(name: str = DEFAULT, **settings: Any) -> SimulationConfig:
    """The `SimulationConfig` of scenario `name`, with `settings` (those not None) on top."""
    try:
        _, knobs = SCENARIOS[name]
    except KeyError:
        known = ", ".join(SCENARIOS)
        raise ValueError(f"unknown scenario {name!r}; choose one of {known}") from None
    given = {key: value for key, value in settings.items() if value is not None}
    return dataclasses.replace(SimulationConfig(**knobs), **given)
