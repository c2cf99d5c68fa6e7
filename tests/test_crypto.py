"""purposeguard.crypto: sealing, the key ring and its stores, shredding, rotation,
known-answer vectors, fuzzing of unseal, and per-purpose projections."""

from __future__ import annotations

import argparse
import copy
import json
import os
import pickle
import stat
import struct
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand
from hypothesis import HealthCheck, assume, given, settings, strategies as st

import purposeguard as pg
from purposeguard import crypto
from purposeguard.audit import MemorySink, Outcome
from purposeguard.crypto import (
    FileKeyStore,
    KeyRing,
    MemoryKeyStore,
    PurposeProjection,
    _hazmat,
    reseal,
    seal,
    seal_many,
    unseal,
    unseal_many,
)
from purposeguard.crypto._sealing import INTEGRITY_MESSAGE
from purposeguard.typing import KeyStore

from .crypto_vectors import CASES, VECTORS, build, label_of

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DIM = 16


def wrap(
    vec: Any = None,
    *,
    subject: str = "alice",
    purposes: str | list[str] = "face.verification",
    ttl: timedelta = timedelta(days=1),
) -> pg.FaceTemplate:
    if vec is None:
        vec = np.arange(1, DIM + 1, dtype=np.float32)
    return pg.FaceTemplate.wrap(vec, subject=subject, purposes=purposes, ttl=ttl)


@pytest.fixture
def ring() -> KeyRing:
    return KeyRing.generate()


def reveal(t: pg.FaceTemplate) -> np.ndarray:
    usable = next(p for p in sorted(t.purposes) if t.label.permits(p))
    with pg.purpose(usable):
        return t.reveal()


# -- round trip and audit -------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_round_trip_keeps_id_label_values_and_dtype(
    guard: pg.Guard, ring: KeyRing, dtype: type
) -> None:
    t = pg.FaceTemplate.wrap(
        np.linspace(-1, 1, DIM).astype(dtype),
        subject="alice",
        purposes=["face.verification", "face.identification"],
        prohibited="face.identification.realtime_remote",
        ttl=timedelta(days=3),
        consent="c-1",
        jurisdictions=["gdpr"],
    )
    back = unseal(seal(t, ring), ring)
    assert back.id == t.id
    assert back.label == t.label
    assert back.dtype == t.dtype
    assert np.array_equal(reveal(back), reveal(t))


def test_seal_is_an_export_and_unseal_a_collect(
    guard: pg.Guard, sink: MemorySink, ring: KeyRing
) -> None:
    t = wrap()
    n = len(sink.events)
    blob = seal(t, ring)
    unseal(blob, ring)
    ops = [(e.operation, e.outcome, e.template_ids) for e in sink.events[n:]]
    assert ops == [
        (pg.Operation.EXPORT, Outcome.GRANTED, (t.id,)),
        (pg.Operation.COLLECT, Outcome.GRANTED, (t.id,)),
    ]
    assert sink.events[-1].subjects == ("alice",)
    assert "test_crypto" in sink.events[-1].site


def test_sealing_needs_a_purpose_that_allows_export(
    guard: pg.Guard, sink: MemorySink, ring: KeyRing
) -> None:
    analytics = wrap(purposes="face.analytics")  # the taxonomy allows no EXPORT there
    with pytest.raises(pg.PurposeViolationError):
        seal(analytics, ring)
    assert sink.events[-1].outcome is Outcome.DENIED
    assert ring.subjects() == []  # no key was made for a refused export
    t = wrap()
    with pg.purpose("face.identification"), pytest.raises(pg.PurposeViolationError):
        seal(t, ring)  # inside a scope the active purpose decides
    with pg.purpose("face.verification.login"):
        assert seal(t, ring)


def test_seal_many_is_one_event_and_all_or_nothing(
    guard: pg.Guard, sink: MemorySink, ring: KeyRing
) -> None:
    ts = [wrap(subject=f"s{i}") for i in range(5)]
    n = len(sink.events)
    blobs = seal_many(ts, ring)
    assert len(sink.events) == n + 1
    assert sink.events[-1].template_ids == tuple(t.id for t in ts)
    assert [u.id for u in unseal_many(blobs, ring)] == [t.id for t in ts]
    with pytest.raises(pg.PurposeViolationError):
        seal_many([wrap(subject="new"), wrap(subject="new2", purposes="face.analytics")], ring)
    assert "new" not in ring
    assert seal_many([], ring) == []
    assert unseal_many([], ring) == []


def test_each_seal_is_fresh(guard: pg.Guard, ring: KeyRing) -> None:
    t = wrap()
    a, b = seal(t, ring), seal(t, ring)
    assert a != b
    assert a[:22] == b[:22]  # same magic, version, algorithm, key id
    assert a[38:70] != b[38:70]  # different salts


def test_unsealing_needs_no_scope_but_respects_one(guard: pg.Guard, ring: KeyRing) -> None:
    blob = seal(wrap(), ring)
    with pg.purpose("face.identification"), pytest.raises(pg.PurposeViolationError):
        unseal(blob, ring)
    with pg.purpose("face.verification"):
        assert unseal(blob, ring).subject == "alice"


def test_bad_arguments_are_clear_errors(guard: pg.Guard, ring: KeyRing) -> None:
    with pytest.raises(pg.InvalidTemplateError, match="bytes, got str"):
        unseal("PGST...", ring)  # type: ignore[arg-type]
    with pytest.raises(pg.PolicyError, match="KeyRing"):
        unseal(b"PGST", object())  # type: ignore[arg-type]
    with pytest.raises(pg.PolicyError, match="KeyRing"):
        seal(wrap(), "ring")  # type: ignore[arg-type]
    with pytest.raises(pg.InvalidTemplateError, match="FaceTemplates"):
        seal(np.ones(DIM), ring)  # type: ignore[arg-type]
    long = pg.FaceTemplate.wrap(
        np.ones(4, dtype=np.longdouble), subject="a", purposes="face.verification",
        ttl=timedelta(days=1),
    )  # fmt: skip
    if long.dtype.itemsize not in (2, 4, 8):
        with pytest.raises(pg.InvalidTemplateError, match="only float16, float32 and float64"):
            seal(long, ring)
    odd = pg.FaceTemplate._new(wrap()._values(), wrap().label, "not-hex")
    with pytest.raises(pg.InvalidTemplateError, match="32 lowercase hex"):
        seal(odd, ring)


def test_messages_never_show_values_or_keys(guard: pg.Guard, ring: KeyRing) -> None:
    t = wrap(np.full(DIM, 0.123456, dtype=np.float32))
    blob = bytearray(seal(t, ring))
    blob[-1] ^= 1
    with pytest.raises(pg.IntegrityError) as e:
        unseal(bytes(blob), ring)
    text = str(e.value) + repr(ring) + repr(ring.store)
    assert "0.123" not in text
    assert ring._kek.hex() not in text
    assert e.value.__cause__ is None
    assert e.value.__suppress_context__


# -- integrity: one opaque error ------------------------------------------------------


def assert_opaque(blob: bytes, ring: KeyRing) -> None:
    with pytest.raises(pg.IntegrityError) as e:
        unseal(blob, ring)
    assert str(e.value) == INTEGRITY_MESSAGE
    assert type(e.value) is pg.IntegrityError


def test_every_single_bit_flip_is_detected(guard: pg.Guard, ring: KeyRing) -> None:
    blob = seal(wrap(np.ones(4, dtype=np.float32)), ring)
    for i in range(len(blob)):
        for bit in (0, 7):
            bad = bytearray(blob)
            bad[i] ^= 1 << bit
            assert_opaque(bytes(bad), ring)


def test_truncation_and_extension_are_detected(guard: pg.Guard, ring: KeyRing) -> None:
    blob = seal(wrap(np.ones(4, dtype=np.float32)), ring)
    for n in range(len(blob)):
        assert_opaque(blob[:n], ring)
    for extra in (b"\0", b"\0" * 16, blob):
        assert_opaque(blob + extra, ring)


def test_relabelling_is_detected(guard: pg.Guard, ring: KeyRing) -> None:
    t = wrap()
    blob = seal(t, ring)
    opened = _hazmat.open_record(blob)
    # A label that is valid, canonical, of the same subject, and longer-lived.
    longer = t.label.to_bytes().replace(b'"expires_at":"2026-01-02', b'"expires_at":"2099-01-02')
    assert pg.Label.from_bytes(longer).subject == "alice"
    forged = (
        blob[:102]
        + struct.pack(">I", len(longer))
        + longer
        + blob[106 + len(opened.label_bytes) :]
    )
    assert_opaque(forged, ring)
    broader = pg.Label(
        allowed=["face.verification", "face.identification"],
        subject="alice",
        expires_at=t.expires_at,
        collected_at=t.label.collected_at,
    ).to_bytes()
    forged = (
        blob[:102]
        + struct.pack(">I", len(broader))
        + broader
        + blob[106 + len(opened.label_bytes) :]
    )
    assert_opaque(forged, ring)


def test_swapping_between_subjects_and_templates_is_detected(
    guard: pg.Guard, ring: KeyRing
) -> None:
    a, b = wrap(subject="alice"), wrap(subject="bob")
    ba, bb = seal(a, ring), seal(b, ring)
    la = len(_hazmat.open_record(ba).label_bytes)
    lb = len(_hazmat.open_record(bb).label_bytes)
    # bob's header and label on alice's ciphertext, and the other way round
    assert_opaque(bb[: 106 + lb] + ba[106 + la :], ring)
    assert_opaque(ba[: 106 + la] + bb[106 + lb :], ring)
    # bob's key id on alice's blob (a relabelled key reference)
    assert_opaque(ba[:6] + bb[6:22] + ba[22:], ring)
    # another template id
    assert_opaque(ba[:22] + bb[22:38] + ba[38:], ring)
    # alice's label moved under bob's key: the subject does not match the key's
    assert_opaque(bb[:102] + ba[102 : 106 + la] + bb[106 + lb :], ring)


def test_a_wrong_keyring_and_a_shredded_key_look_the_same(guard: pg.Guard, ring: KeyRing) -> None:
    blob = seal(wrap(), ring)
    other = seal(wrap(subject="bob"), ring)
    assert_opaque(blob, KeyRing.generate())
    assert ring.shred("alice") == 1
    assert ring.shred("alice") == 0
    assert_opaque(blob, ring)
    assert unseal(other, ring).subject == "bob"


def test_the_key_commitment_is_checked_before_decrypting(
    guard: pg.Guard, ring: KeyRing, monkeypatch: pytest.MonkeyPatch
) -> None:
    blob = seal(wrap(), ring)
    opened = _hazmat.open_record(blob)
    calls: list[bytes] = []
    real = AESGCM

    class Spy:
        def __init__(self, key: bytes) -> None:
            self._inner = real(key)

        def decrypt(self, nonce: bytes, data: bytes, aad: bytes | None) -> bytes:
            calls.append(nonce)
            return self._inner.decrypt(nonce, data, aad)

    monkeypatch.setattr(_hazmat, "AESGCM", Spy)
    with pytest.raises(_hazmat.UnsealError):
        opened.decrypt(_hazmat.RecordKdf(os.urandom(32)))  # another key: the commitment
    assert calls == []
    key = ring._key_by_id(opened.key_id)
    assert key is not None
    opened.decrypt(key[1])
    assert len(calls) == 1


# -- expiry ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [pg.Mode.ENFORCE, pg.Mode.AUDIT])
def test_an_expired_label_unseals_to_nothing(
    clock: pg.FrozenClock, sink: MemorySink, ring: KeyRing, mode: pg.Mode
) -> None:
    with pg.using(pg.Guard(clock=clock, audit=sink, mode=mode)):
        t = wrap(ttl=timedelta(hours=1))
        blob = seal(t, ring)
        clock.advance(timedelta(hours=1))
        with pytest.raises(pg.ExpiredTemplateError, match=t.id) as e:
            unseal(blob, ring)
        assert e.value.decision is not None
        assert e.value.decision.template_id == t.id
        last = sink.events[-1]
        assert (last.operation, last.outcome) == (pg.Operation.COLLECT, Outcome.DENIED)
        assert "expired" in last.reason


def test_expiry_is_checked_only_after_authentication(
    guard: pg.Guard, clock: pg.FrozenClock, ring: KeyRing
) -> None:
    blob = bytearray(seal(wrap(ttl=timedelta(hours=1)), ring))
    clock.advance(timedelta(days=1))
    blob[-1] ^= 1
    assert_opaque(bytes(blob), ring)  # not ExpiredTemplateError: the label is unproven


# -- the key ring ---------------------------------------------------------------------


def test_keyring_basics(guard: pg.Guard) -> None:
    store = MemoryKeyStore()
    assert isinstance(store, KeyStore)
    ring = KeyRing(bytes(32), store)
    assert ring.key_id("alice") is None
    seal_many([wrap(subject="alice"), wrap(subject="bob")], ring)
    kid = ring.key_id("alice")
    assert kid is not None
    assert len(kid) == 32
    assert ring.subjects() == ["alice", "bob"]
    assert "alice" in ring
    assert "carol" not in ring
    assert 3 not in ring
    assert len(ring) == 2
    assert len(store.key_ids()) == 2
    assert KeyRing(bytes(32), store).key_id("alice") == kid  # reopened from the store
    assert ring.kek_id == KeyRing(bytes(32)).kek_id != KeyRing(b"\1" * 32).kek_id
    assert repr(ring) == f"<KeyRing kek={ring.kek_id} subjects=2>"
    for bad in (b"short", "x" * 32, None):
        with pytest.raises(pg.PolicyError, match="32 bytes"):
            KeyRing(bad)  # type: ignore[arg-type]
    with pytest.raises(pg.PolicyError, match="KeyStore"):
        KeyRing(bytes(32), {})  # type: ignore[arg-type]
    with pytest.raises(pg.PolicyError, match="subject"):
        ring.key_id("")


def test_keyring_refuses_pickling_and_copying(ring: KeyRing) -> None:
    for attempt in (pickle.dumps, copy.copy, copy.deepcopy):
        with pytest.raises(pg.PolicyError, match="key material"):
            attempt(ring)


def test_a_store_under_another_kek_or_tampered_is_refused(guard: pg.Guard) -> None:
    store = MemoryKeyStore()
    ring = KeyRing(bytes(32), store)
    seal(wrap(), ring)
    with pytest.raises(pg.IntegrityError, match="wrong key-encryption key"):
        KeyRing(b"\1" * 32, store)
    ((kid, entry),) = store.load().items()
    tampered = bytearray(entry)
    tampered[10] ^= 1
    store.put({kid: bytes(tampered)})
    with pytest.raises(pg.IntegrityError, match=kid):
        KeyRing(bytes(32), store)
    store.replace_all({"nothex": entry})
    with pytest.raises(pg.IntegrityError, match="malformed key id"):
        KeyRing(bytes(32), store)


def test_entries_cannot_be_moved_between_key_ids(guard: pg.Guard) -> None:
    store = MemoryKeyStore()
    ring = KeyRing(bytes(32), store)
    seal_many([wrap(subject="alice"), wrap(subject="bob")], ring)
    (ka, ea), (kb, eb) = sorted(store.load().items())
    store.replace_all({ka: eb, kb: ea})  # the entries' MACs bind their key ids
    with pytest.raises(pg.IntegrityError):
        KeyRing(bytes(32), store)


def test_kek_rotation_rewraps_without_touching_blobs(guard: pg.Guard, tmp_path: Path) -> None:
    store = FileKeyStore(tmp_path / "keys.json")
    old, new = os.urandom(32), os.urandom(32)
    ring = KeyRing(old, store)
    blobs = seal_many([wrap(subject=s) for s in ("alice", "bob", "carol")], ring)
    ring.shred("carol")
    before = (tmp_path / "keys.json").read_text()
    ring.rotate_kek(new)
    after = (tmp_path / "keys.json").read_text()
    assert before != after
    assert [t.subject for t in unseal_many(blobs[:2], ring)] == ["alice", "bob"]
    reopened = KeyRing(new, store)
    assert [t.subject for t in unseal_many(blobs[:2], reopened)] == ["alice", "bob"]
    assert_opaque(blobs[2], reopened)  # shredded stays shredded
    with pytest.raises(pg.IntegrityError):
        KeyRing(old, store)  # a stolen old KEK opens nothing any more
    assert ring.kek_id == reopened.kek_id
    with pytest.raises(pg.PolicyError, match="new_kek"):
        ring.rotate_kek(b"short")


def test_data_key_rotation_reseals(guard: pg.Guard, ring: KeyRing) -> None:
    ts = [wrap(subject="alice"), wrap(subject="alice"), wrap(subject="bob")]
    blobs = seal_many(ts, ring)
    first = ring.key_id("alice")
    second = ring.rotate_data_key("alice")
    assert second != first
    assert ring.key_id("alice") == second
    assert unseal(blobs[0], ring).id == ts[0].id  # the retired key still opens
    fresh = reseal(blobs, ring)
    assert [_hazmat.open_record(b).key_id.hex() for b in fresh[:2]] == [second, second]
    assert fresh[2][6:22] == blobs[2][6:22]  # bob's key did not change
    assert ring.forget_retired("alice") == 1
    assert ring.forget_retired() == 0
    assert_opaque(blobs[0], ring)
    back = unseal_many(fresh, ring)
    assert [t.id for t in back] == [t.id for t in ts]
    assert [t.label for t in back] == [t.label for t in ts]
    assert np.array_equal(reveal(back[1]), reveal(ts[1]))
    assert ring.shred("alice") == 1  # only the current key was left


# -- the file key store ----------------------------------------------------------------


def test_file_store_is_private_and_atomic(guard: pg.Guard, tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    ring = KeyRing(bytes(32), FileKeyStore(path))
    assert not path.exists()
    seal(wrap(), ring)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keys.json", "keys.json.lock"]
    doc = json.loads(path.read_text())
    assert doc["format"] == "purposeguard.keystore"
    assert doc["version"] == 1
    assert "alice" not in path.read_text()  # subjects are inside the hex entries only
    path.chmod(0o644)
    with pytest.raises(pg.PolicyError, match=r"group or others.*0644"):
        FileKeyStore(path)
    path.chmod(0o600)
    assert KeyRing(bytes(32), FileKeyStore(path)).subjects() == ["alice"]


def test_file_store_shred_overwrites_the_wrapped_key(guard: pg.Guard, tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    ring = KeyRing(bytes(32), FileKeyStore(path))
    blob = seal(wrap(), ring)
    (entry,) = json.loads(path.read_text())["entries"].values()
    backup = path.read_bytes()
    ring.shred("alice")
    assert entry not in path.read_text()
    assert_opaque(blob, KeyRing(bytes(32), FileKeyStore(path)))
    # A backup of the key store still unwraps under the same KEK: hence rotate the KEK.
    old_copy = tmp_path / "backup" / "keys.json"
    old_copy.parent.mkdir()
    old_copy.write_bytes(backup)
    old_copy.chmod(0o600)
    assert unseal(blob, KeyRing(bytes(32), FileKeyStore(old_copy))).subject == "alice"
    ring.rotate_kek(b"\2" * 32)
    with pytest.raises(pg.IntegrityError):
        KeyRing(b"\2" * 32, FileKeyStore(old_copy))


def test_two_processes_sharing_a_file_store(guard: pg.Guard, tmp_path: Path) -> None:
    one = KeyRing(bytes(32), FileKeyStore(tmp_path / "k.json"))
    two = KeyRing(bytes(32), FileKeyStore(tmp_path / "k.json"))
    a = seal(wrap(subject="alice"), one)
    b = seal(wrap(subject="bob"), two)  # written after re-reading: alice is kept
    assert unseal(a, two).subject == "alice"  # two learns alice's key on a miss
    assert unseal(b, one).subject == "bob"
    assert KeyRing(bytes(32), FileKeyStore(tmp_path / "k.json")).subjects() == ["alice", "bob"]


def test_file_store_rejects_bad_files(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"{not json")
    os.close(fd)
    with pytest.raises(pg.IntegrityError, match="malformed"):
        FileKeyStore(path)
    path.write_text(json.dumps({"format": "other", "version": 1, "entries": {}}))
    with pytest.raises(pg.IntegrityError, match="malformed"):
        FileKeyStore(path)
    with pytest.raises(pg.PolicyError, match="directory"):
        FileKeyStore(tmp_path)
    with pytest.raises(pg.PolicyError, match="missing"):
        FileKeyStore(tmp_path / "no" / "k.json")
    with pytest.raises(pg.PolicyError, match=r"str or os\.PathLike"):
        FileKeyStore(b"k.json")  # type: ignore[arg-type]


def test_kek_files(guard: pg.Guard, tmp_path: Path) -> None:
    ring = KeyRing.generate()
    blob = seal(wrap(), ring)
    kek = tmp_path / "kek.hex"
    ring.save_kek(kek)
    assert stat.S_IMODE(kek.stat().st_mode) == 0o600
    with pytest.raises(pg.PolicyError, match="exists"):
        ring.save_kek(kek)
    again = KeyRing.open(kek, ring.store)
    assert again.kek_id == ring.kek_id
    assert unseal(blob, again).subject == "alice"
    raw = tmp_path / "kek.bin"
    fd = os.open(raw, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, ring._kek)
    os.close(fd)
    assert KeyRing.open(raw, ring.store).kek_id == ring.kek_id
    raw.chmod(0o640)
    with pytest.raises(pg.PolicyError, match="group or others"):
        KeyRing.open(raw)
    raw.chmod(0o600)
    raw.write_bytes(b"not a key")
    with pytest.raises(pg.PolicyError, match="32 raw bytes or 64 hex") as e:
        KeyRing.open(raw)
    assert "not a key" not in str(e.value)
    with pytest.raises(pg.PolicyError, match="cannot read"):
        KeyRing.open(tmp_path / "missing")


# -- known-answer vectors -------------------------------------------------------------


def vector_files() -> list[Path]:
    return sorted(VECTORS.glob("sealed-v1-*.json"))


def test_vector_files_cover_every_case() -> None:
    assert [p.name for p in vector_files()] == sorted(f"sealed-v1-{c['name']}.json" for c in CASES)


@pytest.mark.parametrize("path", vector_files(), ids=lambda p: p.stem)
def test_known_answer_vectors_are_reproduced(path: Path) -> None:
    stored = json.loads(path.read_text("utf-8"))
    case = next(c for c in CASES if c["name"] == stored["name"])
    assert build(case) == stored


@pytest.mark.parametrize("path", vector_files(), ids=lambda p: p.stem)
def test_public_seal_produces_the_vector(path: Path, sink: MemorySink) -> None:
    v = json.loads(path.read_text("utf-8"))
    label = label_of(v)
    with pg.using(
        pg.Guard(clock=pg.FrozenClock(label.expires_at - timedelta(seconds=1)), audit=sink)
    ):
        ring = KeyRing.generate()
        ring._add_key(label.subject, bytes.fromhex(v["data_key"]), bytes.fromhex(v["key_id"]))
        values = np.array(v["vector"], dtype=v["dtype"]).astype(
            np.dtype(v["dtype"]).newbyteorder("=")
        )
        t = pg.FaceTemplate._new(values, label, v["template_id"])
        blob = seal(t, ring, _salt=bytes.fromhex(v["salt"]))
        assert blob.hex() == v["blob"]
        back = unseal(bytes.fromhex(v["blob"]), ring)
        assert back.id == v["template_id"]
        assert back.label == label
        assert back._values().tolist() == values.tolist()


@pytest.mark.parametrize("path", vector_files(), ids=lambda p: p.stem)
def test_an_independent_verifier_opens_the_vector(path: Path) -> None:
    # Follows docs/reference/sealed-format.md with cryptography's own HKDF, not ours.
    v = json.loads(path.read_text("utf-8"))
    blob = bytes.fromhex(v["blob"])
    magic, version, alg, kid, tid, salt, commitment, llen = struct.unpack_from(
        ">4sBB16s16s32s32sI", blob
    )
    assert (magic, version, alg) == (b"PGST", 1, 1)
    assert (kid.hex(), tid.hex(), salt.hex()) == (v["key_id"], v["template_id"], v["salt"])
    label_bytes = blob[106 : 106 + llen]
    assert label_bytes == bytes.fromhex(v["label_bytes"])
    okm = HKDFExpand(
        algorithm=hashes.SHA256(),
        length=64,
        info=b"purposeguard/sealed-template/v1\x00" + kid + tid + salt,
    ).derive(bytes.fromhex(v["data_key"]))
    assert okm[32:64] == commitment == bytes.fromhex(v["commitment"])
    assert bytes.fromhex(v["nonce"]) == bytes(12)
    plaintext = AESGCM(okm[:32]).decrypt(bytes(12), blob[106 + llen :], blob[: 106 + llen])
    assert plaintext.hex() == v["plaintext"]
    assert plaintext[0] == {"<f4": 1, "<f8": 2, "<f2": 3}[v["dtype"]]
    assert np.frombuffer(plaintext[1:], dtype=v["dtype"]).tolist() == v["vector"]


# -- fuzzing ------------------------------------------------------------------------


class _Fixed:
    """Blobs sealed once for the fuzz tests (Hypothesis re-runs the test body)."""

    ring: KeyRing
    blobs: list[bytes]


@pytest.fixture(scope="module")
def fixed() -> _Fixed:
    f = _Fixed()
    with pg.using(pg.Guard(clock=pg.FrozenClock(T0), audit=MemorySink())):
        f.ring = KeyRing(bytes(32))
        f.blobs = [
            seal(wrap(np.ones(n, dtype=np.float32), subject=s), f.ring)
            for n, s in ((4, "alice"), (8, "bob"), (4, "alice"))
        ]
    return f


@st.composite
def mutations(draw: st.DrawFn, blobs: list[bytes]) -> bytes:
    blob = draw(st.sampled_from(blobs))
    kind = draw(st.sampled_from(["flip", "truncate", "extend", "splice", "overwrite", "insert"]))
    n = len(blob)
    if kind == "flip":
        positions = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=4))
        out = bytearray(blob)
        for p in positions:
            out[p] ^= 1 << draw(st.integers(0, 7))
        return bytes(out)
    if kind == "truncate":
        return blob[: draw(st.integers(0, n - 1))]
    if kind == "extend":
        return blob + draw(st.binary(min_size=1, max_size=64))
    if kind == "splice":
        other = draw(st.sampled_from(blobs))
        return blob[: draw(st.integers(0, n))] + other[draw(st.integers(0, len(other))) :]
    if kind == "insert":
        at = draw(st.integers(0, n))
        return blob[:at] + draw(st.binary(min_size=1, max_size=8)) + blob[at:]
    at = draw(st.integers(0, n - 1))
    patch = draw(st.binary(min_size=1, max_size=32))
    return blob[:at] + patch + blob[at + len(patch) :]


FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(data=st.data())
def test_fuzz_mutated_blobs_give_only_integrity_error(fixed: _Fixed, data: st.DataObject) -> None:
    blob = data.draw(mutations(fixed.blobs))
    assume(blob not in fixed.blobs)
    with pg.using(pg.Guard(clock=pg.FrozenClock(T0), audit=MemorySink())):
        assert_opaque(blob, fixed.ring)


@FUZZ
@given(
    raw=st.one_of(
        st.binary(max_size=400),
        st.binary(max_size=400).map(lambda b: b"PGST\x01\x01" + b),
    ),
    pick=st.integers(0, 2),
)
def test_fuzz_random_bytes_give_only_integrity_error(fixed: _Fixed, raw: bytes, pick: int) -> None:
    # Also with a real key id, so that decryption itself is reached.
    forged = raw[:6] + fixed.blobs[pick][6:22] + raw[22:] if len(raw) > 22 else raw
    with pg.using(pg.Guard(clock=pg.FrozenClock(T0), audit=MemorySink())):
        assert_opaque(raw, fixed.ring)
        assert_opaque(forged, fixed.ring)


@settings(max_examples=40, deadline=None)
@given(
    vec=st.lists(
        st.floats(allow_nan=False, allow_infinity=False, width=32), min_size=1, max_size=64
    ),
    subject=st.text(min_size=1, max_size=20).filter(lambda s: s.strip() != ""),
)
def test_round_trip_property(vec: list[float], subject: str) -> None:
    try:
        subject.encode("utf-8")
    except UnicodeEncodeError:
        assume(False)
    with pg.using(pg.Guard(clock=pg.FrozenClock(T0), audit=MemorySink())):
        ring = KeyRing(bytes(32))
        t = wrap(np.array(vec, dtype=np.float32), subject=subject)
        back = unseal(seal(t, ring), ring)
        assert back.label == t.label
        assert back.id == t.id
        assert back._values().tobytes() == t._values().tobytes()


# -- per-purpose projections ------------------------------------------------------------


def unit_rows(seed: int, n: int, d: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d))
    out: np.ndarray = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def test_projection_keeps_inner_products_within_a_purpose() -> None:
    p = PurposeProjection(b"k" * 32, purpose="face.identification", dim=128)
    x = unit_rows(0, 200, 128)
    y = p.project(x)
    assert np.allclose(y @ y.T, x @ x.T, atol=1e-10)
    assert np.allclose(np.linalg.norm(y, axis=1), 1.0)
    f32 = p.project(x.astype(np.float32))
    assert f32.dtype == np.float32
    assert np.allclose(f32 @ f32.T, x @ x.T, atol=1e-5)
    # the same map, whichever object computes it
    again = PurposeProjection(b"k" * 32, purpose="face.identification", dim=128)
    assert np.array_equal(again.project(x), y)
    assert np.allclose(p.project(x[0]), y[0], rtol=0, atol=1e-14)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ((b"k" * 32, "face.identification"), (b"k" * 32, "face.verification")),  # purposes
        ((b"k" * 32, "face.identification"), (b"r" * 32, "face.identification")),  # renewal
    ],
)
def test_projections_for_different_purposes_or_keys_are_unlinkable(
    a: tuple[bytes, str], b: tuple[bytes, str]
) -> None:
    d, n = 256, 2000
    pa = PurposeProjection(a[0], purpose=a[1], dim=d)
    pb = PurposeProjection(b[0], purpose=b[1], dim=d)
    x = unit_rows(1, n, d)
    same = np.sum(pa.project(x) * pb.project(x), axis=1)  # one face, two indexes
    # Chance level: mean 0, sd 1/sqrt(d) = 0.0625. Keys are fixed, so this is
    # deterministic; the margins are wide (the mean's sd is 0.0014, 7 sigma = 0.01).
    assert abs(float(same.mean())) < 0.01
    assert 0.8 / np.sqrt(d) < float(same.std()) < 1.2 / np.sqrt(d)
    assert float(np.abs(same).max()) < 6.5 / np.sqrt(d)
    # Searching one index with a probe projected for the other finds the face at chance.
    gallery = pa.project(x[:500])
    probes = pb.project(x[:500])
    hits = np.argmax(probes @ gallery.T, axis=1) == np.arange(500)
    assert int(hits.sum()) <= 5  # chance is 1 in 500 per probe
    # ...whereas within one index every face finds itself.
    assert bool(np.all(np.argmax(pa.project(x[:500]) @ gallery.T, axis=1) == np.arange(500)))


def test_projection_key_id_repr_and_errors() -> None:
    p = PurposeProjection.generate(purpose="face.identification", dim=8)
    assert len(p.key_id) == 16
    assert p.key_id in repr(p)
    assert p.export_key().hex() not in repr(p)
    assert (
        PurposeProjection(p.export_key(), purpose="face.identification", dim=8).key_id == p.key_id
    )
    assert p.purpose == pg.Purpose("face.identification")
    assert p.dim == 8
    with pytest.raises(pg.PolicyError, match="32 bytes"):
        PurposeProjection(b"short", purpose="face.identification", dim=8)
    for dim in (0, 5000, True):
        with pytest.raises(pg.PolicyError, match="dim"):
            PurposeProjection(b"k" * 32, purpose="face.identification", dim=dim)
    with pytest.raises(pg.PolicyError):
        PurposeProjection(b"k" * 32, purpose="Not A Purpose", dim=8)
    for bad in (np.ones(7), np.ones((2, 2, 8)), np.array([np.nan] * 8), "x" * 8, np.array([])):
        with pytest.raises(pg.InvalidTemplateError):
            p.project(bad)
    with pytest.raises(pg.PolicyError, match="pickled"):
        pickle.dumps(p)


def test_applying_a_projection_to_a_template(guard: pg.Guard, sink: MemorySink) -> None:
    p = PurposeProjection(b"k" * 32, purpose="face.identification", dim=DIM)
    t = wrap(purposes=["face.identification", "face.verification"])
    with pytest.raises(pg.PurposeViolationError):
        p.apply(t)  # no active purpose
    with (
        pg.purpose("face.verification"),
        pytest.raises(pg.PurposeViolationError, match="cannot be used"),
    ):
        p.apply(t)
    assert sink.events[-1].outcome is Outcome.DENIED
    assert "projection for 'face.identification'" in sink.events[-1].reason
    with pg.purpose("face.identification.closed_set_optin"):
        out = p.apply(t)
        assert sink.events[-1].operation is pg.Operation.TRANSFORM
        assert np.allclose(out.reveal(), p.project(t.reveal()))
    assert out.id != t.id
    assert out.purposes == frozenset({pg.Purpose("face.identification")})
    assert out.label.lineage[-1] == f"project:face.identification:{p.key_id}"
    assert (out.subject, out.expires_at) == (t.subject, t.expires_at)
    with pytest.raises(pg.InvalidTemplateError, match="dimension"):
        PurposeProjection(b"k" * 32, purpose="face.identification", dim=4).apply(t)
    with pytest.raises(pg.InvalidTemplateError, match="apply"):
        p.project(t)
    narrow = wrap(purposes="face.identification.closed_set_optin")
    with pg.purpose("face.identification.closed_set_optin"):
        assert p.apply(narrow).purposes == narrow.purposes


def test_public_names() -> None:
    assert crypto.__all__ == sorted(crypto.__all__)
    for name in crypto.__all__:
        obj = getattr(crypto, name)
        assert obj.__module__ in ("purposeguard.crypto", "purposeguard.typing"), name
        assert obj.__doc__


def test_the_atheris_harness_runs_without_atheris() -> None:
    import importlib.util

    path = Path(__file__).parent.parent / "fuzz" / "unseal_fuzz.py"
    spec = importlib.util.spec_from_file_location("unseal_fuzz", path)
    assert spec is not None
    assert spec.loader is not None
    harness = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(harness)
    for seed in harness.SEEDS:
        harness.one_input(seed)
        harness.one_input(seed[:-1])
        harness.one_input(seed + b"\0")
    harness.one_input(b"")
    harness.one_input(b"PGST\x01\x01" + bytes(200))


class _FailingStore(MemoryKeyStore):
    """A key store whose writes fail (a full disk, a KMS outage)."""

    fail = False

    def put(self, entries: Mapping[str, bytes]) -> None:
        if self.fail:
            raise OSError(28, "No space left on device")
        super().put(entries)


def test_a_key_store_that_cannot_write_stops_sealing_and_shredding(guard: pg.Guard) -> None:
    store = _FailingStore()
    assert isinstance(store, KeyStore)
    assert isinstance(FileKeyStore.__new__(FileKeyStore), KeyStore)
    ring = KeyRing(bytes(32), store)
    blob = seal(wrap(subject="alice"), ring)
    store.fail = True
    with pytest.raises(OSError, match="No space"):
        seal(wrap(subject="bob"), ring)  # a key that could not be stored is never used
    assert "bob" not in ring
    with pytest.raises(OSError, match="No space"):
        ring.shred("alice")
    assert "alice" in ring  # not reported as shredded when it was not
    store.fail = False
    assert unseal(blob, ring).subject == "alice"
    assert ring.shred("alice") == 1


# -- the keys command ---------------------------------------------------------------


def keys_cli(argv: list[str]) -> int:
    from purposeguard import _cli_crypto

    parser = argparse.ArgumentParser(prog="purposeguard")
    _cli_crypto.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


def test_keys_command(guard: pg.Guard, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kek, new_kek, store = tmp_path / "kek", tmp_path / "kek2", str(tmp_path / "keys.json")
    assert keys_cli(["keys", "generate", "--kek-file", str(kek)]) == 0
    assert stat.S_IMODE(kek.stat().st_mode) == 0o600
    assert keys_cli(["keys", "generate", "--kek-file", str(kek)]) == 2  # never overwrites
    ring = KeyRing.open(kek, FileKeyStore(store))
    blobs = seal_many([wrap(subject="alice"), wrap(subject="bob")], ring)
    capsys.readouterr()
    assert keys_cli(["keys", "list", "--kek-file", str(kek), "--store", store, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed == {"kek_id": ring.kek_id, "subjects": ["alice", "bob"]}
    assert keys_cli(["keys", "shred", "alice", "--kek-file", str(kek), "--store", store]) == 0
    assert "shredded 1 data key" in capsys.readouterr().out
    argv = ["keys", "rotate-kek", "--kek-file", str(kek), "--store", store]
    assert keys_cli([*argv, "--new-kek-file", str(new_kek)]) == 0
    out = capsys.readouterr().out
    assert kek.read_text().strip() not in out
    assert new_kek.read_text().strip() not in out
    rotated = KeyRing.open(new_kek, FileKeyStore(store))
    assert_opaque(blobs[0], rotated)
    assert unseal(blobs[1], rotated).subject == "bob"
    # the old KEK no longer opens the store: an integrity failure, exit 1
    assert keys_cli(["keys", "list", "--kek-file", str(kek), "--store", store]) == 1
    assert "integrity" in capsys.readouterr().err
    kek.chmod(0o644)
    assert keys_cli(["keys", "list", "--kek-file", str(kek), "--store", store]) == 2
    assert keys_cli(["keys", "list", "--kek-file", str(tmp_path / "none"), "--store", store]) == 2
