"""Consent records, registries (memory and SQLite), withdrawal, rebind."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, strategies as st

import purposeguard as pg
from purposeguard.audit import MemorySink
from purposeguard.policy import (
    Authorisation,
    CollectionContext,
    Consent,
    ConsentForm,
    ConsentRegistry,
    LegalBasis,
    SQLiteConsentRegistry,
)
from purposeguard.stores import GuardedStore, MemoryBackend

from .conftest import T0, World, denying_rules, full_policy


def consent(**kw: object) -> Consent:
    base: dict[str, object] = {
        "id": "c1",
        "subject": "u1",
        "purposes": "face.verification",
        "form": "separate",
        "given_at": T0,
    }
    base.update(kw)
    return Consent(**base)  # type: ignore[arg-type]


# -- records ---------------------------------------------------------------------------


def test_form_takes_a_member_or_its_string_value() -> None:
    assert consent(form="written").form is ConsentForm.WRITTEN
    assert consent(form=ConsentForm.OPT_OUT).form is ConsentForm.OPT_OUT
    ranks = [f.rank for f in ConsentForm]
    assert ranks == sorted(ranks)
    assert len(set(ranks)) == len(ranks)
    assert ConsentForm.WRITTEN.rank > ConsentForm.SEPARATE.rank > ConsentForm.EXPLICIT.rank


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"form": "signed"}, "form must be one of"),
        ({"id": ""}, "consent id"),
        ({"subject": " "}, "subject"),
        ({"purposes": []}, "at least one purpose"),
        ({"purposes": "Face!"}, "purpose"),
        ({"given_at": datetime(2026, 1, 1)}, "timezone-aware"),
        ({"term": timedelta(0)}, "term must be positive"),
        ({"term": 30}, "term must be a timedelta"),
        ({"basis": "contract"}, "needs the legal ground"),
        ({"basis": "whim", "ground": "x"}, "basis must be one of"),
        ({"recipients": [""]}, "recipients"),
        ({"transfer": "yes"}, "transfer must be true or false"),
        ({"notice": ""}, "notice"),
    ],
)
def test_malformed_consents_are_refused_with_what_is_wrong(
    change: dict[str, object], words: str
) -> None:
    with pytest.raises(pg.PolicyError, match=words):
        consent(**change)


def test_coverage_and_purpose_end() -> None:
    c = consent(purposes=["face.verification", "face.analytics.counting"], term=timedelta(days=9))
    assert c.covers("face.verification.login")
    assert c.covers(pg.Purpose("face.analytics.counting"))
    assert not c.covers("face.analytics")
    assert not c.covers("face.identification")
    assert c.ends_at == T0 + timedelta(days=9)
    assert consent().ends_at is None
    other = consent(basis=LegalBasis.CONTRACT, ground="PIPL 13(2)")
    assert other.basis is LegalBasis.CONTRACT


def test_authorisation_validation() -> None:
    a = Authorisation(
        id="a1", purposes="face.public_security.law_enforcement.victim_search",
        authority="court", granted_at=T0, expires_at=T0 + timedelta(hours=24), urgent=True,
    )  # fmt: skip
    p = pg.Purpose("face.public_security.law_enforcement.victim_search")
    assert a.covers(p, T0)
    assert not a.covers(p, T0 + timedelta(hours=24))
    with pytest.raises(pg.PolicyError, match="24 hours"):
        Authorisation(id="a2", purposes=p, authority="court", granted_at=T0,
                      expires_at=T0 + timedelta(hours=25), urgent=True)  # fmt: skip
    with pytest.raises(pg.PolicyError, match="after granted_at"):
        Authorisation(id="a3", purposes=p, authority="court", granted_at=T0, expires_at=T0)


# -- the registry ----------------------------------------------------------------------


@pytest.fixture(params=["memory", "sqlite"])
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ConsentRegistry]:
    if request.param == "memory":
        yield ConsentRegistry()
        return
    reg = SQLiteConsentRegistry(tmp_path / "consents.db")
    yield reg
    reg.close()


def test_registry_add_get_withdraw(registry: ConsentRegistry) -> None:
    c = consent()
    assert registry.is_withdrawn("c1")  # unknown counts as withdrawn: fail closed
    registry.add(c)
    registry.add(c)  # the same record again: a no-op
    assert registry.get("c1") == c
    assert "c1" in registry
    assert len(registry) == 1
    assert list(registry) == [c]
    assert registry.by_subject("u1") == [c]
    assert registry.get("nope") is None
    assert not registry.is_withdrawn("c1")
    with pytest.raises(pg.PolicyError, match="different terms"):
        registry.add(consent(form="written"))
    assert registry.withdraw("c1", at=T0) is True
    assert registry.withdraw("c1") is False
    assert registry.is_withdrawn("c1")
    assert registry.withdrawn_at("c1") == T0
    assert registry.get("c1") == c  # the record stays, for the report
    with pytest.raises(pg.PolicyError, match="withdrawn"):
        registry.add(consent())
    assert registry.withdraw("never-given") is False
    with pytest.raises(pg.PolicyError, match="withdrawn"):
        registry.add(consent(id="never-given"))
    with pytest.raises(pg.PolicyError, match="takes a Consent"):
        registry.add("c1")  # type: ignore[arg-type]
    with pytest.raises(pg.PolicyError, match="consent_id"):
        registry.withdraw("")


def test_registry_interactions_limits_authorisations(registry: ConsentRegistry) -> None:
    registry.record_interaction("u1", T0)
    registry.record_interaction("u1", T0 - timedelta(days=1))  # earlier: ignored
    assert registry.last_interaction("u1") == T0
    assert registry.last_interaction("u2") is None
    registry.request_limit("u1", at=T0)
    assert registry.limit_requested("u1")
    assert not registry.limit_requested("u2")
    p = pg.Purpose("face.identification.realtime_remote")
    a = Authorisation(id="a1", purposes=p, authority="court", granted_at=T0,
                      expires_at=T0 + timedelta(days=1))  # fmt: skip
    registry.add_authorisation(a)
    assert registry.authorisation_for(p, T0) == a
    assert registry.authorisation_for(p, T0 + timedelta(days=2)) is None
    with pytest.raises(pg.PolicyError, match="already registered"):
        registry.add_authorisation(a)
    assert registry.revoke_authorisation("a1") is True
    assert registry.revoke_authorisation("a1") is False
    assert registry.authorisation_for(p, T0) is None


def test_sqlite_registry_persists_and_sees_other_connections_at_once(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    with SQLiteConsentRegistry(path) as one:
        one.add(consent())
        one.record_interaction("u1", T0)
    two = SQLiteConsentRegistry(path)
    three = SQLiteConsentRegistry(path)
    try:
        assert two.get("c1") == consent()
        assert not two.is_withdrawn("c1")
        assert two.last_interaction("u1") == T0
        three.withdraw("c1")  # another process withdraws ...
        assert two.is_withdrawn("c1")  # ... and this one sees it at the next decision
        generation = two.generation
        three.request_limit("u1")
        assert two.limit_requested("u1")
        assert two.generation > generation
    finally:
        two.close()
        three.close()


def test_sqlite_registry_refuses_a_corrupt_record(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    SQLiteConsentRegistry(path).close()
    db = sqlite3.connect(path)
    db.execute("INSERT INTO consents (id, record) VALUES ('x', '{\"id\": 1}')")
    db.commit()
    db.close()
    with pytest.raises(pg.PolicyError, match="does not parse"):
        SQLiteConsentRegistry(path)


def test_registry_is_thread_safe() -> None:
    reg = ConsentRegistry()

    def add(n: int) -> None:
        for i in range(200):
            reg.add(consent(id=f"c{n}-{i}", subject=f"u{n}"))
            reg.record_interaction(f"u{n}", T0 + timedelta(seconds=i))

    threads = [threading.Thread(target=add, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(reg) == 800
    assert reg.last_interaction("u3") == T0 + timedelta(seconds=199)


@given(st.lists(st.sampled_from(["add", "withdraw", "check"]), max_size=20))
def test_a_withdrawn_consent_never_comes_back(steps: list[str]) -> None:
    reg = ConsentRegistry()
    withdrawn = False
    for step in steps:
        if step == "add":
            try:
                reg.add(consent())
            except pg.PolicyError:
                assert withdrawn
        elif step == "withdraw":
            reg.withdraw("c1")
            withdrawn = True
        assert reg.is_withdrawn("c1") == (withdrawn or "c1" not in reg)


# -- withdrawal blocks every later use at once, and the stores erase -------------------


def test_withdrawal_blocks_a_cached_decision_at_once_and_the_store_erases() -> None:
    w = World(full_policy())
    w.consent(purposes=["face.verification", "face.identification"])
    t = w.wrap(["face.verification", "face.identification"])
    store = GuardedStore(MemoryBackend(), guard=w.guard)
    with pg.using(w.guard):
        store.enrol(t)
    check = w.guard.check
    assert check(t, "face.verification.login", pg.Operation.COMPARE).allowed  # now cached
    assert store.withdraw_consent("c1") == 1
    assert len(store) == 0
    d = check(t, "face.verification.login", pg.Operation.COMPARE)
    assert not d.allowed
    assert {"CN-09", "EU-04"} <= set(d.rule_ids)
    assert d.error is pg.ConsentError


def test_a_limit_request_and_a_revoked_authorisation_apply_to_cached_decisions() -> None:
    w = World(full_policy())
    w.consent(purposes=["face.verification", "face.identification"])
    t = w.wrap(["face.verification", "face.identification"])
    search = ("face.identification.closed_set_optin", pg.Operation.SEARCH)
    assert w.guard.check(t, *search).allowed
    w.registry.request_limit("u1")
    assert w.guard.check(t, *search).rule_ids == ("CA-01",)
    assert w.guard.check(t, "face.verification.login", pg.Operation.COMPARE).allowed


# -- rebind ----------------------------------------------------------------------------


def test_rebind_broadens_only_with_a_fresh_consent_covering_the_new_purposes() -> None:
    w = World(full_policy())
    w.consent()
    t = w.wrap()
    w.clock.advance(timedelta(days=1))
    fresh = w.consent("c2", purposes=["face.verification", "face.identification"],
                      given_at=w.clock.now())  # fmt: skip
    with pg.using(w.guard):
        wider = t.rebind(["face.verification", "face.identification"], consent=fresh)
        with pytest.raises(pg.ConsentError) as info:
            t.rebind("face.analytics.counting", consent="c2")
    # GDPR reaches only identifying uses: counting is outside EU-02.
    assert {"CN-03", "WA-01"} <= set(info.value.decision.rule_ids)  # type: ignore[union-attr]
    assert wider.id != t.id
    assert wider.label.consent == "c2"
    assert wider.label.lineage == ("rebind",)
    assert wider.label.collected_at == w.clock.now()
    assert w.guard.check(wider, "face.identification.closed_set_optin", pg.Operation.SEARCH)
    assert not w.guard.check(t, "face.identification.closed_set_optin", pg.Operation.SEARCH)
    event = w.sink.events[-2]
    assert event.operation is pg.Operation.COLLECT
    assert t.id in event.template_ids
    assert "rebind" in event.reason


def test_rebind_registers_a_consent_record_given_to_it() -> None:
    w = World(full_policy())
    w.consent()
    t = w.wrap()
    fresh = consent(id="c3", purposes=["face.verification", "face.identification"],
                    form="written", notice="notice-v2")  # fmt: skip
    wider = w.run(lambda: t.rebind(["face.verification", "face.identification"], consent=fresh))
    assert w.registry.get("c3") == fresh
    assert isinstance(wider, pg.FaceTemplate)
    assert wider.label.consent == "c3"
    clash = consent(id="c3", form="opt_out")
    with pytest.raises(pg.PolicyError, match="different terms"):
        w.run(lambda: t.rebind("face.verification", consent=clash))


def test_rebind_refuses_the_old_consent_a_prohibited_purpose_and_no_consent() -> None:
    w = World(full_policy())
    w.consent()
    t = w.wrap(prohibited="face.identification.realtime_remote")
    assert "CN-03" in denying_rules(lambda: w.run(lambda: t.rebind("face.identification",
                                                                    consent="c1")))  # fmt: skip
    # The prohibition stays on the rebound label: still refused below it.
    with pytest.raises(pg.PurposeViolationError, match="prohibited"):
        w.run(lambda: t.rebind("face.identification.realtime_remote", consent="c1"))
    with pytest.raises(pg.PolicyError, match="consent"):
        w.run(lambda: t.rebind("face.identification", consent=""))
    with pytest.raises(pg.PurposeViolationError, match="broaden"):
        t.restrict("face.identification")


def test_rebind_keeps_retention_rules() -> None:
    w = World(full_policy())
    w.consent()
    t = w.wrap()
    w.consent("c2", purposes="face.verification", term=timedelta(days=10), given_at=T0)
    with pytest.raises(pg.PolicyError, match="CN-06"):
        w.run(lambda: t.rebind("face.verification", consent="c2"))


def test_rebind_without_a_policy_still_needs_a_consent_id_and_is_audited() -> None:
    w = World(None)
    t = w.wrap(consent=None)
    w.registry.add(consent(id="c9"))
    wider = w.run(lambda: t.rebind(["face.verification", "face.analytics"], consent="c9"))
    assert isinstance(wider, pg.FaceTemplate)
    assert wider.purposes == {pg.Purpose("face.verification"), pg.Purpose("face.analytics")}
    assert w.sink.events[-1].operation is pg.Operation.COLLECT
    revealed = w.run(lambda: _reveal(wider))
    assert isinstance(revealed, np.ndarray)
    assert np.array_equal(revealed, np.arange(1.0, 9.0))  # same values, new label


def _reveal(t: pg.FaceTemplate) -> object:
    with pg.purpose("face.verification.login"):
        return t.reveal()


def test_a_withdrawal_in_another_process_blocks_this_guard_at_the_next_decision(
    tmp_path: Path,
) -> None:
    path = tmp_path / "shared.db"
    here = SQLiteConsentRegistry(path)
    there = SQLiteConsentRegistry(path)
    try:
        clock = pg.FrozenClock(T0)
        guard = pg.Guard(policy=full_policy(), consents=here, clock=clock, audit=MemorySink())
        here.add(consent(purposes=["face.verification", "face.identification"], form="written",
                         given_at=T0 - timedelta(days=1), notice="n"))  # fmt: skip
        with pg.using(guard):
            t = pg.FaceTemplate.wrap(
                np.ones(4), subject="u1", purposes=["face.verification", "face.identification"],
                ttl=timedelta(days=30), consent="c1",
                context=CollectionContext(place="private", source="camera"),
            )  # fmt: skip
        search = ("face.identification.closed_set_optin", pg.Operation.SEARCH)
        assert guard.check(t, *search).allowed  # remembered by the guard and the policy
        there.request_limit("u1")  # no consent id involved: only the generation tells
        assert guard.check(t, *search).rule_ids == ("CA-01",)
        there.withdraw("c1")
        assert {"CN-09", "EU-04"} <= set(guard.check(t, *search).rule_ids)
    finally:
        here.close()
        there.close()
