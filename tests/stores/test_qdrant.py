"""QdrantBackend against Qdrant's local mode (in-process, ``:memory:`` and ``path=``).

The backend contract runs on a persistent local collection; the tests below cover
what is particular to Qdrant: exactness at 1% permitted checked directly at the
backend, points without purposeguard's payload (an adopted collection) staying
invisible until :meth:`QdrantBackend.attach_label`, original values coming back
although a cosine collection normalises what it stores, and erasure surviving a
reopen of the on-disk collection.
"""

from __future__ import annotations

import base64
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

import purposeguard as pg
from purposeguard.audit import MemorySink
from purposeguard.stores import GuardedStore, Record, SearchFilter, VectorBackend
from purposeguard.stores._records import permitted_purposes, to_us

from .contract import DIM, T0, BackendContract, cosine

pytest.importorskip("qdrant_client")

from qdrant_client import QdrantClient, models

from purposeguard.stores._qdrant import QdrantBackend

ID_PURPOSE = "face.identification"


def _fast_dir(tmp_path: Path) -> Path:
    """A folder for a local-mode collection, on tmpfs when the machine has one.

    Local mode commits every point in its own SQLite transaction (an fsync each:
    ~17 ms a point on this machine's disk, 55 s for the contract's 3,000-template
    galleries); on tmpfs the same files cost ~0.5 ms a point. The engine and its files
    are the same: only the disk differs. ``tmp_path/qdrant`` links to the folder so
    that a reopen finds it again.
    """
    link = tmp_path / "qdrant"
    if not link.exists():
        shm = Path("/dev/shm")  # noqa: S108 - mkdtemp makes a private 0700 folder in it
        if shm.is_dir() and os.access(shm, os.W_OK):
            link.symlink_to(tempfile.mkdtemp(prefix="pg-qdrant-", dir=shm))
        else:
            link.mkdir()
    return link


class TestQdrantBackend(BackendContract):
    """The shared contract on a persistent local-mode collection (``path=``)."""

    machine_examples = 20

    @pytest.fixture(autouse=True)
    def _cleanup_tmpfs(self, tmp_path: Path) -> Iterator[None]:
        yield
        for link in [tmp_path / "qdrant", *tmp_path.glob("*/qdrant")]:
            if link.is_symlink():
                shutil.rmtree(link.resolve(), ignore_errors=True)

    def make_backend(self, tmp_path: Path) -> VectorBackend:
        return QdrantBackend(path=_fast_dir(tmp_path))

    def reopen(self, backend: VectorBackend, tmp_path: Path) -> VectorBackend | None:
        backend.close()
        return QdrantBackend(path=tmp_path / "qdrant")


# -- helpers -------------------------------------------------------------------------------


def _records(
    guard: pg.Guard,
    x: npt.NDArray[np.float32],
    permitted: npt.NDArray[np.bool_],
    *,
    consent: str | None = None,
) -> list[Record]:
    tax = guard.taxonomy
    out = []
    for i, v in enumerate(x):
        t = pg.FaceTemplate.wrap(
            v,
            subject=f"s-{i % 31}",
            purposes=ID_PURPOSE if permitted[i] else "face.verification",
            ttl=timedelta(days=30),
            consent=consent if consent is not None else f"c-{i % 3}",
        )
        out.append(
            Record(
                template_id=t.id,
                vector=v.astype(np.float32),
                label=t.label,
                permits=permitted_purposes(t.label, tax),
            )
        )
    return out


def _probe(vec: npt.NDArray[Any]) -> pg.FaceTemplate:
    return pg.FaceTemplate.wrap(vec, subject="probe", purposes=ID_PURPOSE, ttl=timedelta(hours=1))


def _raw_points(client: QdrantClient, collection: str, vecs: npt.NDArray[np.float32]) -> list[str]:
    """Insert points the way an application would, without purposeguard's payload."""
    ids = [uuid.uuid4() for _ in vecs]
    client.upsert(
        collection,
        points=[
            models.PointStruct(id=str(u), vector=v.tolist(), payload={"name": f"raw-{i}"})
            for i, (u, v) in enumerate(zip(ids, vecs, strict=True))
        ],
        wait=True,
    )
    return [u.hex for u in ids]


@pytest.fixture
def mem_backend() -> Iterator[QdrantBackend]:
    b = QdrantBackend(location=":memory:")
    yield b
    b.close()


# -- exactness -----------------------------------------------------------------------------


@pytest.mark.parametrize("share", [0.01, 0.005])
def test_exact_top_k_when_few_are_permitted(
    guard: pg.Guard, mem_backend: QdrantBackend, share: float
) -> None:
    rng = np.random.default_rng(7)
    n = 3000
    x = rng.standard_normal((n, DIM)).astype(np.float32)
    permitted = rng.random(n) < share
    permitted[:3] = True
    recs = _records(guard, x, permitted)
    mem_backend.add(recs)
    now = to_us(T0)
    for _ in range(4):
        q = rng.standard_normal(DIM).astype(np.float32)
        scores = cosine(x, q)
        for k in (1, 10, int(permitted.sum()) + 5):
            hits = mem_backend.search(q, k, SearchFilter(purpose=ID_PURPOSE, now_us=now))
            order = [i for i in np.argsort(-scores) if permitted[i]][:k]
            assert [h.template_id for h in hits] == [recs[i].template_id for i in order]
            assert np.allclose([h.score for h in hits], scores[order], atol=1e-5)
            assert all(h.label == recs[i].label for h, i in zip(hits, order, strict=True))
        # withdrawn consents are filtered inside the engine too
        flt = SearchFilter(purpose=ID_PURPOSE, now_us=now, withdrawn_consents=frozenset({"c-1"}))
        hits = mem_backend.search(q, 10, flt)
        order = [i for i in np.argsort(-scores) if permitted[i] and i % 3 != 1][:10]
        assert [h.template_id for h in hits] == [recs[i].template_id for i in order]


def test_expiry_is_filtered_in_the_engine(guard: pg.Guard, mem_backend: QdrantBackend) -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((20, DIM)).astype(np.float32)
    recs = _records(guard, x, np.ones(20, bool))
    mem_backend.add(recs)
    expires = recs[0].expires_us
    q = x[0]
    assert mem_backend.search(q, 5, SearchFilter(purpose=ID_PURPOSE, now_us=expires - 1))
    assert mem_backend.search(q, 5, SearchFilter(purpose=ID_PURPOSE, now_us=expires)) == []
    assert mem_backend.search(q, 5, SearchFilter(purpose="face.analytics", now_us=0)) == []


def test_fetch_returns_the_original_values(guard: pg.Guard, mem_backend: QdrantBackend) -> None:
    # A cosine collection normalises stored vectors; fetch must not.
    x = (np.arange(DIM * 2, dtype=np.float32).reshape(2, DIM) + 1) * np.float32(3.7)
    recs = _records(guard, x, np.ones(2, bool))
    mem_backend.add(recs)
    for r in recs:
        back = mem_backend.fetch(r.template_id)
        assert back is not None
        assert back.vector.dtype == np.float32
        assert np.array_equal(back.vector, r.vector)
        assert back.label == r.label
        assert back.permits == r.permits
    assert mem_backend.fetch("f" * 32) is None
    assert mem_backend.fetch("not an id") is None


def test_add_is_atomic(guard: pg.Guard, mem_backend: QdrantBackend) -> None:
    rng = np.random.default_rng(5)
    x = rng.standard_normal((6, DIM)).astype(np.float32)
    recs = _records(guard, x, np.ones(6, bool))
    mem_backend.add(recs[:3])
    with pytest.raises(pg.InvalidTemplateError, match="already stored"):
        mem_backend.add(recs[3:] + recs[:1])
    with pytest.raises(pg.InvalidTemplateError, match="twice"):
        mem_backend.add([recs[4], recs[4]])
    short = Record(
        template_id=uuid.uuid4().hex,
        vector=np.ones(DIM - 1, np.float32),
        label=recs[5].label,
        permits=recs[5].permits,
    )
    with pytest.raises(pg.InvalidTemplateError, match="dimension") as e:
        mem_backend.add([recs[5], short])
    assert "1.0" not in str(e.value)
    assert mem_backend.count() == 3
    assert mem_backend.client.count(mem_backend.collection).count == 3
    mem_backend.add(recs[3:])
    assert mem_backend.count() == 6


def test_a_zero_probe_is_refused(guard: pg.Guard, mem_backend: QdrantBackend) -> None:
    mem_backend.add(_records(guard, np.ones((1, DIM), np.float32), np.ones(1, bool)))
    with pytest.raises(pg.InvalidTemplateError, match="zero"):
        mem_backend.search(np.zeros(DIM, np.float32), 3, SearchFilter(purpose="x", now_us=0))


# -- adopting a collection: unlabelled points ------------------------------------------------


def test_unlabelled_points_are_invisible(guard: pg.Guard, tmp_path: Path) -> None:
    client = QdrantClient(path=str(tmp_path / "q"))
    backend = QdrantBackend("faces", client=client)
    store = GuardedStore(backend)
    rng = np.random.default_rng(11)
    x = rng.standard_normal((40, DIM)).astype(np.float32)
    labelled = [
        pg.FaceTemplate.wrap(v, subject="a", purposes=ID_PURPOSE, ttl=timedelta(days=1)) for v in x
    ]
    store.enrol_many(labelled)
    q = rng.standard_normal(DIM).astype(np.float32)
    # Raw points right at the probe: they would be the top hits if not filtered.
    raw = _raw_points(client, "faces", np.stack([q, q * 2, -q]))
    client.upsert(
        "faces",
        points=[models.PointStruct(id=7, vector=q.tolist(), payload={})],
        wait=True,
    )
    assert client.count("faces").count == 44
    assert len(store) == 40
    assert store.stats()["subjects"] == 1
    with pg.purpose(ID_PURPOSE):
        got = store.search(_probe(q), 50)
        assert {m.template_id for m in got} == {t.id for t in labelled}
        for tid in raw:
            with pytest.raises(pg.TemplateNotFoundError):
                store.get(tid)
    for tid in raw:
        assert backend.fetch(tid) is None
    assert sorted(backend.unlabelled_ids()) == sorted([*raw, "7"])
    assert len(backend.unlabelled_ids(limit=2)) == 2
    # deletions leave points they do not own alone
    assert backend.delete_ids(raw) == 0
    assert store.purge_expired() == 0
    assert store.erase_subject("a") == 40
    assert client.count("faces").count == 4
    backend.close()
    assert client.count("faces").count == 4  # the client passed in is not ours to close
    client.close()


def test_attach_label_adopts_one_point(guard: pg.Guard) -> None:
    client = QdrantClient(":memory:")
    client.create_collection(
        "legacy", vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE)
    )
    rng = np.random.default_rng(13)
    x = rng.standard_normal((5, DIM)).astype(np.float32)
    raw = _raw_points(client, "legacy", x)
    backend = QdrantBackend("legacy", client=client)
    assert backend.dim == DIM
    assert backend.count() == 0
    store = GuardedStore(backend)
    with pg.purpose(ID_PURPOSE):
        assert store.search(_probe(x[2]), 3) == []

    # Adopt point 2: read back its vector, label it.
    [pt] = client.retrieve("legacy", [raw[2]], with_vectors=True)
    assert isinstance(pt.vector, list)
    stored = np.asarray(pt.vector, np.float32)
    t = pg.FaceTemplate.wrap(stored, subject="adopted", purposes=ID_PURPOSE, ttl=timedelta(days=1))
    rec = Record(
        template_id=raw[2],
        vector=stored,
        label=t.label,
        permits=permitted_purposes(t.label, guard.taxonomy),
    )
    backend.attach_label(rec)
    with pg.purpose(ID_PURPOSE):
        got = store.search(_probe(x[2]), 3)
        assert [m.template_id for m in got] == [raw[2]]
        assert got[0].score == pytest.approx(1.0, abs=1e-5)
        back = store.get(raw[2])
    assert back.label == t.label
    assert backend.count() == 1
    assert raw[2] not in backend.unlabelled_ids()
    # the application's own payload is kept
    [pt] = client.retrieve("legacy", [raw[2]], with_payload=["name"])
    assert pt.payload == {"name": "raw-2"}

    with pytest.raises(pg.InvalidTemplateError, match="already carries"):
        backend.attach_label(rec)
    with pytest.raises(pg.TemplateNotFoundError):
        backend.attach_label(attrs_evolve(rec, template_id="a" * 32))
    with pytest.raises(pg.InvalidTemplateError, match="dimension"):
        backend.attach_label(
            attrs_evolve(rec, template_id=raw[3], vector=np.ones(DIM + 1, np.float32))
        )
    with pytest.raises(pg.InvalidTemplateError, match="not the one stored"):
        backend.attach_label(attrs_evolve(rec, template_id=raw[3], vector=x[4]))
    assert backend.count() == 1
    backend.close()
    client.close()


def attrs_evolve(rec: Record, **changes: Any) -> Record:
    import attrs

    return attrs.evolve(rec, **changes)


def test_a_point_with_a_partial_label_fails_closed(
    guard: pg.Guard, mem_backend: QdrantBackend
) -> None:
    rng = np.random.default_rng(17)
    x = rng.standard_normal((3, DIM)).astype(np.float32)
    mem_backend.add(_records(guard, x, np.ones(3, bool)))
    # Looks permitted to the filter but carries no label: an error, never a result.
    forged = uuid.uuid4()
    mem_backend.client.upsert(
        mem_backend.collection,
        points=[
            models.PointStruct(
                id=str(forged),
                vector=x[0].tolist(),
                payload={"pg_permits": [ID_PURPOSE], "pg_expires_us": 2**62},
            )
        ],
        wait=True,
    )
    flt = SearchFilter(purpose=ID_PURPOSE, now_us=to_us(T0))
    with pytest.raises(pg.IntegrityError):
        mem_backend.search(x[0], 3, flt)
    assert mem_backend.fetch(forged.hex) is None
    # A label whose fields disagree with its payload is refused too.
    mem_backend.client.delete(
        mem_backend.collection, points_selector=models.PointIdsList(points=[str(forged)])
    )
    victim = mem_backend.search(x[1], 1, SearchFilter(purpose=ID_PURPOSE, now_us=0))
    tid = victim[0].template_id
    mem_backend.client.set_payload(
        mem_backend.collection,
        payload={"pg_subject": "someone else"},
        points=models.PointIdsList(points=[str(uuid.UUID(hex=tid))]),
        wait=True,
    )
    with pytest.raises(pg.IntegrityError):
        mem_backend.fetch(tid)


def test_a_collection_that_is_not_cosine_is_refused() -> None:
    client = QdrantClient(":memory:")
    client.create_collection(
        "dot", vectors_config=models.VectorParams(size=4, distance=models.Distance.DOT)
    )
    client.create_collection(
        "named",
        vectors_config={"face": models.VectorParams(size=4, distance=models.Distance.COSINE)},
    )
    with pytest.raises(pg.PolicyError, match="cosine"):
        QdrantBackend("dot", client=client)
    with pytest.raises(pg.PolicyError, match="vector_name"):
        QdrantBackend("named", client=client)
    assert QdrantBackend("named", client=client, vector_name="face").dim == 4
    client.close()


def test_a_named_vector_collection_works(guard: pg.Guard) -> None:
    backend = QdrantBackend(location=":memory:", vector_name="face")
    rng = np.random.default_rng(19)
    x = rng.standard_normal((30, DIM)).astype(np.float32)
    recs = _records(guard, x, np.ones(30, bool))
    backend.add(recs)
    hits = backend.search(x[4], 1, SearchFilter(purpose=ID_PURPOSE, now_us=0))
    assert hits[0].template_id == recs[4].template_id
    got = backend.fetch(recs[4].template_id)
    assert got is not None
    assert np.array_equal(got.vector, x[4])
    backend.close()
    with pytest.raises(pg.PolicyError, match="closed"):
        backend.count()


# -- erasure on disk ------------------------------------------------------------------------


def test_erasure_is_gone_after_reopening(
    guard: pg.Guard, clock: pg.FrozenClock, tmp_path: Path
) -> None:
    where = tmp_path / "q"
    store = GuardedStore(QdrantBackend(path=where))
    rng = np.random.default_rng(23)
    x = rng.standard_normal((60, DIM)).astype(np.float32)
    ts = [
        pg.FaceTemplate.wrap(
            x[i],
            subject=f"s-{i % 4}",
            purposes=ID_PURPOSE,
            ttl=timedelta(days=1 + i % 2),
            consent=f"c-{i % 3}",
        )
        for i in range(60)
    ]
    ids = store.enrol_many(ts)
    erased = [tid for i, tid in enumerate(ids) if i % 4 == 0]
    assert store.erase_subject("s-0") == 15
    assert len(store) == 45
    assert store.withdraw_consent("c-1") == sum(1 for i in range(60) if i % 3 == 1 and i % 4)
    left = len(store)
    clock.advance(timedelta(days=1))
    expired = sum(1 for i in range(60) if i % 2 == 0 and i % 4 and i % 3 != 1)
    assert store.purge_expired() == expired
    assert len(store) == left - expired
    store.close()

    again = QdrantBackend(path=where)
    assert again.count() == left - expired
    assert again.client.count(again.collection).count == left - expired
    for tid in erased:
        assert again.fetch(tid) is None
        assert again.client.retrieve(again.collection, [str(uuid.UUID(hex=tid))]) == []
    with pg.purpose(ID_PURPOSE):
        got = GuardedStore(again).search(_probe(x[0]), 60)
    assert not {m.template_id for m in got} & set(erased)
    again.close()
    # Where SQLite overwrites deleted content (secure_delete, the Debian default), the
    # erased values are gone from the file too.
    db = next(where.rglob("storage.sqlite"))
    with sqlite3.connect(":memory:") as c:
        secure = c.execute("pragma secure_delete").fetchone()[0] == 1
    if secure:
        data = db.read_bytes()
        for i in range(0, 60, 4):
            b64 = base64.b64encode(x[i].astype("<f4").tobytes())
            assert b64[:24] not in data


def test_the_module_imports_without_the_client() -> None:
    code = (
        "import sys; import purposeguard.stores._qdrant, purposeguard.stores; "
        "assert 'qdrant_client' not in sys.modules, 'imported eagerly'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)  # noqa: S603


def test_a_refused_folder_is_left_unlocked(tmp_path: Path) -> None:
    client = QdrantClient(path=str(tmp_path / "q"))
    client.create_collection(
        "euclid", vectors_config=models.VectorParams(size=4, distance=models.Distance.EUCLID)
    )
    client.close()
    with pytest.raises(pg.PolicyError, match="cosine"):
        QdrantBackend("euclid", path=tmp_path / "q")
    fresh = QdrantBackend("other", path=tmp_path / "q")  # the folder's lock was released
    assert fresh.dim is None
    assert fresh.count() == 0
    fresh.close()


# -- GuardedStore.adopt: the user-facing way to label an existing collection -----------------


def test_guarded_adopt_labels_audits_and_makes_visible(guard: pg.Guard, sink: MemorySink) -> None:
    client = QdrantClient(":memory:")
    client.create_collection(
        "legacy", vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE)
    )
    backend = QdrantBackend("legacy", client=client)
    store = GuardedStore(backend)
    rng = np.random.default_rng(5)
    vecs = rng.standard_normal((3, DIM)).astype(np.float32)
    raw = _raw_points(client, "legacy", vecs)
    assert sorted(store.unlabelled()) == sorted(raw)
    before = len(sink.events)
    t = store.adopt(raw[0], subject="legacy-1", purposes=ID_PURPOSE, ttl=timedelta(days=30))
    assert t.id == raw[0]
    ops = [e.operation for e in sink.events[before:]]
    assert ops == [pg.Operation.COLLECT, pg.Operation.STORE]
    assert all(raw[0] in e.template_ids for e in sink.events[before:])
    assert sorted(store.unlabelled()) == sorted(raw[1:])
    with pg.purpose(ID_PURPOSE):
        got = store.search(_probe(vecs[0]), 3)
        assert [m.template_id for m in got] == [raw[0]]
        assert store.get(raw[0]).label == t.label
    # adopting again, adopting a missing id, and a label that may not be stored all fail
    with pytest.raises(pg.TemplateNotFoundError):
        store.adopt(raw[0], subject="x", purposes=ID_PURPOSE, ttl=timedelta(days=1))
    with pytest.raises(pg.TemplateNotFoundError):
        store.adopt("f" * 32, subject="x", purposes=ID_PURPOSE, ttl=timedelta(days=1))
    with pytest.raises(pg.PurposeViolationError):
        store.adopt(raw[1], subject="x", purposes="face.liveness", ttl=timedelta(days=1))
    with pytest.raises(pg.InvalidTemplateError):
        store.adopt(raw[1], subject="", purposes=ID_PURPOSE, ttl=timedelta(days=1))
    assert sorted(store.unlabelled()) == sorted(raw[1:])
    client.close()


def test_adopt_is_refused_by_backends_without_unlabelled_entries(guard: pg.Guard) -> None:
    from purposeguard.stores import MemoryBackend

    store = GuardedStore(MemoryBackend())
    with pytest.raises(pg.PolicyError):
        store.adopt("a" * 32, subject="x", purposes=ID_PURPOSE, ttl=timedelta(days=1))
