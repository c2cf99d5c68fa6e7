"""Labels: construction, restrict, combine, and the canonical byte encoding."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import assume, example, given, strategies as st

from purposeguard import Label, PolicyError, Purpose, PurposeViolationError
from purposeguard.testing import strategies as pgst

T0 = datetime(2026, 1, 1, tzinfo=UTC)
LATER = T0 + timedelta(days=365)


def make(**kw: Any) -> Label:
    args: dict[str, Any] = {
        "allowed": "face.verification",
        "subject": "u-17",
        "expires_at": LATER,
    }
    args.update(kw)
    return Label(**args)


# -- construction --------------------------------------------------------------------


def test_fields_are_normalised() -> None:
    lab = make(
        allowed=["face.verification.login", Purpose("face.identification")],
        prohibited="face.identification.realtime_remote",
        expires_at=datetime(2027, 1, 1, 8, tzinfo=timezone(timedelta(hours=8))),
        collected_at=T0,
        consent="c-9",
        jurisdictions="pipl",
        lineage=["a", "b"],
    )
    assert lab.allowed == {Purpose("face.verification.login"), Purpose("face.identification")}
    assert lab.prohibited == {Purpose("face.identification.realtime_remote")}
    assert lab.expires_at == datetime(2027, 1, 1, tzinfo=UTC)
    assert lab.expires_at.tzinfo is UTC
    assert lab.jurisdictions == {"pipl"}
    assert lab.lineage == ("a", "b")
    assert lab.consent == "c-9"
    assert lab.subject == "u-17"


def test_labels_are_immutable_and_compare_by_value() -> None:
    a = make(allowed=["face.liveness", "face.analytics"])
    b = make(allowed=("face.analytics", "face.liveness"))
    assert a == b
    assert hash(a) == hash(b)
    assert a != make(allowed="face.liveness")
    with pytest.raises(AttributeError):
        a.subject = "other"  # type: ignore[misc]


@pytest.mark.parametrize("allowed", [[], (), set(), frozenset()])
def test_empty_allowed_is_refused(allowed: Any) -> None:
    with pytest.raises(PolicyError, match="at least one allowed purpose"):
        make(allowed=allowed)


@pytest.mark.parametrize("bad", ["Face", "face..x", "", 5, None, ["face", 3]])
def test_malformed_purposes_are_refused(bad: Any) -> None:
    with pytest.raises(PolicyError):
        make(allowed=bad)
    with pytest.raises(PolicyError):
        make(prohibited=bad if bad is not None else [None])


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(PolicyError, match="timezone-aware"):
        make(expires_at=datetime(2027, 1, 1))
    with pytest.raises(PolicyError, match="timezone-aware"):
        make(collected_at=datetime(2025, 1, 1))
    with pytest.raises(PolicyError, match="datetime"):
        make(expires_at="2027-01-01T00:00:00Z")


def test_expiry_out_of_utc_range_is_a_policy_error() -> None:
    far = datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5)))
    with pytest.raises(PolicyError, match="expires_at"):
        make(expires_at=far)


@pytest.mark.parametrize("subject", ["", "   ", "\t\n", None, 17, b"u-1"])
def test_empty_or_non_str_subject_is_refused(subject: Any) -> None:
    with pytest.raises(PolicyError, match="subject"):
        make(subject=subject)


@pytest.mark.parametrize("consent", ["", " ", 9, b"c-9"])
def test_bad_consent_is_refused(consent: Any) -> None:
    with pytest.raises(PolicyError, match="consent"):
        make(consent=consent)


@pytest.mark.parametrize("delta", [timedelta(0), timedelta(microseconds=1), timedelta(days=9)])
def test_expiry_must_be_after_collection(delta: timedelta) -> None:
    with pytest.raises(PolicyError, match="after collected_at"):
        make(collected_at=LATER, expires_at=LATER - delta)
    assert make(collected_at=LATER - delta - timedelta(microseconds=1)).expires_at == LATER


@pytest.mark.parametrize(
    ("field", "bad"),
    [
        ("jurisdictions", [""]),
        ("jurisdictions", [1]),
        ("jurisdictions", 5),
        ("lineage", [1]),
        ("lineage", 5),
    ],
)
def test_bad_jurisdictions_and_lineage_are_refused(field: str, bad: Any) -> None:
    with pytest.raises(PolicyError, match=field):
        make(**{field: bad})


def test_a_single_lineage_step_given_as_str_is_one_step() -> None:
    assert make(lineage="mean").lineage == ("mean",)


@pytest.mark.parametrize("field", ["subject", "consent", "jurisdictions", "lineage"])
def test_strings_that_cannot_be_encoded_are_refused(field: str) -> None:
    value: Any = "u-\ud800" if field in {"subject", "consent"} else ["\udfff"]
    with pytest.raises(PolicyError, match=field):
        make(**{field: value})


# -- conformance ---------------------------------------------------------------------


def test_permits_follows_byun_li() -> None:
    lab = make(
        allowed=["face.verification", "face.identification"],
        prohibited=["face.identification.realtime_remote"],
    )
    assert lab.permits("face.verification")
    assert lab.permits(Purpose("face.verification.login"))
    assert lab.permits("face.identification.closed_set_optin")
    assert not lab.permits("face.identification.realtime_remote")
    assert not lab.permits("face.identification.realtime_remote.x")
    # An ancestor of a prohibited purpose covers it: deny overrides allow.
    assert not lab.permits("face.identification")
    assert not lab.permits("face")
    assert not lab.permits("face.analytics")
    assert lab.why_not("face.verification.login") is None
    why = lab.why_not("face.identification")
    assert why is not None
    assert "deny overrides allow" in why
    why = lab.why_not("face.analytics")
    assert why is not None
    assert "not within" in why
    assert lab.is_expired(LATER)
    assert not lab.is_expired(LATER - timedelta(microseconds=1))


# -- restrict ------------------------------------------------------------------------


def test_restrict_narrows() -> None:
    lab = make(
        allowed=["face.verification", "face.analytics"],
        prohibited="face.analytics.emotion",
        lineage=["wrap"],
    )
    r = lab.restrict("face.verification.login")
    assert r.allowed == {Purpose("face.verification.login")}
    assert r.prohibited == lab.prohibited
    assert r.expires_at == lab.expires_at
    assert r.lineage == ("wrap", "restrict")
    assert not r.permits("face.verification.payment")
    assert r.subject == lab.subject
    assert lab.allowed == {Purpose("face.verification"), Purpose("face.analytics")}
    same = lab.restrict(["face.verification", "face.analytics"])
    assert same.allowed == lab.allowed


def test_restrict_to_an_earlier_expiry() -> None:
    lab = make(collected_at=T0)
    r = lab.restrict("face.verification", expires_at=T0 + timedelta(days=1))
    assert r.expires_at == T0 + timedelta(days=1)
    with pytest.raises(PolicyError):
        lab.restrict("face.verification", expires_at=T0)  # not after collection


@pytest.mark.parametrize(
    "purposes",
    [
        "face",
        "face.identification",
        ["face.verification.login", "face.analytics"],
        "face.verification_extra",
    ],
)
def test_restrict_cannot_broaden(purposes: Any) -> None:
    lab = make(allowed="face.verification")
    with pytest.raises(PurposeViolationError, match="broaden"):
        lab.restrict(purposes)


def test_restrict_cannot_move_expiry_later() -> None:
    lab = make()
    with pytest.raises(PurposeViolationError, match="later"):
        lab.restrict("face.verification", expires_at=LATER + timedelta(microseconds=1))
    with pytest.raises(PolicyError, match="timezone-aware"):
        lab.restrict("face.verification", expires_at=datetime(2026, 6, 1))


def test_restrict_needs_a_purpose() -> None:
    with pytest.raises(PolicyError, match="at least one"):
        make().restrict([])
    with pytest.raises(PolicyError):
        make().restrict("Face")


# -- combine -------------------------------------------------------------------------


def test_combine_takes_the_narrowest_common_purposes() -> None:
    a = make(
        allowed=["face.verification", "face.analytics.counting"],
        prohibited="face.verification.payment",
        expires_at=LATER,
        collected_at=T0,
        consent="c-9",
        jurisdictions="pipl",
        lineage=["wrap", "align"],
    )
    b = make(
        allowed=["face.verification.login", "face.analytics", "face.liveness"],
        prohibited="face.analytics.counting.door",
        expires_at=LATER - timedelta(days=1),
        collected_at=T0 + timedelta(days=1),
        consent=None,
        jurisdictions="gdpr",
        lineage=["wrap", "crop"],
    )
    c = Label.combine(a, b, step="mean")
    assert c.allowed == {Purpose("face.verification.login"), Purpose("face.analytics.counting")}
    assert c.prohibited == {
        Purpose("face.verification.payment"),
        Purpose("face.analytics.counting.door"),
    }
    assert c.expires_at == LATER - timedelta(days=1)
    assert c.collected_at == T0
    assert c.consent == "c-9"
    assert c.jurisdictions == {"pipl", "gdpr"}
    assert c.lineage == ("wrap", "align", "crop", "mean")
    assert c.subject == "u-17"
    assert not c.permits("face.analytics.counting")  # an ancestor of a prohibited one
    assert c.permits("face.verification.login")


def test_combine_of_one_label() -> None:
    a = make(lineage=["wrap"])
    assert Label.combine(a) == a
    assert Label.combine(a, step="t").lineage == ("wrap", "t")


def test_combine_refuses_different_subjects() -> None:
    with pytest.raises(PolicyError, match="different subjects"):
        Label.combine(make(subject="u-1"), make(subject="u-2"))


def test_combine_refuses_different_consents() -> None:
    with pytest.raises(PolicyError, match="different consents"):
        Label.combine(make(consent="c-1"), make(consent="c-2"))


def test_combine_refuses_labels_without_a_common_purpose() -> None:
    with pytest.raises(PolicyError, match="no purpose in common"):
        Label.combine(make(allowed="face.verification"), make(allowed="face.identification"))
    with pytest.raises(PolicyError, match="no purpose in common"):
        Label.combine(
            make(allowed=["face.verification", "face.liveness"]),
            make(allowed="face.liveness.x"),
            make(allowed="face.verification.login"),
        )
    with pytest.raises(PolicyError, match="at least one"):
        Label.combine()


def test_combine_with_a_prefix_lookalike_has_nothing_in_common() -> None:
    with pytest.raises(PolicyError, match="no purpose in common"):
        Label.combine(make(allowed="face.a"), make(allowed="face.ab"))


# -- encoding ------------------------------------------------------------------------

_ZONES = st.builds(
    timezone,
    st.timedeltas(min_value=timedelta(hours=-23, minutes=59), max_value=timedelta(hours=23)),
)
_TEXT = st.text(min_size=1, max_size=12).filter(lambda s: bool(s.strip()))


@st.composite
def rich_labels(draw: st.DrawFn) -> Label:
    """Labels with arbitrary text, time zones and instants across the whole range."""
    expires = draw(
        st.datetimes(
            min_value=datetime(1, 1, 3), max_value=datetime(9999, 12, 30), timezones=_ZONES
        )
    )
    collected = draw(
        st.none()
        | st.timedeltas(min_value=timedelta(microseconds=1), max_value=timedelta(days=1)).map(
            lambda d: expires - d
        )
    )
    return Label(
        allowed=draw(st.sets(pgst.purposes(), min_size=1, max_size=4)),
        prohibited=draw(st.sets(pgst.purposes(), max_size=3)),
        subject=draw(_TEXT),
        expires_at=expires,
        collected_at=collected,
        consent=draw(st.none() | _TEXT),
        jurisdictions=draw(st.sets(st.text(min_size=1, max_size=6), max_size=3)),
        lineage=draw(st.lists(st.text(max_size=6), max_size=4)),
    )


@given(rich_labels())
@example(make(expires_at=datetime(5, 1, 1, tzinfo=UTC)))
@example(make(expires_at=datetime(999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)))
@example(make(expires_at=datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)))
def test_to_bytes_round_trips(lab: Label) -> None:
    data = lab.to_bytes()
    back = Label.from_bytes(data)
    assert back == lab  # so the encoding is injective
    assert back.to_bytes() == data
    assert Label.from_bytes(bytearray(data)) == lab  # type: ignore[arg-type]
    assert Label.from_bytes(memoryview(data)) == lab  # type: ignore[arg-type]


@given(rich_labels(), st.randoms(use_true_random=False))
def test_to_bytes_is_deterministic(lab: Label, rnd: random.Random) -> None:
    # The same label built from its parts in another order, in another time zone.
    allowed = sorted(lab.allowed)
    prohibited = sorted(lab.prohibited)
    jurisdictions = sorted(lab.jurisdictions)
    rnd.shuffle(allowed)
    rnd.shuffle(prohibited)
    rnd.shuffle(jurisdictions)
    tz = timezone(timedelta(hours=rnd.randint(-12, 12)))
    try:
        shifted = lab.expires_at.astimezone(tz)
    except OverflowError:
        shifted = lab.expires_at
    twin = Label(
        allowed=allowed,
        prohibited=prohibited,
        subject=lab.subject,
        expires_at=shifted,
        collected_at=lab.collected_at,
        consent=lab.consent,
        jurisdictions=jurisdictions,
        lineage=list(lab.lineage),
    )
    assert twin == lab
    assert twin.to_bytes() == lab.to_bytes()


def test_encoding_is_canonical_json() -> None:
    lab = make(
        allowed=["face.verification", "face.analytics"],
        expires_at=datetime(2027, 1, 1, 8, tzinfo=timezone(timedelta(hours=8))),
        consent="c-9",
        lineage=["wrap"],
    )
    assert lab.to_bytes() == (
        b'{"allowed":["face.analytics","face.verification"],"collected_at":null,'
        b'"consent":"c-9","expires_at":"2027-01-01T00:00:00.000000Z","jurisdictions":[],'
        b'"lineage":["wrap"],"prohibited":[],"subject":"u-17","v":1}'
    )


def _dumps(d: dict[str, Any]) -> bytes:
    # ASCII escapes: a lone surrogate arrives as the JSON escape \ud800.
    return json.dumps(d, sort_keys=True, separators=(",", ":")).encode()


def _mutations() -> list[tuple[str, Any]]:
    return [
        ("v", 2),
        ("v", True),
        ("v", 1.0),
        ("v", "1"),
        ("allowed", []),
        ("allowed", "face.verification"),
        ("allowed", ["face.verification", "face.verification"]),
        ("allowed", ["face.verification", "face.analytics"]),  # not sorted
        ("allowed", ["Face"]),
        ("allowed", [["face"]]),
        ("allowed", {"face.verification": 1}),
        ("allowed", None),
        ("prohibited", 5),
        ("subject", ""),
        ("subject", 17),
        ("subject", None),
        ("subject", "u-\ud800"),
        ("expires_at", "2027-01-01T00:00:00Z"),
        ("expires_at", "2027-01-01T00:00:00.000000+00:00"),
        ("expires_at", "2027-01-01T08:00:00.000000+08:00"),
        ("expires_at", "2027-01-01T00:00:00.000000"),
        ("expires_at", "not a date"),
        ("expires_at", 1798761600),
        ("expires_at", None),
        ("collected_at", "2030-01-01T00:00:00.000000Z"),  # after expiry
        ("collected_at", 0),
        ("consent", ""),
        ("consent", 9),
        ("consent", "c-\udfff"),
        ("jurisdictions", "pipl"),
        ("jurisdictions", [["pipl"]]),
        ("jurisdictions", ["pipl", "gdpr"]),  # not sorted
        ("jurisdictions", [""]),
        ("jurisdictions", ["\ud800"]),
        ("lineage", "wrap"),
        ("lineage", [1]),
        ("lineage", [{"a": 1}]),
        ("lineage", ["\ud800"]),
        ("lineage", None),
    ]


@pytest.mark.parametrize(("key", "value"), _mutations())
def test_from_bytes_refuses_bad_fields(key: str, value: Any) -> None:
    d = make(jurisdictions=["gdpr", "pipl"]).to_dict()
    d[key] = value
    with pytest.raises(PolicyError):
        Label.from_bytes(_dumps(d))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"null",
        b"[]",
        b"{}",
        b"1",
        b'"label"',
        b"\xff\xfe",
        b"[" * 100_000,
        b'{"a":' * 50_000,
        b"NaN",
    ],
)
def test_from_bytes_refuses_malformed_input(data: bytes) -> None:
    with pytest.raises(PolicyError):
        Label.from_bytes(data)


def test_from_bytes_refuses_non_canonical_forms() -> None:
    lab = make(jurisdictions=["gdpr", "pipl"], consent="c-9")
    d = lab.to_dict()
    good = lab.to_bytes()
    assert Label.from_bytes(good) == lab
    variants = [
        json.dumps(d, sort_keys=True).encode(),  # spaces
        json.dumps(d, separators=(",", ":")).encode(),  # key order
        json.dumps(d, sort_keys=True, separators=(",", ":"), indent=1).encode(),
        good + b"\n",
        b" " + good,
        good.replace(b'"v":1', b'"v":1,"v":1'),
        good.replace(b"u-17", b"u\\u002d17"),  # an escape for a plain character
        good[:-1] + b',"extra":1}',
        good.replace(b'"v":1', b'"v":1.0'),
        good.decode().encode("utf-16"),
    ]
    for data in variants:
        assert data != good
        with pytest.raises(PolicyError):
            Label.from_bytes(data)


def test_from_bytes_refuses_missing_fields() -> None:
    d = make().to_dict()
    for key in list(d):
        partial = {k: v for k, v in d.items() if k != key}
        with pytest.raises(PolicyError):
            Label.from_bytes(_dumps(partial))


def test_from_bytes_refuses_non_bytes() -> None:
    for bad in ["{}", None, 3.5, object()]:
        with pytest.raises(PolicyError):
            Label.from_bytes(bad)  # type: ignore[arg-type]


@given(st.binary(max_size=300))
def test_from_bytes_fuzz_random_bytes_raises_only_policy_error(data: bytes) -> None:
    try:
        lab = Label.from_bytes(data)
    except PolicyError:
        return
    assert lab.to_bytes() == data  # only canonical encodings are accepted


@given(rich_labels(), st.data())
def test_from_bytes_fuzz_mutated_encodings(lab: Label, data: st.DataObject) -> None:
    raw = bytearray(lab.to_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        action = data.draw(st.sampled_from(["flip", "insert", "delete"]))
        i = data.draw(st.integers(0, max(len(raw) - 1, 0)))
        if action == "flip" and raw:
            raw[i] = data.draw(st.integers(0, 255))
        elif action == "insert":
            raw.insert(i, data.draw(st.integers(0, 255)))
        elif raw:
            del raw[i]
    try:
        back = Label.from_bytes(bytes(raw))
    except PolicyError:
        return
    assert back.to_bytes() == bytes(raw)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
        max_leaves=10,
    ),
    st.sampled_from(sorted(make().to_dict())),
)
def test_from_bytes_fuzz_field_values(value: Any, key: str) -> None:
    d = make().to_dict()
    assume(d[key] != value)
    d[key] = value
    try:
        raw = json.dumps(d, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except ValueError:  # e.g. an integer too long to print
        return
    try:
        back = Label.from_bytes(raw.encode("utf-8", "surrogatepass"))
    except PolicyError:
        return
    assert back.to_bytes() == raw.encode("utf-8")
