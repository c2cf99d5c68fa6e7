"""KeyRing: a key-encryption key wrapping one data key per subject; the key stores."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import stat
import struct
import threading
from collections.abc import Collection, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Final, NoReturn

import attrs

from purposeguard._errors import IntegrityError, PolicyError
from purposeguard.typing import KeyStore

from . import _hazmat

__all__ = ["FileKeyStore", "KeyRing", "MemoryKeyStore", "read_key_file", "write_secret_file"]

_ENTRY_MAGIC: Final = b"PGK1"
_ACTIVE: Final = 1
_RETIRED: Final = 2
_SHREDDED: Final = 3
_MAC_INFO: Final = b"purposeguard/keystore-entry-mac/v1"
_KEK_ID_INFO: Final = b"purposeguard/kek-id/v1"
_FORMAT: Final = "purposeguard.keystore"
_FORMAT_VERSION: Final = 1
_MAX_SUBJECT: Final = 4096


def _check_subject(subject: object) -> str:
    if not isinstance(subject, str) or not subject.strip():
        raise PolicyError("subject must be a non-empty string")
    try:
        n = len(subject.encode("utf-8"))
    except UnicodeEncodeError:
        raise PolicyError("subject must be encodable as UTF-8") from None
    if n > _MAX_SUBJECT:
        raise PolicyError(f"subject is longer than {_MAX_SUBJECT} bytes")
    return subject


def _check_kek(kek: object, what: str = "kek") -> bytes:
    if not isinstance(kek, bytes | bytearray) or len(kek) != _hazmat.KEY_LEN:
        raise PolicyError(f"{what} must be {_hazmat.KEY_LEN} bytes (an AES-256 key)")
    return bytes(kek)


def _refuse_copy(what: str) -> NoReturn:
    raise PolicyError(f"{what} holds key material and cannot be pickled or copied")


@attrs.frozen
class _Entry:
    state: int
    subject: str  # "" for a shredded key's tombstone
    wrapped: bytes  # b"" for a tombstone


def _entry_mac_key(kek: bytes) -> bytes:
    return _hazmat.hkdf_sha256(kek, b"", _MAC_INFO, 32)


def _encode_entry(mac_key: bytes, kid: bytes, e: _Entry) -> bytes:
    subject = e.subject.encode("utf-8")
    body = (
        _ENTRY_MAGIC
        + struct.pack(">BH", e.state, len(subject))
        + subject
        + struct.pack(">B", len(e.wrapped))
        + e.wrapped
    )
    return body + hmac.digest(mac_key, kid + body, hashlib.sha256)


def _decode_entry(mac_key: bytes, kid: bytes, raw: bytes) -> _Entry:
    bad = IntegrityError(
        f"key store entry {kid.hex()} failed its integrity check "
        "(wrong key-encryption key, or the key store was altered)"
    )
    if not isinstance(raw, bytes) or len(raw) < 4 + 3 + 1 + 32:
        raise bad
    body, mac = raw[:-32], raw[-32:]
    if not hmac.compare_digest(mac, hmac.digest(mac_key, kid + body, hashlib.sha256)):
        raise bad
    # Authenticated: the layout was written by us, but parse defensively anyway.
    try:
        if body[:4] != _ENTRY_MAGIC:
            raise ValueError
        state, slen = struct.unpack_from(">BH", body, 4)
        subject = body[7 : 7 + slen].decode("utf-8")
        (wlen,) = struct.unpack_from(">B", body, 7 + slen)
        wrapped = body[8 + slen : 8 + slen + wlen]
        if len(wrapped) != wlen or 8 + slen + wlen != len(body):
            raise ValueError
        if state not in (_ACTIVE, _RETIRED, _SHREDDED):
            raise ValueError
        if (state == _SHREDDED) != (wlen == 0) or (state == _SHREDDED) != (slen == 0):
            raise ValueError
    except (ValueError, struct.error, UnicodeDecodeError):
        raise bad from None
    return _Entry(state, subject, wrapped)


def _kid_bytes(key_id: str) -> bytes:
    if not isinstance(key_id, str) or len(key_id) != 32:
        raise IntegrityError(f"malformed key id in the key store: {str(key_id)[:40]!r}")
    try:
        return bytes.fromhex(key_id)
    except ValueError:
        raise IntegrityError(f"malformed key id in the key store: {key_id[:40]!r}") from None


class KeyRing:
    """A root key-encryption key (KEK) and one random 256-bit data key per subject.

    Each data key is wrapped under the KEK with AES key wrap (RFC 3394) and kept, with
    its subject, in a [`KeyStore`][purposeguard.typing.KeyStore] entry that is MACed under
    a key derived from the KEK. Opening a key ring checks every entry: a store written
    under another KEK, or altered, is an [`IntegrityError`][purposeguard.IntegrityError].

    What callers may rely on:

    - [`shred`][purposeguard.crypto.KeyRing.shred] replaces every key of a subject by a tombstone
      in the store; from then on every sealed copy of that subject's templates, wherever it is
      (backups of the blobs included), fails to unseal with `IntegrityError`. A backup of the
      *key store* still holds the wrapped key: rotate the KEK
      ([`rotate_kek`][purposeguard.crypto.KeyRing.rotate_kek]) after shredding so that such a
      backup can no longer be unwrapped.
    - [`rotate_kek`][purposeguard.crypto.KeyRing.rotate_kek] re-wraps every data key under a new
      KEK in one atomic store write; sealed blobs are untouched and stay readable.
    - [`rotate_data_key`][purposeguard.crypto.KeyRing.rotate_data_key] gives a subject a new data
      key for new seals; the old one stays readable until
      [`forget_retired`][purposeguard.crypto.KeyRing.forget_retired]. Re-seal old blobs with
      [`purposeguard.crypto.reseal`][purposeguard.crypto.reseal] in between.
    - Data keys are unwrapped on first use and cached in this object; a key shredded
      by *another* process stays usable here until this object is rebuilt. A key id
      this object does not know (a key another process created) makes it re-read its
      store once before it gives up.

    A key ring refuses pickling and copying, and its `repr` shows only the KEK's
    fingerprint. Thread-safe.

    Args:
        kek: the 32-byte key-encryption key. Keep it out of the key store's storage
            (a KMS or HSM, a secrets manager, or a 0600 file: see
            [`open`][purposeguard.crypto.KeyRing.open]).
        store: where the wrapped data keys live (default: a new
            [`MemoryKeyStore`][purposeguard.crypto.MemoryKeyStore]).
    """

    def __init__(self, kek: bytes, store: KeyStore | None = None) -> None:
        self._kek = _check_kek(kek)
        if store is None:
            store = MemoryKeyStore()
        if not isinstance(store, KeyStore):
            raise PolicyError(f"store must implement KeyStore (got {type(store).__name__})")
        self._store: KeyStore = store
        self._lock = threading.RLock()
        self._mac_key = _entry_mac_key(self._kek)
        self._entries: dict[bytes, _Entry] = {}
        self._keys: dict[bytes, _hazmat.RecordKdf] = {}  # unwrapped, by key id
        self._raw: dict[bytes, bytes] = {}
        self._by_subject: dict[str, set[bytes]] = {}  # live (not shredded) key ids
        # subject -> its current (key id, derivation); emptied by every change
        self._current: dict[str, tuple[bytes, _hazmat.RecordKdf]] = {}
        # key id -> (subject, derivation) of a live key, read without the lock; an
        # entry goes (under the lock) before its key is shredded, retired or replaced.
        self._open: dict[bytes, tuple[str, _hazmat.RecordKdf]] = {}
        self._load()

    # -- construction ----------------------------------------------------------------

    @classmethod
    def generate(cls, store: KeyStore | None = None) -> KeyRing:
        """A key ring with a new random KEK (save it with
        [`save_kek`][purposeguard.crypto.KeyRing.save_kek])."""
        return cls(secrets.token_bytes(_hazmat.KEY_LEN), store)

    @classmethod
    def open(cls, kek_file: str | os.PathLike[str], store: KeyStore | None = None) -> KeyRing:
        """A key ring whose KEK is read from *kek_file* (32 raw bytes or 64 hex digits).

        Raises:
            PolicyError: the file is missing, readable by group or others, or does not
                hold a 32-byte key (the message never shows its content).
        """
        return cls(read_key_file(kek_file), store)

    def save_kek(self, path: str | os.PathLike[str]) -> None:
        """Write the KEK (64 hex digits) to a new file *path* with permissions 0600,
        atomically. Refuses an existing file. The KEK is the root of every key: keep
        the file away from the key store and from its backups."""
        write_secret_file(path, self._kek.hex().encode("ascii") + b"\n")

    # -- what callers read -----------------------------------------------------------

    @property
    def store(self) -> KeyStore:
        """The key store."""
        return self._store

    @property
    def kek_id(self) -> str:
        """A 16-hex-digit fingerprint of the KEK (safe to log; not the key)."""
        return hmac.digest(self._kek, _KEK_ID_INFO, hashlib.sha256)[:8].hex()

    def key_id(self, subject: str) -> str | None:
        """The id of *subject*'s current data key, or `None` if it has none."""
        _check_subject(subject)
        with self._lock:
            kid = self._active_kid(subject)
            return None if kid is None else kid.hex()

    def subjects(self) -> list[str]:
        """The subjects that have at least one live (not shredded) data key, sorted."""
        with self._lock:
            return sorted(s for s, kids in self._by_subject.items() if kids)

    def __contains__(self, subject: object) -> bool:
        if not isinstance(subject, str):
            return False
        with self._lock:
            return bool(self._by_subject.get(subject))

    def __len__(self) -> int:
        return len(self.subjects())

    def __repr__(self) -> str:
        return f"<KeyRing kek={self.kek_id} subjects={len(self)}>"

    def __reduce_ex__(self, protocol: object) -> NoReturn:
        _refuse_copy("a KeyRing")

    def __copy__(self) -> NoReturn:
        _refuse_copy("a KeyRing")

    def __deepcopy__(self, memo: object) -> NoReturn:
        _refuse_copy("a KeyRing")

    # -- lifecycle ---------------------------------------------------------------------

    def shred(self, subject: str) -> int:
        """Destroy every data key of *subject* (current and retired); return how many.

        The store replaces each entry by a tombstone (no subject, no key). Afterwards
        every sealed template of the subject fails to unseal with `IntegrityError`.
        Shredding a subject without keys returns 0.
        """
        _check_subject(subject)
        with self._lock:
            kids = sorted(self._by_subject.get(subject, ()))
            if not kids:
                return 0
            self._commit(dict.fromkeys(kids, _Entry(_SHREDDED, "", b"")))
            for k in kids:
                self._keys.pop(k, None)
            return len(kids)

    def rotate_data_key(self, subject: str) -> str:
        """Give *subject* a new current data key and return its id; the old keys are
        retired (they still unseal) until
        [`forget_retired`][purposeguard.crypto.KeyRing.forget_retired]."""
        _check_subject(subject)
        with self._lock:
            updates: dict[bytes, _Entry] = {}
            for k in self._by_subject.get(subject, ()):
                e = self._entries[k]
                if e.state == _ACTIVE:
                    updates[k] = _Entry(_RETIRED, e.subject, e.wrapped)
            kid, key = self._new_key(subject, updates)
            self._commit(updates)
            self._keys[kid] = _hazmat.RecordKdf(key)
            return kid.hex()

    def forget_retired(self, subject: str | None = None) -> int:
        """Shred the retired data keys of *subject* (of every subject if `None`);
        return how many. Blobs not yet re-sealed under the current key become
        unreadable."""
        if subject is not None:
            _check_subject(subject)
        with self._lock:
            kids = [
                k
                for k, e in self._entries.items()
                if e.state == _RETIRED and (subject is None or e.subject == subject)
            ]
            tomb = _Entry(_SHREDDED, "", b"")
            self._commit(dict.fromkeys(kids, tomb))
            for k in kids:
                self._keys.pop(k, None)
            return len(kids)

    def rotate_kek(self, new_kek: bytes) -> None:
        """Re-wrap every data key under *new_kek* in one atomic store write.

        Persist *new_kek* before calling this (and destroy the old one after): a
        crash in between leaves the store under one of the two, never a mix. Sealed
        blobs are not touched. No other process may write the store meanwhile; other
        processes must reopen their key rings with the new KEK afterwards.
        """
        new = _check_kek(new_kek, "new_kek")
        with self._lock:
            self._load()  # include keys other processes have added since we opened
            mac_key = _entry_mac_key(new)
            out: dict[str, bytes] = {}
            for k, e in self._entries.items():
                if e.state != _SHREDDED:
                    try:
                        key = _hazmat.unwrap_key(self._kek, e.wrapped)
                    except _hazmat.UnsealError:
                        raise IntegrityError(
                            f"key store entry {k.hex()} does not unwrap under this KEK"
                        ) from None
                    e = _Entry(e.state, e.subject, _hazmat.wrap_key(new, key))
                out[k.hex()] = _encode_entry(mac_key, k, e)
            self._store.replace_all(out)
            self._kek = new
            self._mac_key = mac_key
            self._entries, self._raw = {}, {}
            self._load()

    # -- for purposeguard.crypto only ----------------------------------------------------

    def _current_keys(self, subjects: Iterable[str]) -> dict[str, tuple[bytes, _hazmat.RecordKdf]]:
        # (key id, key derivation) of each subject's current key, creating missing ones
        # in one store write.
        subjects = list(subjects)
        current = self._current
        try:  # without the lock when every subject is known (dict reads are atomic)
            return {s: current[s] for s in subjects}
        except KeyError:
            pass
        with self._lock:
            out: dict[str, tuple[bytes, _hazmat.RecordKdf]] = {}
            new: dict[bytes, _Entry] = {}
            fresh: dict[bytes, _hazmat.RecordKdf] = {}
            current = self._current
            for s in subjects:
                if s in out:
                    continue
                hit = current.get(s)
                if hit is not None:
                    out[s] = hit
                    continue
                _check_subject(s)
                kid = self._active_kid(s)
                if kid is None:
                    kid, key = self._new_key(s, new)
                    fresh[kid] = _hazmat.RecordKdf(key)
                    out[s] = (kid, fresh[kid])
                else:
                    out[s] = current[s] = (kid, self._unwrapped(kid))
            if new:
                self._commit(new)
                self._keys.update(fresh)
            return out

    def _key_by_id(self, kid: bytes) -> tuple[str, _hazmat.RecordKdf] | None:
        # (subject, key derivation) of a live key, or None (unknown or shredded).
        hit = self._open.get(kid)  # a dict read is atomic: no lock on the hot path
        if hit is not None:
            return hit
        with self._lock:
            e = self._entries.get(kid)
            if e is None:
                self._load()  # another process may have created it
                e = self._entries.get(kid)
            if e is None or e.state == _SHREDDED:
                return None
            found = self._open[kid] = (e.subject, self._unwrapped(kid))
            return found

    def _is_shredded(self, kid: bytes) -> bool:
        with self._lock:
            e = self._entries.get(kid)
            return e is not None and e.state == _SHREDDED

    def _add_key(self, subject: str, key: bytes, kid: bytes) -> None:
        # Install a known data key (known-answer tests only).
        with self._lock:
            self._commit({kid: _Entry(_ACTIVE, _check_subject(subject), self._wrap(key))})
            self._keys[kid] = _hazmat.RecordKdf(key)

    # -- internals -------------------------------------------------------------------------

    def _wrap(self, key: bytes) -> bytes:
        return _hazmat.wrap_key(self._kek, key)

    def _new_key(self, subject: str, into: dict[bytes, _Entry]) -> tuple[bytes, bytes]:
        kid = secrets.token_bytes(16)
        while kid in self._entries or kid in into:
            kid = secrets.token_bytes(16)  # pragma: no cover - 2**-128
        key = secrets.token_bytes(_hazmat.KEY_LEN)
        into[kid] = _Entry(_ACTIVE, subject, self._wrap(key))
        return kid, key

    def _commit(self, updates: Mapping[bytes, _Entry]) -> None:
        if not updates:
            return
        encoded = {k: _encode_entry(self._mac_key, k, e) for k, e in updates.items()}
        # The lock-free caches forget first, so that no reader finds a key the store
        # write below shreds, retires or replaces.
        self._current.clear()
        for k in updates:
            self._open.pop(k, None)
        self._store.put({k.hex(): v for k, v in encoded.items()})
        for k, e in updates.items():
            old = self._entries.get(k)
            if old is not None:
                self._by_subject.get(old.subject, set()).discard(k)
            if e.state != _SHREDDED:
                self._by_subject.setdefault(e.subject, set()).add(k)
        self._entries.update(updates)
        self._raw.update(encoded)

    def _active_kid(self, subject: str) -> bytes | None:
        # Several current keys can exist (two processes created one each): any one will
        # do; take the smallest id so that every process picks the same.
        kids = [k for k in self._by_subject.get(subject, ()) if self._entries[k].state == _ACTIVE]
        return min(kids) if kids else None

    def _unwrapped(self, kid: bytes) -> _hazmat.RecordKdf:
        kdf = self._keys.get(kid)
        if kdf is None:
            try:
                key = _hazmat.unwrap_key(self._kek, self._entries[kid].wrapped)
            except _hazmat.UnsealError:
                raise IntegrityError(
                    f"key store entry {kid.hex()} does not unwrap under this KEK"
                ) from None
            kdf = self._keys[kid] = _hazmat.RecordKdf(key)
        return kdf

    def _load(self) -> None:
        # Incremental: entries whose bytes did not change are not checked again.
        raw = self._store.load()
        entries: dict[bytes, _Entry] = {}
        seen: dict[bytes, bytes] = {}
        for key_id, blob in raw.items():
            kid = _kid_bytes(key_id)
            blob = bytes(blob)
            old = self._entries.get(kid)
            if old is not None and self._raw.get(kid) == blob:
                entries[kid] = old
            else:
                entries[kid] = _decode_entry(self._mac_key, kid, blob)
                self._keys.pop(kid, None)
            seen[kid] = blob
        self._current.clear()
        self._open.clear()
        self._entries = entries
        self._raw = seen
        index: dict[str, set[bytes]] = {}
        for k, e in entries.items():
            if e.state != _SHREDDED:
                index.setdefault(e.subject, set()).add(k)
        self._by_subject = index
        self._keys = {k: v for k, v in self._keys.items() if k in entries}


class MemoryKeyStore:
    """A [`KeyStore`][purposeguard.typing.KeyStore] in this process's memory (tests, and
    key rings whose data keys must not outlive the process). Thread-safe."""

    def __init__(self) -> None:
        self._entries: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def load(self) -> Mapping[str, bytes]:
        """A copy of every entry."""
        with self._lock:
            return dict(self._entries)

    def put(self, entries: Mapping[str, bytes]) -> None:
        """Add or replace *entries*."""
        with self._lock:
            self._entries.update(entries)

    def replace_all(self, entries: Mapping[str, bytes]) -> None:
        """Replace the whole content."""
        with self._lock:
            self._entries = dict(entries)

    def key_ids(self) -> Collection[str]:
        """The key ids of every entry."""
        with self._lock:
            return list(self._entries)

    def __repr__(self) -> str:
        return f"<MemoryKeyStore {len(self._entries)} entries>"


class FileKeyStore:
    """A [`KeyStore`][purposeguard.typing.KeyStore] in one JSON file (wrapped keys only).

    Every write goes to a new file in the same directory (created with permissions
    0600), is fsynced, renamed over the old one and the directory fsynced, so a crash
    leaves either the old content or the new. When a write replaces or removes an
    entry (a shredded key), the old entry's bytes in the current file are first
    overwritten in place and fsynced. On journalling, copy-on-write or flash storage
    an overwrite does not guarantee that no copy survives on the medium: the real
    guarantee comes from rotating the KEK after shredding (see `KeyRing.shred`).

    Writes take an exclusive `flock` on `<path>.lock` and re-read the file first,
    so several processes can add keys without losing each other's writes. A file
    readable or writable by group or others is refused (`PolicyError`).

    Args:
        path: the key file; created on the first write (its directory must exist).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        if isinstance(path, bytes) or not isinstance(path, str | os.PathLike):
            raise PolicyError(f"path must be a str or os.PathLike, got {type(path).__name__}")
        self._path = Path(path)
        if self._path.is_dir():
            raise PolicyError(f"{self._path} is a directory, not a key store file")
        if not self._path.parent.is_dir():
            raise PolicyError(f"the directory of the key store {self._path} is missing")
        self._lock = threading.Lock()
        self._read()  # fail early on a bad file

    @property
    def path(self) -> Path:
        """The key file."""
        return self._path

    def load(self) -> Mapping[str, bytes]:
        """Every entry, read from the file."""
        with self._lock, self._flock():
            return self._read()

    def put(self, entries: Mapping[str, bytes]) -> None:
        """Add or replace *entries* (re-reading the file under the lock first)."""
        with self._lock, self._flock():
            current = self._read()
            replaced = [k for k in entries if k in current and current[k] != entries[k]]
            merged = {**current, **entries}
            self._write(merged, destroy=[current[k] for k in replaced])

    def replace_all(self, entries: Mapping[str, bytes]) -> None:
        """Replace the whole content."""
        with self._lock, self._flock():
            current = self._read()
            gone = [v for k, v in current.items() if entries.get(k) != v]
            self._write(dict(entries), destroy=gone)

    def key_ids(self) -> Collection[str]:
        """The key ids of every entry."""
        return list(self.load())

    def __repr__(self) -> str:
        return f"<FileKeyStore {str(self._path)!r}>"

    # -- internals -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _flock(self) -> Iterator[None]:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not on POSIX
            yield
            return
        fd = os.open(str(self._path) + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _read(self) -> dict[str, bytes]:
        try:
            fd = os.open(self._path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            return {}
        except OSError as e:
            raise PolicyError(f"cannot open the key store {self._path}: {e.strerror}") from None
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise PolicyError(f"the key store {self._path} is not a regular file")
            if os.name == "posix" and st.st_mode & 0o077:
                raise PolicyError(
                    f"the key store {self._path} is accessible to group or others "
                    f"(mode {stat.S_IMODE(st.st_mode):04o}); chmod 600 it"
                )
            data = f.read()
        try:
            doc = json.loads(data.decode("utf-8"))
            if (
                not isinstance(doc, dict)
                or doc.get("format") != _FORMAT
                or doc.get("version") != _FORMAT_VERSION
                or not isinstance(doc.get("entries"), dict)
            ):
                raise ValueError
            return {str(k): bytes.fromhex(v) for k, v in doc["entries"].items()}
        except (ValueError, TypeError, AttributeError, UnicodeDecodeError):
            raise IntegrityError(f"the key store {self._path} is malformed") from None

    def _write(self, entries: Mapping[str, bytes], *, destroy: Iterable[bytes]) -> None:
        doc = {
            "format": _FORMAT,
            "version": _FORMAT_VERSION,
            "entries": {k: entries[k].hex() for k in sorted(entries)},
        }
        data = (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode("ascii")
        doomed = [v.hex().encode("ascii") for v in destroy]
        if doomed:
            _overwrite_in_place(self._path, doomed)
        _atomic_write(self._path, data)


def _overwrite_in_place(path: Path, needles: list[bytes]) -> None:
    # Zero the hex text of each destroyed entry in the current file, then fsync.
    try:
        fd = os.open(path, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return
    with os.fdopen(fd, "r+b") as f:
        data = f.read()
        for needle in needles:
            start = 0
            while (at := data.find(needle, start)) >= 0:
                f.seek(at)
                f.write(b"0" * len(needle))
                start = at + len(needle)
        f.flush()
        os.fsync(f.fileno())


def _atomic_write(path: Path, data: bytes, *, exclusive: bool = False) -> None:
    # temp file (0600) + fsync + rename + fsync of the directory.
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if exclusive:
            os.link(tmp, path)  # fails if path exists
            os.unlink(tmp)
        else:
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if os.name == "posix":
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def write_secret_file(path: str | os.PathLike[str], data: bytes) -> None:
    """Write *data* to the new file *path* (0600, atomic, fsynced); refuse an existing
    file."""
    p = Path(path)
    if not p.parent.is_dir():
        raise PolicyError(f"the directory of {p} is missing")
    try:
        _atomic_write(p, data, exclusive=True)
    except FileExistsError:
        raise PolicyError(f"{p} exists; refusing to overwrite a key file") from None


def read_key_file(path: str | os.PathLike[str]) -> bytes:
    """A 32-byte key from *path*: 32 raw bytes, or 64 hex digits (surrounding
    whitespace ignored). Refuses a file readable or writable by group or others."""
    p = Path(path)
    try:
        st = p.stat()
        data = p.read_bytes()
    except OSError as e:
        raise PolicyError(f"cannot read the key file {p}: {e.strerror}") from None
    if os.name == "posix" and st.st_mode & 0o077:
        raise PolicyError(
            f"the key file {p} is accessible to group or others "
            f"(mode {stat.S_IMODE(st.st_mode):04o}); chmod 600 it"
        )
    if len(data) == _hazmat.KEY_LEN:
        return data
    try:
        key = bytes.fromhex(data.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        key = b""
    if len(key) != _hazmat.KEY_LEN:
        raise PolicyError(
            f"the key file {p} must hold {_hazmat.KEY_LEN} raw bytes or "
            f"{2 * _hazmat.KEY_LEN} hex digits"
        )
    return key
