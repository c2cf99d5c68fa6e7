"""Shared fixtures and Hypothesis profiles."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, settings

import purposeguard as pg
from purposeguard.audit import MemorySink

settings.register_profile(
    "ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=50, deadline=None)
settings.register_profile("thorough", max_examples=2000, deadline=None)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev")
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def clock() -> pg.FrozenClock:
    """A frozen clock at 2026-01-01 UTC."""
    return pg.FrozenClock(T0)


@pytest.fixture
def sink() -> MemorySink:
    """An in-memory audit sink."""
    return MemorySink()


@pytest.fixture
def guard(clock: pg.FrozenClock, sink: MemorySink) -> Iterator[pg.Guard]:
    """An enforcing guard with a frozen clock and a memory sink, in force for the test."""
    g = pg.Guard(clock=clock, audit=sink)
    with pg.using(g):
        yield g


@pytest.fixture
def audit_guard(clock: pg.FrozenClock, sink: MemorySink) -> Iterator[pg.Guard]:
    """An audit-mode guard with a frozen clock and a memory sink, in force for the test."""
    g = pg.Guard(clock=clock, audit=sink, mode=pg.Mode.AUDIT)
    with pg.using(g):
        yield g
