"""Shared by every test directory: what happens when a service a test needs cannot run."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import NoReturn

import pytest


def in_ci() -> bool:
    """True on CI, where a service that cannot start is a failure, never a skip."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def _unavailable(reason: str) -> NoReturn:
    if in_ci():
        pytest.fail(f"{reason} (CI=true: a service that cannot start is an error)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def unavailable() -> Callable[[str], NoReturn]:
    """Call with a reason when a needed service cannot run: skips locally, fails under CI."""
    return _unavailable
