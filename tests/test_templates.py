"""FaceTemplate: wrap validation, reveal, restrict, identity, and the no-escape list."""

from __future__ import annotations

import copy
import json
import logging
import pickle
import re
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, strategies as st

import purposeguard as pg
from purposeguard.audit import LoggingSink, MemorySink, Outcome
from purposeguard.testing import strategies as pst

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)

# Distinctive values: if any of these strings shows up in a message, a value leaked.
VALUES: tuple[float, ...] = (0.123456789, -7.65432198, 3.14159265358, 42.4242424242)


def value_strings(values: Sequence[float]) -> set[str]:
    """The ways a value could be printed: repr, short fixed-point, float32 repr."""
    out: set[str] = set()
    for v in values:
        out.add(repr(float(v)))
        out.add(f"{v:.4f}")
        out.add(str(np.float32(v)))
    return out


def assert_no_values(text: str, values: Sequence[float] = VALUES) -> None:
    for s in value_strings(values):
        assert s not in text, f"value {s!r} leaked into {text!r}"


def wrap(
    vector: object = VALUES,
    purposes: object = "face.verification",
    **kw: Any,
) -> pg.FaceTemplate:
    kw.setdefault("subject", "u-17")
    if "expires_at" not in kw:
        kw.setdefault("ttl", 365 * DAY)
    return pg.FaceTemplate.wrap(vector, purposes=purposes, **kw)  # type: ignore[arg-type]


@pytest.fixture
def t(guard: pg.Guard) -> pg.FaceTemplate:
    return wrap()


# -- wrap: the happy path ------------------------------------------------------------------


def test_wrap_sets_label_and_properties(guard: pg.Guard, clock: pg.FrozenClock) -> None:
    tpl = wrap(
        purposes=["face.verification", pg.Purpose("face.liveness")],
        prohibited="face.verification.payment",
        consent="c-9",
        jurisdictions=["pipl", "gdpr"],
    )
    assert re.fullmatch(r"[0-9a-f]{32}", tpl.id)
    assert tpl.subject == "u-17"
    assert tpl.purposes == {pg.Purpose("face.verification"), pg.Purpose("face.liveness")}
    assert tpl.label.prohibited == {pg.Purpose("face.verification.payment")}
    assert tpl.expires_at == T0 + 365 * DAY
    assert tpl.label.collected_at == clock.now()
    assert tpl.label.consent == "c-9"
    assert tpl.label.jurisdictions == {"pipl", "gdpr"}
    assert tpl.dim == len(VALUES)


def test_ids_are_unique(guard: pg.Guard) -> None:
    ids = {wrap().id for _ in range(50)}
    assert len(ids) == 50


def test_expires_at_is_converted_to_utc(guard: pg.Guard) -> None:
    cst = timezone(timedelta(hours=8))
    at = datetime(2026, 6, 1, 8, 0, tzinfo=cst)
    tpl = wrap(expires_at=at)
    assert tpl.expires_at == at
    assert tpl.expires_at.utcoffset() == timedelta(0)


def test_ttl_counts_from_the_guard_clock(guard: pg.Guard, clock: pg.FrozenClock) -> None:
    clock.advance(timedelta(days=10))
    tpl = wrap(ttl=timedelta(hours=3))
    assert tpl.expires_at == T0 + timedelta(days=10, hours=3)


# -- wrap: bad input, each with its error and no values in the message --------------------


BAD_VECTORS: list[tuple[str, object]] = [
    ("nan", [VALUES[0], float("nan"), VALUES[1]]),
    ("inf", [VALUES[0], float("inf"), VALUES[1]]),
    ("neg-inf", np.array([VALUES[0], -np.inf, VALUES[2]])),
    ("empty-list", []),
    ("empty-array", np.zeros(0)),
    ("2-D", [[VALUES[0], VALUES[1]], [VALUES[2], VALUES[3]]]),
    ("0-D", np.float64(VALUES[0])),
    ("scalar", VALUES[0]),
    ("strings", [str(v) for v in VALUES]),
    ("string", str(VALUES[0])),
    ("bytes", str(VALUES[0]).encode()),
    ("object-array", np.array(VALUES, dtype=object)),
    ("mixed-objects", [VALUES[0], object(), VALUES[1]]),
    ("complex", np.array(VALUES) + 1j),
    ("ragged", [[VALUES[0]], [VALUES[1], VALUES[2]]]),
    ("none", None),
]


@pytest.mark.parametrize(("case", "vector"), BAD_VECTORS, ids=[c for c, _ in BAD_VECTORS])
def test_bad_vectors_are_invalid(
    guard: pg.Guard, sink: MemorySink, case: str, vector: object
) -> None:
    with pytest.raises(pg.InvalidTemplateError) as exc:
        wrap(vector)
    assert isinstance(exc.value, ValueError)
    assert_no_values(str(exc.value))
    assert sink.events == []
    if case == "complex":
        assert "real" in str(exc.value)


@pytest.mark.parametrize(
    ("kw", "error"),
    [
        ({"expires_at": datetime(2027, 1, 1)}, pg.InvalidTemplateError),  # naive
        ({"expires_at": T0 - timedelta(seconds=1)}, pg.InvalidTemplateError),  # past
        ({"expires_at": T0}, pg.InvalidTemplateError),  # not after now
        ({"expires_at": "2027-01-01T00:00:00Z"}, pg.InvalidTemplateError),  # not a datetime
        ({"ttl": timedelta(0)}, pg.InvalidTemplateError),
        ({"ttl": timedelta(seconds=-1)}, pg.InvalidTemplateError),
        ({"ttl": 3600}, pg.InvalidTemplateError),  # not a timedelta
        ({"ttl": DAY, "expires_at": T0 + DAY}, pg.InvalidTemplateError),  # both
        ({"ttl": None}, pg.InvalidTemplateError),  # neither
        ({"subject": ""}, pg.InvalidTemplateError),
        ({"subject": "   "}, pg.InvalidTemplateError),
        ({"subject": 17}, pg.InvalidTemplateError),
        ({"collected_at": T0 + DAY}, pg.InvalidTemplateError),  # future collection
        ({"collected_at": datetime(2025, 1, 1)}, pg.InvalidTemplateError),  # naive
        ({"purposes": "Face.Verification"}, pg.PolicyError),
        ({"purposes": "face..verification"}, pg.PolicyError),
        ({"purposes": ""}, pg.PolicyError),
        ({"purposes": 12}, pg.PolicyError),
        ({"purposes": ["face.verification", 3]}, pg.PolicyError),
        ({"purposes": "face.verification.nonexistent"}, pg.PolicyError),
        ({"purposes": "retail.loyalty"}, pg.PolicyError),
        ({"purposes": []}, pg.PolicyError),
        ({"purposes": set()}, pg.PolicyError),
        ({"prohibited": "face.not_a_purpose"}, pg.PolicyError),
        ({"prohibited": "NOT VALID"}, pg.PolicyError),
    ],
)
def test_bad_arguments(
    guard: pg.Guard, sink: MemorySink, kw: dict[str, Any], error: type[Exception]
) -> None:
    args: dict[str, Any] = {"subject": "u-17", "purposes": "face.verification", "ttl": DAY}
    args.update(kw)
    if "expires_at" in kw and "ttl" not in kw:
        del args["ttl"]
    with pytest.raises(error) as exc:
        pg.FaceTemplate.wrap(np.array(VALUES), **args)
    assert isinstance(exc.value, ValueError)
    assert_no_values(str(exc.value))
    assert sink.events == []


def test_wrapping_a_template_is_refused(t: pg.FaceTemplate) -> None:
    with pytest.raises(pg.InvalidTemplateError) as exc:
        wrap(t)
    assert_no_values(str(exc.value))
    with pytest.raises(pg.InvalidTemplateError):
        wrap([t])


def test_the_constructor_is_refused() -> None:
    with pytest.raises(TypeError):
        pg.FaceTemplate(VALUES)


# -- the vector is copied and frozen; reveal -----------------------------------------------


def test_source_mutation_does_not_reach_the_template(guard: pg.Guard) -> None:
    src = np.array(VALUES)
    tpl = wrap(src)
    src[:] = 0.0
    with pg.purpose("face.verification.login"):
        out = tpl.reveal()
    np.testing.assert_array_equal(out, np.array(VALUES))


def test_source_list_mutation_does_not_reach_the_template(guard: pg.Guard) -> None:
    src = list(VALUES)
    tpl = wrap(src)
    src[0] = 0.0
    with pg.purpose("face.verification"):
        assert tpl.reveal()[0] == VALUES[0]


def test_reveal_is_a_read_only_copy(t: pg.FaceTemplate) -> None:
    with pg.purpose("face.verification.login"):
        a = t.reveal()
        b = t.reveal()
    assert not a.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        a[0] = 1.0
    assert a is not b
    assert not np.shares_memory(a, b)
    np.testing.assert_array_equal(a, np.array(VALUES))


def test_reveal_keeps_float_dtype_and_converts_ints(guard: pg.Guard) -> None:
    f32 = wrap(np.array(VALUES, dtype=np.float32))
    ints = wrap([1, 2, 3])
    with pg.purpose("face.verification"):
        assert f32.reveal().dtype == np.float32
        assert ints.reveal().dtype == np.float64
        np.testing.assert_array_equal(ints.reveal(), [1.0, 2.0, 3.0])


def test_reveal_needs_a_purpose(t: pg.FaceTemplate, sink: MemorySink) -> None:
    with pytest.raises(pg.PurposeViolationError) as exc:
        t.reveal()
    assert "no purpose" in str(exc.value)
    assert sink.events[-1].outcome is Outcome.DENIED


@pytest.mark.parametrize(
    ("allowed", "active"),
    [
        ("face.liveness", "face.liveness"),  # conforms, but no REVEAL for liveness
        ("face.verification", "face.identification"),  # does not conform
        ("face.verification", "face.analytics.demographics"),
    ],
)
def test_reveal_needs_a_purpose_permitting_reveal(
    guard: pg.Guard, allowed: str, active: str
) -> None:
    tpl = wrap(purposes=allowed)
    with pg.purpose(active), pytest.raises(pg.PurposeViolationError) as exc:
        tpl.reveal()
    assert tpl.id in str(exc.value)
    assert active in str(exc.value)
    assert_no_values(str(exc.value))


# -- restrict ------------------------------------------------------------------------------


def test_restrict_narrows_with_a_new_id(t: pg.FaceTemplate, sink: MemorySink) -> None:
    r = t.restrict("face.verification.login")
    assert r.id != t.id
    assert r != t
    assert r.purposes == {pg.Purpose("face.verification.login")}
    assert r.expires_at == t.expires_at
    assert r.label.lineage[-1] == "restrict"
    assert t.purposes == {pg.Purpose("face.verification")}  # the original is unchanged
    with pg.purpose("face.verification.login"):
        np.testing.assert_array_equal(r.reveal(), np.array(VALUES))
    with pg.purpose("face.verification.payment"), pytest.raises(pg.PurposeViolationError):
        r.reveal()


def test_restrict_cannot_broaden(guard: pg.Guard) -> None:
    tpl = wrap(purposes="face.verification.login")
    with pytest.raises(pg.PurposeViolationError):
        tpl.restrict("face.verification")
    with pytest.raises(pg.PurposeViolationError):
        tpl.restrict(["face.verification.login", "face.identification"])
    with pytest.raises(pg.PolicyError):
        tpl.restrict([])


def test_restrict_to_unknown_purpose_is_a_policy_error(guard: pg.Guard) -> None:
    tpl = wrap(purposes="face.verification")
    with pytest.raises(pg.PolicyError):
        tpl.restrict("face.verification.not_in_taxonomy")


# -- identity ------------------------------------------------------------------------------


def test_equality_and_hash_by_id(guard: pg.Guard) -> None:
    a = wrap()
    b = wrap()  # same values, same label: still a different template
    assert a == a
    assert a != b
    assert hash(a) == hash(a)
    assert len({a, b, a}) == 2
    assert {a: 1}[a] == 1
    assert a != VALUES
    assert (a == "x") is False


def test_templates_are_immutable(t: pg.FaceTemplate) -> None:
    with pytest.raises(AttributeError):
        t._label = None  # type: ignore[assignment]
    with pytest.raises(AttributeError):
        del t._id


# -- wrap is a COLLECT ---------------------------------------------------------------------


def test_wrap_for_the_bare_root_is_denied(guard: pg.Guard, sink: MemorySink) -> None:
    with pytest.raises(pg.PurposeViolationError):
        wrap(purposes="face")
    assert len(sink.events) == 1
    event = sink.events[0]
    assert event.operation is pg.Operation.COLLECT
    assert event.outcome is Outcome.DENIED
    assert event.purpose == pg.Purpose("face")


@pytest.mark.parametrize(
    "purposes",
    [
        "face.liveness",
        "face.commercial.sale",
        "face.analytics.counting",
        ["face", "face.liveness"],
    ],
)
def test_wrap_is_a_granted_collect(guard: pg.Guard, sink: MemorySink, purposes: object) -> None:
    tpl = wrap(purposes=purposes)
    assert len(sink.events) == 1
    event = sink.events[0]
    assert event.operation is pg.Operation.COLLECT
    assert event.outcome is Outcome.GRANTED
    assert event.template_ids == (tpl.id,)
    assert event.subjects == ("u-17",)
    assert event.purpose is not None
    assert pg.Operation.COLLECT in guard.taxonomy.operations(event.purpose)


def test_wrap_inside_a_scope_needs_the_active_purpose(guard: pg.Guard, sink: MemorySink) -> None:
    with pg.purpose("face.verification.login"):
        ok = wrap(purposes="face.verification")
        with pytest.raises(pg.PurposeViolationError):
            wrap(purposes="face.liveness")
    assert ok.purposes == {pg.Purpose("face.verification")}
    assert [e.outcome for e in sink.events] == [Outcome.GRANTED, Outcome.DENIED]
    assert {e.purpose for e in sink.events} == {pg.Purpose("face.verification.login")}


def test_wrap_inside_a_scope_whose_purpose_disallows_collect(guard: pg.Guard) -> None:
    # 'face' conforms to a label allowing 'face' but the root allows no COLLECT.
    with pg.purpose("face"), pytest.raises(pg.PurposeViolationError):
        wrap(purposes=["face", "face.liveness"])


def test_wrap_in_audit_mode_would_deny(audit_guard: pg.Guard, sink: MemorySink) -> None:
    with pytest.warns(pg.PurposeWarning, match="collect"):
        tpl = wrap(purposes="face")
    assert isinstance(tpl, pg.FaceTemplate)
    assert sink.events[-1].outcome is Outcome.WOULD_DENY


# -- no escape -------------------------------------------------------------------------


def _escapes() -> list[tuple[str, Callable[[pg.FaceTemplate], object]]]:
    cases: list[tuple[str, Callable[[pg.FaceTemplate], object]]] = [
        (f"pickle-{p}", lambda x, p=p: pickle.dumps(x, protocol=p))  # type: ignore[misc]
        for p in range(pickle.HIGHEST_PROTOCOL + 1)
    ]
    cases += [
        ("pickle-default", pickle.dumps),
        ("pickle-in-list", lambda x: pickle.dumps([x])),
        ("pickle-in-dict", lambda x: pickle.dumps({"t": x})),
        ("copy", copy.copy),
        ("deepcopy", copy.deepcopy),
        ("deepcopy-list", lambda x: copy.deepcopy([x])),
        ("deepcopy-dict", lambda x: copy.deepcopy({"k": (x,)})),
        ("np.asarray", np.asarray),
        ("np.array", np.array),
        ("np.array-list", lambda x: np.array([x], dtype=float)),
        ("np.asarray-float", lambda x: np.asarray(x, dtype=np.float64)),
        ("np.add", lambda x: np.add(x, 1)),
        ("np.multiply", lambda x: np.multiply(2.0, x)),
        ("array+t", lambda x: np.zeros(4) + x),
        ("np.dot", lambda x: np.dot(x, np.ones(4))),
        ("np.linalg.norm", np.linalg.norm),
        ("np.concatenate", lambda x: np.concatenate([x, x])),
        ("bytes", bytes),
        ("bytearray", bytearray),
        ("iter", iter),
        ("list", list),
        ("tuple", tuple),
        ("sum", sum),
        ("unpack", lambda x: [*x]),
        ("index-0", lambda x: x[0]),
        ("slice", lambda x: x[:]),
        ("contains", lambda x: 0.5 in x),
        ("len", len),
        ("float", float),
        ("int", int),
        ("complex", complex),
        ("tolist", lambda x: x.tolist()),
        ("tobytes", lambda x: x.tobytes()),
    ]
    return cases


ESCAPES = _escapes()


@pytest.mark.parametrize(("how", "escape"), ESCAPES, ids=[h for h, _ in ESCAPES])
def test_no_escape(t: pg.FaceTemplate, how: str, escape: Callable[[Any], object]) -> None:
    # Refused even under a purpose that permits REVEAL.
    with pg.purpose("face.verification.login"), pytest.raises(pg.AccessDeniedError) as exc:
        escape(t)
    message = str(exc.value)
    assert "reveal()" in message
    assert_no_values(message)
    assert_no_values(repr(exc.value))


def test_memoryview_is_refused(t: pg.FaceTemplate) -> None:
    expected: type[Exception] = TypeError if sys.version_info < (3, 12) else pg.AccessDeniedError
    with pytest.raises(expected) as exc:
        memoryview(t)
    assert_no_values(str(exc.value))


def test_buffer_consumers_are_refused(t: pg.FaceTemplate) -> None:
    with pytest.raises((TypeError, pg.AccessDeniedError)):
        np.frombuffer(t)  # type: ignore[call-overload]


def test_pickling_a_refused_template_leaves_no_partial_output(t: pg.FaceTemplate) -> None:
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        with pytest.raises(pg.AccessDeniedError):
            pickle.dumps(t, protocol=protocol)


def test_every_text_rendering_is_redacted(t: pg.FaceTemplate) -> None:
    renderings = [
        repr(t),
        str(t),
        format(t),
        format(t, ".3f"),
        f"{t}",
        f"{t!r}",
        f"{t:>80}",
        "{}".format(t),  # noqa: UP032
        "%s %r" % (t, t),  # noqa: UP031
        json.dumps(t, default=str),
        json.dumps({"t": [t]}, default=repr),
        str([t]),
        repr({"a": t}),
    ]
    for text in renderings:
        assert_no_values(text)
        assert t.id in text
        assert "redacted" in text


def test_json_without_default_refuses(t: pg.FaceTemplate) -> None:
    with pytest.raises(TypeError) as exc:
        json.dumps(t)
    assert_no_values(str(exc.value))


def test_logging_never_shows_values(t: pg.FaceTemplate, caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("app.faces")
    with caplog.at_level(logging.DEBUG):
        log.warning("template %s", t)
        log.info("template %r", t)
        log.error("template", extra={"tpl": t})
        log.debug(t)
        try:
            float(t)
        except pg.AccessDeniedError:
            log.exception("conversion failed for %s", t)
    assert len(caplog.records) == 5
    assert_no_values(caplog.text)
    for record in caplog.records:
        assert_no_values(record.getMessage())


def test_audit_logging_sink_never_shows_values(
    clock: pg.FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    g = pg.Guard(clock=clock, audit=LoggingSink())
    with caplog.at_level(logging.INFO, logger="purposeguard.audit"), pg.using(g):
        tpl = wrap()
        with pg.purpose("face.verification.login"):
            tpl.reveal()
        with pg.purpose("face.analytics"), pytest.raises(pg.PurposeViolationError):
            tpl.reveal()
    assert len(caplog.records) == 3
    assert [r.levelno for r in caplog.records] == [logging.INFO, logging.INFO, logging.WARNING]
    assert_no_values(caplog.text)
    for record in caplog.records:
        assert_no_values(str(record.__dict__.get("audit")))
        assert tpl.id in record.getMessage()


def _rendered(tpl: pg.FaceTemplate) -> list[str]:
    return [
        repr(tpl),
        str(tpl),
        format(tpl, "g"),
        f"{tpl!s}",
        json.dumps(tpl, default=str),
        json.dumps([tpl], default=repr),
    ]


@given(vector=pst.vectors(), dtype=st.sampled_from([np.float32, np.float64]))
def test_no_value_appears_in_any_rendering(
    vector: npt.NDArray[np.float32], dtype: type[np.floating[Any]]
) -> None:
    g = pg.Guard(clock=pg.FrozenClock(T0), audit=MemorySink())
    values = vector.astype(dtype)
    with pg.using(g):
        tpl = pg.FaceTemplate.wrap(
            values, subject="s-1", purposes="face.verification", ttl=30 * DAY
        )
    # Values print with a decimal point; ids are hex and the expiry has no fraction.
    shown = {str(v) for v in values if abs(float(v)) >= 0.01}
    shown |= {repr(float(v)) for v in values if abs(float(v)) >= 0.01}
    for text in _rendered(tpl):
        for s in shown:
            assert s not in text


@given(vector=pst.vectors())
def test_reveal_returns_exactly_the_wrapped_values(vector: npt.NDArray[np.float32]) -> None:
    g = pg.Guard(clock=pg.FrozenClock(T0), audit=MemorySink())
    with pg.using(g):
        tpl = pg.FaceTemplate.wrap(vector, subject="s-1", purposes="face.verification", ttl=DAY)
        with pg.purpose("face.verification.payment"):
            out = tpl.reveal()
    assert out.dtype == vector.dtype
    np.testing.assert_array_equal(out, vector)
    assert tpl.dim == vector.shape[0]


# -- odds and ends -------------------------------------------------------------------------


def test_truthiness_dtype_and_dim(guard: pg.Guard) -> None:
    tpl = wrap(np.array(VALUES, dtype=np.float32))
    assert bool(tpl) is True
    assert tpl.dtype == np.float32
    assert tpl.dim == 4


def test_collected_at_in_the_past_is_kept(guard: pg.Guard) -> None:
    tpl = wrap(collected_at=T0 - DAY, ttl=DAY)
    assert tpl.label.collected_at == T0 - DAY
    assert tpl.expires_at == T0 + DAY  # ttl counts from now, not from collection


def test_retention_cap_is_refused_not_clamped(clock: pg.FrozenClock) -> None:
    tax = pg.Taxonomy.default().extend("face.liveness", max_retention=timedelta(days=7))
    g = pg.Guard(taxonomy=tax, clock=clock, audit=MemorySink())
    with pg.using(g):
        assert wrap(purposes="face.liveness", ttl=timedelta(days=7)).expires_at == T0 + 7 * DAY
        with pytest.raises(pg.PolicyError, match="maximum retention") as exc:
            wrap(purposes="face.liveness", ttl=timedelta(days=8))
    assert (T0 + 7 * DAY).isoformat() in str(exc.value)


def test_oversized_vector_is_invalid(guard: pg.Guard) -> None:
    with pytest.raises(pg.InvalidTemplateError, match="at most"):
        wrap(np.zeros((1 << 20) + 1))


def test_direct_pickle_hooks_refuse(t: pg.FaceTemplate) -> None:
    with pytest.raises(pg.AccessDeniedError):
        t.__reduce__()
    with pytest.raises(pg.AccessDeniedError):
        t.__reduce_ex__(2)
    with pytest.raises(pg.AccessDeniedError):
        t.__getstate__()


def test_the_internal_vault_refuses_too(t: pg.FaceTemplate) -> None:
    vault = t._vault
    assert repr(vault) == "<redacted>"
    for escape in (pickle.dumps, copy.copy, copy.deepcopy):
        with pytest.raises(pg.AccessDeniedError):
            escape(vault)
