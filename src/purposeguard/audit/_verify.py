"""Verifying a JsonlSink log: the chain, the MACs, the files, and signed checkpoints."""

from __future__ import annotations

import hmac
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import attrs
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from purposeguard._errors import PolicyError

from ._format import (
    CHECKPOINT_CONTEXT,
    ENCODER,
    FORMAT,
    GENESIS_PREV,
    LOG_ID_RE,
    VERSION,
    MerkleTree,
    as_key,
    evolve,
    leaf_hash,
    loads_strict,
    log_key,
)
from ._jsonl import checkpoint_key_id, rotated_path

__all__ = ["VerifyResult", "verify"]

_ENTRY_OPEN: Final = b'{"entry":'
_MAC_RE: Final = re.compile(rb',"mac":"([0-9a-f]{64})"\}\Z')
_CP_OPEN: Final = b'{"checkpoint":'
_SIG_RE: Final = re.compile(rb',"sig":"([0-9a-f]{128})"\}\Z')
_HEX64: Final = re.compile(r"[0-9a-f]{64}")
_START_KEYS: Final = frozenset(
    {"file", "format", "kind", "log_id", "prev", "seq", "started_at", "v"}
)
_EVENT_KEYS: Final = frozenset({"event", "kind", "prev", "seq", "v"})
_CP_KEYS: Final = frozenset({"at", "key_id", "log_id", "root", "tree_size", "v"})


@attrs.frozen(kw_only=True)
class VerifyResult:
    """What [`verify`][purposeguard.audit.verify] found.

    Attributes:
        ok: the whole log verified (and every checkpoint given matches it).
        entries: how many entries, from the start, verified (start records included).
        first_bad_seq: the sequence number of the first entry that failed, or `None`
            when `ok`; also `None` when the fault lies in the checkpoint file, or in
            a checkpoint that contradicts an otherwise valid log.
        reason: one sentence: why verification failed, or a summary when `ok`.
        events: how many of the verified entries are events.
        log_id: the log's id (from its first entry), or `None` if unreadable.
        files: the files read, in order.
        checkpointed: how many entries the largest matching signed checkpoint covers
            (0 without checkpoints). Entries after it could be cut without detection.
    """

    ok: bool
    entries: int
    first_bad_seq: int | None
    reason: str
    events: int = 0
    log_id: str | None = None
    files: tuple[str, ...] = ()
    checkpointed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-compatible data."""
        return {
            "ok": self.ok,
            "entries": self.entries,
            "first_bad_seq": self.first_bad_seq,
            "reason": self.reason,
            "events": self.events,
            "log_id": self.log_id,
            "files": list(self.files),
            "checkpointed": self.checkpointed,
        }


@attrs.frozen
class _Checkpoint:
    line: int
    tree_size: int
    root: bytes
    at: str
    log_id: str


class _BadError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _public_key(value: object) -> Ed25519PublicKey:
    if isinstance(value, Ed25519PublicKey):
        return value
    if isinstance(value, bytes | bytearray) and len(value) == 32:
        return Ed25519PublicKey.from_public_bytes(bytes(value))
    raise PolicyError(
        f"public_key must be an Ed25519PublicKey or its 32 raw bytes, got {type(value).__name__}"
    )


def _log_files(path: Path) -> Iterator[tuple[int, Path | None]]:
    """(index, path) for every file of the log; `None` for a missing one in a gap."""
    yield 0, path
    pattern = re.compile(re.escape(path.name) + r"\.([1-9][0-9]*)\Z")
    indices = sorted(
        int(m.group(1)) for name in os.listdir(path.parent or ".") if (m := pattern.match(name))
    )
    last = indices[-1] if indices else 0
    present = set(indices)
    for i in range(1, last + 1):
        yield i, (rotated_path(path, i) if i in present else None)


def _read_checkpoints(
    path: Path, public_key: Ed25519PublicKey
) -> tuple[list[_Checkpoint], str | None]:
    """The valid checkpoints, in order, up to the first bad line, and that line's fault."""
    kid = checkpoint_key_id(public_key.public_bytes(Encoding.Raw, PublicFormat.Raw))
    out: list[_Checkpoint] = []
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            where = f"checkpoint file {path}, line {n}"
            if not raw.endswith(b"\n"):
                return out, f"{where} is incomplete"
            line = raw[:-1]
            m = _SIG_RE.search(line)
            if not line.startswith(_CP_OPEN) or m is None:
                return out, f"{where} is not a checkpoint line"
            body = line[len(_CP_OPEN) : m.start()]
            try:
                c = loads_strict(body)
            except ValueError:
                return out, f"{where} is not valid JSON"
            if not isinstance(c, dict) or set(c) != _CP_KEYS:
                return out, f"{where} does not have the checkpoint fields"
            if c["key_id"] != kid:
                return out, f"{where} names key {c['key_id']!r}, not the trusted public key"
            try:
                public_key.verify(bytes.fromhex(m.group(1).decode()), CHECKPOINT_CONTEXT + body)
            except InvalidSignature:
                return out, f"{where}: the signature does not verify"
            size, root, log_id = c["tree_size"], c["root"], c["log_id"]
            if (
                c["v"] != VERSION
                or type(size) is not int
                or size < 1
                or not isinstance(root, str)
                or not _HEX64.fullmatch(root)
                or not isinstance(log_id, str)
                or not isinstance(c["at"], str)
                or ENCODER.encode(c).encode("ascii") != body
            ):
                return out, f"{where} is malformed"
            if out and size < out[-1].tree_size:
                return out, f"{where} covers fewer entries than the line before it"
            if out and log_id != out[-1].log_id:
                return out, f"{where} is for another log"
            out.append(_Checkpoint(n, size, bytes.fromhex(root), c["at"], log_id))
    return out, None


def verify(
    path: str | os.PathLike[str],
    *,
    key: bytes,
    checkpoint: str | os.PathLike[str] | None = None,
    public_key: Ed25519PublicKey | bytes | None = None,
    log_id: str | None = None,
) -> VerifyResult:
    """Check the audit log a [`JsonlSink`][purposeguard.audit.JsonlSink] wrote at *path* (and its
    rotated files `path.1`, `path.2`, ...).

    Every entry must carry the next sequence number and the hash of the entry before
    it, be in canonical form, and carry a valid MAC under the key the schedule derives
    from *key* for its position. That detects an edited, deleted, inserted, reordered or
    duplicated entry, a missing or reordered file, and entries spliced from another log.
    A cut tail is only detectable against a signed checkpoint: pass *checkpoint* (the
    checkpoint file) and *public_key* (the Ed25519 public key you trust, obtained
    independently: the checkpoint file only names a key id). Each checkpoint's
    signature is checked, and its Merkle root must match the log's first `tree_size`
    entries; a checkpoint covering more entries than the log holds means its tail was
    cut. *log_id*, if given, must be the log's id.

    Returns a [`VerifyResult`][purposeguard.audit.VerifyResult]; it never raises for a tampered
    log.

    Raises:
        PolicyError: a bad argument (short key, checkpoint without public key).
        OSError: *path* or *checkpoint* cannot be read.
    """
    master = as_key(key, "key")
    if checkpoint is not None and public_key is None:
        raise PolicyError(
            "checking a checkpoint needs public_key: the Ed25519 public key you trust"
        )
    if public_key is not None and checkpoint is None:
        raise PolicyError("public_key was given without a checkpoint file")
    if log_id is not None and (not isinstance(log_id, str) or not LOG_ID_RE.fullmatch(log_id)):
        raise PolicyError("log_id must be 32 lowercase hex digits")
    base = Path(path)
    if not base.is_file():
        raise FileNotFoundError(2, "no audit log file", str(base))
    cps: list[_Checkpoint] = []
    cp_fault: str | None = None
    if checkpoint is not None:
        assert public_key is not None
        cps, cp_fault = _read_checkpoints(Path(checkpoint), _public_key(public_key))
    needed = {c.tree_size for c in cps}
    roots: dict[int, bytes] = {}

    seq = 0
    events = 0
    prev = GENESIS_PREV
    k = bytearray()
    found_id: str | None = None
    files: list[str] = []
    tree = MerkleTree()

    def result(ok: bool, bad: int | None, reason: str, covered: int = 0) -> VerifyResult:
        k[:] = bytes(len(k))
        return VerifyResult(
            ok=ok,
            entries=seq,
            first_bad_seq=bad,
            reason=reason,
            events=events,
            log_id=found_id,
            files=tuple(files),
            checkpointed=covered,
        )

    for index, fpath in _log_files(base):
        if fpath is None:
            name = rotated_path(base, index).name
            return result(False, seq, f"{name} is missing: the entries it held were removed")
        files.append(str(fpath))
        with open(fpath, "rb") as f:
            first = True
            for raw in f:
                try:
                    e = _check_line(raw, seq, prev, first, index)
                    if seq == 0:
                        found_id = e["log_id"]
                        if log_id is not None and found_id != log_id:
                            raise _BadError(f"the log id is {found_id}, not the expected {log_id}")
                        k = log_key(master, found_id)
                    elif e["kind"] == "start" and e["log_id"] != found_id:
                        raise _BadError("the start record names another log (a splice)")
                    line = raw[:-1]
                    m = _MAC_RE.search(line)
                    assert m is not None
                    body = line[len(_ENTRY_OPEN) : m.start()]
                    mac = hmac.digest(k, body, "sha256")
                    if not hmac.compare_digest(mac, bytes.fromhex(m.group(1).decode())):
                        raise _BadError(
                            "the MAC does not verify: the entry was altered, or it belongs "
                            "to another log or another key"
                        )
                except _BadError as bad:
                    return result(False, seq, bad.reason)
                first = False
                h = leaf_hash(line)
                evolve(k)
                tree.append(h)
                if tree.size in needed:
                    roots[tree.size] = tree.root()
                prev = h.hex()
                seq += 1
                events += e["kind"] == "event"
            if first:
                return result(False, seq, f"{fpath.name} is empty: its start record is missing")

    covered = 0
    for c in cps:
        if c.log_id != found_id:
            return result(False, None, f"the checkpoint file (line {c.line}) is for another log")
        if c.tree_size > seq:
            return result(
                False,
                seq,
                f"the log ends after {seq} entries but the checkpoint signed at {c.at} "
                f"covers {c.tree_size}: entries from seq {seq} on were cut or lost",
                covered,
            )
        if roots[c.tree_size] != c.root:
            return result(
                False,
                None,
                f"the checkpoint signed at {c.at} (line {c.line}) does not match the log's "
                f"first {c.tree_size} entries",
                covered,
            )
        covered = c.tree_size
    if cp_fault is not None:
        return result(False, None, cp_fault, covered)
    where = f"{len(files)} file" + ("s" if len(files) != 1 else "")
    summary = f"{seq} entries ({events} events) in {where}, log {found_id}"
    if checkpoint is not None:
        summary += f"; a signed checkpoint covers {covered} of them"
    return result(True, None, summary, covered)


def _check_line(raw: bytes, seq: int, prev: str, first: bool, index: int) -> dict[str, Any]:
    """Parse and check one line's structure, sequence, chain and fields (not its MAC)."""
    if not raw.endswith(b"\n"):
        raise _BadError("the last line is incomplete: writing stopped mid-entry, or it was cut")
    line = raw[:-1]
    m = _MAC_RE.search(line)
    if not line.startswith(_ENTRY_OPEN) or m is None:
        raise _BadError("not a log entry line in canonical form")
    body = line[len(_ENTRY_OPEN) : m.start()]
    try:
        e = loads_strict(body)
    except (ValueError, UnicodeDecodeError):
        raise _BadError("the entry is not valid JSON") from None
    if not isinstance(e, dict):
        raise _BadError("the entry is not a JSON object")
    s = e.get("seq")
    if type(s) is not int or s != seq:
        raise _BadError(
            f"sequence number {s!r} where {seq} was expected: an entry was deleted, "
            "inserted, reordered or duplicated"
        )
    if e.get("prev") != prev:
        raise _BadError("the hash chain is broken: prev is not the hash of the entry before")
    kind = e.get("kind")
    if first:
        if kind != "start" or set(e) != _START_KEYS:
            raise _BadError(f"file {index} does not begin with a start record")
        if e["file"] != index:
            raise _BadError(f"the start record says file {e['file']!r}, not file {index}")
        if (
            e["format"] != FORMAT
            or e["v"] != VERSION
            or not isinstance(e["log_id"], str)
            or not LOG_ID_RE.fullmatch(e["log_id"])
            or not isinstance(e["started_at"], str)
        ):
            raise _BadError("the start record is malformed or of an unknown version")
    elif kind != "event" or set(e) != _EVENT_KEYS or not isinstance(e["event"], dict):
        raise _BadError("not an event entry (a start record may only begin a file)")
    elif e["v"] != VERSION:
        raise _BadError("the entry is of an unknown format version")
    if ENCODER.encode(e).encode("ascii") != body:
        raise _BadError("the entry is not in canonical form")
    return e
