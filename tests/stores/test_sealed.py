"""SealedSQLiteBackend: the backend contract, nothing in clear at rest, erasure by
shredding, and integrity failures."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

import purposeguard as pg
from purposeguard.crypto import FileKeyStore, KeyRing, seal, unseal
from purposeguard.stores import GuardedStore, SealedSQLiteBackend, SQLiteBackend, VectorBackend

from .contract import DIM, BackendContract

KEK = bytes(range(32))


def ring_at(tmp_path: Path) -> KeyRing:
    return KeyRing(KEK, FileKeyStore(tmp_path / "keys.json"))


class TestSealedSQLiteBackend(BackendContract):
    machine_examples = 8

    def make_backend(self, tmp_path: Path) -> VectorBackend:
        return SealedSQLiteBackend(tmp_path / "sealed.db", keyring=ring_at(tmp_path))

    def reopen(self, backend: VectorBackend, tmp_path: Path) -> VectorBackend | None:
        backend.close()
        return SealedSQLiteBackend(tmp_path / "sealed.db", keyring=ring_at(tmp_path))


@pytest.fixture
def store(tmp_path: Path, guard: pg.Guard) -> Iterator[GuardedStore]:
    s = GuardedStore(SealedSQLiteBackend(tmp_path / "s.db", keyring=ring_at(tmp_path)))
    yield s
    s.close()


def wrap(vec: np.ndarray, subject: str = "alice") -> pg.FaceTemplate:
    return pg.FaceTemplate.wrap(
        vec, subject=subject, purposes="face.identification", ttl=timedelta(days=1)
    )


def test_no_vector_is_written_in_clear(tmp_path: Path, store: GuardedStore) -> None:
    vec = np.linspace(1.0, 2.0, DIM, dtype=np.float32)
    store.enrol(wrap(vec))
    store.backend.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("s.db"))
    assert vec.tobytes()[:16] not in raw
    assert vec[3:7].tobytes() not in raw
    assert b"PGST" in raw  # the sealed blob is there instead


def test_erasing_a_subject_shreds_its_keys(tmp_path: Path, store: GuardedStore) -> None:
    a = wrap(np.ones(DIM), "alice")
    b = wrap(np.arange(DIM, dtype=np.float32), "bob")
    store.enrol_many([a, b])
    backend = store.backend
    assert isinstance(backend, SealedSQLiteBackend)
    row = sqlite3.connect(tmp_path / "s.db").execute(
        "SELECT sealed FROM pg_sealed WHERE id = ?", (a.id,)
    )
    backup = row.fetchone()[0]  # a copy taken before the erasure, as a backup would be
    assert "alice" in backend.keyring
    assert store.erase_subject("alice") == 1
    assert "alice" not in backend.keyring.subjects()
    with pytest.raises(pg.IntegrityError):
        unseal(backup, backend.keyring)
    with pytest.raises(pg.IntegrityError):
        unseal(backup, ring_at(tmp_path))  # the file key store agrees
    assert len(store) == 1
    with pg.purpose("face.identification"):
        assert [m.subject for m in store.search(wrap(np.ones(DIM), "p"), 5)] == ["bob"]


def test_shredding_through_the_keyring_drops_rows_at_reopen(tmp_path: Path) -> None:
    ring = ring_at(tmp_path)
    backend = SealedSQLiteBackend(tmp_path / "s.db", keyring=ring)
    with pg.using(pg.Guard(audit=pg.audit.MemorySink())):
        store = GuardedStore(backend)
        store.enrol_many([wrap(np.ones(DIM), "alice"), wrap(np.ones(DIM), "bob")])
    backend.close()
    assert ring.shred("alice") == 1
    again = SealedSQLiteBackend(tmp_path / "s.db", keyring=ring)
    assert again.count() == 1
    again.close()
    subjects = sqlite3.connect(tmp_path / "s.db").execute("SELECT subject FROM pg_sealed")
    assert [r[0] for r in subjects] == ["bob"]  # the shredded subject's row is gone


def test_erase_without_shredding_keeps_the_keys(tmp_path: Path, guard: pg.Guard) -> None:
    ring = ring_at(tmp_path)
    store = GuardedStore(
        SealedSQLiteBackend(tmp_path / "s.db", keyring=ring, shred_on_erase=False)
    )
    store.enrol(wrap(np.ones(DIM)))
    assert store.erase_subject("alice") == 1
    assert "alice" in ring.subjects()
    store.close()


def test_a_wrong_keyring_is_an_integrity_error(tmp_path: Path, store: GuardedStore) -> None:
    store.enrol(wrap(np.ones(DIM)))
    store.close()
    with pytest.raises(pg.IntegrityError, match="does not unseal"):
        SealedSQLiteBackend(tmp_path / "s.db", keyring=KeyRing.generate())


def test_a_swapped_row_is_an_integrity_error(tmp_path: Path, store: GuardedStore) -> None:
    a, b = wrap(np.ones(DIM), "alice"), wrap(np.zeros(DIM), "bob")
    store.enrol_many([a, b])
    store.close()
    conn = sqlite3.connect(tmp_path / "s.db")
    blob_b = conn.execute("SELECT sealed FROM pg_sealed WHERE id = ?", (b.id,)).fetchone()[0]
    conn.execute("UPDATE pg_sealed SET sealed = ? WHERE id = ?", (blob_b, a.id))
    conn.commit()
    conn.close()
    with pytest.raises(pg.IntegrityError, match="not this row's"):
        SealedSQLiteBackend(tmp_path / "s.db", keyring=ring_at(tmp_path))


def test_a_flipped_byte_is_an_integrity_error(tmp_path: Path, store: GuardedStore) -> None:
    a = wrap(np.ones(DIM))
    store.enrol(a)
    store.close()
    conn = sqlite3.connect(tmp_path / "s.db")
    blob = bytearray(conn.execute("SELECT sealed FROM pg_sealed").fetchone()[0])
    blob[-20] ^= 0x01
    conn.execute("UPDATE pg_sealed SET sealed = ?", (bytes(blob),))
    conn.commit()
    conn.close()
    with pytest.raises(pg.IntegrityError, match=a.id):
        SealedSQLiteBackend(tmp_path / "s.db", keyring=ring_at(tmp_path))


def test_another_connection_sees_writes_and_shreds(tmp_path: Path, guard: pg.Guard) -> None:
    ring = ring_at(tmp_path)
    one = SealedSQLiteBackend(tmp_path / "s.db", keyring=ring)
    two = SealedSQLiteBackend(tmp_path / "s.db", keyring=ring)
    GuardedStore(one).enrol_many([wrap(np.ones(DIM), "alice"), wrap(np.ones(DIM), "bob")])
    assert two.count() == 2
    assert two.shred("alice") == 1
    assert one.count() == 1
    one.close()
    two.close()


def test_refuses_other_databases_and_bad_arguments(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    ring = KeyRing.generate()
    with pytest.raises(pg.PolicyError, match="not a sealed purposeguard store"):
        SealedSQLiteBackend(other, keyring=ring)
    with pytest.raises(pg.PolicyError, match="KeyRing"):
        SealedSQLiteBackend(tmp_path / "x.db", keyring=object())  # type: ignore[arg-type]
    with pytest.raises(pg.PolicyError, match="directory"):
        SealedSQLiteBackend(tmp_path, keyring=ring)
    b = SealedSQLiteBackend(":memory:", keyring=ring)
    b.close()
    with pytest.raises(pg.PolicyError, match="closed"):
        b.count()


def test_sealed_store_rows_are_ordinary_sealed_templates(tmp_path: Path, guard: pg.Guard) -> None:
    # A row exported from the store opens with unseal() and the same key ring.
    ring = ring_at(tmp_path)
    store = GuardedStore(SealedSQLiteBackend(tmp_path / "s.db", keyring=ring))
    t = wrap(np.arange(DIM, dtype=np.float32))
    store.enrol(t)
    blob = sqlite3.connect(tmp_path / "s.db").execute("SELECT sealed FROM pg_sealed").fetchone()[0]
    back = unseal(blob, ring)
    assert back.id == t.id
    assert back.label == t.label
    assert len(seal(back, ring)) == len(blob)
    store.close()


def test_erasure_leaves_no_write_ahead_log_and_a_plain_store_is_refused(
    tmp_path: Path, guard: pg.Guard
) -> None:
    # The sealed store opens, writes and erases exactly as SQLiteBackend does (they
    # share one implementation): erasure truncates the -wal file, checkpoint() is
    # available, and neither kind of file is mistaken for the other.
    path = tmp_path / "sealed.db"
    backend = SealedSQLiteBackend(path, keyring=KeyRing.generate())
    with GuardedStore(backend) as s:
        s.enrol_many([wrap(np.ones(DIM)), wrap(np.arange(1.0, DIM + 1), "bob")])
        assert s.erase_subject("alice") == 1
        wal = Path(f"{path}-wal")
        assert not wal.exists() or wal.stat().st_size == 0
        assert backend.checkpoint() is True
        assert len(backend) == 1
        assert "SealedSQLiteBackend" in repr(backend)
    assert "closed" in repr(backend)
    plain = tmp_path / "plain.db"
    SQLiteBackend(plain).close()
    with pytest.raises(pg.PolicyError, match="not a sealed purposeguard store"):
        SealedSQLiteBackend(plain, keyring=KeyRing.generate())
    with pytest.raises(pg.PolicyError, match="not a purposeguard store"):
        SQLiteBackend(path)
