"""SQLiteBackend: the embedded default. One file, WAL, exact numpy search over a cache."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
import time
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from purposeguard._errors import IntegrityError, InvalidTemplateError, PolicyError
from purposeguard._labels import Label

from ._memory import MemoryBackend
from ._records import Hit, Record, SearchFilter

__all__ = ["SQLiteBackend"]

SCHEMA_VERSION: Final = 1
# PRAGMA application_id of a purposeguard store: "PGrd".
APPLICATION_ID: Final = 0x50477264
_FORMAT: Final = "purposeguard.sqlite"
_TABLE: Final = "pg_templates"
_META: Final = "pg_meta"
_ID_RE: Final = re.compile(r"[0-9a-f]{32}")
# Distinct permit sets remembered (their JSON text and back): labels share few.
_MAX_INTERNED: Final = 4096
# Page size of new files: three 512-d float32 rows with their labels per page.
_PAGE_SIZE: Final = 8192
# Rows read per step when the cache is (re)built.
_LOAD_STEP: Final = 4096
# SQLITE_CORRUPT, SQLITE_NOTADB: the file is damaged or is not a database.
_CORRUPT_CODES: Final = frozenset({11, 26})
# SQLITE_BUSY, SQLITE_LOCKED.
_BUSY_CODES: Final = frozenset({5, 6})
# Seconds an erasure waits for other connections' reads before leaving the checkpoint due.
_CHECKPOINT_WAIT: Final = 0.5

_SCHEMA: Final = (
    "CREATE TABLE pg_meta (key TEXT PRIMARY KEY, value TEXT)",
    """CREATE TABLE pg_templates (
        id TEXT PRIMARY KEY NOT NULL,
        subject TEXT NOT NULL,
        consent TEXT,
        expires_us INTEGER NOT NULL,
        permits TEXT NOT NULL,
        label BLOB NOT NULL,
        vector BLOB NOT NULL
    )""",
    "CREATE INDEX pg_templates_subject ON pg_templates (subject)",
    "CREATE INDEX pg_templates_consent ON pg_templates (consent)",
    "CREATE INDEX pg_templates_expires ON pg_templates (expires_us)",
)
_INSERT: Final = (
    "INSERT INTO pg_templates (id, subject, consent, expires_us, permits, label, vector) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_SELECT_ALL: Final = "SELECT id, permits, label, vector FROM pg_templates"
_SELECT_IDS: Final = "SELECT id FROM pg_templates"
_SELECT_ONE: Final = "SELECT id, permits, label, vector FROM pg_templates WHERE id = ?"
_EXISTS: Final = "SELECT 1 FROM pg_templates WHERE id = ?"
_SET_DIM: Final = "INSERT OR REPLACE INTO pg_meta (key, value) VALUES ('dim', ?)"
_GET_DIM: Final = "SELECT value FROM pg_meta WHERE key = 'dim'"
_GET_META: Final = "SELECT key, value FROM pg_meta"
_PUT_META: Final = "INSERT INTO pg_meta (key, value) VALUES (?, ?)"
_COLUMNS: Final = "PRAGMA table_info(pg_templates)"
# The ids each erasure criterion selects, and the matching deletion.
_SELECT_BY: Final = {
    "id": "SELECT id FROM pg_templates WHERE id = ?",
    "subject": "SELECT id FROM pg_templates WHERE subject = ?",
    "consent": "SELECT id FROM pg_templates WHERE consent = ?",
    "expired": "SELECT id FROM pg_templates WHERE expires_us <= ?",
}
_DELETE_BY: Final = {
    "id": "DELETE FROM pg_templates WHERE id = ?",
    "subject": "DELETE FROM pg_templates WHERE subject = ?",
    "consent": "DELETE FROM pg_templates WHERE consent = ?",
    "expired": "DELETE FROM pg_templates WHERE expires_us <= ?",
}


class SQLiteBackend:
    """The embedded default backend: one SQLite file, standard-library `sqlite3` only.

    Each template is one row of `pg_templates`: `id` (primary key), `subject`,
    `consent`, `expires_us` (microseconds since the epoch), `permits` (a JSON
    list of the purposes the label permits, so the file needs no taxonomy to filter),
    `label` (`Label.to_bytes()`) and `vector` (little-endian float32 bytes).
    `pg_meta` holds the schema version and the dimension; `subject`, `consent`
    and `expires_us` are indexed. The vector and its label are written in one
    transaction and [`add`][purposeguard.stores.SQLiteBackend.add] returns only once it has
    committed (`journal_mode=WAL`, `synchronous=FULL`): a process killed at any moment
    leaves every committed template with its label and none without one.

    Erasure deletes the rows with `secure_delete=ON` (SQLite overwrites the freed
    space with zeros) and then checkpoints the write-ahead log with `TRUNCATE`, so
    that no copy of an erased vector remains in the `-wal` file. If another process
    holds a read open, the checkpoint is retried on the next write and on
    [`close`][purposeguard.stores.SQLiteBackend.close] (and by
    [`checkpoint`][purposeguard.stores.SQLiteBackend.checkpoint]).

    Search is exact: cosine top-*k* in numpy over an in-memory copy of the vectors and
    label columns (a [`MemoryBackend`][purposeguard.stores.MemoryBackend]), filtered before
    ranking. The copy is updated after each of this object's own commits, and before every read the
    backend asks SQLite (`PRAGMA data_version`) whether another connection has
    committed since; if so the copy is brought up to date from the file first.

    Several processes (or several backends in one process) may open the same file at
    once: WAL lets readers run alongside one writer, and writers wait up to *timeout*
    seconds for each other. The cache is per process (per backend object): each holds
    its own copy of the vectors in memory, and catches up on other connections' writes
    at its next call (it reads the ids, drops the erased rows from memory and loads
    only the new ones). Opening a store decodes every label (about 0.1 ms per
    template). For many writers, or more templates than one machine's memory holds,
    use a server engine: `PgVectorBackend` (a PostgreSQL URI), `QdrantBackend` (a
    server URL) or `MilvusBackend` (a cluster URI). SQLite itself has no server mode,
    and the file must not live on a network file system (WAL needs shared memory on
    one host).

    Thread-safe: calls on one backend object are serialised by a lock.

    Args:
        path: the database file; created (with its schema) if missing
            (`":memory:"` gives a private, non-durable store for tests). An existing
            file must be a purposeguard store: a SQLite database of another kind is a
            [`PolicyError`][purposeguard.PolicyError] and is left untouched, a damaged file
            or one that is not a database is an [`IntegrityError`][purposeguard.IntegrityError];
            both messages name the path.
        timeout: seconds to wait for another connection's write lock.

    For example:

    ```python
    store = GuardedStore(SQLiteBackend("/var/lib/faces/templates.db"))
    ```
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 30.0) -> None:
        if isinstance(path, bytes) or not isinstance(path, (str, os.PathLike)):
            raise PolicyError(f"path must be a str or os.PathLike, got {type(path).__name__}")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
            raise PolicyError("timeout must be a non-negative number of seconds")
        self._path = str(os.fspath(path))
        self._memory = self._path == ":memory:"
        self._timeout = float(timeout)
        self._lock = threading.RLock()
        self._closed = False
        self._dim: int | None = None
        self._version = -1  # PRAGMA data_version when the cache was last synchronised
        self._cache = MemoryBackend()
        self._checkpoint_due = False
        self._permits_of: dict[str, frozenset[str]] = {}
        self._permits_json: dict[frozenset[str], str] = {}
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

    # -- the protocol ------------------------------------------------------------------

    @property
    def name(self) -> str:
        """`"sqlite"`."""
        return "sqlite"

    @property
    def path(self) -> str:
        """The database file's path."""
        return self._path

    @property
    def dim(self) -> int | None:
        """The vector dimension, fixed by the first record ever added; `None` before."""
        with self._lock:
            if not self._closed:
                with self._errors():
                    self._refresh()
            return self._dim

    def add(self, records: Sequence[Record]) -> None:
        """Store *records* in one transaction; return once it has committed.

        Raises:
            InvalidTemplateError: a malformed id, an id repeated in the batch or
                already stored, or a dimension other than the store's (nothing is
                written).
        """
        batch = list(records)
        if not batch:
            return
        for r in batch:
            if not isinstance(r, Record):
                raise InvalidTemplateError(f"expected Records, got {type(r).__name__}")
            if not isinstance(r.template_id, str) or not _ID_RE.fullmatch(r.template_id):
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
        rows = [
            (
                r.template_id,
                r.label.subject,
                r.label.consent,
                r.expires_us,
                self._json_of(r.permits),
                r.label.to_bytes(),
                v.astype("<f4", copy=False).tobytes(),
            )
            for r, v in zip(batch, vecs, strict=True)
        ]
        cached = [
            r
            if v is r.vector
            else Record(template_id=r.template_id, vector=v, label=r.label, permits=r.permits)
            for r, v in zip(batch, vecs, strict=True)
        ]
        with self._lock, self._errors():
            self._check_open()
            with self._write():
                self._refresh()  # we hold the write lock: the cache is now current
                dim = self._dim if self._dim is not None else int(vecs[0].shape[0])
                for r, v in zip(batch, vecs, strict=True):
                    if v.shape[0] != dim:
                        raise InvalidTemplateError(
                            f"dimension mismatch: the store holds {dim}-d vectors, "
                            f"template {r.template_id} has {v.shape[0]}"
                        )
                for tid in ids:
                    if self._conn.execute(_EXISTS, (tid,)).fetchone() is not None:
                        raise InvalidTemplateError(f"a template with id {tid} is already stored")
                try:
                    self._conn.executemany(_INSERT, rows)
                except sqlite3.IntegrityError:
                    raise InvalidTemplateError(
                        "a template with that id is already stored"
                    ) from None
                if self._dim is None:
                    self._conn.execute(_SET_DIM, (str(dim),))
            # Committed: now the cache.
            self._dim = dim
            try:
                self._cache.add(cached)
            except Exception:
                self._version = -1  # rebuild from the file at the next read
            if self._checkpoint_due:
                self._checkpoint()

    def search(self, query: npt.NDArray[np.float32], k: int, flt: SearchFilter) -> list[Hit]:
        """Exact cosine top-*k* among the stored records matching *flt*, best first
        (filtered before ranking, in numpy, over the cache)."""
        with self._lock, self._errors():
            self._check_open()
            self._refresh()
            return self._cache.search(query, k, flt)

    def fetch(self, template_id: str) -> Record | None:
        """The record with that id read from the file, or `None`."""
        if not isinstance(template_id, str) or not _ID_RE.fullmatch(template_id):
            return None
        with self._lock, self._errors():
            self._check_open()
            row = self._conn.execute(_SELECT_ONE, (template_id,)).fetchone()
            if row is None:
                return None
            dim = self._dim
            if dim is None:
                self._refresh()
                dim = self._dim
            return self._decode(row, dim)

    def delete_ids(self, template_ids: Collection[str]) -> int:
        """Remove these records from the file and the cache; return how many existed."""
        ids = sorted(
            {t for t in template_ids if isinstance(t, str) and _ID_RE.fullmatch(t) is not None}
        )
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
        zero the cached vectors. Idempotent; the backend is unusable afterwards."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                if self._checkpoint_due:
                    with self._errors():
                        self._checkpoint()
            finally:
                self._conn.close()
                self._cache.close()

    # -- extras ------------------------------------------------------------------------

    def checkpoint(self) -> bool:
        """Fold the write-ahead log into the database file and truncate it to zero
        bytes; `False` if another connection's open read prevented it (retry later)."""
        with self._lock, self._errors():
            self._check_open()
            return self._checkpoint()

    def __len__(self) -> int:
        return self.count()

    def __enter__(self) -> SQLiteBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self._cache.count()} templates dim={self._dim}"
        return f"<SQLiteBackend {self._path!r} {state}>"

    # -- opening -----------------------------------------------------------------------

    def _open(self) -> None:
        conn = self._conn
        # Identify the file before changing anything in it (journal mode included).
        conn.execute("BEGIN")  # one snapshot: another process may be creating it now
        try:
            app = int(conn.execute("PRAGMA application_id").fetchone()[0])
            tables = self._tables()
        finally:
            conn.execute("COMMIT")
        if app != APPLICATION_ID and (app != 0 or tables):
            raise PolicyError(
                f"{self._path} is an SQLite database but not a purposeguard store "
                f"(application_id {app:#x}, tables: {', '.join(sorted(tables)) or 'none'}); "
                "refusing to modify it"
            )
        if app == 0 and not tables:
            # A new file: pages that hold several 512-d rows (a 4 KiB page holds one).
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
            app = int(conn.execute("PRAGMA application_id").fetchone()[0])
            if app == 0:
                if self._tables():
                    raise PolicyError(f"{self._path} is not a purposeguard store")
                for stmt in _SCHEMA:
                    conn.execute(stmt)
                conn.executemany(
                    _PUT_META,
                    [("format", _FORMAT), ("schema", str(SCHEMA_VERSION)), ("dim", None)],
                )
                conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
            self._check_schema()
            self._sync()

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
        tables = self._tables()
        if not {_META, _TABLE} <= tables:
            raise IntegrityError(f"the purposeguard store {self._path} lacks its tables")
        meta = dict(self._conn.execute(_GET_META).fetchall())
        if meta.get("format") != _FORMAT:
            raise PolicyError(f"{self._path} is not a purposeguard store")
        if meta.get("schema") != str(SCHEMA_VERSION):
            raise PolicyError(
                f"the store {self._path} has schema version {meta.get('schema')!r}; "
                f"this purposeguard reads version {SCHEMA_VERSION}"
            )
        cols = [str(r[1]) for r in self._conn.execute(_COLUMNS)]
        want = ["id", "subject", "consent", "expires_us", "permits", "label", "vector"]
        if cols != want:
            raise IntegrityError(f"the store {self._path} has unexpected columns")

    # -- the cache ---------------------------------------------------------------------

    def _refresh(self) -> None:
        # Bring the cache up to date if another connection committed since it was last
        # synchronised. Inside a transaction this reads that transaction's snapshot;
        # outside, it opens a read transaction of its own so that it is consistent.
        if self._conn.in_transaction:
            self._sync()
            return
        self._conn.execute("BEGIN")
        try:
            self._sync()
        finally:
            self._conn.execute("COMMIT")

    def _data_version(self) -> int:
        return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def _sync(self) -> None:
        # data_version changes only when ANOTHER connection commits; our own commits
        # update the cache directly. Rows are never updated in place (only inserted
        # and deleted), so comparing id sets finds every change.
        version = self._data_version()
        if version == self._version:
            return
        dim = self._read_dim()
        if self._version < 0 or self._cache.count() == 0:
            self._load(dim)
        else:
            file_ids = {str(r[0]) for r in self._conn.execute(_SELECT_IDS)}
            have = set(self._cache.ids())
            new = sorted(file_ids - have)
            if 2 * len(new) > len(file_ids):
                self._load(dim)
            else:
                gone = have - file_ids
                if gone and self._cache.delete_ids(gone) != len(gone):
                    raise IntegrityError(f"the cache of the store {self._path} diverged")
                if new:
                    rows = [self._conn.execute(_SELECT_ONE, (t,)).fetchone() for t in new]
                    self._fill(self._cache, rows, dim)
        self._dim = dim
        self._version = version

    def _read_dim(self) -> int | None:
        row = self._conn.execute(_GET_DIM).fetchone()
        if row is None or row[0] is None:
            return None
        try:
            dim = int(row[0])
        except (TypeError, ValueError):
            dim = 0
        if dim <= 0:
            raise IntegrityError(f"the store {self._path} has a malformed dimension")
        return dim

    def _load(self, dim: int | None) -> None:
        # Rebuild the cache from every row (inside the caller's transaction).
        cache = MemoryBackend()
        cur = self._conn.execute(_SELECT_ALL)
        while rows := cur.fetchmany(_LOAD_STEP):
            self._fill(cache, rows, dim)
        old, self._cache = self._cache, cache
        old.close()  # zero the previous copy of the vectors

    def _fill(self, cache: MemoryBackend, rows: Sequence[Any], dim: int | None) -> None:
        if dim is None:
            raise IntegrityError(f"the store {self._path} holds rows but no dimension")
        try:
            cache.add([self._decode(r, dim) for r in rows])
        except InvalidTemplateError as e:
            raise IntegrityError(f"the store {self._path} is inconsistent: {e}") from None

    def _decode(self, row: tuple[Any, ...] | None, dim: int | None) -> Record:
        if row is None:
            raise IntegrityError(f"the store {self._path} changed while being read")
        tid, perm, label, blob = row
        where = f"the store {self._path}, template {str(tid)[:64]!r}"
        if not isinstance(tid, str) or not _ID_RE.fullmatch(tid):
            raise IntegrityError(f"{where}: malformed id")
        permits = self._permits_of
        p = permits.get(perm) if isinstance(perm, str) else None
        if p is None:
            try:
                names = json.loads(perm)
            except (TypeError, ValueError):
                raise IntegrityError(f"{where}: malformed permits") from None
            if not isinstance(names, list) or not all(isinstance(x, str) for x in names):
                raise IntegrityError(f"{where}: malformed permits")
            if len(permits) > _MAX_INTERNED:
                permits.clear()
            p = permits[perm] = frozenset(names)
        if not isinstance(label, bytes):
            raise IntegrityError(f"{where}: the label is missing")
        try:
            lab = Label.from_bytes(label)
        except PolicyError:
            raise IntegrityError(f"{where}: the label does not decode") from None
        if not isinstance(blob, bytes) or dim is None or len(blob) != 4 * dim:
            raise IntegrityError(f"{where}: the vector is not {dim} float32 values")
        vec = np.frombuffer(blob, dtype="<f4").astype(np.float32, copy=False)
        if not np.isfinite(vec).all():
            raise IntegrityError(f"{where}: the vector holds non-finite values")
        return Record(template_id=tid, vector=vec, label=lab, permits=p)

    def _json_of(self, permits: frozenset[str]) -> str:
        text = self._permits_json.get(permits)
        if text is None:
            if len(self._permits_json) > _MAX_INTERNED:
                self._permits_json.clear()
            text = self._permits_json[permits] = json.dumps(sorted(permits))
        return text

    # -- writing -----------------------------------------------------------------------

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
        ids = [str(r[0]) for r in self._conn.execute(_SELECT_BY[how], (key,))]
        if ids:
            self._conn.execute(_DELETE_BY[how], (key,))
        return ids

    def _after_delete(self, gone: list[str]) -> int:
        # Committed: drop the vectors from the cache, then from the -wal file.
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

    # -- errors ------------------------------------------------------------------------

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
