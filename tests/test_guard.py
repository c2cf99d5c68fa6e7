"""The guard: decisions, enforcement, audit mode, audit events, configuration."""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, strategies as st

import purposeguard as pg
from purposeguard.audit import AuditEvent, LoggingSink, MemorySink, MultiSink, Outcome
from purposeguard.testing import strategies as pst

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)
VALUES = (0.123456789, -7.65432198, 3.14159265358, 42.4242424242)
LOGIN = pg.Purpose("face.verification.login")
R = pg.Operation.REVEAL


def wrap(purposes: object = "face.verification", **kw: Any) -> pg.FaceTemplate:
    kw.setdefault("subject", "u-17")
    if "expires_at" not in kw:
        kw.setdefault("ttl", 30 * DAY)
    return pg.FaceTemplate.wrap(np.array(VALUES), purposes=purposes, **kw)  # type: ignore[arg-type]


class Consents:
    """A ConsentLookup whose withdrawals the test controls."""

    def __init__(self, withdrawn: Iterable[str] = ()) -> None:
        self.withdrawn = set(withdrawn)

    def is_withdrawn(self, consent_id: str) -> bool:
        return consent_id in self.withdrawn


class TwoRules:
    """A policy with two rules that both deny every REVEAL (and nothing else)."""

    def evaluate(self, request: pg.AccessRequest) -> list[pg.RuleFinding]:
        if request.operation is not pg.Operation.REVEAL:
            return []
        return [
            pg.RuleFinding("XX-01", "reveals are logged elsewhere"),
            pg.RuleFinding("YY-02", "no raw values off-device", pg.ConsentError),
        ]


class BrokenSink:
    """An audit sink that cannot record anything."""

    def __init__(self) -> None:
        self.calls = 0

    def emit(self, event: AuditEvent) -> None:
        self.calls += 1
        raise OSError("disk full")

    def flush(self) -> None:
        raise OSError("disk full")

    def close(self) -> None:
        pass


# -- check() ---------------------------------------------------------------------------------


def test_check_is_side_effect_free(guard: pg.Guard, sink: MemorySink) -> None:
    t = wrap()
    before = list(sink.events)
    allowed = guard.check(t, LOGIN, R)
    denied = guard.check(t, "face.analytics", R)
    nobody = guard.check(t, None, R)
    assert sink.events == before
    assert allowed.allowed
    assert not denied.allowed
    assert not nobody.allowed


def test_check_in_audit_mode_issues_no_warning(audit_guard: pg.Guard, sink: MemorySink) -> None:
    t = pst_template(audit_guard)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        decision = audit_guard.check(t, "face.analytics", R)
    assert not decision.allowed
    assert sink.events == []


def pst_template(g: pg.Guard, purposes: str = "face.verification") -> pg.FaceTemplate:
    # A template built without a COLLECT, so no event or warning comes from wrapping.
    label = pg.Label(allowed=purposes, subject="u-17", expires_at=g.now() + 30 * DAY)
    return pg.FaceTemplate._new(np.array(VALUES), label)


def test_decision_fields_allowed(guard: pg.Guard) -> None:
    t = wrap()
    d = guard.check(t, "face.verification.login", R)
    assert d.allowed is True
    assert bool(d) is True
    assert d.purpose == LOGIN
    assert d.operation is R
    assert d.template_id == t.id
    assert d.reasons == ()
    assert d.rule_ids == ()
    text = str(d)
    assert "permitted" in text
    assert "face.verification.login" in text
    assert "within allowed face.verification" in text
    assert "reveal" in text


def test_decision_fields_denied(guard: pg.Guard) -> None:
    t = wrap()
    d = guard.check(t, "face.analytics.demographics", pg.Operation.COMPARE)
    assert d.allowed is False
    assert bool(d) is False
    assert d.purpose == pg.Purpose("face.analytics.demographics")
    assert d.operation is pg.Operation.COMPARE
    assert d.template_id == t.id
    assert d.reasons
    assert d.error is pg.PurposeViolationError
    text = str(d)
    assert "denied" in text
    assert "not within" in text
    assert "face.verification" in text
    assert t.id in text


def test_decision_for_operation_not_in_taxonomy(guard: pg.Guard) -> None:
    t = wrap("face.liveness")
    d = guard.check(t, "face.liveness", R)
    assert not d.allowed
    assert "taxonomy does not allow reveal" in str(d)


def test_check_rejects_unknown_purposes(guard: pg.Guard) -> None:
    t = wrap()
    with pytest.raises(pg.PolicyError):
        guard.check(t, "face.verification.unknown", R)
    with pytest.raises(pg.PolicyError):
        guard.check(t, "Not A Purpose", R)


@pytest.mark.parametrize("active", [None, "face.analytics", "face.verification.login"])
def test_delete_is_always_allowed(
    guard: pg.Guard, clock: pg.FrozenClock, active: str | None
) -> None:
    t = wrap(prohibited="face.verification.login", consent="c-1")
    clock.advance(365 * DAY)  # expired too
    g = guard.evolve(consents=Consents({"c-1"}))
    d = g.check(t, active, pg.Operation.DELETE)
    assert d.allowed
    assert "erasure" in str(d)


def test_no_active_purpose_is_a_violation(guard: pg.Guard, sink: MemorySink) -> None:
    t = wrap()
    with pytest.raises(pg.PurposeViolationError) as exc:
        t.reveal()
    assert exc.value.decision is not None
    assert exc.value.decision.purpose is None
    assert sink.events[-1].purpose is None
    assert sink.events[-1].outcome is Outcome.DENIED


def test_expired_exactly_at_expires_at(guard: pg.Guard, clock: pg.FrozenClock) -> None:
    t = wrap(expires_at=T0 + timedelta(hours=1))
    with pg.purpose(LOGIN):
        clock.set(T0 + timedelta(hours=1) - timedelta(microseconds=1))
        assert guard.check(t, LOGIN, R).allowed
        t.reveal()
        clock.set(T0 + timedelta(hours=1))
        d = guard.check(t, LOGIN, R)
        assert not d.allowed
        assert d.error is pg.ExpiredTemplateError
        with pytest.raises(pg.ExpiredTemplateError) as exc:
            t.reveal()
        assert "expired" in str(exc.value)
        clock.advance(DAY)
        with pytest.raises(pg.ExpiredTemplateError):
            pg.similarity(t, np.ones(len(VALUES)))


def test_withdrawn_consent_is_a_consent_error(guard: pg.Guard) -> None:
    consents = Consents()
    g = guard.evolve(consents=consents)
    with pg.using(g):
        t = wrap(consent="c-9")
        with pg.purpose(LOGIN):
            t.reveal()
            consents.withdrawn.add("c-9")
            assert g.check(t, LOGIN, R).error is pg.ConsentError
            with pytest.raises(pg.ConsentError) as exc:
                t.reveal()
    assert "c-9" in str(exc.value)
    # The same template under a guard that does not track consents is usable.
    with pg.purpose(LOGIN):
        t.reveal()


def test_withdrawn_consent_blocks_collection(guard: pg.Guard) -> None:
    with pg.using(guard.evolve(consents=Consents({"c-1"}))), pytest.raises(pg.ConsentError):
        wrap(consent="c-1")


def test_policy_findings_list_every_denying_rule(guard: pg.Guard, sink: MemorySink) -> None:
    g = guard.evolve(policy=TwoRules())
    with pg.using(g):
        t = wrap()  # COLLECT: no finding
        d = g.check(t, LOGIN, R)
        assert not d.allowed
        assert d.rule_ids == ("XX-01", "YY-02")
        assert "XX-01" in str(d)
        assert "YY-02" in str(d)
        assert g.check(t, LOGIN, pg.Operation.COMPARE).allowed
        with pg.purpose(LOGIN), pytest.raises(pg.AccessDeniedError) as exc:
            t.reveal()
    assert "XX-01" in str(exc.value)
    assert "YY-02" in str(exc.value)
    assert sink.events[-1].rule_ids == ("XX-01", "YY-02")


def test_policy_findings_add_to_label_denials(guard: pg.Guard) -> None:
    t = wrap()
    g = guard.evolve(policy=TwoRules())
    d = g.check(t, "face.analytics", R)
    assert d.error is pg.PurposeViolationError
    assert d.rule_ids == ("XX-01", "YY-02")
    assert any("not within" in r for r in d.reasons)


# -- exactly one audit event per checked operation ----------------------------------------------


@pg.transform(name="scale")
def scale(v: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return v * 2.0


@pg.uses("face.verification.login")
def admit_two(a: pg.FaceTemplate, b: pg.FaceTemplate) -> str:
    return "ran"


def _ops(t: pg.FaceTemplate, u: pg.FaceTemplate) -> dict[str, Callable[[], object]]:
    return {
        "reveal": t.reveal,
        "similarity": lambda: pg.similarity(t, u),
        "similarity-probe": lambda: pg.similarity(t, np.ones(len(VALUES))),
        "distance": lambda: pg.distance(t, u),
        "uses": lambda: admit_two(t, u),
        "transform": lambda: scale(t),
        "wrap": lambda: wrap(),
    }


OP_NAMES = ["reveal", "similarity", "similarity-probe", "distance", "uses", "transform", "wrap"]


@pytest.mark.parametrize("name", OP_NAMES)
def test_exactly_one_event_when_permitted(guard: pg.Guard, sink: MemorySink, name: str) -> None:
    t, u = wrap(), wrap()
    with pg.purpose(LOGIN):
        op = _ops(t, u)[name]
        before = len(sink.events)
        op()
        assert len(sink.events) == before + 1
    assert sink.events[-1].outcome is Outcome.GRANTED


@pytest.mark.parametrize("name", [n for n in OP_NAMES if n != "uses"])
def test_exactly_one_event_when_denied(guard: pg.Guard, sink: MemorySink, name: str) -> None:
    t, u = wrap(), wrap()
    with pg.purpose("face.analytics.counting"):
        op = _ops(t, u)[name]
        before = len(sink.events)
        with pytest.raises(pg.PurposeViolationError):
            op()
        assert len(sink.events) == before + 1
    assert sink.events[-1].outcome is Outcome.DENIED


def test_uses_admission_denied_is_one_event(guard: pg.Guard, sink: MemorySink) -> None:
    t, u = wrap("face.analytics"), wrap("face.analytics")
    before = len(sink.events)
    with pytest.raises(pg.PurposeViolationError):
        admit_two(t, u)
    assert len(sink.events) == before + 1
    event = sink.events[-1]
    assert event.operation is None
    assert event.template_ids == (t.id, u.id)
    assert event.outcome is Outcome.DENIED


def test_similarity_of_two_templates_is_one_event_naming_both(
    guard: pg.Guard, sink: MemorySink
) -> None:
    t = wrap(subject="a-1")
    u = wrap(subject="b-2")
    with pg.purpose(LOGIN, principal="kiosk-4"):
        pg.similarity(t, u)
    event = sink.events[-1]
    assert event.operation is pg.Operation.COMPARE
    assert event.template_ids == (t.id, u.id)
    assert event.subjects == ("a-1", "b-2")
    assert event.principal == "kiosk-4"


def test_event_fields(guard: pg.Guard, sink: MemorySink, clock: pg.FrozenClock) -> None:
    t = wrap(subject="u-42")
    clock.advance(timedelta(minutes=5))
    with pg.purpose(LOGIN):
        t.reveal()
    event = sink.events[-1]
    assert event.site == f"{__name__}:test_event_fields"
    assert event.subjects == ("u-42",)
    assert event.template_ids == (t.id,)
    assert event.purpose == LOGIN
    assert event.operation is R
    assert event.outcome is Outcome.GRANTED
    assert event.at == T0 + timedelta(minutes=5)
    assert event.reason == "permitted"
    assert event.seq > sink.events[0].seq


class TestSite:
    def test_site_of_a_method(self, guard: pg.Guard, sink: MemorySink) -> None:
        t = wrap()
        r = t.restrict("face.verification.payment")
        with pg.purpose(LOGIN), pytest.raises(pg.PurposeViolationError):
            r.reveal()
        assert sink.events[-1].site == f"{__name__}:TestSite.test_site_of_a_method"
        assert sink.events[0].site == f"{__name__}:wrap"  # the COLLECT came from wrap()


def test_event_site_through_decorators(guard: pg.Guard, sink: MemorySink) -> None:
    t, u = wrap(), wrap()
    with pg.purpose(LOGIN):
        scale(t)
    assert sink.events[-1].site == f"{__name__}:test_event_site_through_decorators"
    admit_two(t, u)
    assert sink.events[-1].site == f"{__name__}:test_event_site_through_decorators"


def test_sequence_numbers_increase(guard: pg.Guard, sink: MemorySink) -> None:
    t = wrap()
    with pg.purpose(LOGIN):
        for _ in range(5):
            t.reveal()
    seqs = [e.seq for e in sink.events]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == len(seqs)


# -- audit mode --------------------------------------------------------------------------------


def test_audit_mode_lets_denials_through(
    audit_guard: pg.Guard, guard_enforce_twin: pg.Guard, sink: MemorySink
) -> None:
    t = pst_template(audit_guard)
    with pg.purpose("face.analytics.demographics"):
        with pytest.warns(pg.PurposeWarning) as record:
            out = t.reveal()
        np.testing.assert_array_equal(out, np.array(VALUES))
    assert len(sink.events) == 1
    assert sink.events[0].outcome is Outcome.WOULD_DENY
    assert len(record) == 1
    warning = record[0].message
    assert isinstance(warning, pg.PurposeWarning)
    assert warning.decision is not None
    assert warning.decision == guard_enforce_twin.check(t, "face.analytics.demographics", R)
    assert record[0].filename == __file__


@pytest.fixture
def guard_enforce_twin(audit_guard: pg.Guard) -> pg.Guard:
    return audit_guard.evolve(mode=pg.Mode.ENFORCE)


def test_audit_mode_permitted_access_is_granted_without_warning(
    audit_guard: pg.Guard, sink: MemorySink
) -> None:
    t = pst_template(audit_guard)
    with pg.purpose(LOGIN):
        t.reveal()
    assert [e.outcome for e in sink.events] == [Outcome.GRANTED]


def test_audit_mode_uses_runs_the_body(audit_guard: pg.Guard, sink: MemorySink) -> None:
    t, u = pst_template(audit_guard, "face.analytics"), pst_template(audit_guard)
    with pytest.warns(pg.PurposeWarning):
        assert admit_two(t, u) == "ran"
    assert sink.events[-1].outcome is Outcome.WOULD_DENY


T1 = datetime(2030, 1, 1, tzinfo=UTC)


@given(
    label=pst.labels(pg.Taxonomy.default(), now=T1),
    p=pst.purposes(pg.Taxonomy.default()),
    op=pst.operations(),
    expire=st.booleans(),
    mode=st.sampled_from(list(pg.Mode)),
)
def test_outcome_matches_decision(
    label: pg.Label, p: pg.Purpose, op: pg.Operation, expire: bool, mode: pg.Mode
) -> None:
    clock = pg.FrozenClock(T1)
    sink = MemorySink()
    g = pg.Guard(clock=clock, audit=sink, mode=mode)
    t = pg.FaceTemplate._new(np.array(VALUES), label)
    if expire:
        clock.set(label.expires_at)
    decision = g.check(t, p, op)
    enforce = g.evolve(mode=pg.Mode.ENFORCE).check(t, p, op)
    assert decision == enforce  # the mode never changes the decision
    with pg.using(g), pg.purpose(p), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if decision.allowed or mode is pg.Mode.AUDIT:
            assert g.authorize(op, [t]) == decision
        else:
            assert decision.error is not None
            with pytest.raises(decision.error):
                g.authorize(op, [t])
    assert len(sink.events) == 1
    outcome = sink.events[0].outcome
    if decision.allowed:
        assert outcome is Outcome.GRANTED
        assert caught == []
    else:
        assert outcome is (Outcome.DENIED if mode is pg.Mode.ENFORCE else Outcome.WOULD_DENY)
        warned = [w for w in caught if issubclass(w.category, pg.PurposeWarning)]
        assert len(warned) == (1 if mode is pg.Mode.AUDIT else 0)
    if expire and op is not pg.Operation.DELETE:
        assert outcome is not Outcome.GRANTED


# -- a failing audit sink ------------------------------------------------------------------


@pytest.mark.parametrize("mode", list(pg.Mode))
@pytest.mark.parametrize("active", ["face.verification.login", "face.analytics"])
def test_failing_sink_denies_reveal(clock: pg.FrozenClock, mode: pg.Mode, active: str) -> None:
    good = pg.Guard(clock=clock, audit=MemorySink())
    broken_sink = BrokenSink()
    broken = pg.Guard(clock=clock, audit=broken_sink, mode=mode)
    with pg.using(good):
        t = wrap()
    result: object = None
    with pg.using(broken), pg.purpose(active):
        with pytest.raises(pg.AuditError) as exc:
            result = t.reveal()
        with pytest.raises(pg.AuditError):
            result = pg.similarity(t, np.ones(len(VALUES)))
        with pytest.raises(pg.AuditError):
            result = scale(t)
    assert result is None
    assert broken_sink.calls == 3
    assert "BrokenSink" in str(exc.value)
    assert isinstance(exc.value.__cause__, OSError)


@pytest.mark.parametrize("mode", list(pg.Mode))
def test_failing_sink_denies_wrap_and_uses(clock: pg.FrozenClock, mode: pg.Mode) -> None:
    good = pg.Guard(clock=clock, audit=MemorySink())
    with pg.using(good):
        t, u = wrap(), wrap()
    ran: list[bool] = []

    @pg.uses(LOGIN)
    def body(a: pg.FaceTemplate, b: pg.FaceTemplate) -> None:
        ran.append(True)

    with pg.using(pg.Guard(clock=clock, audit=BrokenSink(), mode=mode)):
        with pytest.raises(pg.AuditError):
            wrap()
        with pytest.raises(pg.AuditError):
            body(t, u)
    assert ran == []


# -- configuration -------------------------------------------------------------------------


def test_configure_returns_the_old_guard_and_restores() -> None:
    g1 = pg.Guard(audit=MemorySink())
    g2 = pg.Guard(audit=MemorySink(), mode="audit")
    old = pg.configure(g1)
    try:
        assert pg.current_guard() is g1
        previous = pg.configure(g2)
        assert previous is g1
        assert pg.current_guard() is g2
        with pg.using(g1):
            assert pg.current_guard() is g1
        assert pg.current_guard() is g2
    finally:
        assert pg.configure(old) is g2
    assert pg.current_guard() is old


def test_configure_with_settings_builds_a_guard() -> None:
    sink = MemorySink()
    old = pg.configure(mode=pg.Mode.AUDIT, audit=sink)
    try:
        g = pg.current_guard()
        assert g.mode is pg.Mode.AUDIT
        assert g.audit is sink
    finally:
        pg.configure(old)
    assert pg.current_guard() is old


def test_configure_rejects_bad_input() -> None:
    before = pg.current_guard()
    with pytest.raises(pg.PolicyError):
        pg.configure(pg.Guard(audit=MemorySink()), mode="audit")
    with pytest.raises(pg.PolicyError):
        pg.configure("not a guard")  # type: ignore[arg-type]
    assert pg.current_guard() is before


def test_using_scopes_a_guard(guard: pg.Guard) -> None:
    other = pg.Guard(audit=MemorySink())
    assert pg.current_guard() is guard
    with pg.using(other) as g:
        assert g is other
        assert pg.current_guard() is other
    assert pg.current_guard() is guard
    with pytest.raises(pg.PolicyError), pg.using(object()):  # type: ignore[arg-type]
        pass


def test_guard_resolved_at_call_time(clock: pg.FrozenClock) -> None:
    s1, s2 = MemorySink(), MemorySink()
    g1 = pg.Guard(clock=clock, audit=s1)
    g2 = pg.Guard(clock=clock, audit=s2)
    with pg.using(g1):
        t = wrap()
    with pg.using(g2):
        admit_two(t, t)
    assert len(s1.events) == 1
    assert len(s2.events) == 1


class NotAVerifier:
    pass


@pytest.mark.parametrize(
    "kw",
    [
        {"require_grants": True},
        {"mode": "shadow"},
        {"mode": 3},
        {"audit": object()},
        {"audit": "stdout"},
        {"clock": object()},
        {"taxonomy": {"purposes": {}}},
        {"grant_verifier": NotAVerifier()},
        {"consents": object()},
        {"policy": object()},
    ],
)
def test_guard_validation(kw: dict[str, Any]) -> None:
    with pytest.raises(pg.PolicyError):
        pg.Guard(**kw)


def test_guard_accepts_mode_strings() -> None:
    assert pg.Guard(mode="audit", audit=MemorySink()).mode is pg.Mode.AUDIT
    assert pg.Guard(mode="enforce", audit=MemorySink()).mode is pg.Mode.ENFORCE


def test_guard_defaults() -> None:
    g = pg.Guard()
    assert g.mode is pg.Mode.ENFORCE
    assert g.taxonomy == pg.Taxonomy.default()
    assert isinstance(g.clock, pg.SystemClock)
    assert g.now().tzinfo is not None


# -- policies that announce duties ---------------------------------------------------------


class DutyPolicy:
    """A policy with a missing deployment duty, announced when a guard is built."""

    def evaluate(self, request: pg.AccessRequest) -> list[pg.RuleFinding]:
        return []

    def guard_warnings(self) -> list[str]:
        return ["XX-09: no impact assessment is declared"]


def test_guard_warns_about_missing_duties_at_the_callers_line() -> None:
    with pytest.warns(pg.PurposeWarning, match="XX-09") as record:
        g = pg.Guard(policy=DutyPolicy(), audit=MemorySink())
    assert record[0].filename == __file__
    with pytest.warns(pg.PurposeWarning, match="XX-09") as record:
        g.evolve(mode=pg.Mode.AUDIT)
    assert record[0].filename == __file__


# -- sinks -----------------------------------------------------------------------------------


def _event(outcome: Outcome = Outcome.GRANTED) -> AuditEvent:
    return AuditEvent(
        seq=1,
        at=T0,
        operation=R,
        outcome=outcome,
        purpose=LOGIN,
        template_ids=("ab" * 16,),
        subjects=("u-1",),
        rule_ids=("XX-01",),
        reason="permitted",
        site="m:f",
    )


def test_memory_sink() -> None:
    s = MemorySink()
    s.emit(_event())
    s.emit(_event(Outcome.DENIED))
    assert [e.outcome for e in s.events] == [Outcome.GRANTED, Outcome.DENIED]
    assert "2 events" in repr(s)
    s.flush()
    s.clear()
    assert s.events == []
    s.close()


def test_event_to_dict_is_json() -> None:
    data = json.loads(json.dumps(_event().to_dict()))
    assert data["outcome"] == "granted"
    assert data["operation"] == "reveal"
    assert data["purpose"] == "face.verification.login"
    assert data["at"] == T0.isoformat()
    assert data["template_ids"] == ["ab" * 16]
    admission = attrs.evolve(_event(), operation=None, purpose=None)
    assert admission.to_dict()["operation"] is None
    assert admission.to_dict()["purpose"] is None


def test_logging_sink_levels(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("tests.audit")
    sink = LoggingSink(logger)
    assert "tests.audit" in repr(sink)
    with caplog.at_level(logging.WARNING, logger="tests.audit"):
        sink.emit(_event())  # INFO: below the level, dropped
        sink.emit(_event(Outcome.WOULD_DENY))
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    record = caplog.records[0]
    assert "would_deny reveal purpose=face.verification.login" in record.getMessage()
    assert record.__dict__["audit"]["rule_ids"] == ["XX-01"]
    sink.flush()
    sink.close()


def test_multi_sink_fans_out_and_fails_loudly(clock: pg.FrozenClock) -> None:
    a, b = MemorySink(), MemorySink()
    multi = MultiSink.of([a, b])
    assert "MultiSink(" in repr(multi)
    multi.emit(_event())
    multi.flush()
    multi.close()
    assert len(a.events) == len(b.events) == 1
    failing = MultiSink(a, BrokenSink(), b)
    g = pg.Guard(clock=clock, audit=failing)
    with pg.using(g), pytest.raises(pg.AuditError):
        wrap()
    with pytest.raises(OSError, match="disk full"):
        failing.flush()
