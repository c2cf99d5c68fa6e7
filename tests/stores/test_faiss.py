"""FaissBackend against the real faiss: the contract, exactness, recall, erasure."""

from __future__ import annotations

import secrets
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import pytest

import purposeguard as pg
import purposeguard.stores
from purposeguard.stores import GuardedStore, MemoryBackend, Record, SearchFilter, VectorBackend
from purposeguard.stores._faiss import FaissBackend
from purposeguard.stores._records import to_us

from .contract import DIM, BackendContract

T0 = datetime(2026, 1, 1, tzinfo=UTC)
NOW_US = to_us(T0)
ID = "face.identification"
VER = "face.verification"


# -- the contract ---------------------------------------------------------------------------


class TestFaissFlat(BackendContract):
    """The exact index, persisted to a snapshot file."""

    def make_backend(self, tmp_path: Path) -> VectorBackend:
        return FaissBackend(path=tmp_path / "store.npz")

    def reopen(self, backend: VectorBackend, tmp_path: Path) -> VectorBackend | None:
        backend.close()
        return FaissBackend(path=tmp_path / "store.npz")


class TestFaissHNSW(BackendContract):
    """The graph index with the exact fallback switched off, so every filtered search
    walks the graph (the path whose recall is at stake)."""

    exact: ClassVar[bool] = False

    def make_backend(self, tmp_path: Path) -> VectorBackend:
        return FaissBackend(
            index="hnsw", path=tmp_path / "store.npz", hnsw_m=16, exact_below=0, exact_share=0
        )

    def reopen(self, backend: VectorBackend, tmp_path: Path) -> VectorBackend | None:
        backend.close()
        return FaissBackend(
            index="hnsw", path=tmp_path / "store.npz", hnsw_m=16, exact_below=0, exact_share=0
        )


# -- helpers --------------------------------------------------------------------------------


def records(
    x: npt.NDArray[np.float32],
    permitted: npt.NDArray[np.bool_],
    *,
    subjects: int = 50,
    consents: int = 4,
    expires: list[int] | None = None,
) -> list[Record]:
    """Records over the rows of *x*; rows in *permitted* permit identification."""
    out = []
    for i in range(x.shape[0]):
        hours = 24 if expires is None else expires[i]
        label = pg.Label(
            allowed=[ID if permitted[i] else VER],
            subject=f"s-{i % subjects}",
            expires_at=T0 + timedelta(hours=hours),
            consent=f"c-{i % consents}",
        )
        out.append(
            Record(
                template_id=secrets.token_hex(16),
                vector=x[i],
                label=label,
                permits=frozenset({ID, VER} if permitted[i] else {VER}),
            )
        )
    return out


def brute_force(
    x: npt.NDArray[np.float32], ok: npt.NDArray[np.bool_], q: npt.NDArray[np.float32], k: int
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float64]]:
    """Rows and cosine scores of the exact top-k among rows where *ok*, in float64."""
    x64 = x.astype(np.float64)
    q64 = q.astype(np.float64)
    scores = (x64 @ q64) / (np.linalg.norm(x64, axis=1) * np.linalg.norm(q64))
    rows = np.flatnonzero(ok)
    top = rows[np.argsort(-scores[rows], kind="stable")[:k]]
    return top, scores[top]


def flt(**kw: Any) -> SearchFilter:
    return SearchFilter(purpose=ID, now_us=NOW_US, **kw)


def gaussian(n: int, dim: int, seed: int) -> npt.NDArray[np.float32]:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


# -- the flat index is exact ----------------------------------------------------------------


@pytest.mark.parametrize("share", [1.0, 0.25, 0.01])
def test_flat_is_the_brute_force_top_k(share: float) -> None:
    n, dim, k = 5000, 32, 10
    x = gaussian(n, dim, 1)
    rng = np.random.default_rng(2)
    permitted = rng.random(n) < share
    permitted[:3] = True
    # Some rows expired and some on a withdrawn consent: the filter has three parts.
    expires = [int(h) for h in rng.choice([-1, 24], size=n, p=[0.1, 0.9])]
    recs = records(x, permitted, expires=expires)
    backend = FaissBackend()
    backend.add(recs)
    ok = permitted & (np.array(expires) > 0) & (np.arange(n) % 4 != 3)
    f = flt(withdrawn_consents=frozenset({"c-3"}))
    for j in range(20):
        q = gaussian(1, dim, 100 + j)[0]
        hits = backend.search(q, k, f)
        rows, scores = brute_force(x, ok, q, k)
        assert [h.template_id for h in hits] == [recs[r].template_id for r in rows]
        assert np.allclose([h.score for h in hits], scores, atol=1e-5)
        assert all(h.label == recs[r].label for h, r in zip(hits, rows, strict=True))
    assert backend.ntotal == n
    backend.close()


def test_flat_stays_exact_through_erasures() -> None:
    # Erasure fills holes with rows from the tail; faiss must follow every move.
    n, dim = 3000, 16
    x = gaussian(n, dim, 3)
    permitted = np.random.default_rng(4).random(n) < 0.5
    recs = records(x, permitted, subjects=37, consents=7)
    faiss_b, mem_b = FaissBackend(), MemoryBackend()
    for b in (faiss_b, mem_b):
        b.add(recs[:2000])
    rng = np.random.default_rng(5)
    picked = rng.choice(2000, 300, replace=False)
    steps: list[tuple[str, Any]] = [
        ("subject", "s-3"),
        ("ids", [recs[int(i)].template_id for i in picked]),
        ("add", recs[2000:]),
        ("consent", "c-2"),
        ("subject", "s-11"),
        ("ids", [r.template_id for r in recs[::5]]),
    ]
    for kind, arg in steps:
        for b in (faiss_b, mem_b):
            if kind == "add":
                b.add(arg)
            elif kind == "ids":
                b.delete_ids(arg)
            else:
                b.delete_matching(**{kind: arg})
        assert faiss_b.count() == mem_b.count() == faiss_b.ntotal
        for j in range(5):
            q = gaussian(1, dim, 200 + j)[0]
            got, want = faiss_b.search(q, 8, flt()), mem_b.search(q, 8, flt())
            assert [h.template_id for h in got] == [h.template_id for h in want]
            assert np.allclose([h.score for h in got], [h.score for h in want], atol=1e-5)
    for rec in recs[::97]:
        back = faiss_b.fetch(rec.template_id)
        assert (back is None) == (mem_b.fetch(rec.template_id) is None)
        if back is not None:
            assert np.array_equal(back.vector, rec.vector)


# -- HNSW: recall at low selectivity, never a non-permitted row -----------------------------

HN, HDIM = 20_000, 64
# One graph serves both shares: each purpose is permitted to its own random share.
SHARES = {"face.identification": 0.25, "face.public_security": 0.01}


@pytest.fixture(scope="module")
def hnsw_gallery() -> Iterator[tuple[FaissBackend, npt.NDArray[np.float32], list[Record]]]:
    x = gaussian(HN, HDIM, 7)
    rng = np.random.default_rng(8)
    draws = {p: rng.random(HN) < share for p, share in SHARES.items()}
    label = pg.Label(allowed=[VER], subject="s", expires_at=T0 + timedelta(days=1))
    recs = [
        Record(
            template_id=secrets.token_hex(16),
            vector=x[i],
            label=label,
            permits=frozenset({VER} | {p for p, d in draws.items() if d[i]}),
        )
        for i in range(HN)
    ]
    # The exact fallback is off: every filtered search below walks the graph.
    backend = FaissBackend(
        index="hnsw", hnsw_m=16, ef_construction=40, exact_below=0, exact_share=0
    )
    backend.add(recs)
    yield backend, x, recs
    backend.close()


@pytest.mark.parametrize("under", list(SHARES))
def test_hnsw_recall_at_low_selectivity(
    hnsw_gallery: tuple[FaissBackend, npt.NDArray[np.float32], list[Record]], under: str
) -> None:
    backend, x, recs = hnsw_gallery
    permitted = np.array([under in r.permits for r in recs])
    allowed = {recs[i].template_id for i in np.flatnonzero(permitted)}
    f = SearchFilter(purpose=under, now_us=NOW_US)
    k, found, queries = 10, 0, 20
    for j in range(queries):
        q = gaussian(1, HDIM, 300 + j)[0]
        hits = backend.search(q, k, f)
        assert {h.template_id for h in hits} <= allowed, "a non-permitted row came back"
        assert len(hits) == k
        want, _ = brute_force(x, permitted, q, k)
        found += len({h.template_id for h in hits} & {recs[r].template_id for r in want})
    recall = found / (k * queries)
    print(f"HNSW recall@10, {permitted.mean():.1%} permitted of {HN} x {HDIM}: {recall:.3f}")
    assert recall >= 0.95


def test_hnsw_falls_back_to_exact_when_few_are_permitted() -> None:
    n, dim, k = 4000, 32, 10
    x = gaussian(n, dim, 9)
    permitted = np.random.default_rng(10).random(n) < 0.01
    recs = records(x, permitted)
    backend = FaissBackend(index="hnsw", hnsw_m=8, ef_search=16)  # a poor graph
    backend.add(recs)
    for j in range(10):
        q = gaussian(1, dim, 400 + j)[0]
        rows, scores = brute_force(x, permitted, q, k)
        hits = backend.search(q, k, flt())
        assert [h.template_id for h in hits] == [recs[r].template_id for r in rows]
        assert np.allclose([h.score for h in hits], scores, atol=1e-5)
    backend.close()


def test_hnsw_returns_all_when_fewer_than_k_are_permitted() -> None:
    n, dim = 2000, 16
    x = gaussian(n, dim, 11)
    permitted = np.zeros(n, bool)
    permitted[[5, 500, 1999]] = True
    recs = records(x, permitted)
    backend = FaissBackend(index="hnsw", exact_below=0, exact_share=0)
    backend.add(recs)
    hits = backend.search(x[500], 10, flt())
    assert hits[0].template_id == recs[500].template_id
    assert {h.template_id for h in hits} == {recs[i].template_id for i in (5, 500, 1999)}
    backend.close()


# -- erasure removes vectors from faiss's memory --------------------------------------------


def _rows_of(view: npt.NDArray[np.float32], vectors: npt.NDArray[np.float32]) -> int:
    """How many of *vectors* (unit-normalised) appear as a row of *view*."""
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return sum(bool(np.any(np.all(np.isclose(view, u, atol=1e-6), axis=1))) for u in unit)


def test_flat_erasure_removes_from_the_index_memory() -> None:
    import faiss

    n, dim = 400, 8
    x = gaussian(n, dim, 12)
    recs = records(x, np.ones(n, bool), subjects=10)
    backend = FaissBackend()
    backend.add(recs)
    index = backend._index
    # A view over the whole buffer as it was: removal shrinks it in place.
    before = faiss.rev_swig_ptr(index.get_xb(), n * dim).reshape(n, dim)
    erased = np.array([i % 10 == 4 for i in range(n)])
    assert _rows_of(before, x[erased]) == int(erased.sum())
    assert backend.delete_matching(subject="s-4") == int(erased.sum())
    assert index.ntotal == backend.ntotal == n - int(erased.sum())
    assert _rows_of(before, x[erased]) == 0  # not in the live rows, nor the vacated tail
    assert _rows_of(before[: index.ntotal], x[~erased]) == int((~erased).sum())
    live = index.reconstruct_n(0, index.ntotal)  # faiss's own view agrees
    assert _rows_of(live, x[erased]) == 0
    backend.close()


def test_hnsw_erasure_rebuilds_and_zeroes_the_old_graph() -> None:
    n, dim = 400, 8
    x = gaussian(n, dim, 13)
    recs = records(x, np.ones(n, bool), subjects=10)
    backend = FaissBackend(index="hnsw", hnsw_m=8)
    backend.add(recs)
    old = backend._index
    assert backend.delete_ids([recs[0].template_id, recs[1].template_id, "nope"]) == 2
    assert backend.ntotal == n - 2 == backend._index.ntotal
    assert old is not backend._index
    assert not np.asarray(old.storage.reconstruct_n(0, old.ntotal)).any()  # zeroed
    live = backend._index.storage.reconstruct_n(0, backend.ntotal)
    assert _rows_of(live, x[:2]) == 0
    assert backend.delete_matching(subject="s-5") == 40
    assert backend.ntotal == n - 42
    hits = backend.search(x[0], 5, flt())
    assert recs[0].template_id not in {h.template_id for h in hits}
    backend.close()


def test_nothing_erased_comes_back_after_reopening(tmp_path: Path) -> None:
    n, dim = 300, 8
    x = gaussian(n, dim, 14)
    recs = records(x, np.ones(n, bool), subjects=3, expires=[1 + i % 3 for i in range(n)])
    for kind in ("flat", "hnsw"):
        path = tmp_path / f"{kind}.npz"
        b = FaissBackend(index=kind, path=path)
        b.add(recs)
        assert b.delete_matching(subject="s-0") == 100
        assert b.delete_matching(expired_at_us=to_us(T0 + timedelta(hours=2))) == 100
        b.close()
        again = FaissBackend(index=kind, path=path)
        assert again.count() == again.ntotal == 100
        for i, r in enumerate(recs):
            assert (again.fetch(r.template_id) is None) == (i % 3 != 2)
        raw = path.read_bytes()
        assert x[0].tobytes() not in raw
        assert x[1].tobytes() not in raw
        assert x[2].tobytes() in raw
        again.close()


# -- bad input loses nothing ----------------------------------------------------------------


def test_a_bad_batch_keeps_what_was_stored(tmp_path: Path) -> None:
    path = tmp_path / "s.npz"
    x = gaussian(50, 8, 15)
    recs = records(x, np.ones(50, bool))
    backend = FaissBackend(path=path)
    backend.add(recs[:40])
    snapshot = path.read_bytes()
    before = backend.search(x[0], 5, flt())
    wrong = Record(
        template_id=secrets.token_hex(16),
        vector=np.ones(9, np.float32),
        label=recs[0].label,
        permits=recs[0].permits,
    )
    with pytest.raises(pg.InvalidTemplateError, match="dimension mismatch") as e:
        backend.add([*recs[40:45], wrong])
    assert "1.0" not in str(e.value)
    with pytest.raises(pg.InvalidTemplateError):
        backend.add([recs[45], recs[0]])  # an id already stored
    with pytest.raises(pg.InvalidTemplateError):
        backend.add([recs[46], recs[46]])  # an id twice in the batch
    bad_id = Record(template_id="x", vector=x[47], label=recs[47].label, permits=recs[47].permits)
    with pytest.raises(pg.InvalidTemplateError):
        backend.add([bad_id])
    assert backend.count() == backend.ntotal == 40
    assert backend.search(x[0], 5, flt()) == before
    assert path.read_bytes() == snapshot
    backend.close()
    fixed = FaissBackend(index="hnsw", dim=8)
    assert fixed.dim == 8
    with pytest.raises(pg.InvalidTemplateError, match="dimension mismatch"):
        fixed.add([wrong])
    assert fixed.count() == 0
    assert fixed.dim == 8


def test_a_probe_of_the_wrong_shape_is_refused() -> None:
    backend = FaissBackend()
    x = gaussian(5, 8, 16)
    backend.add(records(x, np.ones(5, bool)))
    with pytest.raises(pg.InvalidTemplateError, match="dimension mismatch"):
        backend.search(np.ones(9, np.float32), 3, flt())
    with pytest.raises(pg.InvalidTemplateError, match="zero vector"):
        backend.search(np.zeros(8, np.float32), 3, flt())


# -- configuration and files ----------------------------------------------------------------


@pytest.mark.parametrize(
    "kw",
    [
        {"index": "ivf"},
        {"dim": 0},
        {"hnsw_m": True},
        {"ef_search": -1},
        {"exact_share": 1.5},
        {"exact_below": -1},
        {"threads": 0},
        {"path": b"x"},
    ],
)
def test_bad_configuration_is_a_policy_error(kw: dict[str, Any]) -> None:
    with pytest.raises(pg.PolicyError):
        FaissBackend(**kw)


def test_files_that_are_not_snapshots(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, a=np.zeros(3))
    with pytest.raises(pg.PolicyError, match="not a FaissBackend snapshot"):
        FaissBackend(path=foreign)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file at all")
    with pytest.raises(pg.IntegrityError, match=r"junk\.npz"):
        FaissBackend(path=junk)
    with pytest.raises(pg.PolicyError, match="directory"):
        FaissBackend(path=tmp_path)
    good = tmp_path / "good.npz"
    b = FaissBackend(path=good)
    b.add(records(gaussian(3, 4, 17), np.ones(3, bool)))
    b.close()
    with pytest.raises(pg.PolicyError, match="4-d"):
        FaissBackend(path=good, dim=5)
    data = dict(np.load(good))
    savez: Any = np.savez
    data["label_ends"] = data["label_ends"][:2]
    with open(good, "wb") as f:
        savez(f, **data)
    with pytest.raises(pg.IntegrityError, match="damaged"):
        FaissBackend(path=good)


def test_a_closed_backend_refuses_work() -> None:
    b = FaissBackend()
    b.close()
    b.close()
    with pytest.raises(pg.PolicyError, match="closed"):
        b.count()


def test_exported_lazily_from_stores() -> None:
    assert purposeguard.stores.FaissBackend is FaissBackend
    assert isinstance(FaissBackend(), VectorBackend)


def test_without_faiss_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "faiss", None)
    with pytest.raises(ImportError, match=r"pip install 'purposeguard\[faiss\]'"):
        FaissBackend()


def test_searches_use_the_configured_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    import faiss

    b = FaissBackend(threads=1)
    b.add(records(gaussian(20, 4, 18), np.ones(20, bool)))
    faiss.omp_set_num_threads(2)
    seen: list[int] = []
    real = faiss.omp_set_num_threads

    def spy(n: int) -> None:
        seen.append(n)
        real(n)

    monkeypatch.setattr(faiss, "omp_set_num_threads", spy)
    b.search(np.ones(4, np.float32), 3, flt())
    assert seen == [1, 2]  # one thread for the search, the caller's setting restored
    assert faiss.omp_get_max_threads() == 2


def test_a_crashed_write_leaves_no_copy_behind(tmp_path: Path) -> None:
    path = tmp_path / "s.npz"
    leftover = tmp_path / ".s.npz.12345.tmp"
    leftover.write_bytes(b"vectors of a write that never finished")
    FaissBackend(path=path).close()
    assert not leftover.exists()
    with pytest.raises(pg.PolicyError, match="does not exist"):
        FaissBackend(path=tmp_path / "missing" / "s.npz")


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_concurrent_searches_and_erasures(kind: str) -> None:
    n, dim = 2000, 16
    x = gaussian(n, dim, 20)
    permitted = np.random.default_rng(21).random(n) < 0.5
    recs = records(x, permitted, subjects=40)
    allowed = {r.template_id for r, p in zip(recs, permitted, strict=True) if p}
    backend = FaissBackend(index=kind, hnsw_m=8)  # type: ignore[arg-type]
    backend.add(recs[:1500])
    errors: list[BaseException] = []

    def search(seed: int) -> None:
        try:
            for j in range(30):
                hits = backend.search(gaussian(1, dim, seed * 100 + j)[0], 5, flt())
                assert {h.template_id for h in hits} <= allowed
        except BaseException as e:
            errors.append(e)

    def write() -> None:
        try:
            for s in range(10):
                backend.delete_matching(subject=f"s-{s}")
            backend.add(recs[1500:])
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=search, args=(i,)) for i in range(3)]
    threads.append(threading.Thread(target=write))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    kept = sum(1 for i in range(1500) if i % 40 >= 10) + 500
    assert backend.count() == backend.ntotal == kept
    backend.close()


# -- through GuardedStore -------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_guarded_store_end_to_end(
    kind: str, tmp_path: Path, guard: pg.Guard, clock: pg.FrozenClock
) -> None:
    backend = FaissBackend(index=kind, path=tmp_path / "g.npz")  # type: ignore[arg-type]
    store = GuardedStore(backend)
    x = gaussian(300, DIM, 19)
    ts = [
        pg.FaceTemplate.wrap(
            x[i],
            subject=f"p{i % 30}",
            purposes=ID if i % 2 == 0 else "face.verification.login",
            ttl=timedelta(days=1 + i % 3),
            consent=f"k{i % 4}",
        )
        for i in range(300)
    ]
    store.enrol_many(ts)
    assert store.stats() == {"backend": "faiss", "templates": 300, "subjects": 30, "dim": DIM}

    def probe(purposes: str = ID) -> pg.FaceTemplate:
        return pg.FaceTemplate.wrap(
            x[2], subject="probe", purposes=purposes, ttl=timedelta(hours=1)
        )

    evens = {t.id for t in ts[::2]}
    with pg.purpose("face.identification.closed_set_optin"):
        got = store.search(probe(), 5)
        assert got[0].template_id == ts[2].id
        assert got[0].score == pytest.approx(1.0, abs=1e-5)
        assert {m.template_id for m in got} <= evens
        with pytest.raises(pg.TemplateNotFoundError):
            store.get(ts[1].id)  # a verification enrolment is invisible to identification
    with pg.purpose("face.verification.login"):
        with pytest.raises(pg.PurposeViolationError):
            store.search(probe(VER), 5)  # 1:1 verification cannot search
        assert np.array_equal(store.get(ts[1].id).reveal(), x[1])
    assert store.erase_subject("p2") == 10
    withdrawn = sum(1 for i in range(300) if i % 4 == 1 and i % 30 != 2)
    assert store.withdraw_consent("k1") == withdrawn
    clock.advance(timedelta(days=1))
    expired = sum(1 for i in range(300) if i % 3 == 0 and i % 30 != 2 and i % 4 != 1)
    assert store.purge_expired() == expired
    assert backend.ntotal == len(store) == 300 - 10 - withdrawn - expired
    with pg.purpose(ID):
        got = store.search(probe(), 5)
    assert len(got) == 5
    assert ts[2].id not in {m.template_id for m in got}
    assert {m.template_id for m in got} <= evens
    left = len(store)
    store.close()
    again = GuardedStore(FaissBackend(index=kind, path=tmp_path / "g.npz"))  # type: ignore[arg-type]
    assert len(again) == left
    with pg.purpose(ID):
        assert [m.template_id for m in again.search(probe(), 5)] == [m.template_id for m in got]
    again.close()
