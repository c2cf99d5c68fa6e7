"""The audit log format's primitives: canonical JSON, the key schedule, Merkle hashing.

Everything here is specified in `docs/reference/audit-log-format.md`; change nothing
without changing the format version there.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from typing import Any, Final

from purposeguard._errors import PolicyError

__all__ = [
    "CHECKPOINT_CONTEXT",
    "ENCODER",
    "FORMAT",
    "GENESIS_PREV",
    "LOG_ID_RE",
    "MIN_KEY_BYTES",
    "VERSION",
    "MerkleTree",
    "as_key",
    "evolve",
    "leaf_hash",
    "loads_strict",
    "log_key",
    "mac_and_next_key",
    "node_hash",
    "pseudonym",
]

FORMAT: Final = "purposeguard.audit"
VERSION: Final = 1
MIN_KEY_BYTES: Final = 32
GENESIS_PREV: Final = "0" * 64
LOG_ID_RE: Final = re.compile(r"[0-9a-f]{32}")

_LOG_KEY_CONTEXT: Final = b"purposeguard.audit.v1/log-key/"
_EVOLVE_CONTEXT: Final = b"purposeguard.audit.v1/evolve"
_PSEUDONYM_CONTEXT: Final = b"purposeguard.audit.v1/subject\x00"
CHECKPOINT_CONTEXT: Final = b"purposeguard.audit.v1/checkpoint\n"

# Canonical JSON: sorted keys, no whitespace, ASCII only (\uXXXX escapes), no NaN.
ENCODER: Final = json.JSONEncoder(
    ensure_ascii=True, allow_nan=False, sort_keys=True, separators=(",", ":")
)


def as_key(value: object, what: str) -> bytes:
    """*value* as key bytes of at least 32 bytes, or `PolicyError` (never showing it)."""
    if not isinstance(value, bytes | bytearray | memoryview):
        raise PolicyError(f"{what} must be bytes, got {type(value).__name__}")
    raw = bytes(value)
    if len(raw) < MIN_KEY_BYTES:
        raise PolicyError(
            f"{what} is {len(raw)} bytes; it must be at least {MIN_KEY_BYTES} random bytes"
        )
    return raw


def log_key(key: bytes, log_id: str) -> bytearray:
    """k_0 of the log *log_id*: HMAC-SHA256(key, context || log_id)."""
    return bytearray(hmac.digest(key, _LOG_KEY_CONTEXT + log_id.encode("ascii"), "sha256"))


def evolve(k: bytearray) -> None:
    """Replace k_i by k_{i+1} = HMAC-SHA256(k_i, context), overwriting it in place."""
    k[:] = hmac.digest(k, _EVOLVE_CONTEXT, "sha256")


_IPAD: Final = bytes(x ^ 0x36 for x in range(256))
_OPAD: Final = bytes(x ^ 0x5C for x in range(256))
_ZEROS: Final = bytes(64)
_sha256: Final = hashlib.sha256


def mac_and_next_key(k: bytes | bytearray, body: bytes) -> tuple[bytes, bytes]:
    """`(HMAC-SHA256(k, body), HMAC-SHA256(k, evolve context))`: an entry's MAC and
    the next key, the same values as `hmac.digest` and `evolve` give.

    One key pad serves both MACs (RFC 2104 by hand: `H(K ^ opad || H(K ^ ipad ||
    m))` with `K` zero-padded to 64 bytes), which is about twice as fast as two
    one-shot HMACs. The caller installs the next key only once the entry is written.
    """
    if len(k) > 64:
        raise ValueError("an audit key schedule key is at most 64 bytes")
    padded = bytes(k) + _ZEROS[len(k) :]
    ipad = padded.translate(_IPAD)
    opad = padded.translate(_OPAD)
    sha = _sha256
    mac = sha(opad + sha(ipad + body).digest()).digest()
    nxt = sha(opad + sha(ipad + _EVOLVE_CONTEXT).digest()).digest()
    return mac, nxt


def leaf_hash(line: bytes) -> bytes:
    """An entry's hash: SHA-256(0x00 || line), the RFC 9162 leaf hash of the line."""
    return hashlib.sha256(b"\x00" + line).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The RFC 9162 interior node hash SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def pseudonym(subject: str, key: bytes) -> str:
    """`"p:"` + the first 16 bytes (hex) of HMAC-SHA256(key, context || subject)."""
    mac = hmac.digest(key, _PSEUDONYM_CONTEXT + subject.encode("utf-8"), "sha256")
    return "p:" + mac[:16].hex()


class MerkleTree:
    """An append-only RFC 9162 Merkle tree kept as its perfect subtrees (O(log n) memory)."""

    __slots__ = ("_stack", "size")

    def __init__(self) -> None:
        self._stack: list[bytes] = []
        self.size = 0

    def append(self, leaf: bytes) -> None:
        """Add a leaf hash."""
        n = self.size
        stack = self._stack
        h = leaf
        while n & 1:
            h = node_hash(stack.pop(), h)
            n >>= 1
        stack.append(h)
        self.size += 1

    def root(self) -> bytes:
        """MTH over every leaf so far (SHA-256 of nothing for an empty tree)."""
        stack = self._stack
        if not stack:
            return hashlib.sha256(b"").digest()
        r = stack[-1]
        for h in reversed(stack[:-1]):
            r = node_hash(h, r)
        return r


def loads_strict(data: bytes) -> Any:
    """Parse JSON, refusing duplicate keys and NaN/Infinity."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in items:
            if k in out:
                raise ValueError(f"duplicate key {k!r}")
            out[k] = v
        return out

    def no_constant(name: str) -> Any:
        raise ValueError(f"{name} is not allowed")

    return json.loads(data, object_pairs_hook=pairs, parse_constant=no_constant)
