"""purposeguard.integrations.face_recognition, on real faces and on synthetic vectors.

The real faces come from scikit-image (see conftest.py), encoded once per session with
`face_recognition` itself; the adapter's results are compared with those. Matching
semantics at exact thresholds and the permission property use synthetic 128-d vectors.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import math
import re
import subprocess
import sys
import warnings
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

import purposeguard as pg
from purposeguard._template import as_vector
from purposeguard.audit import MemorySink, Outcome
from purposeguard.integrations import face_recognition as pfr
from purposeguard.policy import CollectionContext, ConsentRegistry, Policy
from purposeguard.stores import GuardedStore, MemoryBackend, SQLiteBackend
from purposeguard.testing import capture_audit, strategies as pst
from tests.conftest import T0

from .conftest import LFW_BOX, Faces

COMPARE = pg.Operation.COMPARE
SEARCH = pg.Operation.SEARCH
COLLECT = pg.Operation.COLLECT

VERIFICATION = "face.verification"
LOGIN = "face.verification.login"
OPTIN = "face.identification.closed_set_optin"
BOTH = (VERIFICATION, OPTIN)
TTL = timedelta(days=30)
DIM = pfr.ENCODING_DIM

Vector = npt.NDArray[np.float64]
Events = list[tuple[pg.Operation | None, str, tuple[str, ...]]]


def wrap(
    values: npt.ArrayLike,
    subject: str,
    purposes: str | Sequence[str] = BOTH,
    *,
    ttl: timedelta = TTL,
) -> pg.FaceTemplate:
    """A template of *values* collected under the guard in force."""
    return pg.FaceTemplate.wrap(values, subject=subject, purposes=purposes, ttl=ttl)


def summary(events: Sequence[Any]) -> Events:
    """(operation, outcome, template ids) of each audit event."""
    return [(e.operation, str(e.outcome), tuple(e.template_ids)) for e in events]


def synthetic(offset: float = 0.0) -> Vector:
    """A 128-d vector that differs from ``synthetic(0)`` by exactly *offset* (entry 0)."""
    v = np.zeros(DIM)
    v[1] = 0.25
    v[0] = offset
    return v


def encoder(purposes: str | Sequence[str] = BOTH, **kw: Any) -> pfr.FaceEncoder:
    """An encoder for *purposes* with a 30-day ttl unless *kw* says otherwise."""
    if "expires_at" not in kw:
        kw.setdefault("ttl", TTL)
    return pfr.FaceEncoder(purposes, **kw)


def revealed(t: pg.FaceTemplate, purpose: str = VERIFICATION) -> Vector:
    """The values of *t*, revealed under *purpose*."""
    with pg.purpose(purpose):
        return np.asarray(t.reveal(), dtype=np.float64)


# -- collection ---------------------------------------------------------------------------


def test_encode_one_collects_one_labelled_template(
    guard: pg.Guard, clock: pg.FrozenClock, faces: Faces
) -> None:
    enc = encoder(prohibited="face.commercial", jurisdictions=["gdpr", "bipa"])
    with capture_audit() as events:
        # The non-contiguous view: face_recognition itself finds no face in it.
        t = enc.encode_one(faces.crop_view, subject="astro", consent="c-7")
    assert isinstance(t, pg.FaceTemplate)
    assert t.dim == DIM
    assert t.purposes == {pg.Purpose(p) for p in BOTH}
    assert t.label.prohibited == {pg.Purpose("face.commercial")}
    assert t.label.jurisdictions == {"gdpr", "bipa"}
    assert t.subject == "astro"
    assert t.label.consent == "c-7"
    assert t.label.collected_at == T0
    assert t.expires_at == T0 + TTL
    assert summary(events) == [(COLLECT, "granted", (t.id,))]
    assert events[0].subjects == ("astro",)
    np.testing.assert_array_equal(revealed(t), faces.enc_crop)


def test_expiry_comes_from_ttl_on_the_guard_clock_or_from_expires_at(
    guard: pg.Guard, clock: pg.FrozenClock, faces: Faces
) -> None:
    clock.advance(timedelta(days=3))
    by_ttl = encoder(ttl=timedelta(hours=5)).encode_one(
        faces.lfw_rgb[0], subject="u", face_location=LFW_BOX
    )
    assert by_ttl.expires_at == T0 + timedelta(days=3, hours=5)
    fixed = T0 + timedelta(days=9)
    by_date = encoder(expires_at=fixed).encode_one(
        faces.lfw_rgb[0], subject="u", face_location=LFW_BOX
    )
    assert by_date.expires_at == fixed
    assert by_date.label.collected_at == T0 + timedelta(days=3)


def test_encode_collects_every_face_with_one_event_each(guard: pg.Guard, faces: Faces) -> None:
    with capture_audit() as events:
        found = encoder().encode(faces.full, subject="crowd")
    assert len(found) == 2
    assert summary(events) == [(COLLECT, "granted", (t.id,)) for t in found]
    assert all(t.subject == "crowd" and t.dim == DIM for t in found)
    assert len({t.id for t in found}) == 2
    for t, expected in zip(found, faces.enc_full, strict=True):
        np.testing.assert_array_equal(revealed(t), expected)


def test_encode_with_face_locations_skips_the_detector(
    guard: pg.Guard, faces: Faces, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_detection(self: object, image: object) -> list[pfr.FaceLocation]:
        raise AssertionError("the detector ran although the boxes were given")

    monkeypatch.setattr(pfr.FaceEncoder, "locate", no_detection)
    # Boxes may come as a numpy array (numpy integers).
    boxes = np.array([faces.full_boxes[0]], dtype=np.int64)
    (t,) = encoder().encode(faces.full, subject="astro", face_locations=boxes)
    np.testing.assert_array_equal(revealed(t), faces.enc_full[0])
    # The face box of the full image and of the crop hold the same pixels.
    np.testing.assert_array_equal(revealed(t), faces.enc_crop)


def test_encode_one_picks_the_box_given_by_face_location(guard: pg.Guard, faces: Faces) -> None:
    # Two detections in the full image: choosing one is allowed, and it is the one encoded.
    patch = encoder().encode_one(faces.full, subject="patch", face_location=faces.full_boxes[1])
    np.testing.assert_array_equal(revealed(patch), faces.enc_full[1])
    assert not np.array_equal(revealed(patch), faces.enc_full[0])


def test_encode_one_refuses_two_faces(guard: pg.Guard, faces: Faces) -> None:
    with capture_audit() as events, pytest.raises(pfr.FaceCountError) as info:
        encoder().encode_one(faces.full, subject="astro")
    assert info.value.found == 2
    assert isinstance(info.value, pg.InvalidTemplateError)
    assert "2 faces" in str(info.value)
    assert events == []


def test_no_face_gives_nothing(guard: pg.Guard) -> None:
    blank = np.full((120, 160, 3), 128, dtype=np.uint8)
    enc = encoder()
    with capture_audit() as events:
        assert enc.locate(blank) == []
        assert enc.encode(blank, subject="nobody") == []
        with pytest.raises(pfr.FaceCountError) as info:
            enc.encode_one(blank, subject="nobody")
    assert info.value.found == 0
    assert "no face" in str(info.value)
    assert events == []


def test_locate_returns_the_detector_boxes(fr: ModuleType, faces: Faces) -> None:
    assert encoder().locate(faces.full) == faces.full_boxes
    assert encoder().locate(faces.crop_view) == [faces.crop_box]
    boxes = encoder(upsample=0).locate(faces.full)
    expected = [tuple(int(v) for v in b) for b in fr.face_locations(faces.full, 0, "hog")]
    assert boxes == expected
    assert len(boxes) == 1  # without upsampling the patch is not taken for a face
    assert all(type(v) is int for box in boxes for v in box)


def test_grey_float_image_is_encoded_like_its_uint8_rgb(guard: pg.Guard, faces: Faces) -> None:
    t = encoder().encode_one(faces.lfw[1], subject="lfw-1", face_location=LFW_BOX)
    np.testing.assert_array_equal(revealed(t), faces.enc_lfw[1])


def test_encode_one_reads_an_image_file(guard: pg.Guard, faces: Faces, tmp_path: Path) -> None:
    path = tmp_path / "astronaut.png"
    Image.fromarray(faces.crop).save(path)
    t = encoder().encode_one(path, subject="astro")
    np.testing.assert_array_equal(revealed(t), faces.enc_crop)


def test_large_landmark_model_is_used(guard: pg.Guard, fr: ModuleType, faces: Faces) -> None:
    t = encoder(model="large").encode_one(
        faces.crop, subject="astro", face_location=faces.crop_box
    )
    expected = fr.face_encodings(faces.crop, [faces.crop_box], model="large")[0]
    np.testing.assert_array_equal(revealed(t), expected)
    assert not np.array_equal(revealed(t), faces.enc_crop)


def test_encoder_passes_its_settings_to_face_recognition(
    guard: pg.Guard, fr: ModuleType, faces: Faces, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, npt.NDArray[Any], dict[str, Any]]] = []

    def locations(image: npt.NDArray[Any], **kw: Any) -> list[pfr.FaceLocation]:
        calls.append(("locate", image, kw))
        return [faces.crop_box]

    def encodings(image: npt.NDArray[Any], **kw: Any) -> list[Vector]:
        calls.append(("encode", image, kw))
        return [faces.enc_crop]

    monkeypatch.setattr(fr, "face_locations", locations)
    monkeypatch.setattr(fr, "face_encodings", encodings)
    enc = encoder(model="large", detector="cnn", upsample=2, num_jitters=3)
    t = enc.encode_one(faces.crop_view, subject="astro")
    assert [(what, kw) for what, _, kw in calls] == [
        ("locate", {"number_of_times_to_upsample": 2, "model": "cnn"}),
        ("encode", {"known_face_locations": [faces.crop_box], "num_jitters": 3, "model": "large"}),
    ]
    for _, image, _ in calls:
        assert image.dtype == np.uint8
        assert image.flags.c_contiguous
        np.testing.assert_array_equal(image, faces.crop)
    np.testing.assert_array_equal(revealed(t), faces.enc_crop)


def test_collection_for_a_purpose_outside_the_label_is_refused(
    guard: pg.Guard, faces: Faces
) -> None:
    enc = encoder(VERIFICATION)
    got: list[pg.FaceTemplate] = []
    with capture_audit() as events, pg.purpose(OPTIN):
        with pytest.raises(pg.PurposeViolationError):
            got.append(enc.encode_one(faces.lfw_rgb[0], subject="u", face_location=LFW_BOX))
        with pytest.raises(pg.PurposeViolationError):
            got.extend(enc.encode(faces.lfw_rgb[0], subject="u", face_locations=[LFW_BOX]))
    assert got == []
    assert [(e.operation, e.outcome, e.purpose) for e in events] == [
        (COLLECT, Outcome.DENIED, pg.Purpose(OPTIN))
    ] * 2


def test_a_refused_collection_never_reaches_the_model(
    guard: pg.Guard, fr: ModuleType, faces: Faces, monkeypatch: pytest.MonkeyPatch
) -> None:
    def model(*args: object, **kw: object) -> list[Any]:
        raise AssertionError("the model ran for a collection that is refused")

    monkeypatch.setattr(fr, "face_locations", model)
    monkeypatch.setattr(fr, "face_encodings", model)
    enc = encoder(VERIFICATION)
    blank = np.zeros((40, 40, 3), dtype=np.uint8)
    with capture_audit() as events, pg.purpose(OPTIN):
        with pytest.raises(pg.PurposeViolationError):
            enc.encode_one(faces.crop, subject="u")
        with pytest.raises(pg.PurposeViolationError):
            enc.encode_one(faces.crop, subject="u", face_location=faces.crop_box)
        with pytest.raises(pg.PurposeViolationError):
            enc.encode(faces.crop, subject="u")
        # Refused even where there is no face to collect.
        with pytest.raises(pg.PurposeViolationError):
            enc.encode(blank, subject="u")
    # One audited refusal per call, naming the subject.
    assert [(e.operation, e.outcome, e.subjects) for e in events] == [
        (COLLECT, Outcome.DENIED, ("u",))
    ] * 4


def test_a_refused_collection_in_audit_mode_warns_once_and_collects(
    audit_guard: pg.Guard, faces: Faces
) -> None:
    with capture_audit() as events, pg.purpose(OPTIN), pytest.warns(pg.PurposeWarning) as caught:
        t = encoder(VERIFICATION).encode_one(faces.lfw_rgb[3], subject="u", face_location=LFW_BOX)
    assert len([w for w in caught if issubclass(w.category, pg.PurposeWarning)]) == 1
    assert [(e.operation, e.outcome, e.template_ids) for e in events] == [
        (COLLECT, Outcome.WOULD_DENY, (t.id,))
    ]
    np.testing.assert_array_equal(revealed(t), faces.enc_lfw[3])


def test_a_bad_subject_is_refused_before_the_model(
    guard: pg.Guard, fr: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    def model(*args: object, **kw: object) -> list[Any]:
        raise AssertionError("the model ran although the subject is invalid")

    monkeypatch.setattr(fr, "face_locations", model)
    monkeypatch.setattr(fr, "face_encodings", model)
    blank = np.zeros((40, 40, 3), dtype=np.uint8)
    with capture_audit() as events:
        with pytest.raises(pg.InvalidTemplateError, match="subject"):
            encoder().encode(blank, subject="")
        with pytest.raises(pg.InvalidTemplateError, match="subject"):
            encoder().encode_one(blank, subject=" ")
    assert events == []


def test_encode_with_a_subject_per_face(guard: pg.Guard, faces: Faces) -> None:
    asked: list[tuple[int, pfr.FaceLocation]] = []

    def who(i: int, box: pfr.FaceLocation) -> str:
        asked.append((i, box))
        return f"person-{i}"

    with capture_audit() as events:
        found = encoder().encode(faces.full, subject=who)
    assert asked == list(enumerate(faces.full_boxes))
    assert [t.subject for t in found] == ["person-0", "person-1"]
    assert [(e.operation, e.outcome, e.subjects) for e in events] == [
        (COLLECT, Outcome.GRANTED, ("person-0",)),
        (COLLECT, Outcome.GRANTED, ("person-1",)),
    ]
    for t, expected in zip(found, faces.enc_full, strict=True):
        np.testing.assert_array_equal(revealed(t), expected)


def test_a_subject_per_face_is_checked_before_the_encoder_runs(
    guard: pg.Guard, fr: ModuleType, faces: Faces, monkeypatch: pytest.MonkeyPatch
) -> None:
    def encodings(*args: object, **kw: object) -> list[Any]:
        raise AssertionError("the encoder ran for a collection that is refused")

    monkeypatch.setattr(fr, "face_encodings", encodings)
    boxes = faces.full_boxes
    with capture_audit() as events:
        with pytest.raises(pg.InvalidTemplateError, match="subject"):
            encoder().encode(faces.full, subject=lambda i, box: "" if i else "ok")
        with pg.purpose(OPTIN), pytest.raises(pg.PurposeViolationError):
            encoder(VERIFICATION).encode(
                faces.full, subject=lambda i, box: f"p-{i}", face_locations=boxes
            )
    assert [(e.operation, e.outcome) for e in events] == [(COLLECT, Outcome.DENIED)]


def test_collection_refused_by_the_policy(
    clock: pg.FrozenClock, fr: ModuleType, faces: Faces, monkeypatch: pytest.MonkeyPatch
) -> None:
    encoded: list[object] = []
    real = fr.face_encodings

    def counted(*args: Any, **kw: Any) -> Any:
        encoded.append(kw.get("known_face_locations"))
        return real(*args, **kw)

    monkeypatch.setattr(fr, "face_encodings", counted)
    sink = MemorySink()
    guard = pg.Guard(
        clock=clock, audit=sink, policy=Policy.preset("eu_ai_act"), consents=ConsentRegistry()
    )
    scraped = CollectionContext(place="private", source="web_scrape")
    camera = CollectionContext(place="private", source="camera")
    got: list[pg.FaceTemplate] = []
    with pg.using(guard):
        with pytest.raises(pg.AccessDeniedError) as info:
            got.append(
                encoder(VERIFICATION, context=scraped).encode_one(
                    faces.lfw_rgb[0], subject="u", face_location=LFW_BOX
                )
            )
        # The same capture from a camera is permitted: the context made the difference.
        ok = encoder(VERIFICATION, context=camera).encode_one(
            faces.lfw_rgb[0], subject="u", face_location=LFW_BOX
        )
    assert got == []
    assert encoded == [[LFW_BOX]]  # the refused capture never reached the model
    assert info.value.decision is not None
    assert "AI-01" in info.value.decision.rule_ids
    assert [(e.operation, e.outcome, e.rule_ids) for e in sink.events] == [
        (COLLECT, Outcome.DENIED, ("AI-01",)),
        (COLLECT, Outcome.GRANTED, ()),
    ]
    assert sink.events[1].template_ids == (ok.id,)


# -- matching -----------------------------------------------------------------------------


def test_face_distance_equals_face_recognition_and_is_one_compare(
    guard: pg.Guard, fr: ModuleType, faces: Faces
) -> None:
    samples = [wrap(faces.enc_crop, "astro"), wrap(faces.enc_mirror, "astro")]
    probe = wrap(faces.enc_lfw[0], "visitor")
    with capture_audit() as events, pg.purpose(LOGIN):
        got = pfr.face_distance(samples, probe)
    assert summary(events) == [(COMPARE, "granted", (samples[0].id, samples[1].id, probe.id))]
    assert events[0].purpose == pg.Purpose(LOGIN)
    known = np.stack([revealed(t) for t in samples])
    expected = fr.face_distance(known, revealed(probe))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert got.shape == (2,)
    assert got.dtype == np.float64


def test_face_distance_to_a_plain_probe(guard: pg.Guard, fr: ModuleType, faces: Faces) -> None:
    known = wrap(faces.enc_crop, "astro")
    with capture_audit() as events, pg.purpose(LOGIN):
        got = pfr.face_distance(known, faces.enc_mirror)
    assert summary(events) == [(COMPARE, "granted", (known.id,))]
    expected = fr.face_distance([faces.enc_crop], faces.enc_mirror)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert 0.1 < got[0] < 0.3  # the mirror image is the same person


def test_same_person_matches_and_strangers_do_not(guard: pg.Guard, faces: Faces) -> None:
    astro = wrap(faces.enc_crop, "astro")
    with pg.purpose(LOGIN):
        assert pfr.compare_faces(astro, faces.enc_mirror) == [True]
        assert pfr.verify(astro, faces.enc_mirror) is True
        for stranger in faces.enc_lfw:
            assert pfr.face_distance(astro, stranger)[0] >= 0.75
            assert pfr.compare_faces([astro], stranger) == [False]
            assert pfr.verify(astro, stranger) is False


def _several_subjects(faces: Faces) -> tuple[list[pg.FaceTemplate], pg.FaceTemplate]:
    gallery = [wrap(faces.enc_crop, "astro"), wrap(faces.enc_lfw[0], "lfw-0")]
    return gallery, wrap(faces.enc_mirror, "probe")


MATCHERS: dict[str, Callable[[list[pg.FaceTemplate], Any], object]] = {
    "face_distance": pfr.face_distance,
    "compare_faces": pfr.compare_faces,
    "verify": pfr.verify,
}


@pytest.mark.parametrize("name", sorted(MATCHERS))
def test_several_subjects_are_a_search_refused_for_verification(
    guard: pg.Guard, faces: Faces, name: str
) -> None:
    gallery, probe = _several_subjects(faces)
    got: list[object] = []
    with (
        capture_audit() as events,
        pg.purpose(LOGIN),
        pytest.raises(pg.PurposeViolationError) as info,
    ):
        got.append(MATCHERS[name](gallery, probe))
    assert got == []
    assert isinstance(info.value, pg.AccessDeniedError)
    ids = (gallery[0].id, gallery[1].id, probe.id)
    assert summary(events) == [(SEARCH, "denied", ids)]
    assert events[0].subjects == ("astro", "lfw-0", "probe")


@pytest.mark.parametrize("name", sorted(MATCHERS))
def test_several_subjects_in_audit_mode_warn_and_answer(
    audit_guard: pg.Guard, faces: Faces, name: str
) -> None:
    gallery, probe = _several_subjects(faces)
    with capture_audit() as events, pg.purpose(LOGIN), pytest.warns(pg.PurposeWarning):
        got = MATCHERS[name](gallery, probe)
    assert [(e.operation, e.outcome) for e in events] == [(SEARCH, Outcome.WOULD_DENY)]
    expected = {
        "face_distance": None,
        "compare_faces": [True, False],
        "verify": True,
    }[name]
    if expected is None:
        assert isinstance(got, np.ndarray)
        assert got.shape == (2,)
        assert got[0] < 0.6 <= got[1]
    else:
        assert got == expected


def test_several_subjects_are_a_search_permitted_for_closed_set_identification(
    guard: pg.Guard, faces: Faces
) -> None:
    gallery, probe = _several_subjects(faces)
    with capture_audit() as events, pg.purpose(OPTIN):
        assert pfr.compare_faces(gallery, probe) == [True, False]
    assert summary(events) == [(SEARCH, "granted", (gallery[0].id, gallery[1].id, probe.id))]


def test_a_search_needs_every_label_to_permit_it(guard: pg.Guard, faces: Faces) -> None:
    enrolled_for_login = wrap(faces.enc_lfw[0], "lfw-0", VERIFICATION)
    gallery = [wrap(faces.enc_crop, "astro"), enrolled_for_login]
    probe = wrap(faces.enc_mirror, "probe")
    probe_for_login = wrap(faces.enc_mirror, "probe", VERIFICATION)
    other = wrap(faces.enc_lfw[1], "lfw-1")
    with capture_audit() as events, pg.purpose(OPTIN):
        with pytest.raises(pg.PurposeViolationError) as info:
            pfr.face_distance(gallery, probe)
        assert enrolled_for_login.id in str(info.value)
        with pytest.raises(pg.PurposeViolationError) as info:
            pfr.face_distance([gallery[0], other], probe_for_login)
        assert probe_for_login.id in str(info.value)
    assert [(e.operation, e.outcome) for e in events] == [(SEARCH, Outcome.DENIED)] * 2


def test_several_samples_of_one_subject_are_a_compare(guard: pg.Guard) -> None:
    far, near = wrap(synthetic(0.9), "u"), wrap(synthetic(0.1), "u")
    with capture_audit() as events, pg.purpose(LOGIN):
        assert pfr.compare_faces([far, near], synthetic()) == [False, True]
        assert pfr.verify([far, near], synthetic()) is True
        assert pfr.verify([far], synthetic()) is False
    assert [e.operation for e in events] == [COMPARE] * 3


def test_threshold_is_inclusive_at_0_6(guard: pg.Guard) -> None:
    assert pfr.DEFAULT_TOLERANCE == 0.6
    at = synthetic(0.6)
    beyond = synthetic(float(np.nextafter(0.6, 1.0)))
    assert float(np.linalg.norm(at - synthetic())) == 0.6  # the boundary is exact
    known = wrap(synthetic(), "u")
    with pg.purpose(LOGIN):
        assert pfr.face_distance(known, at)[0] == 0.6
        assert pfr.compare_faces(known, at) == [True]
        assert pfr.verify(known, at) is True
        assert pfr.compare_faces(known, beyond) == [False]
        assert pfr.verify(known, beyond) is False
        assert pfr.compare_faces(known, at, tolerance=0.5) == [False]
        assert pfr.compare_faces(known, beyond, tolerance=0.7) == [True]
        assert pfr.verify(known, at, tolerance=np.float64(0.6)) is True
        half: Any = np.float32(0.5)  # numpy scalars are numbers too
        assert pfr.compare_faces(known, at, tolerance=half) == [False]
        assert pfr.compare_faces(known, at, tolerance=1) == [True]


def test_verify_with_nothing_enrolled_raises(guard: pg.Guard) -> None:
    with pg.purpose(LOGIN), capture_audit() as events:
        with pytest.raises(pg.InvalidTemplateError, match="nothing enrolled"):
            pfr.verify([], synthetic())
        empty = pfr.face_distance([], synthetic())
        assert pfr.compare_faces([], synthetic()) == []
    assert empty.shape == (0,)
    assert events == []


BAD_TOLERANCES: list[object] = [
    True,
    False,
    np.bool_(True),
    math.nan,
    math.inf,
    -0.1,
    0,
    0.0,
    np.float32(-1.0),
    "0.6",
    None,
]


@pytest.mark.parametrize("tolerance", BAD_TOLERANCES, ids=repr)
def test_bad_tolerances_are_refused_before_any_access(guard: pg.Guard, tolerance: object) -> None:
    known = wrap(synthetic(), "u")
    probe = wrap(synthetic(0.1), "p")
    tol: Any = tolerance
    with capture_audit() as events, pg.purpose(OPTIN):
        with pytest.raises(pg.InvalidTemplateError, match="tolerance"):
            pfr.compare_faces(known, probe, tolerance=tol)
        with pytest.raises(pg.InvalidTemplateError, match="tolerance"):
            pfr.verify(known, probe, tolerance=tol)
        with pytest.raises(pg.InvalidTemplateError, match="tolerance"):
            pfr.identify([known], probe, tolerance=tol)
    assert events == []


DISTINCTIVE = 0.7391846


def test_dimension_mismatch(guard: pg.Guard) -> None:
    known = wrap(synthetic(), "u")
    short = np.full(64, DISTINCTIVE)
    short_probe, short_known = wrap(short, "p"), wrap(short, "u")
    with capture_audit() as events, pg.purpose(LOGIN):
        with pytest.raises(pg.InvalidTemplateError, match="dimension mismatch") as info:
            pfr.face_distance(known, short)
        assert "7391846" not in str(info.value)
        with pytest.raises(pg.InvalidTemplateError, match="dimension mismatch"):
            pfr.compare_faces(known, short_probe)
        with pytest.raises(pg.InvalidTemplateError, match="dimension mismatch"):
            pfr.face_distance([known, short_known], synthetic())
    with (
        capture_audit() as more,
        pg.purpose(OPTIN),
        pytest.raises(pg.InvalidTemplateError, match="dimension mismatch"),
    ):
        pfr.identify([known], short_probe)
    assert events == []
    assert more == []


@pytest.mark.parametrize(
    "known",
    [
        "not templates",
        b"bytes",
        np.full((2, DIM), DISTINCTIVE),
        {"a": 1},
        42,
    ],
    ids=["str", "bytes", "ndarray", "dict", "int"],
)
def test_known_must_be_templates(guard: pg.Guard, known: object) -> None:
    with pg.purpose(LOGIN), pytest.raises(pg.InvalidTemplateError, match="known") as info:
        pfr.face_distance(known, synthetic())  # type: ignore[arg-type]
    assert "7391846" not in str(info.value)


def test_a_raw_encoding_among_the_known_is_refused(guard: pg.Guard) -> None:
    raw = np.full(DIM, DISTINCTIVE)
    known: list[Any] = [wrap(synthetic(), "u"), raw]
    with capture_audit() as events, pg.purpose(LOGIN):
        for fn in (pfr.face_distance, pfr.compare_faces, pfr.verify):
            with pytest.raises(pg.InvalidTemplateError, match=r"known\[1\]") as info:
                fn(known, synthetic())
            assert "7391846" not in str(info.value)
    with pg.purpose(OPTIN), pytest.raises(pg.InvalidTemplateError, match=r"known\[1\]"):
        pfr.identify(known, wrap(synthetic(), "p"))
    assert events == []


@pytest.mark.parametrize("name", sorted(MATCHERS))
def test_expired_templates_are_refused(
    guard: pg.Guard, clock: pg.FrozenClock, faces: Faces, name: str
) -> None:
    known = wrap(faces.enc_crop, "astro", ttl=timedelta(days=1))
    clock.advance(timedelta(days=1))
    got: list[object] = []
    with capture_audit() as events, pg.purpose(LOGIN), pytest.raises(pg.ExpiredTemplateError):
        got.append(MATCHERS[name]([known], faces.enc_mirror))
    assert got == []
    assert summary(events) == [(COMPARE, "denied", (known.id,))]


def test_an_expired_probe_is_refused(guard: pg.Guard, clock: pg.FrozenClock) -> None:
    known = wrap(synthetic(), "u", OPTIN)
    probe = wrap(synthetic(0.1), "p", OPTIN, ttl=timedelta(hours=1))
    with pg.purpose(OPTIN):
        assert pfr.verify(known, probe) is True
        clock.advance(timedelta(hours=2))
        with pytest.raises(pg.ExpiredTemplateError):
            pfr.verify(known, probe)
        with pytest.raises(pg.ExpiredTemplateError):
            pfr.identify([known], probe)


# -- identification -------------------------------------------------------------------------


class Gallery:
    """The astronaut enrolled twice (verification only, and for closed-set
    identification from the mirror image), and the LFW faces for identification."""

    def __init__(self, faces: Faces) -> None:
        # Its values equal the probe's: the nearest template of all, but never usable.
        self.login_only = wrap(faces.enc_crop, "astro", VERIFICATION)
        self.astro = wrap(faces.enc_mirror, "astro", OPTIN)
        self.lfw = [wrap(e, f"lfw-{i}", OPTIN) for i, e in enumerate(faces.enc_lfw)]
        self.probe = wrap(faces.enc_crop, "camera-7", OPTIN)
        self.identifiable = [self.astro, *self.lfw]
        values = [faces.enc_mirror, *faces.enc_lfw]
        self.distances = [float(np.linalg.norm(v - faces.enc_crop)) for v in values]


def _ranked(gallery: Gallery) -> list[tuple[str, str]]:
    order = np.argsort(gallery.distances, kind="stable")
    return [(gallery.identifiable[i].id, gallery.identifiable[i].subject) for i in order]


def test_identify_over_a_list(guard: pg.Guard, faces: Faces) -> None:
    g = Gallery(faces)
    with capture_audit() as events, pg.purpose(OPTIN):
        best = pfr.identify(g.identifiable, g.probe, k=3)
        everyone = pfr.identify(g.identifiable, g.probe, k=10, tolerance=2.0)
        two = pfr.identify(g.identifiable, g.probe, k=2, tolerance=2.0)
    # Only the astronaut is within 0.6; the LFW faces are all at 0.75 or more.
    assert [(m.template_id, m.subject) for m in best] == [(g.astro.id, "astro")]
    assert best[0].distance == pytest.approx(g.distances[0], abs=1e-12)
    assert [(m.template_id, m.subject) for m in everyone] == _ranked(g)
    assert [m.distance for m in everyone] == sorted(m.distance for m in everyone)
    assert [m.template_id for m in two] == [m.template_id for m in everyone[:2]]
    ids = (*(t.id for t in g.identifiable), g.probe.id)
    assert summary(events) == [(SEARCH, "granted", ids)] * 3


def test_identify_over_a_list_with_one_subject_is_still_a_search(
    guard: pg.Guard, faces: Faces
) -> None:
    g = Gallery(faces)
    probe = wrap(faces.enc_mirror, "x", VERIFICATION)
    with capture_audit() as events, pg.purpose(LOGIN), pytest.raises(pg.PurposeViolationError):
        pfr.identify([g.login_only], probe)
    assert [(e.operation, e.outcome) for e in events] == [(SEARCH, Outcome.DENIED)]


def test_identify_over_a_list_refuses_a_template_that_does_not_permit_it(
    guard: pg.Guard, faces: Faces
) -> None:
    g = Gallery(faces)
    got: list[object] = []
    with (
        capture_audit() as events,
        pg.purpose(OPTIN),
        pytest.raises(pg.PurposeViolationError) as info,
    ):
        got.append(pfr.identify([g.login_only, *g.identifiable], g.probe))
    assert got == []
    assert g.login_only.id in str(info.value)
    assert [(e.operation, e.outcome) for e in events] == [(SEARCH, Outcome.DENIED)]


STORES: dict[str, Callable[[Path], GuardedStore]] = {
    "memory": lambda tmp: GuardedStore(MemoryBackend()),
    "sqlite": lambda tmp: GuardedStore(SQLiteBackend(tmp / "g.db")),
}


@pytest.mark.parametrize("kind", sorted(STORES))
def test_identify_over_a_store_never_returns_what_the_purpose_may_not_see(
    guard: pg.Guard, faces: Faces, tmp_path: Path, kind: str
) -> None:
    g = Gallery(faces)
    with STORES[kind](tmp_path) as store:
        store.enrol_many([g.login_only, *g.identifiable])
        with pg.purpose(OPTIN):
            best = pfr.identify(store, g.probe)
            everyone = pfr.identify(store, g.probe, k=10, tolerance=2.0)
            top2 = pfr.identify(store, g.probe, k=2, tolerance=2.0, shortlist=1)
        with pg.purpose(LOGIN), pytest.raises(pg.PurposeViolationError):
            pfr.identify(store, wrap(faces.enc_crop, "x", BOTH))
    assert [(m.template_id, m.subject) for m in best] == [(g.astro.id, "astro")]
    assert [(m.template_id, m.subject) for m in everyone] == _ranked(g)
    for match, expected in zip(everyone, sorted(g.distances), strict=True):
        # The store keeps float32 values.
        assert match.distance == pytest.approx(expected, abs=1e-5)
    assert len(top2) == 2
    assert [m.template_id for m in top2] == [m.template_id for m in everyone[:2]]
    seen = {m.template_id for m in (*best, *everyone, *top2)}
    assert g.login_only.id not in seen


def test_identify_over_a_store_uses_the_store_guard(
    guard: pg.Guard, sink: MemorySink, clock: pg.FrozenClock, faces: Faces
) -> None:
    g = Gallery(faces)
    own = MemorySink()
    store_guard = pg.Guard(clock=pg.FrozenClock(T0), audit=own)
    store = GuardedStore(MemoryBackend(), guard=store_guard)
    store.enrol_many(g.identifiable)
    # By the guard in force every template has expired; by the store's guard none has.
    clock.advance(TTL + timedelta(days=1))
    before = len(sink.events)
    with pg.purpose(OPTIN):
        best = pfr.identify(store, g.probe, k=2, shortlist=3)
    assert [m.template_id for m in best] == [g.astro.id]
    assert len(sink.events) == before
    # One audited search, by the store's guard, naming the probe and every template
    # whose values were then compared.
    assert [(e.operation, e.outcome) for e in own.events] == [
        (pg.Operation.STORE, Outcome.GRANTED),
        (SEARCH, Outcome.GRANTED),
    ]
    search = own.events[-1]
    assert search.template_ids[0] == g.probe.id
    assert len(search.template_ids) == 4
    assert g.astro.id in search.template_ids
    assert set(search.template_ids[1:]) <= {t.id for t in g.identifiable}


def test_identify_over_a_store_audits_one_search_naming_the_shortlist(
    guard: pg.Guard, faces: Faces
) -> None:
    g = Gallery(faces)
    store = GuardedStore(MemoryBackend())
    store.enrol_many([g.login_only, *g.identifiable])
    with capture_audit() as events, pg.purpose(OPTIN):
        everyone = pfr.identify(store, g.probe, k=10, tolerance=2.0)
    assert [(e.operation, e.outcome) for e in events] == [(SEARCH, Outcome.GRANTED)]
    assert events[0].template_ids[0] == g.probe.id
    assert set(events[0].template_ids[1:]) == {t.id for t in g.identifiable}
    assert {m.template_id for m in everyone} == {t.id for t in g.identifiable}


def test_identify_on_an_empty_gallery(guard: pg.Guard) -> None:
    probe = wrap(synthetic(), "p", OPTIN)
    with pg.purpose(OPTIN):
        assert pfr.identify([], probe) == []
        assert pfr.identify(GuardedStore(MemoryBackend()), probe) == []


@pytest.mark.parametrize(
    ("arg", "value"),
    [
        ("k", 0),
        ("k", -1),
        ("k", True),
        ("k", 1.5),
        ("k", "1"),
        ("shortlist", 0),
        ("shortlist", False),
        ("shortlist", 2.0),
    ],
)
def test_identify_refuses_bad_counts(guard: pg.Guard, arg: str, value: object) -> None:
    probe = wrap(synthetic(), "p", OPTIN)
    known = [wrap(synthetic(0.1), "u", OPTIN)]
    kw: dict[str, Any] = {arg: value}
    with capture_audit() as events, pg.purpose(OPTIN):
        for gallery in (known, GuardedStore(MemoryBackend())):
            with pytest.raises(pg.InvalidTemplateError, match=f"{arg} must be"):
                pfr.identify(gallery, probe, **kw)
    assert events == []


def test_identify_accepts_numpy_integers(guard: pg.Guard, faces: Faces) -> None:
    g = Gallery(faces)
    store = GuardedStore(MemoryBackend())
    store.enrol_many(g.identifiable)
    two: Any = np.int64(2)
    three: Any = np.int32(3)
    with pg.purpose(OPTIN):
        for gallery in (g.identifiable, store):
            got = pfr.identify(gallery, g.probe, k=two, shortlist=three, tolerance=2)
            assert [m.template_id for m in got] == [i for i, _ in _ranked(g)[:2]]


def test_identify_needs_a_template_probe(guard: pg.Guard) -> None:
    known = [wrap(synthetic(), "u", OPTIN)]
    raw = np.full(DIM, DISTINCTIVE)
    with pg.purpose(OPTIN):
        for gallery in (known, GuardedStore(MemoryBackend())):
            with pytest.raises(pg.InvalidTemplateError, match="probe must be") as info:
                pfr.identify(gallery, raw)  # type: ignore[arg-type]
            assert "7391846" not in str(info.value)
        store = GuardedStore(MemoryBackend())
        store.enrol_many(known)
        with pytest.raises(pg.InvalidTemplateError, match="dimension mismatch"):
            pfr.identify(store, wrap(np.ones(64), "p", OPTIN))


# -- load_image ---------------------------------------------------------------------------


def test_load_image_reads_files(tmp_path: Path) -> None:
    rgb = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    path = tmp_path / "rgb.png"
    Image.fromarray(rgb).save(path)
    for given_as in (path, str(path)):
        out = pfr.load_image(given_as)
        assert out.dtype == np.uint8
        assert out.flags.c_contiguous
        np.testing.assert_array_equal(out, rgb)
    grey = rgb[:, :, 0]
    Image.fromarray(grey).save(tmp_path / "grey.png")
    np.testing.assert_array_equal(pfr.load_image(tmp_path / "grey.png"), np.stack([grey] * 3, -1))


def test_load_image_unreadable_and_missing_files(tmp_path: Path) -> None:
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"\x89 certainly not an image 31337")
    missing = tmp_path / "nowhere" / "face.jpg"
    for path in (junk, missing, tmp_path):
        with pytest.raises(pg.InvalidTemplateError) as info:
            pfr.load_image(path)
        assert str(path) in str(info.value)
        assert "31337" not in str(info.value)


def test_a_truncated_file_is_refused_after_the_model_is_loaded(
    fr: ModuleType, tmp_path: Path
) -> None:
    noise = np.random.default_rng(7).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    whole = tmp_path / "whole.png"
    Image.fromarray(noise).save(whole)
    data = whole.read_bytes()
    cut = tmp_path / "cut.png"
    cut.write_bytes(data[: len(data) // 2])
    np.testing.assert_array_equal(pfr.load_image(whole), noise)
    with pytest.raises(pg.InvalidTemplateError, match="could not read"):
        pfr.load_image(cut)


def test_load_image_converts_arrays() -> None:
    grey = np.array([[0, 7], [200, 255]], dtype=np.uint8)
    np.testing.assert_array_equal(pfr.load_image(grey), np.stack([grey] * 3, -1))
    rgba = np.zeros((2, 3, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2], rgba[..., 3] = 10, 20, 30, 99
    out = pfr.load_image(rgba)
    assert out.shape == (2, 3, 3)
    assert out.flags.c_contiguous
    assert (out == np.array([10, 20, 30])).all()
    floats = np.array([[0.0, 0.2], [0.5, 1.0]])
    expected = np.array([[0, 51], [128, 255]], dtype=np.uint8)
    np.testing.assert_array_equal(pfr.load_image(floats), np.stack([expected] * 3, -1))
    wide = np.array([[0, 255], [17, 3]], dtype=np.int16)
    out16 = pfr.load_image(wide)
    assert out16.dtype == np.uint8
    np.testing.assert_array_equal(out16[..., 1], wide)
    np.testing.assert_array_equal(pfr.load_image([[1, 2], [3, 4]])[..., 2], [[1, 2], [3, 4]])
    view = np.zeros((20, 20, 3), dtype=np.uint8)[2:12, 3:17]
    assert not view.flags.c_contiguous
    assert pfr.load_image(view).flags.c_contiguous


BAD_IMAGES: dict[str, tuple[object, str]] = {
    "float above 1": (np.full((3, 3), 1.7391846), r"\[0, 1\]"),
    "float below 0": (np.full((3, 3, 3), -0.7391846), r"\[0, 1\]"),
    "nan": (np.array([[0.5, math.nan]]), "NaN"),
    "inf": (np.array([[0.5, math.inf]]), "NaN or infinite"),
    "int16 above 255": (np.full((2, 2), 31337, dtype=np.int16), "0..255"),
    "int16 below 0": (np.full((2, 2), -31337, dtype=np.int16), "0..255"),
    "uint16 above 255": (np.full((2, 2, 3), 31337, dtype=np.uint16), "0..255"),
    "bool": (np.ones((2, 2), dtype=bool), "boolean"),
    "bytes": (b"\x89PNG 31337", "path or an array"),
    "bytearray": (bytearray(b"31337"), "path or an array"),
    "1-D": (np.full(9, 31337), "shape"),
    "4-D": (np.zeros((2, 2, 3, 1)), "shape"),
    "two channels": (np.zeros((2, 2, 2)), "shape"),
    "five channels": (np.zeros((2, 2, 5)), "shape"),
    "empty rows": (np.zeros((0, 4), dtype=np.uint8), "empty"),
    "empty columns": (np.zeros((4, 0, 3), dtype=np.uint8), "empty"),
    "strings": (np.array([["31337", "a"]]), "numeric"),
    "complex": (np.full((2, 2), 31337 + 1j), "numeric"),
    "ragged": ([[1, 2], [31337]], "could not be read"),
}


@pytest.mark.parametrize("case", sorted(BAD_IMAGES))
def test_load_image_refuses_bad_arrays_without_echoing_pixels(case: str) -> None:
    image, message = BAD_IMAGES[case]
    with pytest.raises(pg.InvalidTemplateError, match=message) as info:
        pfr.load_image(image)  # type: ignore[arg-type]
    text = str(info.value)
    assert "31337" not in text
    assert "7391846" not in text


def test_encoder_refuses_a_bad_image_before_the_model(guard: pg.Guard) -> None:
    with capture_audit() as events:
        with pytest.raises(pg.InvalidTemplateError):
            encoder().encode(np.zeros((4, 4, 2), dtype=np.uint8), subject="u")
        with pytest.raises(pg.InvalidTemplateError, match="face location 0"):
            encoder().encode_one(
                np.zeros((4, 4), dtype=np.uint8), subject="u", face_location=(0, 9, 9, 0)
            )
        with pytest.raises(pg.InvalidTemplateError, match="face location 1"):
            encoder().encode(
                np.zeros((4, 4), dtype=np.uint8),
                subject="u",
                face_locations=[(0, 4, 4, 0), (1, 2)],
            )
    assert events == []


# -- encoder construction -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "error", "message"),
    [
        ({"model": "medium"}, pg.PolicyError, "landmark model"),
        ({"detector": "mtcnn"}, pg.PolicyError, "face detector"),
        ({"upsample": -1}, pg.InvalidTemplateError, "upsample"),
        ({"upsample": True}, pg.InvalidTemplateError, "upsample"),
        ({"upsample": 1.0}, pg.InvalidTemplateError, "upsample"),
        ({"upsample": "1"}, pg.InvalidTemplateError, "upsample"),
        ({"num_jitters": 0}, pg.InvalidTemplateError, "num_jitters"),
        ({"num_jitters": False}, pg.InvalidTemplateError, "num_jitters"),
        ({"num_jitters": 2.5}, pg.InvalidTemplateError, "num_jitters"),
        ({"purposes": []}, pg.PolicyError, "purposes is empty"),
        ({"purposes": ()}, pg.PolicyError, "purposes is empty"),
        ({"ttl": TTL, "expires_at": T0 + TTL}, pg.InvalidTemplateError, "exactly one"),
        ({"ttl": None}, pg.InvalidTemplateError, "exactly one"),
    ],
    ids=repr,
)
def test_encoder_construction_errors(
    kw: dict[str, Any], error: type[Exception], message: str
) -> None:
    settings: dict[str, Any] = {"purposes": BOTH, "ttl": TTL, **kw}
    purposes = settings.pop("purposes")
    with pytest.raises(error, match=message):
        pfr.FaceEncoder(purposes, **settings)


@pytest.mark.parametrize(
    "box",
    [
        (0.0, 4.0, 4.0, 0.0),
        (0, 4, 4),
        (0, 4, 4, 0, 0),
        (True, 4, 4, 0),
        ("0", "4", "4", "0"),
        (0, 4, 4, -1),
        (0, 5, 4, 0),
        (4, 4, 0, 0),
        7,
    ],
    ids=repr,
)
def test_bad_face_locations_are_refused_before_the_model(guard: pg.Guard, box: Any) -> None:
    image = np.zeros((4, 4, 3), dtype=np.uint8)
    with capture_audit() as events:
        with pytest.raises(pg.InvalidTemplateError, match="face location 0"):
            encoder().encode_one(image, subject="u", face_location=box)
        with pytest.raises(pg.InvalidTemplateError, match="face location 1"):
            encoder().encode(image, subject="u", face_locations=[(0, 4, 4, 0), box])
    assert events == []


def test_encoder_accepts_the_documented_settings() -> None:
    enc = pfr.FaceEncoder(
        OPTIN, expires_at=T0 + TTL, model="large", detector="cnn", upsample=0, num_jitters=3
    )
    assert (enc.model, enc.detector, enc.upsample, enc.num_jitters) == ("large", "cnn", 0, 3)
    two: Any = np.int64(2)
    one: Any = np.int8(1)
    numpy_counts = pfr.FaceEncoder(OPTIN, ttl=TTL, upsample=two, num_jitters=one)
    assert (numpy_counts.upsample, numpy_counts.num_jitters) == (2, 1)


def test_an_encoder_built_from_iterators_serves_every_capture(guard: pg.Guard) -> None:
    # The purposes are read once, at construction: an iterator must not be spent by
    # the first capture's check and leave the second with no purposes.
    enc = pfr.FaceEncoder(
        iter([OPTIN]), ttl=TTL, prohibited=iter(["face.analytics"]), jurisdictions=iter(["gdpr"])
    )
    assert enc.purposes == frozenset({pg.Purpose(OPTIN)})
    assert enc.prohibited == frozenset({pg.Purpose("face.analytics")})
    assert enc.jurisdictions == ("gdpr",)
    for _ in range(2):
        enc._precheck("u", None)
    with pytest.raises(pg.PolicyError, match="jurisdictions"):
        pfr.FaceEncoder(OPTIN, ttl=TTL, jurisdictions=7)  # type: ignore[arg-type]


# -- without the extra ----------------------------------------------------------------------

_WITHOUT_EXTRA = """
import json, sys
from datetime import timedelta

BLOCKED = sys.argv[1]


class Refuse:
    def find_spec(self, fullname, path=None, target=None):
        if BLOCKED and (fullname == BLOCKED or fullname.startswith(BLOCKED + ".")):
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None


sys.meta_path.insert(0, Refuse())
import numpy as np
from purposeguard.integrations import face_recognition as pfr

out = {}
out["loaded"] = [m for m in ("face_recognition", "face_recognition_models", "dlib")
                 if m in sys.modules]
try:
    out["available"] = pfr.is_available()
except BaseException as err:
    out["available"] = "raised " + type(err).__name__
out["pixels"] = list(pfr.load_image(np.zeros((4, 5), np.uint8)).shape)
if BLOCKED:
    encoder = pfr.FaceEncoder("face.verification", ttl=timedelta(days=1))
    try:
        encoder.locate(np.zeros((8, 8, 3), np.uint8))
        out["error"] = None
    except BaseException as err:
        out["error"] = type(err).__name__
        out["message"] = str(err)
        out["name"] = getattr(err, "name", None)
print("RESULT " + json.dumps(out))
"""


@functools.cache
def _without_extra(blocked: str) -> dict[str, Any]:
    """Run the adapter in a fresh interpreter where importing *blocked* fails."""
    done = subprocess.run(  # noqa: S603 - our own script, run with this interpreter
        [sys.executable, "-c", _WITHOUT_EXTRA, blocked],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
    assert len(lines) == 1, done.stdout + done.stderr
    result: dict[str, Any] = json.loads(lines[0].removeprefix("RESULT "))
    return result


def test_importing_the_adapter_loads_no_model() -> None:
    out = _without_extra("")
    assert out["loaded"] == []
    assert out["pixels"] == [4, 5, 3]


@pytest.mark.parametrize("blocked", ["face_recognition", "dlib"])
def test_without_the_extra_the_first_model_call_names_the_install_commands(
    blocked: str,
) -> None:
    out = _without_extra(blocked)
    assert out["loaded"] == []
    assert out["pixels"] == [4, 5, 3]  # what needs no model still works
    assert out["error"] == "ImportError"
    assert pfr.INSTALL_HINT in out["message"]
    assert out["name"] == blocked


def test_without_the_models_the_first_model_call_raises_import_error() -> None:
    out = _without_extra("face_recognition_models")
    assert out["error"] == "ImportError"
    assert pfr.INSTALL_HINT in out["message"]


@pytest.mark.parametrize("blocked", ["face_recognition", "face_recognition_models", "dlib"])
def test_is_available_is_false_when_an_import_hook_refuses(blocked: str) -> None:
    assert _without_extra(blocked)["available"] is False


@pytest.mark.parametrize("missing", ["face_recognition", "face_recognition_models", "dlib"])
def test_is_available_is_false_when_a_module_is_not_found(
    monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    real = importlib.util.find_spec
    asked: list[str] = []

    def find_spec(name: str, package: str | None = None) -> Any:
        asked.append(name)
        return None if name == missing else real(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert pfr.is_available() is False
    assert missing in asked


def test_first_model_call_raises_import_error_in_process(
    guard: pg.Guard, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pfr, "_loaded", None)
    monkeypatch.setitem(sys.modules, "face_recognition", None)
    enc = encoder()
    blank = np.zeros((8, 8, 3), dtype=np.uint8)
    with capture_audit() as events:
        for _ in range(2):  # a failure is not cached: each call says it again
            with pytest.raises(ImportError, match=re.escape(pfr.INSTALL_HINT)) as info:
                enc.locate(blank)
            assert info.value.name == "face_recognition"
        with pytest.raises(ImportError, match=re.escape(pfr.INSTALL_HINT)):
            enc.encode(blank, subject="u", face_locations=[(0, 8, 8, 0)])
        with pytest.raises(ImportError, match=re.escape(pfr.INSTALL_HINT)):
            enc.encode_one(blank, subject="u")
    assert events == []
    assert pfr._loaded is None


# -- the permission property ------------------------------------------------------------------

TAXONOMY = pg.Taxonomy.default()
SUBJECTS = st.one_of(st.just("s-1"), st.just("s-2"), pst.subjects())
# Zero vectors included: a Euclidean distance is defined for them.
VECTORS = hnp.arrays(np.float32, DIM, elements=st.floats(-1.0, 1.0, width=32))
# Purposes whose taxonomy entry allows COMPARE, drawn more often than the others.
COMPARING = sorted(p for p in TAXONOMY if COMPARE in TAXONOMY.spec(p).operations)


@st.composite
def labelled(draw: st.DrawFn, active: pg.Purpose) -> tuple[pg.FaceTemplate, npt.NDArray[Any]]:
    """A 128-d template with a random label from the default taxonomy, and its values.

    Most labels also allow *active* or one of its ancestors and have their
    prohibitions dropped, so that permitted and refused comparisons are both common;
    one in sixteen has expired.
    """
    expired = draw(st.integers(0, 15)) == 0
    label = draw(pst.labels(TAXONOMY, now=T0, subject=draw(SUBJECTS), expired=expired))
    if draw(st.integers(0, 7)) > 0:
        near = draw(st.sampled_from([active, *active.ancestors()]))
        label = attrs.evolve(label, allowed=label.allowed | {near})
    if draw(st.integers(0, 3)) > 0:
        label = attrs.evolve(label, prohibited=frozenset())
    values = draw(VECTORS)
    return pg.FaceTemplate._new(as_vector(values), label), values


Known = list[tuple[pg.FaceTemplate, npt.NDArray[Any]]]
Probe = tuple[pg.FaceTemplate, npt.NDArray[Any]] | npt.NDArray[Any]


@st.composite
def comparisons(draw: st.DrawFn) -> tuple[pg.Purpose, Known, Probe]:
    """An active purpose, one to four known templates, and a template or plain probe."""
    active = draw(st.one_of(pst.purposes(TAXONOMY), st.sampled_from(COMPARING)))
    known = draw(st.lists(labelled(active), min_size=1, max_size=4))
    probe = draw(st.one_of(labelled(active), VECTORS))
    return active, known, probe


@given(case=comparisons(), mode=st.sampled_from([pg.Mode.ENFORCE, pg.Mode.AUDIT]))
def test_face_distance_is_permitted_exactly_when_every_label_permits_its_operation(
    case: tuple[pg.Purpose, Known, Probe], mode: pg.Mode
) -> None:
    active, known, probe = case
    sink = MemorySink()
    guard = pg.Guard(clock=pg.FrozenClock(T0), audit=sink, mode=mode)
    templates = [t for t, _ in known]
    probe_arg: pg.FaceTemplate | npt.NDArray[Any]
    if isinstance(probe, tuple):
        probe_arg, probe_values = probe
        involved = [*templates, probe_arg]
    else:
        probe_arg = probe_values = probe
        involved = list(templates)
    operation = COMPARE if len({t.subject for t in templates}) == 1 else SEARCH
    permitted = all(guard.check(t, active, operation).allowed for t in involved)
    gallery = np.stack([v for _, v in known]).astype(np.float64)
    expected = np.linalg.norm(gallery - probe_values.astype(np.float64), axis=1)

    result: npt.NDArray[np.float64] | None = None
    raised: pg.AccessDeniedError | None = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pg.using(guard), pg.purpose(active):
            try:
                result = pfr.face_distance(templates, probe_arg)
            except pg.AccessDeniedError as err:
                raised = err
    warned = [w for w in caught if issubclass(w.category, pg.PurposeWarning)]

    assert len(sink.events) == 1
    event = sink.events[0]
    assert event.operation is operation
    assert event.purpose == active
    assert event.template_ids == tuple(t.id for t in involved)
    if permitted:
        assert raised is None
        assert not warned
        assert event.outcome is Outcome.GRANTED
    elif mode is pg.Mode.ENFORCE:
        assert result is None
        assert raised is not None
        assert raised.decision is not None
        assert not raised.decision.allowed
        assert event.outcome is Outcome.DENIED
        return
    else:
        assert raised is None
        assert len(warned) == 1
        assert event.outcome is Outcome.WOULD_DENY
    assert result is not None
    np.testing.assert_allclose(result, expected, rtol=1e-12, atol=0)
