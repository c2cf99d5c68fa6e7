"""Differential tests: the guard against a deliberately naive reference evaluator.

The reference below is written from DESIGN.md's words (Labels; The guard), on plain
strings. It does not use ``Purpose.is_within``, ``Label.permits`` or the taxonomy's
computed operation sets: only the label's purpose names and the operations each
taxonomy node *declares* (``Taxonomy.to_mapping``).
"""

from __future__ import annotations

import random
from collections.abc import Collection, Iterable, Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import attrs
import pytest
from hypothesis import event, given, strategies as st

from purposeguard import (
    ConsentError,
    ExpiredTemplateError,
    FrozenClock,
    Guard,
    Label,
    Operation,
    PolicyError,
    Purpose,
    PurposeViolationError,
    Taxonomy,
)
from purposeguard.audit import MemorySink
from purposeguard.testing import strategies as pgst

T0 = datetime(2026, 1, 1, tzinfo=UTC)
US = timedelta(microseconds=1)


# -- the naive reference -------------------------------------------------------------


def within(p: str, q: str) -> bool:
    """p equals q or is a descendant of q (dotted names, compared as strings)."""
    return p == q or p.startswith(q + ".")


def ref_conforms(allowed: Iterable[str], prohibited: Iterable[str], p: str) -> bool:
    """Byun & Li: p within some allowed a, and for every prohibited q, p is neither
    within q nor an ancestor of q."""
    if not any(within(p, a) for a in allowed):
        return False
    return all(not within(p, q) and not within(q, p) for q in prohibited)


def ref_operations(declared: Mapping[str, Any], p: str) -> set[str]:
    """The operations of the nearest node at or above p that declares some; nothing if
    none does (a root that declares none allows nothing but DELETE)."""
    name = p
    while True:
        ops = declared.get(name, {}).get("operations")
        if ops is not None:
            return set(ops) - {"delete"}
        if "." not in name:
            return set()
        name = name.rsplit(".", 1)[0]


_DECLARED: dict[int, tuple[Taxonomy, dict[str, Any]]] = {}


def declared_operations(taxonomy: Taxonomy) -> dict[str, Any]:
    """Each node's own declaration, as the taxonomy's mapping states it (memoised)."""
    hit = _DECLARED.get(id(taxonomy))
    if hit is None or hit[0] is not taxonomy:
        if len(_DECLARED) > 64:
            _DECLARED.clear()
        hit = _DECLARED[id(taxonomy)] = (taxonomy, taxonomy.to_mapping()["purposes"])
    return hit[1]


def names(ps: Iterable[Purpose]) -> list[str]:
    return [str(p) for p in ps]


def reference(
    taxonomy: Taxonomy,
    label: Label,
    purpose: str | None,
    op: str | None,
    now: datetime,
    withdrawn: Collection[str] | None,
) -> bool:
    """Whether *op* on data under *label* for *purpose* is permitted, per DESIGN.md."""
    if op == "delete":
        return True  # erasure must always work
    if purpose is None:
        return False
    if not ref_conforms(names(label.allowed), names(label.prohibited), purpose):
        return False
    if op is not None and op not in ref_operations(declared_operations(taxonomy), purpose):
        return False
    if now >= label.expires_at:
        return False
    return not (withdrawn is not None and label.consent in withdrawn)


def ref_errors(
    taxonomy: Taxonomy,
    label: Label,
    purpose: str | None,
    op: str | None,
    now: datetime,
    withdrawn: Collection[str] | None,
) -> set[type[Exception]]:
    """Every exception class that some failed condition would justify."""
    out: set[type[Exception]] = set()
    if (
        purpose is None
        or not ref_conforms(names(label.allowed), names(label.prohibited), purpose)
        or (op is not None and op not in ref_operations(declared_operations(taxonomy), purpose))
    ):
        out.add(PurposeViolationError)
    if now >= label.expires_at:
        out.add(ExpiredTemplateError)
    if withdrawn is not None and label.consent in withdrawn:
        out.add(ConsentError)
    return out


def test_reference_on_hand_picked_cases() -> None:
    # The reference itself must be right: a few cases worked out from DESIGN.md.
    tax = Taxonomy.default()
    lab = Label(
        allowed=["face.verification", "face.identification"],
        prohibited="face.identification.realtime_remote",
        subject="u-1",
        expires_at=T0 + timedelta(days=1),
        consent="c-1",
    )
    r = reference
    assert r(tax, lab, "face.verification.login", "compare", T0, None)
    assert not r(tax, lab, "face.verification.login", "search", T0, None)
    assert r(tax, lab, "face.identification.closed_set_optin", "search", T0, None)
    assert not r(tax, lab, "face.identification.realtime_remote", "search", T0, None)
    assert not r(tax, lab, "face.identification", "search", T0, None)  # covers a prohibited
    assert not r(tax, lab, "face", "collect", T0, None)
    assert r(tax, lab, "face", "delete", T0, None)
    assert r(tax, lab, None, "delete", T0 + timedelta(days=9), {"c-1"})
    assert not r(tax, lab, None, None, T0, None)
    assert r(tax, lab, "face.verification", None, T0, None)
    assert not r(tax, lab, "face.verification", None, lab.expires_at, None)
    assert r(tax, lab, "face.verification", None, lab.expires_at - US, None)
    assert not r(tax, lab, "face.verification", None, T0, {"c-1"})
    assert r(tax, lab, "face.verification", None, T0, {"c-2"})
    assert not within("face.ab", "face.a")


# -- strategies ----------------------------------------------------------------------

CONFUSABLE = ["a", "ab", "a_b", "b", "ba", "a1"]


@st.composite
def confusable_taxonomies(draw: st.DrawFn) -> Taxonomy:
    """Taxonomies whose names are prefixes of each other as strings but not as paths
    (``a`` and ``ab``, ``a.b`` and ``a_b``), with random narrowing declarations."""
    leaves = draw(
        st.sets(
            st.lists(st.sampled_from(CONFUSABLE), min_size=1, max_size=3).map(".".join),
            min_size=1,
            max_size=8,
        )
    )
    paths: set[str] = set()
    for leaf in leaves:
        parts = leaf.split(".")
        paths.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    ceilings: dict[str, frozenset[Operation] | None] = {}
    tax = Taxonomy()
    for name in sorted(paths, key=lambda n: (n.count("."), n)):
        parent = name.rsplit(".", 1)[0] if "." in name else None
        ceiling = ceilings.get(parent) if parent is not None else None
        pool = sorted(ceiling) if ceiling is not None else list(Operation)
        ops: frozenset[Operation] | None = None
        if draw(st.booleans()):
            ops = frozenset(draw(st.sets(st.sampled_from(pool)))) if pool else frozenset()
        ceilings[name] = (ops - {Operation.DELETE}) if ops is not None else ceiling
        tax = tax.extend(name, operations=ops)
    return tax


def _pick(**choices: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """One of *choices*, picked by name (``st.one_of`` leans hard on its first branch)."""
    return st.sampled_from(sorted(choices)).flatmap(lambda k: choices[k])


any_taxonomy: st.SearchStrategy[Taxonomy] = _pick(
    default=st.just(Taxonomy.default()),
    random=pgst.taxonomies(),
    confusable=confusable_taxonomies(),
)


class Consents:
    """A ConsentLookup over a fixed set of withdrawn ids."""

    def __init__(self, withdrawn: Collection[str]) -> None:
        self.withdrawn = frozenset(withdrawn)

    def is_withdrawn(self, consent_id: str) -> bool:
        return consent_id in self.withdrawn


CONSENT_IDS = ["c-1", "c-22", "c-333"]


@st.composite
def labels_for(draw: st.DrawFn, tax: Taxonomy) -> Label:
    """Labels of *tax*, unexpired at T0, on one of a few consent ids (or none),
    about half of them with no prohibited purpose."""
    label = draw(pgst.labels(tax, now=T0))
    prohibited = label.prohibited if draw(st.booleans()) else frozenset()
    consent = draw(st.sampled_from([*CONSENT_IDS, None]))
    return attrs.evolve(label, prohibited=prohibited, consent=consent)


def guard_for(taxonomy: Taxonomy, now: datetime, withdrawn: Collection[str] | None) -> Guard:
    return Guard(
        taxonomy=taxonomy,
        clock=FrozenClock(now),
        audit=MemorySink(),
        consents=None if withdrawn is None else Consents(withdrawn),
    )


def opname(op: Operation | None) -> str | None:
    return None if op is None else op.value


# -- the differential test -----------------------------------------------------------


@given(any_taxonomy, st.data())
def test_guard_agrees_with_the_naive_reference(tax: Taxonomy, data: st.DataObject) -> None:
    # Random taxonomy and label; then every purpose (and none), every operation (and
    # none), clock times on both sides of the expiry boundary, and consent lookups
    # with the label's consent withdrawn or not.
    label = data.draw(labels_for(tax), label="label")
    e = label.expires_at
    drift = timedelta(seconds=data.draw(st.integers(-400 * 86400, 400 * 86400), label="drift"))
    other = data.draw(st.sampled_from(CONSENT_IDS), label="other consent")
    outcomes = set()
    for now in (e - US, e, e + drift):
        for withdrawn in (None, frozenset({other}), frozenset(CONSENT_IDS)):
            guard = guard_for(tax, now, withdrawn)
            for purpose in [None, *tax]:
                name = None if purpose is None else str(purpose)
                for op in [None, *Operation]:
                    expected = reference(tax, label, name, opname(op), now, withdrawn)
                    decision = guard.check(label, purpose, op)
                    assert decision.allowed is expected, (name, op, now, withdrawn)
                    assert bool(decision) is expected
                    assert decision.purpose == purpose
                    assert decision.operation is op
                    if expected:
                        assert decision.reasons == ()
                        assert decision.error is None
                    else:
                        assert decision.reasons, "a denial gives its reasons"
                        why = ref_errors(tax, label, name, opname(op), now, withdrawn)
                        assert decision.error in why
                    outcomes.add((expected, op is Operation.DELETE))
    event(f"outcomes: {sorted(outcomes)}")
    # Conformance alone agrees with the reference for every purpose of the taxonomy.
    for p in tax:
        assert label.permits(p) is ref_conforms(
            names(label.allowed), names(label.prohibited), str(p)
        )


@given(any_taxonomy, st.data())
def test_a_purpose_outside_the_taxonomy_is_a_policy_error(
    tax: Taxonomy, data: st.DataObject
) -> None:
    label = data.draw(pgst.labels(tax, now=T0))
    known = data.draw(pgst.purposes(tax))
    # A child the taxonomy does not list, or a sibling root that merely looks alike.
    unknown = Purpose(data.draw(st.sampled_from([f"{known}.zz_unknown", f"zz_{known}"])))
    assert unknown not in tax
    op = data.draw(st.none() | pgst.operations().filter(lambda o: o is not Operation.DELETE))
    with pytest.raises(PolicyError, match="unknown purpose"):
        guard_for(tax, T0, None).check(label, unknown, op)


# -- deny overrides allow ------------------------------------------------------------


@given(any_taxonomy, st.data())
def test_deny_overrides_allow(tax: Taxonomy, data: st.DataObject) -> None:
    label = data.draw(pgst.labels(tax, now=T0))
    p = data.draw(pgst.purposes(tax))
    related = [p, *p.ancestors(), *(q for q in tax if q.is_within(p))]
    # Allow p (or something above it) explicitly, and prohibit something on its path.
    a = data.draw(st.sampled_from([p, *p.ancestors()]))
    q = data.draw(st.sampled_from(related))
    lab = Label(
        allowed=label.allowed | {a},
        prohibited=label.prohibited | {q},
        subject=label.subject,
        expires_at=label.expires_at,
    )
    guard = guard_for(tax, T0, None)
    for op in [None, *Operation]:
        decision = guard.check(lab, p, op)
        if op is Operation.DELETE:
            assert decision.allowed
        else:
            assert not decision.allowed, (p, q, op)
            assert decision.error is PurposeViolationError


@given(any_taxonomy, st.data())
def test_adding_a_prohibition_never_permits_more(tax: Taxonomy, data: st.DataObject) -> None:
    label = data.draw(pgst.labels(tax, now=T0))
    extra = data.draw(st.sets(pgst.purposes(tax), min_size=1, max_size=3))
    stricter = Label(
        allowed=label.allowed,
        prohibited=label.prohibited | extra,
        subject=label.subject,
        expires_at=label.expires_at,
    )
    guard = guard_for(tax, T0, None)
    for p in tax:
        for op in Operation:
            if guard.check(stricter, p, op).allowed:
                assert guard.check(label, p, op).allowed


# -- order independence --------------------------------------------------------------


@given(any_taxonomy, st.data(), st.randoms(use_true_random=False))
def test_decision_does_not_depend_on_purpose_order(
    tax: Taxonomy, data: st.DataObject, rnd: random.Random
) -> None:
    pool = pgst.purposes(tax)
    allowed = data.draw(st.lists(pool, min_size=1, max_size=6))
    prohibited = data.draw(st.lists(pool, max_size=6))
    expires = T0 + timedelta(seconds=data.draw(st.integers(1, 10**8)))

    def build(order_a: list[Purpose], order_p: list[Any]) -> Label:
        return Label(allowed=order_a, prohibited=order_p, subject="u-1", expires_at=expires)

    first = build(allowed, prohibited)
    shuffled_a, shuffled_p = allowed[:], [str(q) for q in prohibited]
    rnd.shuffle(shuffled_a)
    rnd.shuffle(shuffled_p)
    second = build(list(reversed(shuffled_a)) + shuffled_a, shuffled_p)
    assert first == second
    assert first.to_bytes() == second.to_bytes()
    guard = guard_for(tax, T0, None)
    for p in tax:
        for op in [None, *Operation]:
            d1, d2 = guard.check(first, p, op), guard.check(second, p, op)
            assert d1 == d2
            assert str(d1) == str(d2)


# -- derivations never broaden -------------------------------------------------------


def assert_never_broader(tax: Taxonomy, derived: Label, inputs: Iterable[Label]) -> None:
    """Every access the derived label permits, each input permits, at every instant."""
    inputs = list(inputs)
    for now in [derived.expires_at - US, derived.expires_at]:
        for withdrawn in (None, frozenset({"c-1"})):
            guard = guard_for(tax, now, withdrawn)
            for p in tax:
                for op in [None, *Operation]:
                    if guard.check(derived, p, op).allowed:
                        for i in inputs:
                            assert guard.check(i, p, op).allowed, (p, op, now)


@given(any_taxonomy, st.data())
def test_restrict_never_broadens(tax: Taxonomy, data: st.DataObject) -> None:
    label = data.draw(pgst.labels(tax, now=T0))
    targets = data.draw(st.sets(pgst.purposes(tax), min_size=1, max_size=3))
    shift = data.draw(st.none() | st.integers(-400 * 86400, 86400))
    until = None if shift is None else label.expires_at + timedelta(seconds=shift)
    fits = all(any(within(str(t), str(a)) for a in label.allowed) for t in targets)
    try:
        r = label.restrict(targets, expires_at=until)
    except PurposeViolationError:
        assert not fits or (until is not None and until > label.expires_at)
        return
    except PolicyError:
        assert label.collected_at is not None
        assert until is not None
        assert until <= label.collected_at
        return
    assert fits
    assert until is None or until <= label.expires_at
    assert r.allowed == frozenset(targets)
    assert r.prohibited == label.prohibited
    assert r.expires_at == (label.expires_at if until is None else until)
    assert r.lineage[-1] == "restrict"
    for p in tax:
        if r.permits(p):
            assert label.permits(p)
    assert_never_broader(tax, r, [label])


@st.composite
def related_labels(draw: st.DrawFn, tax: Taxonomy, min_size: int = 1) -> list[Label]:
    """One to three labels of one subject, on one consent (or none)."""
    consent = draw(st.sampled_from(["c-1", None]))
    out = []
    each = pgst.labels(tax, now=T0, subject="u-1")
    for lab in draw(st.lists(each, min_size=min_size, max_size=3)):
        keep = draw(st.booleans())
        out.append(
            Label(
                allowed=lab.allowed,
                prohibited=lab.prohibited,
                subject=lab.subject,
                expires_at=lab.expires_at,
                collected_at=lab.collected_at,
                consent=consent if keep else None,
                jurisdictions=lab.jurisdictions,
                lineage=draw(st.lists(st.sampled_from(["wrap", "crop", "align"]), max_size=2)),
            )
        )
    return out


@given(any_taxonomy, st.data())
def test_combine_never_broadens(tax: Taxonomy, data: st.DataObject) -> None:
    labels = data.draw(related_labels(tax))
    candidates = {str(a) for lab in labels for a in lab.allowed}
    common = any(
        all(any(within(c, str(a)) for a in lab.allowed) for lab in labels) for c in candidates
    )
    try:
        combined = Label.combine(*labels, step="mean")
    except PolicyError:
        assert not common
        with pytest.raises(PolicyError):
            Label.combine(*reversed(labels))
        return
    assert common
    assert combined.prohibited == frozenset().union(*(lab.prohibited for lab in labels))
    assert combined.subject == "u-1"
    assert combined.lineage[-1] == "mean"
    assert set(combined.lineage) == {s for lab in labels for s in lab.lineage} | {"mean"}
    assert combined.jurisdictions == frozenset().union(*(lab.jurisdictions for lab in labels))
    consents = {lab.consent for lab in labels} - {None}
    assert combined.consent == (consents.pop() if consents else None)
    assert combined.expires_at == min(lab.expires_at for lab in labels)
    # Conformance of the derived label is exactly the intersection of the inputs'.
    for p in sorted(set(names(tax)) | candidates):
        both = all(ref_conforms(names(lab.allowed), names(lab.prohibited), p) for lab in labels)
        assert combined.permits(p) is both, p
    assert_never_broader(tax, combined, labels)
    # The order of the inputs does not matter to what the derived label permits.
    backward = Label.combine(*reversed(labels), step="mean")
    assert backward.expires_at == combined.expires_at
    assert backward.prohibited == combined.prohibited
    assert backward.allowed == combined.allowed


# -- the expiry boundary -------------------------------------------------------------


@given(any_taxonomy, st.data())
def test_expiry_boundary(tax: Taxonomy, data: st.DataObject) -> None:
    usable = [p for p in tax if tax.operations(p)]
    if not usable:
        tax = tax.extend("zz_usable", operations=["collect"])
        usable = [Purpose("zz_usable")]
    p = data.draw(st.sampled_from(usable))
    op = data.draw(st.sampled_from(sorted(tax.operations(p))))
    expires = T0 + timedelta(microseconds=data.draw(st.integers(1, 10**13)))
    label = Label(allowed=p, subject="u-1", expires_at=expires)
    clock = FrozenClock(expires - US)
    guard = Guard(taxonomy=tax, clock=clock, audit=MemorySink())

    assert guard.check(label, p, op).allowed
    assert guard.check(label, p, None).allowed
    clock.set(expires)
    at = guard.check(label, p, op)
    assert not at.allowed
    assert at.error is ExpiredTemplateError
    assert not guard.check(label, p, None).allowed
    assert guard.check(label, p, Operation.DELETE).allowed, "erasure always works"
    clock.advance(data.draw(st.timedeltas(min_value=US, max_value=timedelta(days=3650))))
    assert not guard.check(label, p, op).allowed
    assert guard.check(label, None, Operation.DELETE).allowed
    clock.set(expires - US)
    assert guard.check(label, p, op).allowed, "the boundary is not sticky"


def test_expiry_boundary_in_another_time_zone() -> None:
    tz = timezone(timedelta(hours=-7))
    expires = datetime(2026, 6, 1, 5, 0, 0, 1, tzinfo=tz)
    label = Label(allowed="face.verification", subject="u-1", expires_at=expires)
    clock = FrozenClock(expires - US)
    guard = Guard(clock=clock, audit=MemorySink())
    assert guard.check(label, "face.verification.login", Operation.COMPARE).allowed
    clock.set(expires.astimezone(UTC))
    assert not guard.check(label, "face.verification.login", Operation.COMPARE).allowed
