"""SealedSQLiteBackend: templates sealed at rest in SQLite; erasure by shredding keys."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from purposeguard._errors import IntegrityError, InvalidTemplateError, PolicyError
from purposeguard.crypto._keyring import KeyRing
from purposeguard.crypto._sealing import open_sealed, seal_values

from ._memory import MemoryBackend
from ._records import Hit, Record, SearchFilter

__all__ = ["SealedSQLiteBackend"]

SCHEMA_VERSION: Final = 1
# PRAGMA application_id of a sealed purposeguard store: "PGsl".
APPLICATION_ID: Final = 0x5047736C
_FORMAT: Final = "purposeguard.sealed-sqlite"
_ID_RE: Final = re.compile(r"[0-9a-f]{32}")
_CORRUPT_CODES: Final = frozenset({11, 26})
_SCHEMA: Final = (
    "CREATE TABLE pg_meta (key TEXT PRIMARY KEY, value TEXT)",
    """CREATE TABLE pg_sealed (
        id TEXT PRIMARY KEY NOT NULL,
        subject TEXT NOT NULL,
        consent TEXT,
        expires_us INTEGER NOT NULL,
        permits TEXT NOT NULL,
        sealed BLOB NOT NULL
    )""",
    "CREATE INDEX pg_sealed_subject ON pg_sealed (subject)",
    "CREATE INDEX pg_sealed_consent ON pg_sealed (consent)",
    "CREATE INDEX pg_sealed_expires ON pg_sealed (expires_us)",
)
_INSERT: Final = (
    "INSERT INTO pg_sealed (id, subject, consent, expires_us, permits, sealed) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
_SELECT_BY: Final = {
    "id": "SELECT id FROM pg_sealed WHERE id = ?",
    "subject": "SELECT id FROM pg_sealed WHERE subject = ?",
    "consent": "SELECT id FROM pg_sealed WHERE consent = ?",
    "expired": "SELECT id FROM pg_sealed WHERE expires_us <= ?",
}
_DELETE_BY: Final = {
    "id": "DELETE FROM pg_sealed WHERE id = ?",
    "subject": "DELETE FROM pg_sealed WHERE subject = ?",
    "consent": "DELETE FROM pg_sealed WHERE consent = ?",
    "expired": "DELETE FROM pg_sealed WHERE expires_us <= ?",
}


class SealedSQLiteBackend:
    """An SQLite store that keeps every template sealed at rest, erased by shredding.

    Each row of `pg_sealed` holds the template id, the label's subject, consent,
    expiry and permitted purposes (in clear, to filter and erase without keys) and
    the output of [`purposeguard.crypto.seal`][purposeguard.crypto.seal] for the template (values
    encrypted; id and label authenticated). No vector is ever written in clear. Rows
    are written in one transaction per batch (`journal_mode=WAL`,
    `synchronous=FULL`); deletions use `secure_delete=ON` and truncate the
    write-ahead log.

    Search is exact, in numpy, over a plaintext copy in this process's memory that is
    built by unsealing every row when the store opens (and again when another
    connection has written). What callers may rely on:

    - [`delete_matching`][purposeguard.stores.SealedSQLiteBackend.delete_matching] with a subject
      (`GuardedStore.erase_subject`) deletes the rows and, with `shred_on_erase=True` (the
      default), shreds the subject's data keys in *keyring*: every copy of those rows, in backups
      or elsewhere, becomes unreadable.
    - [`shred`][purposeguard.stores.SealedSQLiteBackend.shred] does the same for a subject
      directly.
    - Rows whose key has been shredded (by this store, or by anyone through the key
      ring) are dropped from the memory copy and deleted from the file when the store
      next opens or catches up with another connection's write.
    - A row that does not unseal under *keyring* for any other reason (a wrong key
      ring, an altered row) is an [`IntegrityError`][purposeguard.IntegrityError], not a
      silently missing template.

    Thread-safe: calls are serialised by a lock.

    Args:
        path: the database file (`":memory:"` for tests).
        keyring: the key ring that holds the subjects' data keys.
        shred_on_erase: whether erasing a subject also shreds its keys.
        timeout: seconds to wait for another connection's write lock.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        keyring: KeyRing,
        shred_on_erase: bool = True,
        timeout: float = 30.0,
    ) -> None:
        if isinstance(path, bytes) or not isinstance(path, str | os.PathLike):
            raise PolicyError(f"path must be a str or os.PathLike, got {type(path).__name__}")
        if not isinstance(keyring, KeyRing):
            raise PolicyError(f"keyring must be a KeyRing, got {type(keyring).__name__}")
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0:
            raise PolicyError("timeout must be a non-negative number of seconds")
        self._path = str(os.fspath(path))
        self._memory = self._path == ":memory:"
        self._ring = keyring
        self._shred_on_erase = bool(shred_on_erase)
        self._lock = threading.RLock()
        self._closed = False
        self._cache = MemoryBackend()
        self._dim: int | None = None
        self._version = -1
        if not self._memory and Path(self._path).is_dir():
            raise PolicyError(f"{self._path} is a directory, not an SQLite store file")
        try:
            self._conn = sqlite3.connect(
                self._path, timeout=float(timeout), isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as e:
            raise PolicyError(f"cannot open the SQLite store {self._path}: {e}") from None
        try:
            with self._errors():
                self._open()
        except BaseException:
            self._conn.close()
            self._closed = True
            raise

    # -- the protocol ------------------------------------------------------------------

    @property
    def name(self) -> str:
        """`"sealed-sqlite"`."""
        return "sealed-sqlite"

    @property
    def keyring(self) -> KeyRing:
        """The key ring."""
        return self._ring

    @property
    def dim(self) -> int | None:
        """The vector dimension, fixed by the first record; `None` before."""
        with self._lock:
            if not self._closed:
                with self._errors():
                    self._refresh()
            return self._dim

    def add(self, records: Sequence[Record]) -> None:
        """Seal and store *records* in one transaction; return once committed.

        Raises:
            InvalidTemplateError: a malformed or repeated id, an id already stored, a
                dimension other than the store's, or values that are not finite.
        """
        batch = list(records)
        if not batch:
            return
        vecs: list[npt.NDArray[np.float32]] = []
        for r in batch:
            if not isinstance(r, Record):
                raise InvalidTemplateError(f"expected Records, got {type(r).__name__}")
            if not isinstance(r.template_id, str) or not _ID_RE.fullmatch(r.template_id):
                raise InvalidTemplateError("a template id is 32 lowercase hex digits")
            with np.errstate(over="ignore", invalid="ignore"):
                v = np.asarray(r.vector, dtype=np.float32)
            if v.ndim != 1 or v.shape[0] == 0 or not np.isfinite(v).all():
                raise InvalidTemplateError(
                    f"template {r.template_id} is not a finite 1-d float32 vector"
                )
            vecs.append(v)
        ids = [r.template_id for r in batch]
        if len(set(ids)) != len(ids):
            raise InvalidTemplateError("the batch holds the same template id twice")
        with self._lock, self._errors():
            self._check_open()
            with self._write():
                self._refresh()
                dim = self._dim if self._dim is not None else int(vecs[0].shape[0])
                for r, v in zip(batch, vecs, strict=True):
                    if v.shape[0] != dim:
                        raise InvalidTemplateError(
                            f"dimension mismatch: the store holds {dim}-d vectors, "
                            f"template {r.template_id} has {v.shape[0]}"
                        )
                for tid in ids:
                    if self._conn.execute(_SELECT_BY["id"], (tid,)).fetchone() is not None:
                        raise InvalidTemplateError(f"a template with id {tid} is already stored")
                blobs = seal_values(
                    self._ring,
                    [(r.template_id, r.label, v) for r, v in zip(batch, vecs, strict=True)],
                )
                self._conn.executemany(
                    _INSERT,
                    [
                        (
                            r.template_id,
                            r.label.subject,
                            r.label.consent,
                            r.expires_us,
                            json.dumps(sorted(r.permits)),
                            blob,
                        )
                        for r, blob in zip(batch, blobs, strict=True)
                    ],
                )
                if self._dim is None:
                    self._conn.execute(
                        "INSERT OR REPLACE INTO pg_meta (key, value) VALUES ('dim', ?)",
                        (str(dim),),
                    )
            self._dim = dim
            self._cache.add(
                [
                    Record(template_id=r.template_id, vector=v, label=r.label, permits=r.permits)
                    for r, v in zip(batch, vecs, strict=True)
                ]
            )

    def search(self, query: npt.NDArray[np.float32], k: int, flt: SearchFilter) -> list[Hit]:
        """Exact cosine top-*k* among the records matching *flt* (filtered before
        ranking, over the unsealed copy in memory)."""
        with self._lock, self._errors():
            self._check_open()
            self._refresh()
            return self._cache.search(query, k, flt)

    def fetch(self, template_id: str) -> Record | None:
        """The record with that id, or `None`."""
        with self._lock, self._errors():
            self._check_open()
            self._refresh()
            return self._cache.fetch(template_id)

    def delete_ids(self, template_ids: Collection[str]) -> int:
        """Delete these rows; return how many existed."""
        ids = sorted({t for t in template_ids if isinstance(t, str) and _ID_RE.fullmatch(t)})
        if not ids:
            return 0
        with self._lock, self._errors():
            self._check_open()
            gone: list[str] = []
            with self._write():
                self._refresh()
                for tid in ids:
                    gone += self._delete_where("id", tid)
            return self._after_delete(gone)

    def delete_matching(
        self,
        *,
        subject: str | None = None,
        consent: str | None = None,
        expired_at_us: int | None = None,
    ) -> int:
        """Delete every row of *subject* (and shred its keys if `shred_on_erase`),
        or resting on *consent*, or expired at *expired_at_us*; exactly one criterion.
        Returns how many rows were removed."""
        if sum(x is not None for x in (subject, consent, expired_at_us)) != 1:
            raise PolicyError("delete_matching() takes exactly one criterion")
        if subject is not None:
            if self._shred_on_erase:
                return self.shred(subject)
            how, key = "subject", str(subject)
        elif consent is not None:
            how, key = "consent", str(consent)
        else:
            how, key = "expired", str(int(expired_at_us or 0))
        with self._lock, self._errors():
            self._check_open()
            with self._write():
                self._refresh()
                gone = self._delete_where(how, int(key) if how == "expired" else key)
            return self._after_delete(gone)

    def shred(self, subject: str) -> int:
        """Shred *subject*'s data keys in the key ring, then delete its rows; return
        how many rows were removed. Keys first: if the deletion fails, what remains is
        already unreadable."""
        if not isinstance(subject, str) or not subject:
            raise PolicyError("subject must be a non-empty string")
        with self._lock, self._errors():
            self._check_open()
            self._ring.shred(subject)
            with self._write():
                self._refresh()
                gone = self._delete_where("subject", subject)
            return self._after_delete(gone)

    def count(self) -> int:
        """How many templates are stored (and readable)."""
        with self._lock, self._errors():
            self._check_open()
            self._refresh()
            return self._cache.count()

    def subjects(self) -> int:
        """How many distinct subjects are stored."""
        with self._lock, self._errors():
            self._check_open()
            self._refresh()
            return self._cache.subjects()

    def close(self) -> None:
        """Close the connection and zero the memory copy. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                with suppress(sqlite3.Error):
                    self._checkpoint()
            finally:
                self._conn.close()
                self._cache.close()

    def __len__(self) -> int:
        return self.count()

    def __enter__(self) -> SealedSQLiteBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self._cache.count()} templates"
        return f"<SealedSQLiteBackend {self._path!r} {state}>"

    # -- internals -----------------------------------------------------------------------

    def _open(self) -> None:
        conn = self._conn
        app = int(conn.execute("PRAGMA application_id").fetchone()[0])
        tables = {
            str(r[0])
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        }
        if app != APPLICATION_ID and (app != 0 or tables):
            raise PolicyError(
                f"{self._path} is an SQLite database but not a sealed purposeguard store; "
                "refusing to modify it"
            )
        if not self._memory:
            mode = str(conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]).lower()
            if mode != "wal":
                raise PolicyError(f"cannot put the SQLite store {self._path} in WAL mode")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA secure_delete=ON")
        conn.execute("PRAGMA trusted_schema=OFF")
        with self._write():
            if int(conn.execute("PRAGMA application_id").fetchone()[0]) == 0:
                for stmt in _SCHEMA:
                    conn.execute(stmt)
                conn.executemany(
                    "INSERT INTO pg_meta (key, value) VALUES (?, ?)",
                    [("format", _FORMAT), ("schema", str(SCHEMA_VERSION)), ("dim", None)],
                )
                conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
            meta = dict(conn.execute("SELECT key, value FROM pg_meta").fetchall())
            if meta.get("format") != _FORMAT or meta.get("schema") != str(SCHEMA_VERSION):
                raise PolicyError(f"{self._path} is not a sealed purposeguard store (v1)")
            self._drop(self._sync())

    def _refresh(self) -> None:
        # Reads run in a read transaction of their own; rows found shredded are then
        # deleted in a write transaction (inside a caller's write transaction, at once).
        if self._conn.in_transaction:
            self._drop(self._sync())
            return
        self._conn.execute("BEGIN")
        try:
            shredded = self._sync()
        finally:
            self._conn.execute("COMMIT")
        if shredded:
            with self._write():
                self._drop(shredded)

    def _drop(self, shredded: list[str]) -> None:
        # Their keys are gone: the rows are unreadable. Remove what is left of them.
        if shredded:
            self._conn.executemany(_DELETE_BY["id"], [(t,) for t in shredded])

    def _sync(self) -> list[str]:
        # Another connection committed (or this is the first read): rebuild the copy.
        # Returns the ids of rows whose key has been shredded (left out of the copy).
        version = int(self._conn.execute("PRAGMA data_version").fetchone()[0])
        if version == self._version:
            return []
        row = self._conn.execute("SELECT value FROM pg_meta WHERE key = 'dim'").fetchone()
        dim = None if row is None or row[0] is None else int(row[0])
        cache = MemoryBackend()
        shredded: list[str] = []
        records: list[Record] = []
        for tid, perm, blob in self._conn.execute("SELECT id, permits, sealed FROM pg_sealed"):
            rec = self._decode(tid, perm, blob, dim)
            if rec is None:
                shredded.append(tid)
            else:
                records.append(rec)
        if records:
            cache.add(records)
        old, self._cache = self._cache, cache
        old.close()
        self._dim = dim
        self._version = version
        return shredded

    def _decode(self, tid: Any, perm: Any, blob: Any, dim: int | None) -> Record | None:
        where = f"the sealed store {self._path}, template {str(tid)[:64]!r}"
        if not isinstance(tid, str) or not _ID_RE.fullmatch(tid) or not isinstance(blob, bytes):
            raise IntegrityError(f"{where}: malformed row")
        if len(blob) >= 22 and self._ring._is_shredded(blob[6:22]):
            return None
        try:
            sealed_id, label, values = open_sealed(blob, self._ring)
        except IntegrityError:
            raise IntegrityError(f"{where}: does not unseal under this key ring") from None
        if sealed_id != tid or dim is None or values.shape != (dim,):
            raise IntegrityError(f"{where}: the sealed template is not this row's")
        try:
            names = json.loads(perm)
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise ValueError
        except (TypeError, ValueError):
            raise IntegrityError(f"{where}: malformed permits") from None
        return Record(
            template_id=tid,
            vector=values.astype(np.float32, copy=False),
            label=label,
            permits=frozenset(names),
        )

    @contextmanager
    def _write(self) -> Iterator[None]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._conn.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:
                with suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
            raise

    def _delete_where(self, how: str, key: object) -> list[str]:
        ids = [str(r[0]) for r in self._conn.execute(_SELECT_BY[how], (key,))]
        if ids:
            self._conn.execute(_DELETE_BY[how], (key,))
        return ids

    def _after_delete(self, gone: list[str]) -> int:
        if gone and self._cache.delete_ids(gone) != len(gone):
            self._version = -1
        if gone:
            self._checkpoint()
        return len(gone)

    def _checkpoint(self) -> None:
        if not self._memory:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()

    def _check_open(self) -> None:
        if self._closed:
            raise PolicyError(f"the sealed SQLite store {self._path} is closed")

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.DatabaseError as e:
            code = getattr(e, "sqlite_errorcode", None)
            if isinstance(code, int) and code & 0xFF in _CORRUPT_CODES:
                raise IntegrityError(
                    f"{self._path} is damaged or is not an SQLite database: {e}"
                ) from None
            if isinstance(e, sqlite3.OperationalError):
                raise
            raise IntegrityError(f"the SQLite store {self._path} failed: {e}") from None
