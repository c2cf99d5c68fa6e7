"""SealedSQLiteBackend: templates sealed at rest in SQLite; erasure by shredding keys."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any, Final

import numpy as np

from purposeguard._errors import IntegrityError, PolicyError
from purposeguard.crypto._keyring import KeyRing
from purposeguard.crypto._sealing import open_sealed, seal_values

from ._memory import MemoryBackend
from ._records import Record
from ._sqlite_file import ID_RE, SQLiteFile

__all__ = ["SealedSQLiteBackend"]

SCHEMA_VERSION: Final = 1
# PRAGMA application_id of a sealed purposeguard store: "PGsl".
APPLICATION_ID: Final = 0x5047736C
_FORMAT: Final = "purposeguard.sealed-sqlite"
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


class SealedSQLiteBackend(SQLiteFile):
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

    _KIND = "sealed purposeguard store"
    _APPLICATION_ID = APPLICATION_ID
    _FORMAT = _FORMAT
    _SCHEMA_VERSION = SCHEMA_VERSION
    _SCHEMA = _SCHEMA
    _TABLE = "pg_sealed"
    _COLUMNS = ("id", "subject", "consent", "expires_us", "permits", "sealed")

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        keyring: KeyRing,
        shred_on_erase: bool = True,
        timeout: float = 30.0,
    ) -> None:
        if not isinstance(keyring, KeyRing):
            raise PolicyError(f"keyring must be a KeyRing, got {type(keyring).__name__}")
        self._ring = keyring
        self._shred_on_erase = bool(shred_on_erase)
        super().__init__(path, timeout=timeout)

    # -- the protocol ------------------------------------------------------------------

    @property
    def name(self) -> str:
        """`"sealed-sqlite"`."""
        return "sealed-sqlite"

    @property
    def keyring(self) -> KeyRing:
        """The key ring."""
        return self._ring

    def add(self, records: Sequence[Record]) -> None:
        """Seal and store *records* in one transaction; return once committed.

        Raises:
            InvalidTemplateError: a malformed or repeated id, an id already stored, a
                dimension other than the store's, or values that are not finite.
        """
        batch = list(records)
        if not batch:
            return
        vecs = self._vectors(batch)
        with self._lock, self._errors():
            self._check_open()
            with self._write():
                self._refresh()
                dim = self._admit(batch, vecs)
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
            self._dim = dim
            self._added(batch, vecs)

    def fetch(self, template_id: str) -> Record | None:
        """The record with that id, or `None`."""
        with self._lock, self._errors():
            self._check_open()
            self._refresh()
            return self._cache.fetch(template_id)

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
        if (
            subject is not None
            and consent is None
            and expired_at_us is None
            and self._shred_on_erase
        ):
            return self.shred(subject)
        return super().delete_matching(
            subject=subject, consent=consent, expired_at_us=expired_at_us
        )

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

    # -- the copy in memory --------------------------------------------------------------

    def _sync(self) -> list[str]:
        # Another connection committed (or this is the first read): rebuild the copy.
        # Returns the ids of rows whose key has been shredded (left out of the copy).
        version = self._data_version()
        if version == self._version:
            return []
        dim = self._read_dim()
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
        if not isinstance(tid, str) or not ID_RE.fullmatch(tid) or not isinstance(blob, bytes):
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
