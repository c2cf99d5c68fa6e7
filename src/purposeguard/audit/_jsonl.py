"""JsonlSink: the tamper-evident audit log (hash chain, forward-secure MACs, checkpoints)."""

from __future__ import annotations

import atexit
import contextlib
import errno
import hmac
import json
import os
import secrets
import sys
import threading
import time
import weakref
from collections.abc import Callable
from datetime import datetime
from hashlib import sha256 as _sha256
from pathlib import Path
from typing import Final, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from purposeguard._clock import SystemClock
from purposeguard._errors import AuditError, PolicyError
from purposeguard._events import AuditEvent, Outcome
from purposeguard._purposes import Operation, Purpose
from purposeguard.typing import Clock

from ._format import (
    CHECKPOINT_CONTEXT,
    ENCODER,
    FORMAT,
    GENESIS_PREV,
    VERSION,
    MerkleTree,
    as_key,
    evolve,
    leaf_hash,
    log_key,
    mac_and_next_key,
    pseudonym,
)

__all__ = ["Durability", "JsonlSink", "checkpoint_key_id", "pseudonymise", "rotated_path"]

Durability = Literal["always", "batch", "none"]
_DURABILITIES: Final = ("always", "batch", "none")
_MIN_ROTATE_BYTES: Final = 4096
_OPEN_FLAGS: Final = (
    os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
)


def rotated_path(path: Path, index: int) -> Path:
    """The file that holds part *index* of the log at *path* (0 is *path* itself)."""
    return path if index == 0 else path.with_name(f"{path.name}.{index}")


def checkpoint_key_id(public_key: bytes) -> str:
    """The key id of an Ed25519 public key: hex SHA-256 of its 32 raw bytes."""
    import hashlib

    return hashlib.sha256(public_key).hexdigest()


def pseudonymise(subject: str, *, key: bytes) -> str:
    """The pseudonym a [`JsonlSink`][purposeguard.audit.JsonlSink] built with
    `pseudonymise_key=key` writes for *subject*: `"p:"` and 32 hex digits of a keyed HMAC-SHA256.
    Deterministic, so an auditor holding the key can find one subject's events; without the key the
    pseudonyms cannot be linked back to subjects."""
    if not isinstance(subject, str) or not subject:
        raise PolicyError("subject must be a non-empty string")
    return pseudonym(subject, as_key(key, "pseudonymise_key"))


# -- the canonical JSON of an event, without building a dict ---------------------------
#
# ENCODER.encode(event.to_dict()) with sorted keys, written out by hand for events of
# the types the guard builds; anything else (a subclass, a list instead of a tuple)
# takes that generic path, so the bytes are the same either way. The strings are
# escaped by the function the C encoder itself uses.

_json_str: Final = json.encoder.encode_basestring_ascii
_OPERATIONS: Final = {op: _json_str(op.value) for op in Operation}
_OUTCOMES: Final = {o: _json_str(o.value) for o in Outcome}
_MAX_MEMO: Final = 65_536


def _json_strs(items: tuple[str, ...]) -> str:
    return "[" + ",".join(map(_json_str, items)) + "]" if items else "[]"


def _opt(value: str | None) -> str:
    return "null" if value is None else _json_str(value)


def _event_json(e: AuditEvent, subjects: tuple[str, ...] | list[str]) -> str | None:
    """The canonical JSON of *e* with *subjects*, or `None` if *e* is not of the
    plain types this is written for."""
    op, outcome, purpose, at = e.operation, e.outcome, e.purpose, e.at
    seq, tids, rules = e.seq, e.template_ids, e.rule_ids
    if (
        type(seq) is not int
        or type(at) is not datetime
        or type(tids) is not tuple
        or type(rules) is not tuple
        or type(outcome) is not Outcome
        or not (op is None or type(op) is Operation)
        or not (purpose is None or type(purpose) is Purpose)
    ):
        return None
    try:
        return (
            f'{{"at":{_json_str(at.isoformat())},"grant_id":{_opt(e.grant_id)},'
            f'"operation":{"null" if op is None else _OPERATIONS[op]},'
            f'"outcome":{_OUTCOMES[outcome]},"principal":{_opt(e.principal)},'
            f'"purpose":{"null" if purpose is None else _json_str(purpose.name)},'
            f'"reason":{_json_str(e.reason)},"rule_ids":{_json_strs(rules)},"seq":{seq},'
            f'"site":{_json_str(e.site)},"subjects":{_json_strs(tuple(subjects))},'
            f'"template_ids":{_json_strs(tids)}}}'
        )
    except TypeError:  # a field that is not a str: the generic encoder decides
        return None


def _errname(e: OSError) -> str:
    return errno.errorcode.get(e.errno or 0, "OSError") if e.errno else type(e).__name__


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        if n <= 0:  # pragma: no cover - regular files never return 0 for a non-empty write
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[n:]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_live: weakref.WeakSet[JsonlSink] = weakref.WeakSet()


@atexit.register
def _close_at_exit() -> None:  # pragma: no cover - runs at interpreter exit
    for sink in list(_live):
        try:
            sink.close()
        except Exception as e:
            print(f"purposeguard: could not close the audit log: {e}", file=sys.stderr)


class JsonlSink:
    """The tamper-evident audit log: one canonical JSON line per event.

    Each entry carries its sequence number and the hash of the entry before it (a hash
    chain), and an HMAC-SHA256 under a key that evolves one way after every entry
    (`k_{i+1} = HMAC(k_i, ...)`): whoever steals the sink's current key cannot forge
    or alter the entries already written. The auditor keeps *key* and checks the log
    with [`purposeguard.audit.verify`][purposeguard.audit.verify]. The format is specified in
    `docs/reference/audit-log-format.md`.

    Args:
        path: the log file. It must not exist: every sink starts a new log (with a
            random log id) and never appends to an old one.
        key: the auditor's secret, at least 32 random bytes. The sink derives the log's
            first key from it and keeps no reference to it.
        durability: `"batch"` (default): events are written and fsynced in groups of
            *batch_size*, or after *batch_interval* seconds, or on
            [`flush`][purposeguard.audit.JsonlSink.flush]; a crash can lose the events of the open
            batch. `"always"`: every event is written and fsynced before `emit` returns, so an
            access proceeds only once its record is durable. `"none"`: written in batches, never
            fsynced.
        batch_size: events per group commit (`"batch"` and `"none"`).
        batch_interval: seconds after which an open batch is committed anyway.
        max_bytes: rotate to a new file (`path.1`, `path.2`, ...) once the current
            one holds at least this many bytes; `None` (default) never rotates. The
            chain, the key schedule and the sequence numbers continue across files.
        checkpoint_key: an Ed25519 private key; with it, a signed Merkle tree head
            (RFC 9162) over the log is written every *checkpoint_every* entries, every
            *checkpoint_interval* seconds and on [`close`][purposeguard.audit.JsonlSink.close], so
            that a cut tail is detected. Keep it away from whoever can write the log if you can.
        checkpoint_path: where checkpoints go (default: `path` + `".checkpoints"`).
            Better on another machine or a write-once store; see also *on_checkpoint*.
        on_checkpoint: called with each checkpoint line (a `str`) after it is written,
            for publishing elsewhere (a transparency log, a remote store).
        pseudonymise_key: if given, subjects are written as keyed pseudonyms
            ([`pseudonymise`][purposeguard.audit.pseudonymise]) instead of their ids.
        clock: the time written into start records and checkpoints.

    `emit` raises [`AuditError`][purposeguard.AuditError] when the event cannot be
    recorded, so the guard denies the access; an event whose `emit` raised is never
    in the log. A failed write is rolled back (the file is truncated to its last good
    length) and retried with the next event; a failed `fsync` leaves the sink broken,
    refusing every later event. Thread-safe.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        key: bytes,
        durability: Durability = "batch",
        batch_size: int = 512,
        batch_interval: float = 0.2,
        max_bytes: int | None = None,
        checkpoint_key: Ed25519PrivateKey | None = None,
        checkpoint_path: str | os.PathLike[str] | None = None,
        checkpoint_every: int = 10_000,
        checkpoint_interval: float | None = 60.0,
        on_checkpoint: Callable[[str], object] | None = None,
        pseudonymise_key: bytes | None = None,
        clock: Clock | None = None,
    ) -> None:
        if durability not in _DURABILITIES:
            raise PolicyError(
                f"durability must be 'always', 'batch' or 'none', got {durability!r}"
            )
        _positive_int(batch_size, "batch_size")
        _positive_number(batch_interval, "batch_interval")
        if max_bytes is not None:
            _positive_int(max_bytes, "max_bytes")
            if max_bytes < _MIN_ROTATE_BYTES:
                raise PolicyError(f"max_bytes must be at least {_MIN_ROTATE_BYTES}")
        _positive_int(checkpoint_every, "checkpoint_every")
        if checkpoint_interval is not None:
            _positive_number(checkpoint_interval, "checkpoint_interval")
        if checkpoint_key is not None and not isinstance(checkpoint_key, Ed25519PrivateKey):
            raise PolicyError(
                "checkpoint_key must be a cryptography Ed25519PrivateKey, "
                f"got {type(checkpoint_key).__name__}"
            )
        if checkpoint_key is None and (checkpoint_path is not None or on_checkpoint is not None):
            raise PolicyError("checkpoint_path and on_checkpoint need a checkpoint_key")
        if on_checkpoint is not None and not callable(on_checkpoint):
            raise PolicyError("on_checkpoint must be callable")
        if clock is not None and not isinstance(clock, Clock):
            raise PolicyError(f"clock must implement Clock (got {type(clock).__name__})")
        master = as_key(key, "key")
        self._pseudo = (
            None if pseudonymise_key is None else as_key(pseudonymise_key, "pseudonymise_key")
        )
        self._pseudo_memo: dict[str, str] = {}
        self._path = Path(path)
        self._durability: Durability = durability
        self._batch_size = batch_size
        self._batch_interval = float(batch_interval)
        self._max_bytes = max_bytes
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._log_id = secrets.token_hex(16)
        self._k = log_key(master, self._log_id)
        del master
        self._lock = threading.Lock()
        self._seq = 0
        self._prev = GENESIS_PREV
        self._tree = MerkleTree()
        self._buf: list[bytes] = []
        self._buffered = 0
        self._oldest = 0.0
        self._size = 0
        self._file_index = 0
        self._files: list[Path] = []
        self._fd = -1
        self._closed = False
        self._broken: str | None = None
        self._retry = False
        # Checkpoints.
        self._cp_key = checkpoint_key
        self._cp_every = checkpoint_every
        self._cp_interval = checkpoint_interval
        self._on_cp = on_checkpoint
        self._cp_fd = -1
        self._cp_size = 0
        self._cp_since = 0
        self._cp_last = time.monotonic()
        self._cp_kid = ""
        self._cp_path: Path | None = None
        if checkpoint_key is not None:
            raw = checkpoint_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
            self._cp_kid = checkpoint_key_id(raw)
            self._cp_path = (
                Path(checkpoint_path)
                if checkpoint_path is not None
                else self._path.with_name(self._path.name + ".checkpoints")
            )
        try:
            self._fd = self._start_file(self._path, 0)
            if self._cp_path is not None:
                self._cp_fd = self._create(self._cp_path)
        except BaseException:
            self._close_fds()
            raise
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        tick = min(
            self._batch_interval if durability != "always" else float("inf"),
            checkpoint_interval
            if checkpoint_key is not None and checkpoint_interval
            else float("inf"),
        )
        if tick != float("inf"):
            self._thread = threading.Thread(
                target=self._tick,
                args=(max(tick / 2, 0.005),),
                name="purposeguard-audit",
                daemon=True,
            )
            self._thread.start()
        _live.add(self)

    # -- public surface --------------------------------------------------------------

    @property
    def path(self) -> Path:
        """The first file of the log."""
        return self._path

    @property
    def files(self) -> tuple[Path, ...]:
        """Every file of the log so far, in order."""
        return tuple(self._files)

    @property
    def log_id(self) -> str:
        """The log's random id (32 hex digits), written in every start record."""
        return self._log_id

    @property
    def entries(self) -> int:
        """How many entries (start records and events) the log holds, committed or not."""
        return self._seq

    @property
    def checkpoint_path(self) -> Path | None:
        """Where checkpoints are written, or `None` without a checkpoint key."""
        return self._cp_path

    def emit(self, event: AuditEvent) -> None:
        """Append *event*; raise [`AuditError`][purposeguard.AuditError] if it cannot be.

        With `durability="always"` the event is on disk (fsynced) when this returns.
        """
        if not isinstance(event, AuditEvent):
            raise AuditError(f"JsonlSink.emit takes an AuditEvent, got {type(event).__name__}")
        subjects: tuple[str, ...] | list[str] = event.subjects
        if self._pseudo is not None:
            subjects = self._pseudonyms(event.subjects)
        ev = _event_json(event, subjects) if type(subjects) in (tuple, list) else None
        if ev is None:
            d = event.to_dict()
            if self._pseudo is not None:
                d["subjects"] = subjects
            ev = ENCODER.encode(d)
        with self._lock:
            if (
                self._closed
                or self._broken is not None
                or self._retry
                or self._cp_key is not None
                or self._max_bytes is not None
            ):
                self._ready()
            text = f'{{"event":{ev},"kind":"event","prev":"{self._prev}","seq":{self._seq},"v":1}}'
            mac, next_key = mac_and_next_key(self._k, text.encode("ascii"))
            line = f'{{"entry":{text},"mac":"{mac.hex()}"}}'.encode("ascii")
            buf = self._buf
            buf.append(line)
            self._buffered += len(line) + 1
            if len(buf) == 1:
                self._oldest = time.monotonic()
            if self._durability == "always" or len(buf) >= self._batch_size:
                try:
                    self._commit()
                except BaseException:
                    buf.pop()
                    self._buffered -= len(line) + 1
                    raise
            # _advance, with the next key already computed.
            h = _sha256(b"\x00" + line).digest()  # leaf_hash(line)
            self._k[:] = next_key
            self._tree.append(h)
            self._prev = h.hex()
            self._seq += 1
            self._cp_since += 1

    def _pseudonyms(self, subjects: tuple[str, ...]) -> list[str]:
        # Sorted, without repeats; remembered per subject (one HMAC per new subject).
        key = self._pseudo
        assert key is not None
        memo = self._pseudo_memo
        out = set()
        for s in subjects:
            p = memo.get(s) if type(s) is str else None
            if p is None:
                p = pseudonym(s, key)
                if type(s) is str:
                    if len(memo) >= _MAX_MEMO:
                        memo.clear()
                    memo[s] = p
            out.add(p)
        return sorted(out)

    def flush(self) -> None:
        """Write (and, unless `durability="none"`, fsync) every event emitted so far.

        Raises:
            AuditError: they could not be written.
        """
        with self._lock:
            if self._closed:
                return
            self._check_broken()
            self._commit()
            self._retry = False

    def checkpoint(self) -> None:
        """Flush, then write a signed checkpoint covering every entry so far.

        Raises:
            PolicyError: the sink has no checkpoint key.
            AuditError: the log or the checkpoint could not be written.
        """
        if self._cp_key is None:
            raise PolicyError("this JsonlSink has no checkpoint_key")
        with self._lock:
            if self._closed:
                raise AuditError("the audit log is closed")
            self._check_broken()
            self._checkpoint()

    def close(self) -> None:
        """Flush, write a final checkpoint (with a checkpoint key), close the files and
        overwrite the key in memory. Closing again does nothing.

        Raises:
            AuditError: the last events or the final checkpoint could not be written
                (the files are closed all the same).
        """
        self._stop_thread()
        with self._lock:
            if self._closed:
                return
            self._closed = True
            _live.discard(self)
            try:
                if self._broken is None:
                    self._commit()
                    if self._cp_key is not None and self._cp_since:
                        self._checkpoint()
            finally:
                self._close_fds()
                self._k[:] = bytes(len(self._k))
                self._buf.clear()

    def __enter__(self) -> JsonlSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "broken" if self._broken else "open"
        return (
            f"<JsonlSink {str(self._path)!r} durability={self._durability!r} "
            f"entries={self._seq} {state}>"
        )

    # -- internals (the lock is held) --------------------------------------------------

    def _check_broken(self) -> None:
        if self._broken is not None:
            raise AuditError(
                f"the audit log {self._path} failed earlier ({self._broken}) and refuses "
                "further events; start a new log"
            )

    def _ready(self) -> None:
        if self._closed:
            raise AuditError(f"the audit log {self._path} is closed")
        self._check_broken()
        if self._retry:  # a background commit or checkpoint failed: retry before going on
            self._commit()
            if self._cp_key is not None:
                self._checkpoint()  # a repeated checkpoint of the same size is harmless
            self._retry = False
        if self._cp_key is not None and self._cp_since >= self._cp_every:
            self._checkpoint()
        if self._max_bytes is not None and self._size + self._buffered >= self._max_bytes:
            self._rotate()

    def _advance(self, line: bytes) -> None:
        h = leaf_hash(line)
        evolve(self._k)
        self._tree.append(h)
        self._prev = h.hex()
        self._seq += 1
        self._cp_since += 1

    def _fail(self, what: str, e: OSError) -> AuditError:
        return AuditError(
            f"could not {what} the audit log {self._path} ({_errname(e)}); the access is denied"
        )

    def _commit(self) -> None:
        buf = self._buf
        if not buf:
            return
        data = b"\n".join(buf) + b"\n"
        try:
            _write_all(self._fd, data)
        except OSError as e:
            self._undo(self._fd, self._size)
            raise self._fail("write", e) from e
        if self._durability != "none":
            try:
                os.fsync(self._fd)
            except OSError as e:
                # After a failed fsync the page cache cannot be trusted: stop for good.
                self._undo(self._fd, self._size)
                self._broken = f"fsync: {_errname(e)}"
                raise self._fail("fsync", e) from e
        self._size += len(data)
        buf.clear()
        self._buffered = 0

    def _undo(self, fd: int, size: int) -> None:
        try:
            os.ftruncate(fd, size)
        except OSError as e:
            self._broken = f"could not roll back a failed write: {_errname(e)}"

    def _create(self, path: Path) -> int:
        try:
            fd = os.open(path, _OPEN_FLAGS, 0o600)
        except FileExistsError:
            raise PolicyError(
                f"{path} already exists: a JsonlSink starts a new log and never appends to "
                "an old one (use a new path per run, e.g. with a timestamp)"
            ) from None
        except OSError as e:
            raise AuditError(f"could not create {path} ({_errname(e)})") from e
        if self._durability != "none":
            try:
                _fsync_dir(path)
            except OSError as e:
                os.close(fd)
                raise AuditError(f"could not fsync the directory of {path} ({_errname(e)})") from e
        return fd

    def _start_file(self, path: Path, index: int) -> int:
        """Create *path* and write its start record durably; advance only on success."""
        fd = self._create(path)
        body = ENCODER.encode(
            {
                "file": index,
                "format": FORMAT,
                "kind": "start",
                "log_id": self._log_id,
                "prev": self._prev,
                "seq": self._seq,
                "started_at": self._clock.now().isoformat(),
                "v": VERSION,
            }
        ).encode("ascii")
        mac = hmac.digest(self._k, body, "sha256")
        line = b'{"entry":' + body + b',"mac":"' + mac.hex().encode("ascii") + b'"}'
        try:
            _write_all(fd, line + b"\n")
            if self._durability != "none":
                os.fsync(fd)
        except OSError as e:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise AuditError(f"could not write the start of {path} ({_errname(e)})") from e
        self._advance(line)
        self._size = len(line) + 1
        self._files.append(path)
        return fd

    def _rotate(self) -> None:
        self._commit()
        index = self._file_index + 1
        fd = self._start_file(rotated_path(self._path, index), index)
        old, self._fd, self._file_index = self._fd, fd, index
        os.close(old)

    def _checkpoint(self) -> None:
        assert self._cp_key is not None
        self._commit()
        body = ENCODER.encode(
            {
                "at": self._clock.now().isoformat(),
                "key_id": self._cp_kid,
                "log_id": self._log_id,
                "root": self._tree.root().hex(),
                "tree_size": self._tree.size,
                "v": VERSION,
            }
        ).encode("ascii")
        sig = self._cp_key.sign(CHECKPOINT_CONTEXT + body)
        line = b'{"checkpoint":' + body + b',"sig":"' + sig.hex().encode("ascii") + b'"}\n'
        try:
            _write_all(self._cp_fd, line)
            if self._durability != "none":
                os.fsync(self._cp_fd)
        except OSError as e:
            self._undo(self._cp_fd, self._cp_size)
            raise AuditError(
                f"could not write a checkpoint to {self._cp_path} ({_errname(e)}); "
                "the access is denied"
            ) from e
        self._cp_size += len(line)
        self._cp_since = 0
        self._cp_last = time.monotonic()
        if self._on_cp is not None:
            try:
                self._on_cp(line[:-1].decode("ascii"))
            except Exception as e:
                self._retry = True
                raise AuditError(
                    f"on_checkpoint failed ({type(e).__name__}); the access is denied"
                ) from e

    def _close_fds(self) -> None:
        for attr in ("_fd", "_cp_fd"):
            fd = getattr(self, attr, -1)
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
                setattr(self, attr, -1)

    # -- the background committer ----------------------------------------------------

    def _stop_thread(self) -> None:
        thread = getattr(self, "_thread", None)
        if thread is not None:
            self._stop.set()
            if thread is not threading.current_thread():
                thread.join()
            self._thread = None

    def _tick(self, period: float) -> None:
        while not self._stop.wait(period):
            with self._lock:
                if self._closed or self._broken is not None:
                    return
                now = time.monotonic()
                try:
                    if (
                        self._durability != "always"
                        and self._buf
                        and now - self._oldest >= self._batch_interval
                    ):
                        self._commit()
                    if (
                        self._cp_key is not None
                        and self._cp_interval is not None
                        and self._cp_since
                        and now - self._cp_last >= self._cp_interval
                    ):
                        self._checkpoint()
                except Exception:
                    # Reported by the next emit, which retries first and raises if it
                    # fails again, so the access it records is denied.
                    self._retry = True


def _positive_int(value: object, what: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise PolicyError(f"{what} must be a positive integer, got {value!r}")


def _positive_number(value: object, what: str) -> None:
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not value > 0
        or value == float("inf")
    ):
        raise PolicyError(f"{what} must be a positive, finite number of seconds, got {value!r}")
