"""MemoryBackend: labels compiled to numpy columns, exact search, no object per template."""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Collection, Sequence
from typing import Any, Final

import attrs
import numpy as np
import numpy.typing as npt

from purposeguard._errors import InvalidTemplateError, PolicyError
from purposeguard._labels import Label
from purposeguard._purposes import Purpose

from ._records import _EPOCH, _US, Hit, Record, SearchFilter, from_us

__all__ = ["MemoryBackend"]

_NO_TIME: Final = np.iinfo(np.int64).min
# Below this share of permitted rows, gathering them first beats scoring every row.
_GATHER_BELOW: Final = 0.2
# The columns other than the vectors, in the order _reserve and _remove copy them.
_COLUMNS: Final = ("_inv", "_ids", "_exp", "_col", "_subj", "_cons", "_shape")
# Removal moves rows in chunks of about this many bytes (one big fancy-index copy of
# hundreds of megabytes costs several times more in page faults than the copying).
_MOVE_CHUNK_BYTES: Final = 1 << 21
# Duplicate-id check: ids are folded to 64 bits, hashed by multiplication, and looked
# up in a bitmap of the batch's hashes; stored ids are scanned in chunks of this many.
_SCAN_CHUNK: Final = 1 << 18
_MIX: Final = np.uint64(0x9E3779B97F4A7C15)


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


_ShapeKey = tuple[
    frozenset[Purpose], frozenset[Purpose], frozenset[str], tuple[str, ...], frozenset[str]
]


class MemoryBackend:
    """An in-process backend: vectors in one float32 matrix, labels as columns.

    Each template costs its vector plus 48 bytes of columns (16-byte id, expiry and
    collection time, subject, consent and label-shape codes, inverse norm); the parts
    of labels that templates share are interned. Filtering is one vectorised mask,
    computed before ranking; search is exact. Erasure overwrites the vectors' memory
    with zeros. Thread-safe. Nothing survives the process: use
    [`SQLiteBackend`][purposeguard.stores.SQLiteBackend] for durability.
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
        self._shapes = _Codes()  # of _Shape; keyed by the _ShapeKey tuple, not the _Shape

    # -- the protocol ------------------------------------------------------------------

    @property
    def name(self) -> str:
        """`"memory"`."""
        return "memory"

    @property
    def dim(self) -> int | None:
        """The vector dimension, or `None` while empty and never used."""
        return self._dim

    def add(self, records: Sequence[Record]) -> None:
        """Store *records* atomically (validated first, then written)."""
        if not records:
            return
        self._add_columns(
            [r.template_id for r in records],
            [r.vector for r in records],
            [r.label for r in records],
            [r.permits for r in records],
        )

    def _add_columns(
        self,
        template_ids: Sequence[str],
        vectors: Sequence[npt.NDArray[Any]],
        labels: Sequence[Label],
        permits: Sequence[frozenset[str]],
    ) -> None:
        """[`add`][purposeguard.stores.MemoryBackend.add] for records given as four equally long
        columns (the fields of [`Record`][purposeguard.stores.Record]): what
        [`GuardedStore`][purposeguard.stores.GuardedStore] uses, so that a large batch is not first
        made into one object per template."""
        m = len(template_ids)
        if not (len(vectors) == len(labels) == len(permits) == m):
            raise InvalidTemplateError("the columns of a batch differ in length")
        if not m:
            return
        with self._lock:
            dim = self._dim if self._dim is not None else int(vectors[0].shape[0])
            keys = _keys(list(template_ids))
            batch = set(keys.tolist())
            if len(batch) != m:
                raise InvalidTemplateError("the batch holds the same template id twice")
            want = (dim,)
            for tid, v in zip(template_ids, vectors, strict=True):
                if v.shape != want:
                    raise InvalidTemplateError(
                        f"dimension mismatch: the store holds {dim}-d vectors, "
                        f"template {tid} has {v.shape[0]}"
                    )
            if self._n and self._stored(keys, batch).any():
                raise InvalidTemplateError("a template with that id is already stored")
            self._reserve(self._n + m, dim)
            lo, hi = self._n, self._n + m
            block = self._X[lo:hi]
            try:
                np.stack(vectors, out=block, casting="unsafe")
                norms = np.linalg.norm(block, axis=1)
                inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
                self._inv[lo:hi] = inv
                self._ids[lo:hi] = keys
                self._compile_labels(labels, permits, lo, hi)
            except BaseException:
                _wipe(block)  # rows past the end must hold no values
                self._ids[lo:hi] = b""
                raise
            self._n = hi
            self._dim = dim

    def search(self, query: npt.NDArray[np.float32], k: int, flt: SearchFilter) -> list[Hit]:
        """Exact top-*k* by cosine among the rows matching *flt*."""
        with self._lock:
            n = self._n
            if n == 0 or k <= 0:
                return []
            mask, m = self._mask(flt, n)
            if m == 0:
                return []
            q = np.asarray(query, np.float32)
            qn = float(np.linalg.norm(q))
            if qn == 0:
                raise InvalidTemplateError("the probe is a zero vector")
            q = q / qn
            rows: npt.NDArray[np.intp] | None = None
            if m == n:  # every row may be returned: score them all, no gathering
                scores = self._X[:n] @ q
                scores *= self._inv[:n]
            elif m < _GATHER_BELOW * n:
                rows = np.flatnonzero(mask)
                scores = (self._X[rows] @ q) * self._inv[rows]
            else:
                rows = np.flatnonzero(mask)
                scores = (self._X[:n] @ q)[rows] * self._inv[rows]
            top = _top_k(scores, k)
            found = top if rows is None else rows[top]
            return [
                Hit(self._tid(r), float(s), self._label(r))
                for r, s in zip(found, scores[top], strict=True)
            ]

    def fetch(self, template_id: str) -> Record | None:
        """The record with that id, or `None`."""
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
            wanted = np.array(keys, "S16")
            return self._remove(self._stored(wanted, set(wanted.tolist())))

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
                dead = self._subj[:n] == code
            elif consent is not None:
                code = self._consents.code.get(consent)
                if code is None:
                    return 0
                dead = self._cons[:n] == code
            else:
                assert expired_at_us is not None
                dead = self._exp[:n] <= np.int64(expired_at_us)
            return self._remove(dead)

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
                _wipe(self._X[: self._n])
            self._n = 0

    def __len__(self) -> int:
        return self._n

    def __repr__(self) -> str:
        return f"<MemoryBackend {self._n} templates dim={self._dim}>"

    # -- extra queries (used by SQLiteBackend and FaissBackend) ---------------------------

    def matching_rows(self, flt: SearchFilter) -> npt.NDArray[np.intp]:
        """The row numbers matching *flt* (for backends that keep their own index)."""
        with self._lock:
            mask, m = self._mask(flt, self._n)
            if m == 0:
                return np.zeros(0, np.intp)
            return np.flatnonzero(mask)

    def matching_mask(self, flt: SearchFilter) -> tuple[npt.NDArray[np.bool_], int]:
        """A boolean mask over the rows (`count()` long) of those matching *flt*, and
        how many match (for backends that keep their own index)."""
        with self._lock:
            n = self._n
            mask, m = self._mask(flt, n)
            return (np.zeros(n, bool) if m == 0 else mask), m

    def ids(self) -> list[str]:
        """Every stored template id (row order)."""
        with self._lock:
            return [bytes(k).ljust(16, b"\0").hex() for k in self._ids[: self._n].tolist()]

    def nbytes_per_template(self) -> float:
        """Bytes of columns per template beyond the vector (measured, not estimated)."""
        cols = (self._inv, self._ids, self._exp, self._col, self._subj, self._cons, self._shape)
        return sum(c.itemsize for c in cols)

    # -- internals ------------------------------------------------------------------------

    def _mask(self, flt: SearchFilter, n: int) -> tuple[npt.NDArray[np.bool_], int]:
        # The rows matching flt as a boolean mask over rows 0..n, and how many match.
        shapes = self._shapes.values
        ok = np.fromiter((flt.purpose in s.permits for s in shapes), bool, len(shapes))
        if n == 0 or not ok.any():
            return np.zeros(n, bool), 0
        mask = self._exp[:n] > np.int64(flt.now_us)
        if not ok.all():
            mask &= ok[self._shape[:n]]
        if flt.withdrawn_consents:
            codes = [
                c
                for c in (self._consents.code.get(x) for x in flt.withdrawn_consents)
                if c is not None
            ]
            if codes:
                mask &= ~np.isin(self._cons[:n], codes)
        return mask, int(np.count_nonzero(mask))

    def _stored(self, keys: npt.NDArray[np.bytes_], wanted: set[bytes]) -> npt.NDArray[np.bool_]:
        # A mask over the stored rows of those whose id is among *keys* (whose
        # tolist() is *wanted*). np.isin against millions of stored ids sorts them all
        # (most of a second at a million); instead the wanted ids are hashed into a
        # bitmap with about 64 bits per id, the stored ids are hashed in chunks, and
        # only the few that hit the bitmap are compared exactly.
        n = self._n
        found = np.zeros(n, bool)
        if n == 0 or keys.size == 0:
            return found
        bits = min(26, max(10, (64 * keys.size - 1).bit_length()))
        shift = np.uint64(64 - bits)
        bitmap = np.zeros(1 << bits, bool)
        bitmap[_hash(keys, shift)] = True
        for lo in range(0, n, _SCAN_CHUNK):
            stored = self._ids[lo : min(n, lo + _SCAN_CHUNK)]
            hits = np.flatnonzero(bitmap[_hash(stored, shift)])
            if hits.size:
                same = [k in wanted for k in stored[hits].tolist()]
                found[lo + hits[np.array(same, bool)]] = True
        return found

    def _compile_labels(
        self, labels: Sequence[Label], permits: Sequence[frozenset[str]], lo: int, hi: int
    ) -> None:
        # Fill the label columns of rows lo..hi. Each distinct (label, permits) pair of
        # objects is compiled once: templates often share them, and a label's columns
        # depend on nothing else.
        m = len(labels)
        label_ids = np.fromiter(map(id, labels), np.uint64, m)
        _, reps, which = np.unique(label_ids, return_index=True, return_inverse=True)
        permit_ids = np.fromiter(map(id, permits), np.uint64, m)
        if not np.array_equal(permit_ids, permit_ids[reps][which]):
            # The same label with different permits: tell the pairs apart.
            pairs = np.stack([label_ids, permit_ids], axis=1)
            _, reps, which = np.unique(pairs, axis=0, return_index=True, return_inverse=True)
        which = which.reshape(m)
        everyone = reps.size == m
        if everyone:
            distinct = zip(labels, permits, strict=True)
        else:
            picks = reps.tolist()
            distinct = zip([labels[i] for i in picks], [permits[i] for i in picks], strict=True)
        subjects, consents, shape_code = self._subjects.get, self._consents.get, self._shape_code
        exp, col, subj, cons, shape = [], [], [], [], []
        epoch, us = _EPOCH, _US  # to_us(), inlined: this loop runs once a template
        for lab, p in distinct:
            exp.append((lab.expires_at - epoch) // us)
            at = lab.collected_at
            col.append(_NO_TIME if at is None else (at - epoch) // us)
            subj.append(subjects(lab.subject))
            cons.append(-1 if lab.consent is None else consents(lab.consent))
            shape.append(shape_code(lab, p))
        columns = (
            (self._exp, exp),
            (self._col, col),
            (self._subj, subj),
            (self._cons, cons),
            (self._shape, shape),
        )
        for column, values in columns:
            if everyone:  # compiled in row order
                column[lo:hi] = values
            else:  # compiled in the order of np.unique: which maps rows to them
                column[lo:hi] = np.array(values, column.dtype)[which]

    def _shape_code(self, lab: Label, permits: frozenset[str]) -> int:
        key = (lab.allowed, lab.prohibited, lab.jurisdictions, lab.lineage, permits)
        codes = self._shapes
        c = codes.code.get(key)
        if c is None:
            c = codes.code[key] = len(codes.values)
            codes.values.append(_Shape(*key))
        return c

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
        _wipe(self._X[:n])  # the old buffer is freed: leave no copy of the values behind
        self._X = grown
        for attr in _COLUMNS:
            old = getattr(self, attr)
            new = np.zeros(cap, old.dtype)
            new[:n] = old[:n]
            setattr(self, attr, new)
        self._cap = cap

    def _remove(self, dead: npt.NDArray[np.bool_]) -> int:
        # Remove the rows where *dead* (a mask over rows 0..n) is true. Fill the holes
        # below the new end with the surviving rows from the tail, then zero the
        # vacated tail: removal moves at most min(removed, kept) rows.
        r = int(np.count_nonzero(dead))
        if r == 0:
            return 0
        n = self._n
        keep = n - r
        holes = np.flatnonzero(dead[:keep])
        if holes.size:
            movers = keep + np.flatnonzero(~dead[keep:])
            step = max(1, _MOVE_CHUNK_BYTES // max(1, self._X.shape[1] * 4))
            for a in range(0, holes.size, step):
                self._X[holes[a : a + step]] = self._X[movers[a : a + step]]
            for attr in _COLUMNS:
                col = getattr(self, attr)
                col[holes] = col[movers]
        _wipe(self._X[keep:n])
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


def _keys(template_ids: list[str]) -> npt.NDArray[np.bytes_]:
    # The 16-byte keys of *template_ids*, as _key() gives them one by one.
    try:
        joined = "".join(template_ids)
        if len(joined) == 32 * len(template_ids) and all(len(t) == 32 for t in template_ids):
            raw = bytes.fromhex(joined)
            # 32 characters an id and 16 bytes an id: no id held whitespace, so every
            # id is exactly its own 16 bytes.
            if len(raw) == 16 * len(template_ids):
                return np.frombuffer(raw, dtype="S16").copy()
    except (ValueError, TypeError):
        pass
    return np.array([_key(t) for t in template_ids], dtype="S16")


def _hash(keys: npt.NDArray[np.bytes_], shift: np.uint64) -> npt.NDArray[np.uint64]:
    # A (64 - shift)-bit hash of each 16-byte key: both halves folded, then multiplied.
    words = keys.view(np.uint64).reshape(-1, 2)
    h = words[:, 0] ^ words[:, 1]
    h *= _MIX
    h >>= shift
    return h


def _wipe(block: npt.NDArray[np.float32]) -> None:
    # Overwrite *block* with zeros. memset is several times faster than numpy's fill
    # for the gigabytes a large purge or close overwrites.
    if block.size == 0:
        return
    if block.flags.c_contiguous:
        ctypes.memset(block.ctypes.data, 0, block.nbytes)
    else:
        block[...] = 0


def _top_k(scores: npt.NDArray[np.float32], k: int) -> npt.NDArray[np.intp]:
    if scores.size > k:
        part = np.argpartition(-scores, k - 1)[:k]
        return part[np.argsort(-scores[part], kind="stable")]
    return np.argsort(-scores, kind="stable")
