"""A small world for policy tests: a guard with a policy, a registry, a clock."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

import purposeguard as pg
from purposeguard.audit import MemorySink
from purposeguard.policy import PRESETS, CollectionContext, Consent, ConsentRegistry, Policy

T0 = datetime(2026, 1, 1, tzinfo=UTC)
PRIVATE = CollectionContext(place="private", source="camera")
DUTIES: dict[str, Any] = {
    "impact_assessment": "PIA-2026-01",
    "necessity": "staff door access; no less intrusive means",
    "notice": "https://example.com/biometrics",
    "alternatives": {"face.verification": "badge"},
    "storage": "user_device",
    "processing": ["face.verification", "face.identification", "face.analytics"],
}


def full_policy(**changes: Any) -> Policy:
    """Every preset, every duty declared: no warning when a guard is built."""
    settings = {**DUTIES, **changes}
    return Policy.preset(*PRESETS, **settings)


_RULES_IN_MESSAGE = re.compile(r"\[rules: ([^\]]+)\]")


class World:
    """A guard in force with *policy*, a consent registry and a frozen clock."""

    def __init__(self, policy: Policy | None, *, mode: pg.Mode = pg.Mode.ENFORCE) -> None:
        self.clock = pg.FrozenClock(T0)
        self.registry = ConsentRegistry()
        self.sink = MemorySink()
        self.policy = policy
        self.guard = pg.Guard(
            policy=policy, consents=self.registry, clock=self.clock, audit=self.sink, mode=mode
        )

    def consent(
        self,
        id: str = "c1",
        *,
        subject: str = "u1",
        purposes: str | Iterable[str] = "face.verification",
        form: str = "written",
        given_at: datetime | None = None,
        notice: str | None = "notice-v1",
        **kw: Any,
    ) -> Consent:
        c = Consent(
            id=id,
            subject=subject,
            purposes=purposes,
            form=form,
            given_at=given_at if given_at is not None else T0 - timedelta(days=1),
            notice=notice,
            **kw,
        )
        self.registry.add(c)
        return c

    def wrap(
        self,
        purposes: str | Iterable[str] = "face.verification",
        *,
        consent: str | None = "c1",
        subject: str = "u1",
        ttl: timedelta = timedelta(days=30),
        context: object | None = PRIVATE,
        **kw: Any,
    ) -> pg.FaceTemplate:
        with pg.using(self.guard):
            return pg.FaceTemplate.wrap(
                np.arange(1.0, 9.0),
                subject=subject,
                purposes=purposes,
                ttl=ttl,
                consent=consent,
                context=context,
                **kw,
            )

    def run(self, fn: Callable[[], object]) -> object:
        with pg.using(self.guard):
            return fn()


def denying_rules(fn: Callable[[], object]) -> set[str]:
    """The rule ids that deny *fn* (from the exception), or the empty set if it runs."""
    decision: pg.Decision | None = None
    try:
        fn()
    except pg.AccessDeniedError as e:
        decision = e.decision
        if decision is None:
            raise
    except pg.PolicyError as e:
        m = _RULES_IN_MESSAGE.search(str(e))
        if m is None:
            raise
        return set(m.group(1).split(", "))
    return set() if decision is None else set(decision.rule_ids)


@pytest.fixture
def world() -> World:
    """A world with every preset in force and every duty declared."""
    return World(full_policy())
