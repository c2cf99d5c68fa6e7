"""Retention is computed, not free text: caps at wrap, windows on use, never clamped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from hypothesis import given, strategies as st

import purposeguard as pg
from purposeguard.policy import PRESETS, Policy
from purposeguard.policy._dates import FAR_FUTURE, add_months

from .conftest import PRIVATE, T0, World, denying_rules

DECLARED: dict[str, Any] = {"notice": "https://n", "impact_assessment": "PIA", "necessity": "n",
                            "alternatives": {"face.verification": "PIN"}}  # fmt: skip
RETAINING = ("bipa", "texas_cubi", "colorado")


def policy(*names: str) -> Policy:
    return Policy.preset(*names, **DECLARED)


def test_calendar_arithmetic_for_legal_periods() -> None:
    leap = datetime(2028, 2, 29, 12, tzinfo=UTC)
    assert add_months(leap, 12) == datetime(2029, 2, 28, 12, tzinfo=UTC)
    assert add_months(leap, 36) == datetime(2031, 2, 28, 12, tzinfo=UTC)
    assert add_months(datetime(2026, 1, 31, tzinfo=UTC), 1) == datetime(2026, 2, 28, tzinfo=UTC)
    assert add_months(datetime(2026, 11, 30, tzinfo=UTC), 24) == datetime(2028, 11, 30, tzinfo=UTC)
    assert add_months(datetime(9999, 6, 1, tzinfo=UTC), 12) == FAR_FUTURE


@pytest.mark.parametrize(
    ("preset", "no_term", "term_6m"),
    [
        # BIPA: min(purpose end, last interaction + 3 years).
        ("bipa", T0.replace(year=2029), datetime(2026, 6, 30, tzinfo=UTC)),
        # Texas: a year after the purpose ends (at collection, without a term).
        ("texas_cubi", T0.replace(year=2027), datetime(2027, 6, 30, tzinfo=UTC)),
        # Colorado: min(purpose end, last interaction + 24 months).
        ("colorado", T0.replace(year=2028), datetime(2026, 6, 30, tzinfo=UTC)),
    ],
)
def test_latest_expiry_per_preset_with_and_without_a_term(
    preset: str, no_term: datetime, term_6m: datetime
) -> None:
    w = World(policy(preset))
    plain = w.consent()
    termed = w.consent("c2", term=timedelta(days=181))  # given 2025-12-31, ends 2026-06-30
    p = w.guard.policy
    assert isinstance(p, Policy)
    for consent, want in ((plain, no_term), (termed, term_6m), ("c2", term_6m)):
        limit = p.latest_expiry(
            "face.verification", subject="u1", collected_at=T0, consent=consent,
            consents=w.registry,
        )  # fmt: skip
        assert limit is not None
        assert limit.latest == want


def test_an_expiry_beyond_the_cap_is_refused_never_clamped_and_the_message_says_the_latest() -> (
    None
):
    w = World(policy("bipa", "texas_cubi", "colorado"))
    w.consent()
    latest = T0.replace(year=2027)
    with pytest.raises(pg.PolicyError) as info:
        w.wrap(ttl=latest - T0 + timedelta(microseconds=1))
    message = str(info.value)
    assert "TX-01" in message
    assert latest.isoformat() in message
    assert "IL-01" not in message
    assert "CO-01" not in message
    assert w.sink.events == []  # refused before the collection: nothing wrapped
    t = w.wrap(ttl=latest - T0)
    assert t.expires_at == latest


def test_a_template_collected_earlier_stops_at_the_window_after_the_last_interaction() -> None:
    # Collected before the policy was rolled out, with a long expiry; BIPA's window
    # counts from the last interaction, which a 1:1 comparison refreshes.
    w = World(policy("bipa"))
    w.consent()
    with pg.using(pg.Guard(clock=w.clock, consents=w.registry)):
        t = pg.FaceTemplate.wrap(
            np.ones(4), subject="u1", purposes="face.verification",
            ttl=timedelta(days=3650), consent="c1",
        )  # fmt: skip
    probe = np.ones(4)

    def login() -> set[str]:
        def run() -> None:
            with pg.using(w.guard), pg.purpose("face.verification.login"):
                pg.similarity(probe, t)

        return denying_rules(run)

    w.clock.advance(timedelta(days=365 * 2))
    assert login() == set()  # an interaction: the window now runs to 2031
    assert w.registry.last_interaction("u1") == w.clock.now()
    w.clock.advance(timedelta(days=365 * 3 - 10))
    assert login() == set()
    w.clock.set(datetime(2034, 12, 1, tzinfo=UTC))
    assert login() == {"IL-01"}
    assert isinstance(_error(w, t), pg.ExpiredTemplateError)


def _error(w: World, t: pg.FaceTemplate) -> Exception | None:
    try:
        with pg.using(w.guard), pg.purpose("face.verification.login"):
            pg.similarity(np.ones(4), t)
    except Exception as e:
        return e
    return None


def test_without_interactions_the_window_runs_from_collection() -> None:
    w = World(policy("colorado"))
    w.consent()
    with pg.using(pg.Guard(clock=w.clock, consents=w.registry)):
        t = pg.FaceTemplate.wrap(
            np.ones(4), subject="u1", purposes="face.verification",
            ttl=timedelta(days=3650), consent="c1",
        )  # fmt: skip
    check = w.guard.check
    w.clock.set(datetime(2027, 12, 31, 23, tzinfo=UTC))
    assert check(t, "face.verification.login", pg.Operation.COMPARE).allowed
    w.clock.set(T0.replace(year=2028))
    d = check(t, "face.verification.login", pg.Operation.COMPARE)
    assert not d.allowed
    assert d.rule_ids == ("CO-01",)
    assert d.error is pg.ExpiredTemplateError


def test_a_search_is_not_an_interaction_but_a_collection_is() -> None:
    w = World(policy("bipa"))
    w.consent(purposes=["face.identification"])
    t = w.wrap("face.identification")
    assert w.registry.last_interaction("u1") == T0
    w.clock.advance(timedelta(days=10))
    from purposeguard.stores import GuardedStore, MemoryBackend

    store = GuardedStore(MemoryBackend(), guard=w.guard)
    with pg.using(w.guard):
        store.enrol(t)
        with pg.purpose("face.identification.closed_set_optin"):
            assert store.search(t, 1)
    assert w.registry.last_interaction("u1") == T0
    # Without a window rule in force nothing is recorded at all.
    quiet = World(policy("pipl"))
    quiet.consent()
    quiet.wrap()
    assert quiet.registry.last_interaction("u1") is None


def test_a_use_after_the_consented_term_ends_is_refused() -> None:
    w = World(policy("pipl", "gdpr", "bipa"))
    w.consent(term=timedelta(days=31))  # given 2025-12-31: ends 2026-01-31
    t = w.wrap(ttl=timedelta(days=30))
    with pytest.raises(pg.PolicyError, match=r"rules: .*CN-06"):
        w.wrap(ttl=timedelta(days=31))
    # A label made without the policy, longer than the term:
    with pg.using(pg.Guard(clock=w.clock, consents=w.registry)):
        long = pg.FaceTemplate.wrap(
            np.ones(4), subject="u1", purposes="face.verification",
            ttl=timedelta(days=90), consent="c1",
        )  # fmt: skip
    w.clock.set(datetime(2026, 1, 31, tzinfo=UTC))
    d = w.guard.check(long, "face.verification.login", pg.Operation.COMPARE)
    assert set(d.rule_ids) == {"CN-09", "EU-04", "IL-01"}
    assert d.error is pg.ExpiredTemplateError
    assert not w.guard.check(t, "face.verification.login", pg.Operation.COMPARE).allowed


def test_a_deployment_cap_applies_to_the_purposes_it_names() -> None:
    p = Policy(max_retention={"face.analytics": timedelta(days=7)})
    w = World(p)
    assert denying_rules(lambda: w.wrap("face.analytics.counting", consent=None,
                                        ttl=timedelta(days=8))) == {"LOCAL-RETENTION"}  # fmt: skip
    assert denying_rules(lambda: w.wrap("face.verification", consent=None,
                                        ttl=timedelta(days=800))) == set()  # fmt: skip


@given(
    names=st.lists(st.sampled_from(sorted(PRESETS)), min_size=1, max_size=4, unique=True),
    term_days=st.none() | st.integers(1, 2000),
    collected_days=st.integers(0, 400),
)
def test_composition_caps_retention_at_the_minimum_of_its_members(
    names: list[str], term_days: int | None, collected_days: int
) -> None:
    from purposeguard.policy import Consent

    consent = Consent(
        id="c", subject="u", purposes="face", form="written", given_at=T0,
        term=None if term_days is None else timedelta(days=term_days),
    )  # fmt: skip
    at = T0 + timedelta(days=collected_days)
    limits = [
        Policy.preset(n).latest_expiry(
            "face.verification", subject="u", collected_at=at, consent=consent
        )
        for n in names
    ]
    composed = Policy.preset(*names).latest_expiry(
        "face.verification", subject="u", collected_at=at, consent=consent
    )
    members = [lim.latest for lim in limits if lim is not None]
    if not members:
        assert composed is None
    else:
        assert composed is not None
        assert composed.latest == min(members)


def test_wrap_context_is_the_same_under_a_policy_without_retention_rules() -> None:
    w = World(policy("ccpa"))
    w.consent()
    t = w.wrap(ttl=timedelta(days=3650), context=PRIVATE)
    assert t.expires_at == T0 + timedelta(days=3650)
