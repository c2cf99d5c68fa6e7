"""FaissBackend: a faiss flat or HNSW index, labels in columns, filtered by id selectors."""

from __future__ import annotations

import glob
import math
import os
import re
import threading
import zipfile
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

from purposeguard._errors import IntegrityError, InvalidTemplateError, PolicyError
from purposeguard._labels import Label

from ._memory import MemoryBackend
from ._records import Hit, Record, SearchFilter

__all__ = ["FaissBackend"]

_INSTALL: Final = "pip install 'purposeguard[faiss]'"
_ID_RE: Final = re.compile(r"[0-9a-f]{32}")
# The snapshot file: an .npz archive (no pickles) whose "pg_format" array holds these.
_MAGIC: Final = 0x50476661  # "PGfa"
_VERSION: Final = 1
_KINDS: Final = ("flat", "hnsw")
# efSearch grows as the permitted share shrinks, up to this (or ef_search if larger).
_EF_CAP: Final = 4096


def _import_faiss() -> Any:
    try:
        import faiss
    except ImportError as e:
        raise ImportError(
            f"FaissBackend needs the faiss-cpu package; install it with: {_INSTALL}"
        ) from e
    return faiss


class _RWLock:
    """Many readers (searches, fetches) or one writer; a waiting writer goes first.
    Not reentrant."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writing = False
        self._writers_waiting = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writing or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            try:
                while self._writing or self._readers:
                    self._cond.wait()
            finally:
                self._writers_waiting -= 1
            self._writing = True
        try:
            yield
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PolicyError(f"{name} must be a positive integer")
    return value


class FaissBackend:
    """A [`VectorBackend`][purposeguard.stores.VectorBackend] over a [faiss](https://faiss.ai)
    index (extra `purposeguard[faiss]`, package `faiss-cpu`).

    faiss keeps only vectors and 64-bit ids, so the labels live beside it, compiled to
    columns in a [`MemoryBackend`][purposeguard.stores.MemoryBackend] that also keeps the
    original vectors (for [`fetch`][purposeguard.stores.FaissBackend.fetch]); faiss holds
    unit-normalised copies, so its inner product is the cosine. Memory is therefore about twice the
    vectors. The faiss id of a template is its row in those columns: faiss and the columns are kept
    in the same order, and the columns say which rows a search may consider.

    The filter is applied inside faiss, before ranking: the rows that match the
    [`SearchFilter`][purposeguard.stores.SearchFilter] become an `IDSelectorBitmap` passed in
    the search parameters, so faiss never scores or returns anything else. When every
    row matches, no selector is passed (the search costs what the bare index costs).

    Indexes:

    - `"flat"` (default): an `IndexFlatIP`. Exact: a search returns exactly the
      best *k* matching templates, however few match. Erasure overwrites the vacated
      rows in faiss's memory and shrinks the index with `remove_ids`.
    - `"hnsw"`: an `IndexHNSWFlat` (inner product, *hnsw_m* links per node).
      Approximate. A selective filter starves the graph walk of candidates, so
      `efSearch` grows as the permitted share shrinks (`ef_search` divided by the
      share, up to 4096), and when few rows are permitted (at most *exact_below*, or
      under *exact_share* of the store) the search is exact instead, over the HNSW
      index's own flat storage with the same selector; if the walk ever returns fewer
      than *k* permitted rows the search is redone exactly. Measured with the
      defaults and the exact fallback switched off, on 20,000 random Gaussian vectors
      (a hard case; face embeddings cluster and do better): recall@10 1.0 at 1%, 5%,
      12.5% and 25% permitted, 0.99 (64-d) / 0.97 (128-d) at 50%, and 0.96 / 0.88
      unfiltered; raise *ef_search* for more. `tests/stores/test_faiss.py` holds it
      to >= 0.95 at 25% and 1%. A result is never a template the filter excludes.
      HNSW cannot remove a node, so **every erasure rebuilds the graph** from the
      remaining vectors (the old index's vector memory is zeroed first): O(N log N)
      per `delete_*` call — erase in batches (`purge_expired` already is one), or
      use `"flat"` when erasures are frequent.

    Persistence: with *path*, the store is a single snapshot file (an `.npz`
    archive, no pickles: ids, original vectors, label bytes, permitted purposes and,
    for HNSW, the serialised graph) read when the backend is opened and rewritten
    atomically (temporary file, fsync, rename) before each `add` or `delete_*`
    returns. Every change rewrites the whole file, so this suits stores changed in
    batches; an erased vector is gone from the new file, but like any file rewrite the
    old blocks are only freed, not overwritten, on disk. If the file cannot be written,
    the error propagates: a failed `add` is undone, a failed erasure stands in
    memory and reaches the file with the next successful write. One process per file.
    Without *path*, nothing survives the process.

    faiss is a library, not a server: every process using this backend holds the whole
    index in its memory. To serve a gallery from a production cluster, or to share one
    between processes, use `QdrantBackend` (a server URL), `MilvusBackend` (a
    cluster URI) or `PgVectorBackend` (a PostgreSQL URI); to spread a very large
    gallery over machines with faiss, shard it yourself, one `FaissBackend(path=...)`
    per shard and process.

    Thread-safe: searches and fetches run concurrently (faiss releases the GIL while
    it searches); adds and erasures wait for them and run alone.

    Args:
        index: `"flat"` (exact) or `"hnsw"` (approximate).
        dim: the vector dimension, if known; otherwise the first record fixes it.
        path: a snapshot file to load (if it exists) and keep up to date.
        hnsw_m: HNSW links per node (`M`).
        ef_construction: HNSW `efConstruction` (build quality).
        ef_search: HNSW `efSearch` when every row is permitted; scaled up as the
            permitted share shrinks.
        exact_below: HNSW: search exactly when at most this many rows are permitted.
        exact_share: HNSW: search exactly when less than this share is permitted.
        threads: OpenMP threads for a search (one is about twice as fast as two for a
            single query on a 2-core machine). faiss's thread count belongs to the
            calling thread: it is set for each call and restored afterwards.
        build_threads: OpenMP threads for adding to and rebuilding an HNSW graph
            (default: every core).

    Raises:
        ImportError: faiss is not installed (the message gives the pip command).
        PolicyError: a bad argument, or *path* is not a FaissBackend snapshot.
        IntegrityError: the snapshot at *path* is damaged.

    For example:

    ```python
    store = GuardedStore(FaissBackend(index="hnsw", path="/var/lib/faces/g.npz"))
    ```
    """

    def __init__(
        self,
        *,
        index: Literal["flat", "hnsw"] = "flat",
        dim: int | None = None,
        path: str | os.PathLike[str] | None = None,
        hnsw_m: int = 32,
        ef_construction: int = 80,
        ef_search: int = 128,
        exact_below: int = 10_000,
        exact_share: float = 0.05,
        threads: int = 1,
        build_threads: int | None = None,
    ) -> None:
        if index not in _KINDS:
            raise PolicyError(f"index must be 'flat' or 'hnsw', got {index!r:.40}")
        if dim is not None:
            _positive_int("dim", dim)
        self._hnsw_m = _positive_int("hnsw_m", hnsw_m)
        self._ef_construction = _positive_int("ef_construction", ef_construction)
        self._ef_search = _positive_int("ef_search", ef_search)
        if isinstance(exact_below, bool) or not isinstance(exact_below, int) or exact_below < 0:
            raise PolicyError("exact_below must be a non-negative integer")
        if (
            isinstance(exact_share, bool)
            or not isinstance(exact_share, (int, float))
            or not 0.0 <= exact_share <= 1.0
        ):
            raise PolicyError("exact_share must be a number between 0 and 1")
        self._threads = _positive_int("threads", threads)
        self._build_threads = (
            os.cpu_count() or 1
            if build_threads is None
            else _positive_int("build_threads", build_threads)
        )
        if path is not None and (
            isinstance(path, bytes) or not isinstance(path, (str, os.PathLike))
        ):
            raise PolicyError(f"path must be a str or os.PathLike, got {type(path).__name__}")
        self._faiss = _import_faiss()
        self._kind: str = index
        self._exact_below = exact_below
        self._exact_share = float(exact_share)
        self._fixed_dim: int | None = dim
        self._path = None if path is None else Path(os.fspath(path))
        self._lock = _RWLock()
        self._closed = False
        self._mem = MemoryBackend()
        self._index: Any = None
        # With a path: each template's encoded label and permits, for the snapshot.
        self._blobs: dict[str, tuple[bytes, bytes]] = {}
        if self._path is not None:
            if self._path.is_dir():
                raise PolicyError(f"{self._path} is a directory, not a FaissBackend file")
            if not self._path.parent.is_dir():
                raise PolicyError(f"the folder of {self._path} does not exist")
            self._remove_leftovers(self._path)
            if self._path.exists():
                self._load(self._path)

    # -- the protocol ------------------------------------------------------------------

    @property
    def name(self) -> str:
        """`"faiss"`."""
        return "faiss"

    @property
    def index_kind(self) -> str:
        """`"flat"` or `"hnsw"`."""
        return self._kind

    @property
    def exact(self) -> bool:
        """Whether every search is exact (the flat index)."""
        return self._kind == "flat"

    @property
    def path(self) -> Path | None:
        """The snapshot file, or `None` for a store that lives only in memory."""
        return self._path

    @property
    def ntotal(self) -> int:
        """How many vectors the faiss index holds (equals
        [`count`][purposeguard.stores.FaissBackend.count])."""
        with self._lock.read():
            return 0 if self._index is None else int(self._index.ntotal)

    @property
    def dim(self) -> int | None:
        """The vector dimension, fixed by *dim* or the first record; `None` before."""
        d = self._mem.dim
        return d if d is not None else self._fixed_dim

    def add(self, records: Sequence[Record]) -> None:
        """Store *records* atomically (everything is validated before anything is
        written); with *path*, return once the snapshot is on disk.

        Raises:
            InvalidTemplateError: a malformed id, an id repeated in the batch or
                already stored, or a dimension other than the store's (nothing is
                stored, nothing stored is lost).
        """
        batch = list(records)
        if not batch:
            return
        with self._lock.write():
            self._check_open()
            want = self.dim
            for r in batch:
                if not isinstance(r, Record):
                    raise InvalidTemplateError(f"expected Records, got {type(r).__name__}")
                if not isinstance(r.template_id, str) or not _ID_RE.fullmatch(r.template_id):
                    raise InvalidTemplateError("a template id is 32 lowercase hex digits")
                shape = np.shape(r.vector)
                if len(shape) != 1:
                    raise InvalidTemplateError(f"template {r.template_id} is not a 1-D vector")
                if want is not None and shape[0] != want:
                    got = shape[0]
                    raise InvalidTemplateError(
                        f"dimension mismatch: the store holds {want}-d vectors, "
                        f"template {r.template_id} has {got}"
                    )
            n0 = self._mem.count()
            self._mem.add(batch)  # validates ids and dimensions first, atomically
            try:
                self._append(batch, n0)
                if self._path is not None:
                    for r in batch:
                        self._blobs[r.template_id] = (
                            r.label.to_bytes(),
                            "\n".join(sorted(r.permits)).encode("utf-8"),
                        )
                    self._save()
            except BaseException:
                # Undo: drop the batch from the columns and put faiss back in step.
                ids = [r.template_id for r in batch]
                self._mem.delete_ids(ids)
                for t in ids:
                    self._blobs.pop(t, None)
                self._rebuild()
                raise

    def search(self, query: npt.NDArray[np.float32], k: int, flt: SearchFilter) -> list[Hit]:
        """The best *k* records matching *flt* by cosine similarity, best first.

        The filter becomes an `IDSelectorBitmap` inside the faiss search. Exact with
        `index="flat"`; with `"hnsw"` see the class notes on recall.

        Raises:
            InvalidTemplateError: the query has the wrong shape or is a zero vector.
        """
        with self._lock.read():
            self._check_open()
            n = self._mem.count()
            if n == 0 or k <= 0:
                return []
            q = self._probe(query)
            matching, m = self._mem.matching_mask(flt)
            if m == 0:
                return []
            faiss = self._faiss
            kk = min(int(k), m)
            mask: npt.NDArray[np.bool_] | None = None
            sel: Any = None
            if m < n:
                mask = matching
                bitmap = np.packbits(mask, bitorder="little")
                sel = faiss.IDSelectorBitmap(bitmap)  # keeps a reference to bitmap
            found = None
            with self._omp(self._threads):
                if self._kind == "hnsw" and not self._exact_for(m, n):
                    found = self._search_graph(q, kk, m, n, sel, mask)
                if found is None:
                    found = self._search_exact(q, kk, sel, mask)
            scores, ids = found
            return [self._hit(int(r), float(s)) for r, s in zip(ids, scores, strict=True)]

    def fetch(self, template_id: str) -> Record | None:
        """The record with that id (original float32 values, stored label), or `None`."""
        with self._lock.read():
            self._check_open()
            return self._mem.fetch(template_id)

    def delete_ids(self, template_ids: Collection[str]) -> int:
        """Remove these records from the columns and from the faiss index; return how
        many existed."""
        ids = [t for t in template_ids if isinstance(t, str)]
        with self._lock.write():
            self._check_open()
            before = self._snapshot_keys()
            self._mem.delete_ids(ids)
            return self._after_delete(before)

    def delete_matching(
        self,
        *,
        subject: str | None = None,
        consent: str | None = None,
        expired_at_us: int | None = None,
    ) -> int:
        """Remove every record of *subject*, or resting on *consent*, or expired at
        *expired_at_us*, from the columns and from the faiss index (HNSW: the graph is
        rebuilt); exactly one criterion. Return how many were removed."""
        with self._lock.write():
            self._check_open()
            before = self._snapshot_keys()
            self._mem.delete_matching(
                subject=subject, consent=consent, expired_at_us=expired_at_us
            )
            return self._after_delete(before)

    def count(self) -> int:
        """How many records are stored."""
        with self._lock.read():
            self._check_open()
            return self._mem.count()

    def subjects(self) -> int:
        """How many distinct subjects are stored."""
        with self._lock.read():
            self._check_open()
            return self._mem.subjects()

    def close(self) -> None:
        """Zero the index's vector memory and drop everything held in memory (the
        snapshot file, if any, stays). Idempotent; the backend is unusable afterwards."""
        with self._lock.write():
            if self._closed:
                return
            self._closed = True
            self._wipe(self._index)
            self._index = None
            self._mem.close()
            self._blobs.clear()

    def __len__(self) -> int:
        return self.count()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self._mem.count()} templates dim={self.dim}"
        return f"<FaissBackend {self._kind} {state}>"

    # -- search --------------------------------------------------------------------------

    @contextmanager
    def _omp(self, threads: int) -> Iterator[None]:
        # faiss's OpenMP thread count belongs to the calling thread: set it for this
        # call only, and give the caller's own setting back.
        faiss = self._faiss
        before = int(faiss.omp_get_max_threads())
        faiss.omp_set_num_threads(threads)
        try:
            yield
        finally:
            faiss.omp_set_num_threads(before)

    def _exact_for(self, m: int, n: int) -> bool:
        return m <= self._exact_below or m < self._exact_share * n

    def _search_graph(
        self,
        q: npt.NDArray[np.float32],
        k: int,
        m: int,
        n: int,
        sel: Any,
        mask: npt.NDArray[np.bool_] | None,
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]] | None:
        faiss = self._faiss
        base = self._ef_search
        ef = max(k, min(max(base, _EF_CAP), math.ceil(base * n / m)))
        params = faiss.SearchParametersHNSW(efSearch=ef)
        if sel is not None:
            params.sel = sel
        dist, ids = self._index.search(q, k, params=params)
        keep = ids[0] >= 0
        if mask is not None:
            keep &= mask[np.clip(ids[0], 0, n - 1)]
        if int(keep.sum()) < k:
            return None  # the walk came back short: redo it exactly
        return dist[0][keep], ids[0][keep]

    def _search_exact(
        self,
        q: npt.NDArray[np.float32],
        k: int,
        sel: Any,
        mask: npt.NDArray[np.bool_] | None,
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        flat = self._flat(self._index)
        if sel is None:
            dist, ids = flat.search(q, k)
        else:
            dist, ids = flat.search(q, k, params=self._faiss.SearchParameters(sel=sel))
        keep = ids[0] >= 0
        if mask is not None:  # the selector already excluded them: a second lock
            keep &= mask[np.clip(ids[0], 0, mask.size - 1)]
        return dist[0][keep], ids[0][keep]

    def _probe(self, query: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        q = np.asarray(query, dtype=np.float32)
        if q.shape != (self.dim,):
            raise InvalidTemplateError(
                f"dimension mismatch: the store holds {self.dim}-d vectors, the probe "
                f"has shape {'x'.join(str(s) for s in q.shape) or '()'}"
            )
        norm = float(np.linalg.norm(q))
        if not math.isfinite(norm):
            raise InvalidTemplateError("the probe has non-finite values")
        if norm == 0:
            raise InvalidTemplateError("the probe is a zero vector")
        return np.ascontiguousarray((q / norm).reshape(1, -1), dtype=np.float32)

    # -- the faiss index, kept in row order with the columns --------------------------------

    def _new_index(self, dim: int) -> Any:
        faiss = self._faiss
        if self._kind == "flat":
            return faiss.IndexFlatIP(dim)
        index = faiss.IndexHNSWFlat(dim, self._hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = self._ef_construction
        index.hnsw.efSearch = self._ef_search
        return index

    def _flat(self, index: Any) -> Any:
        # The flat index holding the (unit) vectors: the index itself, or HNSW's storage.
        if self._kind == "flat":
            return index
        return self._faiss.downcast_index(index.storage)

    def _vectors_view(self, index: Any) -> npt.NDArray[np.float32] | None:
        # A writable view of the index's vector memory (None when empty).
        if index is None or index.ntotal == 0:
            return None
        flat = self._flat(index)
        n, d = int(flat.ntotal), int(flat.d)
        raw = self._faiss.rev_swig_ptr(flat.get_xb(), n * d)
        view: npt.NDArray[np.float32] = raw.reshape(n, d)
        return view

    def _wipe(self, index: Any) -> None:
        view = self._vectors_view(index)
        if view is not None:
            view[:] = 0

    def _add_to(self, index: Any, block: npt.NDArray[np.float32]) -> None:
        if block.shape[0] == 0:
            return
        with self._omp(self._build_threads if self._kind == "hnsw" else self._threads):
            index.add(block)

    def _append(self, batch: Sequence[Record], n0: int) -> None:
        # The columns appended the batch as rows n0..; give faiss the same ids.
        dim = self.dim
        assert dim is not None
        if self._index is None:
            self._index = self._new_index(dim)
        keys = self._keys()
        expect = np.array([bytes.fromhex(r.template_id) for r in batch], dtype="S16")
        if (
            int(self._index.ntotal) != n0
            or keys.shape[0] != n0 + len(batch)
            or not np.array_equal(keys[n0:], expect)
        ):
            self._rebuild()  # not in step (never expected): start again from the columns
            return
        self._add_to(self._index, self._units(slice(n0, n0 + len(batch))))

    def _rebuild(self) -> None:
        # A new index from the columns, in row order; the old one's vectors are zeroed.
        old = self._index
        dim = self.dim
        n = self._mem.count()
        if dim is None:
            self._index = None
        else:
            fresh = self._new_index(dim)
            self._add_to(fresh, self._units(slice(0, n)))
            self._index = fresh
        self._wipe(old)

    def _after_delete(self, before: npt.NDArray[np.bytes_]) -> int:
        # The columns fill holes with rows from their tail. Rows whose id changed get
        # the new occupant's vector, the vacated tail is zeroed and cut off (flat); HNSW
        # cannot drop nodes, so its graph is rebuilt.
        n0 = int(before.shape[0])
        after = self._keys()
        n1 = int(after.shape[0])
        if n1 == n0:
            return 0
        changed = np.flatnonzero(after != before[:n1])
        if self._path is not None:
            cand = np.concatenate([before[changed], before[n1:]])
            gone = cand[~np.isin(cand, after[changed])]
            for key in gone.tolist():
                self._blobs.pop(bytes(key).ljust(16, b"\0").hex(), None)
        if self._kind == "hnsw" or self._index is None:
            self._rebuild()
        else:
            view = self._vectors_view(self._index)
            if view is None or view.shape[0] != n0:
                self._rebuild()
            else:
                if changed.size:
                    view[changed] = self._units(changed)
                view[n1:] = 0
                self._index.remove_ids(self._faiss.IDSelectorRange(n1, n0))
                if int(self._index.ntotal) != n1:
                    self._rebuild()
        if self._path is not None:
            self._save()
        return n0 - n1

    # -- the columns (a MemoryBackend; these read its arrays without copying) -------------

    def _keys(self) -> npt.NDArray[np.bytes_]:
        # Row r's 16-byte template id; row r is faiss id r.
        keys: npt.NDArray[np.bytes_] = self._mem._ids[: self._mem.count()]
        return keys

    def _snapshot_keys(self) -> npt.NDArray[np.bytes_]:
        return self._keys().copy()

    def _originals(self, rows: slice | npt.NDArray[np.intp]) -> npt.NDArray[np.float32]:
        # The stored (not normalised) vectors of *rows*.
        if self._mem.dim is None:
            return np.zeros((0, self.dim or 0), np.float32)
        block: npt.NDArray[np.float32] = self._mem._X[: self._mem.count()][rows]
        return block

    def _units(self, rows: slice | npt.NDArray[np.intp]) -> npt.NDArray[np.float32]:
        # Unit-length copies of *rows*' vectors (the columns keep each row's inverse
        # norm; a zero vector stays zero), as faiss stores them.
        if self._mem.dim is None:
            return np.zeros((0, self.dim or 0), np.float32)
        n = self._mem.count()
        inv = self._mem._inv[:n][rows]
        block = self._mem._X[:n][rows] * inv[:, None]
        return np.ascontiguousarray(block, dtype=np.float32)

    def _hit(self, row: int, score: float) -> Hit:
        return Hit(self._mem._tid(row), score, self._mem._label(row))

    def _check_open(self) -> None:
        if self._closed:
            raise PolicyError("this FaissBackend is closed")

    # -- the snapshot file -----------------------------------------------------------------

    def _save(self) -> None:
        path = self._path
        assert path is not None
        n = self._mem.count()
        ids = [bytes(k).ljust(16, b"\0").hex() for k in self._keys().tolist()]
        labels = [self._blobs[t][0] for t in ids]
        permits = [self._blobs[t][1] for t in ids]
        dim = self.dim
        graph = np.zeros(0, np.uint8)
        if self._kind == "hnsw" and self._index is not None and n:
            graph = self._faiss.serialize_index(self._index)
        arrays: dict[str, npt.NDArray[Any]] = {
            "pg_format": np.array(
                [
                    _MAGIC,
                    _VERSION,
                    -1 if dim is None else dim,
                    _KINDS.index(self._kind),
                    self._hnsw_m,
                    n,
                ],
                np.int64,
            ),
            "ids": self._keys().copy(),
            "vectors": self._originals(slice(0, n)),
            "labels": np.frombuffer(b"".join(labels), np.uint8),
            "label_ends": np.cumsum([len(b) for b in labels], dtype=np.int64),
            "permits": np.frombuffer(b"".join(permits), np.uint8),
            "permit_ends": np.cumsum([len(b) for b in permits], dtype=np.int64),
            "graph": graph,
        }
        savez: Any = np.savez  # (its stubs mistake ** of arrays for its allow_pickle flag)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as f:
                savez(f, **arrays)  # arrays only: nothing is pickled
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        try:
            fd = os.open(path.parent, os.O_RDONLY)
        except OSError:  # pragma: no cover - platforms without directory fds
            return
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    @staticmethod
    def _remove_leftovers(path: Path) -> None:
        # A temporary snapshot left by a crash holds vectors: do not leave it lying about.
        for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
            tmp.unlink(missing_ok=True)

    def _load(self, path: Path) -> None:
        try:
            with np.load(path, allow_pickle=False) as z:
                if "pg_format" not in z.files:
                    raise PolicyError(f"{path} is not a FaissBackend snapshot file")
                fmt = z["pg_format"]
                arrays = {name: z[name] for name in z.files}
        except PolicyError:
            raise
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
            raise IntegrityError(
                f"cannot read the FaissBackend snapshot {path}: {type(e).__name__}"
            ) from None
        if fmt.shape != (6,) or int(fmt[0]) != _MAGIC:
            raise PolicyError(f"{path} is not a FaissBackend snapshot file")
        if int(fmt[1]) != _VERSION:
            raise PolicyError(f"{path} has snapshot version {int(fmt[1])}, not {_VERSION}")
        try:
            records, dim, graph = self._decode(fmt, arrays)
        except (KeyError, ValueError, IndexError, PolicyError, InvalidTemplateError):
            raise IntegrityError(f"the FaissBackend snapshot {path} is damaged") from None
        if self._fixed_dim is not None and dim is not None and dim != self._fixed_dim:
            raise PolicyError(f"{path} holds {dim}-d vectors but dim={self._fixed_dim} was given")
        if dim is not None:
            self._fixed_dim = dim
        if records:
            try:
                self._mem.add(records)
            except InvalidTemplateError:
                raise IntegrityError(f"the FaissBackend snapshot {path} is damaged") from None
        for r in records:
            self._blobs[r.template_id] = (
                r.label.to_bytes(),
                "\n".join(sorted(r.permits)).encode("utf-8"),
            )
        index = None
        if (
            graph.size
            and self._kind == "hnsw"
            and int(fmt[3]) == _KINDS.index("hnsw")
            and int(fmt[4]) == self._hnsw_m
        ):
            try:
                index = self._faiss.deserialize_index(graph)
            except RuntimeError:
                index = None
            if index is not None and (
                int(index.ntotal) != len(records)
                or int(index.d) != dim
                or index.metric_type != self._faiss.METRIC_INNER_PRODUCT
            ):
                self._wipe(index)
                index = None
        if index is not None:
            index.hnsw.efConstruction = self._ef_construction
            index.hnsw.efSearch = self._ef_search
            self._index = index
        else:
            self._rebuild()

    @staticmethod
    def _decode(
        fmt: npt.NDArray[np.int64], arrays: dict[str, npt.NDArray[Any]]
    ) -> tuple[list[Record], int | None, npt.NDArray[np.uint8]]:
        dim = int(fmt[2])
        n = int(fmt[5])
        ids, vectors = arrays["ids"], arrays["vectors"]
        labels, label_ends = arrays["labels"].tobytes(), arrays["label_ends"]
        permits, permit_ends = arrays["permits"].tobytes(), arrays["permit_ends"]
        if ids.shape != (n,) or label_ends.shape != (n,) or permit_ends.shape != (n,):
            raise ValueError("inconsistent lengths")
        if n and (vectors.dtype != np.float32 or vectors.shape != (n, dim)):
            raise ValueError("inconsistent vectors")
        records = []
        lo_l = lo_p = 0
        for i in range(n):
            hi_l, hi_p = int(label_ends[i]), int(permit_ends[i])
            vec = vectors[i].copy()
            vec.flags.writeable = False
            names = permits[lo_p:hi_p].decode("utf-8")
            records.append(
                Record(
                    template_id=bytes(ids[i]).ljust(16, b"\0").hex(),
                    vector=vec,
                    label=Label.from_bytes(labels[lo_l:hi_l]),
                    permits=frozenset(names.split("\n")) if names else frozenset(),
                )
            )
            lo_l, lo_p = hi_l, hi_p
        graph: npt.NDArray[np.uint8] = np.ascontiguousarray(arrays["graph"], np.uint8)
        return records, (dim if dim > 0 else None), graph
