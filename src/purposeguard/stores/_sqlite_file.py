"""What the two SQLite backends share: one file, one connection, a copy in memory.

[`SQLiteBackend`][purposeguard.stores.SQLiteBackend] keeps vectors in clear and
[`SealedSQLiteBackend`][purposeguard.stores.SealedSQLiteBackend] keeps them sealed, but
both open and identify their file the same way, serialise calls with a lock, search an
exact copy in a [`MemoryBackend`][purposeguard.stores.MemoryBackend], write in explicit
transactions, and erase with `secure_delete` and a truncating checkpoint. A subclass
says which file it is (class attributes) and how rows become records (`_sync`).
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
import time
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import ClassVar, Final, Self

import numpy as np
import numpy.typing as npt

from purposeguard._errors import IntegrityError, InvalidTemplateError, PolicyError

from ._memory import MemoryBackend
from ._records import Hit, Record, SearchFilter

ID_RE: Final = re.compile(r"[0-9a-f]{32}")
# SQLITE_CORRUPT, SQLITE_NOTADB: the file is damaged or is not a database.
_CORRUPT_CODES: Final = frozenset({11, 26})
# SQLITE_BUSY, SQLITE_LOCKED.
_BUSY_CODES: Final = frozenset({5, 6})
# Seconds an erasure waits for other connections' reads before leaving the checkpoint due.
_CHECKPOINT_WAIT: Final = 0.5
# Page size of new files: several 512-d rows with their labels per page.
_PAGE_SIZE: Final = 8192
_CRITERIA: Final = {
    "id": "id = ?",
    "subject": "subject = ?",
    "consent": "consent = ?",
    "expired": "expires_us <= ?",
}


class SQLiteFile:
    """The shared base of the SQLite backends (not public)."""

    # -- what a subclass declares --------------------------------------------------------
    # "purposeguard store" or "sealed purposeguard store": used in messages.
    _KIND: ClassVar[str]
    _APPLICATION_ID: ClassVar[int]
    _FORMAT: ClassVar[str]
    _SCHEMA_VERSION: ClassVar[int]
    _SCHEMA: ClassVar[tuple[str, ...]]
    _TABLE: ClassVar[str]
    _COLUMNS: ClassVar[tuple[str, ...]]

    def __init__(self, path: str | os.PathLike[str], *, timeout: float) -> None:
        if isinstance(path, bytes) or not isinstance(path, str | os.PathLike):
            raise PolicyError(f"path must be a str or os.PathLike, got {type(path).__name__}")
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0:
            raise PolicyError("timeout must be a non-negative number of seconds")
        self._path = str(os.fspath(path))
        self._memory = self._path == ":memory:"
        self._timeout = float(timeout)
        self._lock = threading.RLock()
        self._closed = False
        self._dim: int | None = None
        self._version = -1  # PRAGMA data_version when the copy was last synchronised
        self._cache = MemoryBackend()
        self._checkpoint_due = False
        # The ids each erasure criterion selects, and the matching deletion. TABLE is
        # a class constant, never input.
        t = self._TABLE
        self._select_by = {k: f"SELECT id FROM {t} WHERE {w}" for k, w in _CRITERIA.items()}  # noqa: S608
        self._delete_by = {k: f"DELETE FROM {t} WHERE {w}" for k, w in _CRITERIA.items()}  # noqa: S608
        if not self._memory and Path(self._path).is_dir():
            raise PolicyError(f"{self._path} is a directory, not an SQLite store file")
        try:
            self._conn = sqlite3.connect(
                self._path,
                timeout=self._timeout,
                isolation_level=None,  # transactions are explicit
                check_same_thread=False,  # calls are serialised by self._lock
            )
        except sqlite3.Error as e:
            raise PolicyError(f"cannot open the SQLite store {self._path}: {e}") from None
        try:
            with self._errors():
                try:
                    self._open()
                except sqlite3.OperationalError as e:
                    raise PolicyError(f"cannot open the SQLite store {self._path}: {e}") from None
        except BaseException:
            self._conn.close()
            self._closed = True
            raise

    # -- the protocol, shared ------------------------------------------------------------

    @property
    def dim(self) -> int | None:
        """The vector dimension, fixed by the first record ever added; `None` before."""
        with self._lock:
            if not self._closed:
                with self._errors():
                    self._refresh()
            return self._dim

    def search(self, query: npt.NDArray[np.float32], k: int, flt: SearchFilter) -> list[Hit]:
        """Exact cosine top-*k* among the stored records matching *flt*, best first
        (filtered before ranking, in numpy, over the copy in memory)."""
        with self._lock, self._errors():
            self._check_open()
            self._refresh()
            return self._cache.search(query, k, flt)

    def delete_ids(self, template_ids: Collection[str]) -> int:
        """Remove these records from the file and the copy; return how many existed."""
        ids = sorted({t for t in template_ids if isinstance(t, str) and ID_RE.fullmatch(t)})
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
        """Remove every record of *subject*, or resting on *consent*, or expired at
        *expired_at_us*; exactly one must be given. Returns how many were removed."""
        if sum(x is not None for x in (subject, consent, expired_at_us)) != 1:
            raise PolicyError("delete_matching() takes exactly one criterion")
        key: object
        if subject is not None:
            how, key = "subject", str(subject)
        elif consent is not None:
            how, key = "consent", str(consent)
        else:
            assert expired_at_us is not None
            how, key = "expired", int(expired_at_us)
        with self._lock, self._errors():
            self._check_open()
            with self._write():
                self._refresh()
                gone = self._delete_where(how, key)
            return self._after_delete(gone)

    def count(self) -> int:
        """How many records are stored."""
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
        """Checkpoint if an erasure left the log pending, close the connection and
        zero the copy in memory. Idempotent; the backend is unusable afterwards."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                if self._checkpoint_due:
                    with suppress(sqlite3.Error):
                        self._checkpoint()
            finally:
                self._conn.close()
                self._cache.close()

    def checkpoint(self) -> bool:
        """Fold the write-ahead log into the database file and truncate it to zero
        bytes; `False` if another connection's open read prevented it (retry later)."""
        with self._lock, self._errors():
            self._check_open()
            return self._checkpoint()

    def __len__(self) -> int:
        return self.count()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self._cache.count()} templates dim={self._dim}"
        return f"<{type(self).__name__} {self._path!r} {state}>"

    # -- opening -------------------------------------------------------------------------

    def _open(self) -> None:
        conn = self._conn
        # Identify the file before changing anything in it (journal mode included).
        conn.execute("BEGIN")  # one snapshot: another process may be creating it now
        try:
            app = int(conn.execute("PRAGMA application_id").fetchone()[0])
            tables = self._tables()
        finally:
            conn.execute("COMMIT")
        if app != self._APPLICATION_ID and (app != 0 or tables):
            raise PolicyError(
                f"{self._path} is an SQLite database but not a {self._KIND} "
                f"(application_id {app:#x}, tables: {', '.join(sorted(tables)) or 'none'}); "
                "refusing to modify it"
            )
        if app == 0 and not tables:
            conn.execute(f"PRAGMA page_size={_PAGE_SIZE}")
        if not self._memory:
            mode = self._wal()
            if mode != "wal":
                raise PolicyError(
                    f"cannot put the SQLite store {self._path} in WAL mode (got {mode!r})"
                )
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA secure_delete=ON")
        if int(conn.execute("PRAGMA secure_delete").fetchone()[0]) != 1:
            raise PolicyError(f"SQLite refused secure_delete for {self._path}")
        conn.execute("PRAGMA trusted_schema=OFF")
        with self._write():
            # Re-check under the write lock: another process may have created it.
            if int(conn.execute("PRAGMA application_id").fetchone()[0]) == 0:
                if self._tables():
                    raise PolicyError(f"{self._path} is not a {self._KIND}")
                for stmt in self._SCHEMA:
                    conn.execute(stmt)
                conn.executemany(
                    "INSERT INTO pg_meta (key, value) VALUES (?, ?)",
                    [
                        ("format", self._FORMAT),
                        ("schema", str(self._SCHEMA_VERSION)),
                        ("dim", None),
                    ],
                )
                conn.execute(f"PRAGMA application_id={self._APPLICATION_ID}")
            self._check_schema()
            self._drop(self._sync())

    def _wal(self) -> str:
        # Switching to WAL needs an exclusive lock, and SQLite reports a busy file at
        # once instead of calling the busy handler when another connection is switching
        # it too (two processes opening a new store): retry until the timeout.
        deadline = time.monotonic() + self._timeout
        pause = 0.005
        while True:
            try:
                return str(self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]).lower()
            except sqlite3.OperationalError as e:
                if getattr(e, "sqlite_errorcode", 0) & 0xFF not in _BUSY_CODES:
                    raise
                if time.monotonic() + pause > deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 0.1)

    def _tables(self) -> set[str]:
        rows = self._conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        ).fetchall()
        return {str(r[0]) for r in rows}

    def _check_schema(self) -> None:
        if not {"pg_meta", self._TABLE} <= self._tables():
            raise IntegrityError(f"the {self._KIND} {self._path} lacks its tables")
        meta = dict(self._conn.execute("SELECT key, value FROM pg_meta").fetchall())
        if meta.get("format") != self._FORMAT:
            raise PolicyError(f"{self._path} is not a {self._KIND}")
        if meta.get("schema") != str(self._SCHEMA_VERSION):
            raise PolicyError(
                f"the store {self._path} has schema version {meta.get('schema')!r}; "
                f"this purposeguard reads version {self._SCHEMA_VERSION}"
            )
        cols = tuple(str(r[1]) for r in self._conn.execute(f"PRAGMA table_info({self._TABLE})"))
        if cols != self._COLUMNS:
            raise IntegrityError(f"the store {self._path} has unexpected columns")

    # -- the copy in memory --------------------------------------------------------------

    def _sync(self) -> list[str]:
        """Bring the copy up to date with the file if another connection committed;
        return the ids of rows to delete from the file (rows that can no longer be
        read, such as sealed rows whose key was shredded)."""
        raise NotImplementedError

    def _refresh(self) -> None:
        # Inside a transaction this reads that transaction's snapshot; outside, it
        # opens a read transaction of its own so that it is consistent. Rows to drop
        # are then deleted in a write transaction (inside a caller's, at once).
        if self._conn.in_transaction:
            self._drop(self._sync())
            return
        self._conn.execute("BEGIN")
        try:
            dead = self._sync()
        finally:
            self._conn.execute("COMMIT")
        if dead:
            with self._write():
                self._drop(dead)

    def _drop(self, dead: list[str]) -> None:
        if dead:
            self._conn.executemany(self._delete_by["id"], [(t,) for t in dead])

    def _data_version(self) -> int:
        return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def _read_dim(self) -> int | None:
        row = self._conn.execute("SELECT value FROM pg_meta WHERE key = 'dim'").fetchone()
        if row is None or row[0] is None:
            return None
        try:
            dim = int(row[0])
        except (TypeError, ValueError):
            dim = 0
        if dim <= 0:
            raise IntegrityError(f"the store {self._path} has a malformed dimension")
        return dim

    def _set_dim(self, dim: int) -> None:
        self._conn.execute(
            "INSERT OR REPLACE INTO pg_meta (key, value) VALUES ('dim', ?)", (str(dim),)
        )

    def _exists(self, template_id: str) -> bool:
        return self._conn.execute(self._select_by["id"], (template_id,)).fetchone() is not None

    # -- writing -------------------------------------------------------------------------

    @staticmethod
    def _vectors(batch: Sequence[Record]) -> list[npt.NDArray[np.float32]]:
        """Check a batch before any transaction: records with well-formed, distinct
        ids and finite 1-d float32 vectors, which are returned in order."""
        for r in batch:
            if not isinstance(r, Record):
                raise InvalidTemplateError(f"expected Records, got {type(r).__name__}")
            if not isinstance(r.template_id, str) or not ID_RE.fullmatch(r.template_id):
                raise InvalidTemplateError("a template id is 32 lowercase hex digits")
        ids = [r.template_id for r in batch]
        if len(set(ids)) != len(ids):
            raise InvalidTemplateError("the batch holds the same template id twice")
        vecs: list[npt.NDArray[np.float32]] = []
        for r in batch:
            try:
                with np.errstate(over="ignore", invalid="ignore"):
                    v = np.asarray(r.vector, dtype=np.float32)
            except (TypeError, ValueError):
                raise InvalidTemplateError(f"template {r.template_id} is not numeric") from None
            if v.ndim != 1 or v.shape[0] == 0:
                raise InvalidTemplateError(f"template {r.template_id} is not a 1-d vector")
            if not np.isfinite(v).all():
                raise InvalidTemplateError(
                    f"template {r.template_id} holds values that are not finite float32"
                )
            vecs.append(v)
        return vecs

    def _admit(self, batch: Sequence[Record], vecs: Sequence[npt.NDArray[np.float32]]) -> int:
        """Inside the batch's write transaction, with the copy current: the batch's
        dimension must be the store's and no id may be stored already. Returns the
        dimension (set in the file if this is the first batch)."""
        dim = self._dim if self._dim is not None else int(vecs[0].shape[0])
        for r, v in zip(batch, vecs, strict=True):
            if v.shape[0] != dim:
                raise InvalidTemplateError(
                    f"dimension mismatch: the store holds {dim}-d vectors, "
                    f"template {r.template_id} has {v.shape[0]}"
                )
        for r in batch:
            if self._exists(r.template_id):
                raise InvalidTemplateError(f"a template with id {r.template_id} is already stored")
        if self._dim is None:
            self._set_dim(dim)
        return dim

    def _added(self, batch: Sequence[Record], vecs: Sequence[npt.NDArray[np.float32]]) -> None:
        """After the batch committed: put it in the copy (or rebuild the copy from the
        file at the next read if that fails)."""
        records = [
            r
            if v is r.vector
            else Record(template_id=r.template_id, vector=v, label=r.label, permits=r.permits)
            for r, v in zip(batch, vecs, strict=True)
        ]
        try:
            self._cache.add(records)
        except Exception:
            self._version = -1
        if self._checkpoint_due:
            self._checkpoint()

    @contextmanager
    def _write(self) -> Iterator[None]:
        # One write transaction: BEGIN IMMEDIATE takes the write lock up front (waiting
        # up to the timeout for other writers); COMMIT makes it durable.
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
        ids = [str(r[0]) for r in self._conn.execute(self._select_by[how], (key,))]
        if ids:
            self._conn.execute(self._delete_by[how], (key,))
        return ids

    def _after_delete(self, gone: list[str]) -> int:
        # Committed: drop the vectors from the copy, then from the -wal file.
        if not gone:
            return 0
        try:
            removed = self._cache.delete_ids(gone)
        except Exception:
            removed = -1
        if removed != len(gone):
            self._version = -1  # rebuild from the file at the next read
        self._checkpoint_due = True
        self._checkpoint()
        return len(gone)

    def _checkpoint(self) -> bool:
        if self._memory:
            self._checkpoint_due = False
            return True
        # TRUNCATE waits for other connections' open reads to end: wait briefly, not
        # the full write timeout, and leave the checkpoint due if one holds on.
        wait_ms = int(min(self._timeout, _CHECKPOINT_WAIT) * 1000)
        self._conn.execute(f"PRAGMA busy_timeout={wait_ms}")
        try:
            busy, _log, _done = self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            self._conn.execute(f"PRAGMA busy_timeout={int(self._timeout * 1000)}")
        self._checkpoint_due = int(busy) != 0
        return not self._checkpoint_due

    # -- errors --------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise PolicyError(f"the SQLite store {self._path} is closed")

    @contextmanager
    def _errors(self) -> Iterator[None]:
        # A damaged file, or one that is not a database, is an IntegrityError naming it.
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
