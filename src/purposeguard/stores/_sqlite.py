"""SQLiteBackend: the embedded default. One file, WAL, exact numpy search over a cache."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Sequence
from typing import Any, Final

import numpy as np

from purposeguard._errors import IntegrityError, InvalidTemplateError, PolicyError
from purposeguard._labels import Label

from ._memory import MemoryBackend
from ._records import Record
from ._sqlite_file import ID_RE, SQLiteFile

__all__ = ["SQLiteBackend"]

SCHEMA_VERSION: Final = 1
# PRAGMA application_id of a purposeguard store: "PGrd".
APPLICATION_ID: Final = 0x50477264
_FORMAT: Final = "purposeguard.sqlite"
# Distinct permit sets remembered (their JSON text and back): labels share few.
_MAX_INTERNED: Final = 4096
# Rows read per step when the cache is (re)built.
_LOAD_STEP: Final = 4096

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


class SQLiteBackend(SQLiteFile):
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

    _KIND = "purposeguard store"
    _APPLICATION_ID = APPLICATION_ID
    _FORMAT = _FORMAT
    _SCHEMA_VERSION = SCHEMA_VERSION
    _SCHEMA = _SCHEMA
    _TABLE = "pg_templates"
    _COLUMNS = ("id", "subject", "consent", "expires_us", "permits", "label", "vector")

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 30.0) -> None:
        # Interned permit sets, both ways (labels share few); used while opening.
        self._permits_of: dict[str, frozenset[str]] = {}
        self._permits_json: dict[frozenset[str], str] = {}
        super().__init__(path, timeout=timeout)

    # -- the protocol ------------------------------------------------------------------

    @property
    def name(self) -> str:
        """`"sqlite"`."""
        return "sqlite"

    @property
    def path(self) -> str:
        """The database file's path."""
        return self._path

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
        vecs = self._vectors(batch)
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
        with self._lock, self._errors():
            self._check_open()
            with self._write():
                self._refresh()  # we hold the write lock: the copy is now current
                dim = self._admit(batch, vecs)
                try:
                    self._conn.executemany(_INSERT, rows)
                except sqlite3.IntegrityError:
                    raise InvalidTemplateError(
                        "a template with that id is already stored"
                    ) from None
            self._dim = dim
            self._added(batch, vecs)

    def fetch(self, template_id: str) -> Record | None:
        """The record with that id read from the file, or `None`."""
        if not isinstance(template_id, str) or not ID_RE.fullmatch(template_id):
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

    # -- the cache ---------------------------------------------------------------------

    def _sync(self) -> list[str]:
        # data_version changes only when ANOTHER connection commits; our own commits
        # update the cache directly. Rows are never updated in place (only inserted
        # and deleted), so comparing id sets finds every change. Every row stays
        # readable: nothing to drop.
        version = self._data_version()
        if version == self._version:
            return []
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
        return []

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
        if not isinstance(tid, str) or not ID_RE.fullmatch(tid):
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
