"""MemoryBackend: labels compiled to numpy columns, exact search, no object per template."""

from __future__ import annotations

import threading
from collections.abc import Collection, Sequence
from typing import Any, Final

import attrs
import numpy as np
import numpy.typing as npt

from purposeguard._errors import InvalidTemplateError, PolicyError
from purposeguard._labels import Label
from purposeguard._purposes import Purpose

from ._records import Hit, Record, SearchFilter, from_us, to_us

__all__ = ["MemoryBackend"]

_NO_TIME: Final = np.iinfo(np.int64).min
# Below this share of permitted rows, gathering them first beats scoring every row.
_GATHER_BELOW: Final = 0.2


@attrs.frozen
class _Shape:
    # The part of a label many templates share: compiled once, referenced by code.
    allowed: frozenset[Purpose]
    prohibited: frozenset[Purpose]
    jurisdictions: frozenset[str]
    lineage: tuple[str, ...]
    permits: frozenset[str]


class _Codes:
    """Interns values to dense int32 codes (one Python object per distinct value)."""

    __slots__ = ("code", "values")

    def __init__(self) -> None:
        self.values: list[Any] = []
        self.code: dict[Any, int] = {}

    def get(self, value: Any) -> int:
        c = self.code.get(value)
        if c is None:
            c = self.code[value] = len(self.values)
            self.values.append(value)
        return c


class MemoryBackend:
    """An in-process backend: vectors in one float32 matrix, labels as columns.

    Each template costs its vector plus 52 bytes of columns (16-byte id, expiry and
    collection time, subject, consent and label-shape codes, inverse norm); the parts
    of labels that templates share are interned. Filtering is one vectorised mask,
    computed before ranking; search is exact. Erasure overwrites the vectors' memory
    with zeros. Thread-safe. Nothing survives the process: use
    :class:`SQLiteBackend` for durability.
    """

    def __init__(self, *, capacity: int = 1024) -> None:
        self._lock = threading.RLock()
        self._n = 0
        self._cap = max(16, int(capacity))
        self._dim: int | None = None
        self._X: npt.NDArray[np.float32] = np.zeros((0, 0), np.float32)
        self._inv = np.zeros(self._cap, np.float32)
        self._ids = np.zeros(self._cap, "S16")
        self._exp = np.zeros(self._cap, np.int64)
        self._col = np.zeros(self._cap, np.int64)
        self._subj = np.zeros(self._cap, np.int32)
        self._cons = np.zeros(self._cap, np.int32)
        self._shape = np.zeros(self._cap, np.int32)
        self._subjects = _Codes()
        self._consents = _Codes()
        self._shapes = _Codes()

    # -- the protocol ------------------------------------------------------------------

    @property
    def name(self) -> str:
        """``"memory"``."""
        return "memory"

    @property
    def dim(self) -> int | None:
        """The vector dimension, or ``None`` while empty and never used."""
        return self._dim

    def add(self, records: Sequence[Record]) -> None:
        """Store *records* atomically (validated first, then written)."""
        if not records:
            return
        with self._lock:
            dim = self._dim if self._dim is not None else int(records[0].vector.shape[0])
            keys = np.array([_key(r.template_id) for r in records], dtype="S16")
            if len(set(keys.tolist())) != len(keys):
                raise InvalidTemplateError("the batch holds the same template id twice")
            for r in records:
                if r.vector.shape != (dim,):
                    raise InvalidTemplateError(
                        f"dimension mismatch: the store holds {dim}-d vectors, "
                        f"template {r.template_id} has {r.vector.shape[0]}"
                    )
            if self._n and np.isin(keys, self._ids[: self._n]).any():
                raise InvalidTemplateError("a template with that id is already stored")
            m = len(records)
            self._reserve(self._n + m, dim)
            lo, hi = self._n, self._n + m
            block = np.stack([r.vector for r in records]).astype(np.float32, copy=False)
            self._X[lo:hi] = block
            norms = np.linalg.norm(block, axis=1)
            self._inv[lo:hi] = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
            self._ids[lo:hi] = keys
            self._exp[lo:hi] = [to_us(r.label.expires_at) for r in records]
            self._col[lo:hi] = [
                _NO_TIME if r.label.collected_at is None else to_us(r.label.collected_at)
                for r in records
            ]
            self._subj[lo:hi] = [self._subjects.get(r.label.subject) for r in records]
            self._cons[lo:hi] = [
                -1 if r.label.consent is None else self._consents.get(r.label.consent)
                for r in records
            ]
            self._shape[lo:hi] = [self._shapes.get(_shape_of(r)) for r in records]
            self._n = hi
            self._dim = dim

    def search(self, query: npt.NDArray[np.float32], k: int, flt: SearchFilter) -> list[Hit]:
        """Exact top-*k* by cosine among the rows matching *flt*."""
        with self._lock:
            n = self._n
            if n == 0 or k <= 0:
                return []
            rows = self._matching(flt, n)
            if rows.size == 0:
                return []
            q = np.asarray(query, np.float32)
            qn = float(np.linalg.norm(q))
            if qn == 0:
                raise InvalidTemplateError("the probe is a zero vector")
            q = q / qn
            if rows.size < _GATHER_BELOW * n:
                scores = (self._X[rows] @ q) * self._inv[rows]
            else:
                scores = (self._X[:n] @ q)[rows] * self._inv[rows]
            top = _top_k(scores, k)
            return [
                Hit(self._tid(r), float(s), self._label(r))
                for r, s in zip(rows[top], scores[top], strict=True)
            ]

    def fetch(self, template_id: str) -> Record | None:
        """The record with that id, or ``None``."""
        with self._lock:
            row = self._row(template_id)
            return None if row is None else self._record(row)

    def delete_ids(self, template_ids: Collection[str]) -> int:
        """Remove these records (vectors zeroed); return how many existed."""
        keys = []
        for t in template_ids:
            try:
                keys.append(_key(t))
            except InvalidTemplateError:
                continue
        if not keys:
            return 0
        with self._lock:
            rows = np.flatnonzero(np.isin(self._ids[: self._n], np.array(keys, "S16")))
            return self._remove(rows)

    def delete_matching(
        self,
        *,
        subject: str | None = None,
        consent: str | None = None,
        expired_at_us: int | None = None,
    ) -> int:
        """Remove the records of a subject, a consent, or expired at a time."""
        if sum(x is not None for x in (subject, consent, expired_at_us)) != 1:
            raise PolicyError("delete_matching() takes exactly one criterion")
        with self._lock:
            n = self._n
            if subject is not None:
                code = self._subjects.code.get(subject)
                if code is None:
                    return 0
                rows = np.flatnonzero(self._subj[:n] == code)
            elif consent is not None:
                code = self._consents.code.get(consent)
                if code is None:
                    return 0
                rows = np.flatnonzero(self._cons[:n] == code)
            else:
                assert expired_at_us is not None
                rows = np.flatnonzero(self._exp[:n] <= np.int64(expired_at_us))
            return self._remove(rows)

    def count(self) -> int:
        """How many records are stored."""
        return self._n

    def subjects(self) -> int:
        """How many distinct subjects are stored."""
        with self._lock:
            if self._n == 0:
                return 0
            return int(np.count_nonzero(np.bincount(self._subj[: self._n])))

    def close(self) -> None:
        """Drop everything (vectors zeroed first)."""
        with self._lock:
            if self._X.size:
                self._X[: self._n] = 0
            self._n = 0

    def __len__(self) -> int:
        return self._n

    def __repr__(self) -> str:
        return f"<MemoryBackend {self._n} templates dim={self._dim}>"

    # -- extra queries (used by SQLiteBackend and FaissBackend) ---------------------------

    def matching_rows(self, flt: SearchFilter) -> npt.NDArray[np.intp]:
        """The row numbers matching *flt* (for backends that keep their own index)."""
        with self._lock:
            return self._matching(flt, self._n)

    def ids(self) -> list[str]:
        """Every stored template id (row order)."""
        with self._lock:
            return [self._tid(r) for r in range(self._n)]

    def nbytes_per_template(self) -> float:
        """Bytes of columns per template beyond the vector (measured, not estimated)."""
        cols = (self._inv, self._ids, self._exp, self._col, self._subj, self._cons, self._shape)
        return sum(c.itemsize for c in cols)

    # -- internals ------------------------------------------------------------------------

    def _matching(self, flt: SearchFilter, n: int) -> npt.NDArray[np.intp]:
        shapes = self._shapes.values
        ok = np.fromiter((flt.purpose in s.permits for s in shapes), bool, len(shapes))
        if not ok.any():
            return np.zeros(0, np.intp)
        mask = ok[self._shape[:n]]
        mask &= self._exp[:n] > np.int64(flt.now_us)
        if flt.withdrawn_consents:
            codes = [
                c
                for c in (self._consents.code.get(x) for x in flt.withdrawn_consents)
                if c is not None
            ]
            if codes:
                mask &= ~np.isin(self._cons[:n], codes)
        return np.flatnonzero(mask)

    def _row(self, template_id: str) -> int | None:
        try:
            key = _key(template_id)
        except InvalidTemplateError:
            return None
        hits = np.flatnonzero(self._ids[: self._n] == key)
        return int(hits[0]) if hits.size else None

    def _tid(self, row: int) -> str:
        return bytes(self._ids[row]).ljust(16, b"\0").hex()

    def _label(self, row: int) -> Label:
        shape: _Shape = self._shapes.values[int(self._shape[row])]
        col = int(self._col[row])
        cons = int(self._cons[row])
        return Label(
            allowed=shape.allowed,
            prohibited=shape.prohibited,
            subject=self._subjects.values[int(self._subj[row])],
            expires_at=from_us(int(self._exp[row])),
            collected_at=None if col == _NO_TIME else from_us(col),
            consent=None if cons < 0 else self._consents.values[cons],
            jurisdictions=shape.jurisdictions,
            lineage=shape.lineage,
        )

    def _record(self, row: int) -> Record:
        shape: _Shape = self._shapes.values[int(self._shape[row])]
        vec = self._X[row].copy()
        vec.flags.writeable = False
        return Record(
            template_id=self._tid(row), vector=vec, label=self._label(row), permits=shape.permits
        )

    def _reserve(self, need: int, dim: int) -> None:
        if self._X.shape[1:] != (dim,):
            self._X = np.zeros((self._cap, dim), np.float32)
        if need <= self._cap and self._X.shape[0] >= need:
            return
        cap = self._cap
        while cap < need:
            cap *= 2
        n = self._n
        grown = np.zeros((cap, dim), np.float32)
        grown[:n] = self._X[:n]
        self._X[:n] = 0  # the old buffer is freed: leave no copy of the values behind
        self._X = grown
        for attr in ("_inv", "_ids", "_exp", "_col", "_subj", "_cons", "_shape"):
            old = getattr(self, attr)
            new = np.zeros(cap, old.dtype)
            new[:n] = old[:n]
            setattr(self, attr, new)
        self._cap = cap

    def _remove(self, rows: npt.NDArray[np.intp]) -> int:
        # Fill the holes below the new end with the surviving rows from the tail, then
        # zero the vacated tail: removal moves at most min(removed, kept) rows.
        r = int(rows.size)
        if r == 0:
            return 0
        n = self._n
        keep = n - r
        dead = np.zeros(n, bool)
        dead[rows] = True
        holes = np.flatnonzero(dead[:keep])
        movers = keep + np.flatnonzero(~dead[keep:])
        if holes.size:
            self._X[holes] = self._X[movers]
            for attr in ("_inv", "_ids", "_exp", "_col", "_subj", "_cons", "_shape"):
                col = getattr(self, attr)
                col[holes] = col[movers]
        self._X[keep:n] = 0
        self._ids[keep:n] = b""
        self._n = keep
        return r


def _key(template_id: str) -> bytes:
    try:
        raw = bytes.fromhex(template_id)
    except (ValueError, TypeError):
        raise InvalidTemplateError("a template id is 32 hex digits") from None
    if len(raw) != 16:
        raise InvalidTemplateError("a template id is 32 hex digits")
    return raw


def _shape_of(r: Record) -> _Shape:
    lab = r.label
    return _Shape(lab.allowed, lab.prohibited, lab.jurisdictions, lab.lineage, r.permits)


def _top_k(scores: npt.NDArray[np.float32], k: int) -> npt.NDArray[np.intp]:
    if scores.size > k:
        part = np.argpartition(-scores, k - 1)[:k]
        return part[np.argsort(-scores[part], kind="stable")]
    return np.argsort(-scores, kind="stable")
