"""purposeguard.testing: strategies, the Hypothesis entry point, capture_audit()."""

from __future__ import annotations

import importlib.metadata
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, strategies as st

import purposeguard as pg
from purposeguard.audit import MemorySink, Outcome
from purposeguard.testing import FrozenClock, capture_audit, strategies as pst

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DEFAULT = pg.Taxonomy.default()


def _guard(at: datetime = T0) -> pg.Guard:
    return pg.Guard(clock=pg.FrozenClock(at), audit=MemorySink())


# -- strategies ------------------------------------------------------------------------------


@given(st.data(), st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)))
def test_templates_are_valid_at_the_guard_clock(data: st.DataObject, at: datetime) -> None:
    now = at.replace(tzinfo=UTC)
    g = _guard(now)
    with pg.using(g):
        t = data.draw(pst.templates(DEFAULT))
    assert isinstance(t, pg.FaceTemplate)
    assert t.purposes
    assert all(p in DEFAULT for p in t.purposes | t.label.prohibited)
    assert t.expires_at > now
    assert not t.label.is_expired(g.now())
    assert t.label.collected_at is not None
    assert t.label.collected_at <= now
    assert t.expires_at.utcoffset() == timedelta(0)
    assert t.dim == 8
    assert t.subject
    # The label survives its canonical encoding.
    assert pg.Label.from_bytes(t.label.to_bytes()) == t.label


@given(st.data())
def test_expired_templates_are_expired(data: st.DataObject) -> None:
    g = _guard()
    with pg.using(g):
        t = data.draw(pst.templates(DEFAULT, expired=True))
    assert t.label.is_expired(g.now())
    with pg.using(g), pg.purpose("face.verification"), pytest.raises(pg.AccessDeniedError):
        g.authorize(pg.Operation.REVEAL, [t])


@given(st.data())
def test_labels_take_now_and_subject(data: st.DataObject) -> None:
    label = data.draw(pst.labels(DEFAULT, now=T0, subject="fixed-1"))
    assert label.subject == "fixed-1"
    assert label.expires_at > T0
    assert label.collected_at is not None
    assert label.collected_at <= T0
    assert 1 <= len(label.allowed) <= 3


@given(pst.vectors())
def test_vectors_are_finite_nonzero_1d(v: npt.NDArray[np.float32]) -> None:
    assert v.ndim == 1
    assert 2 <= v.shape[0] <= 64
    assert np.isfinite(v).all()
    assert np.any(v)


@given(pst.vectors(dim=5, dtype=np.float64))
def test_vectors_with_dim_and_dtype(v: npt.NDArray[np.float64]) -> None:
    assert v.shape == (5,)
    assert v.dtype == np.float64


@given(pst.purposes())
def test_free_purposes_are_valid(p: pg.Purpose) -> None:
    assert pg.Purpose(p.name) is p
    assert 1 <= p.depth <= 4


@given(pst.purposes(DEFAULT), pst.operations())
def test_taxonomy_purposes_and_operations(p: pg.Purpose, op: pg.Operation) -> None:
    assert p in DEFAULT
    assert isinstance(op, pg.Operation)


@given(pst.taxonomies())
def test_taxonomies_narrow_downward(tax: pg.Taxonomy) -> None:
    assert len(tax) >= 1
    for p in tax:
        assert all(a in tax for a in p.ancestors())
        # Operations only narrow below the nearest ancestor that declares some (a
        # root that declares none, like 'face', allows nothing yet caps nothing).
        declaring = [a for a in p.ancestors() if tax.spec(a).declared is not None]
        if declaring:
            assert tax.operations(p) <= tax.operations(declaring[0])
        if tax.spec(p).declared is None and p.parent is not None:
            assert tax.operations(p) == tax.operations(p.parent)
    # A taxonomy rebuilt from its own mapping is the same taxonomy.
    assert pg.Taxonomy.from_mapping(tax.to_mapping()) == tax


@given(pst.taxonomies().flatmap(lambda tax: st.tuples(st.just(tax), pst.labels(tax, now=T0))))
def test_labels_from_random_taxonomies(pair: tuple[pg.Taxonomy, pg.Label]) -> None:
    tax, label = pair
    assert all(p in tax for p in label.allowed | label.prohibited)


@given(pst.subjects())
def test_subjects_are_valid(s: str) -> None:
    assert pg.Label(allowed="face", subject=s, expires_at=T0 + timedelta(days=1)).subject == s


# -- the hypothesis entry point ------------------------------------------------------------


def test_entry_point_is_installed() -> None:
    eps = importlib.metadata.entry_points(group="hypothesis")
    assert any(ep.value.startswith("purposeguard.testing") for ep in eps)


@given(st.data())
def test_from_type_face_template(data: st.DataObject) -> None:
    g = _guard()
    with pg.using(g):
        t = data.draw(st.from_type(pg.FaceTemplate))
    assert isinstance(t, pg.FaceTemplate)
    assert all(p in DEFAULT for p in t.purposes)
    assert t.expires_at > g.now()


@given(st.from_type(pg.Purpose), st.from_type(pg.Label), st.from_type(pg.Taxonomy))
def test_from_type_other_core_types(p: pg.Purpose, label: pg.Label, tax: pg.Taxonomy) -> None:
    assert p in DEFAULT
    assert all(q in DEFAULT for q in label.allowed)
    assert isinstance(tax, pg.Taxonomy)


# -- capture_audit -----------------------------------------------------------------------------


def test_capture_audit_collects_and_keeps_the_sink(guard: pg.Guard, sink: MemorySink) -> None:
    t = pg.FaceTemplate.wrap(
        [1.0, 2.0], subject="u-1", purposes="face.verification", ttl=timedelta(days=1)
    )
    with pg.purpose("face.verification.login"):
        with capture_audit() as events:
            t.reveal()
            with pytest.raises(pg.PurposeViolationError), pg.purpose("face.verification.payment"):
                t.restrict("face.verification.login").reveal()
        t.reveal()  # after the block: not captured
    assert [e.outcome for e in events] == [Outcome.GRANTED, Outcome.DENIED]
    assert events[0].template_ids == (t.id,)
    # The guard's own sink saw everything, captured or not, in one increasing sequence.
    assert len(sink.events) == 4
    assert sink.events[1:3] == events
    seqs = [e.seq for e in sink.events]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == 4
    assert pg.current_guard() is guard


def test_capture_audit_of_a_given_guard(clock: pg.FrozenClock) -> None:
    own = MemorySink()
    g = pg.Guard(clock=clock, audit=own, mode=pg.Mode.AUDIT)
    with capture_audit(g) as events:
        assert pg.current_guard().mode is pg.Mode.AUDIT
        assert pg.current_guard().clock is clock
        t = pg.FaceTemplate.wrap(
            [1.0], subject="u", purposes="face.verification", ttl=timedelta(days=1)
        )
        with pg.purpose("face.analytics"), pytest.warns(pg.PurposeWarning):
            t.reveal()
    assert [e.outcome for e in events] == [Outcome.GRANTED, Outcome.WOULD_DENY]
    assert own.events == events


def test_capture_audit_propagates_sink_failures(guard: pg.Guard) -> None:
    class Broken:
        def emit(self, event: object) -> None:
            raise OSError("down")

        def flush(self) -> None:
            pass

        def close(self) -> None:
            pass

    broken = guard.evolve(audit=Broken())
    with capture_audit(broken) as events, pytest.raises(pg.AuditError):
        pg.FaceTemplate.wrap([1.0], subject="u", purposes="face.liveness", ttl=timedelta(days=1))
    assert events == []


def test_frozen_clock_is_exported() -> None:
    assert FrozenClock is pg.FrozenClock
    c = FrozenClock(T0)
    assert c.advance(timedelta(hours=1)) == T0 + timedelta(hours=1)
    c.set(T0)
    assert c.now() == T0
    with pytest.raises(pg.PolicyError):
        FrozenClock(datetime(2026, 1, 1))
