"""HAZARDOUS MATERIALS: key material and the raw primitives of purposeguard.crypto.

WARNING: nothing here checks a label, a purpose or an expiry, and nothing here is
audited. These functions take and return raw keys and raw vector bytes. They exist so
that [`purposeguard.crypto`][purposeguard.crypto] (`seal`, `unseal`, `KeyRing`) and the sealed
store can share one implementation of the format specified in
`docs/reference/sealed-format.md`. Application code must use the public API; a
call into this module is a bypass of every guarantee purposeguard gives.

Layout of a sealed template (format version 1, algorithm 1), all integers big-endian:

```text
magic "PGST" | version u8 | algorithm u8 | key id 16 | template id 16 | salt 32 |
commitment 32 | label length u32 | label bytes | AES-256-GCM ciphertext and tag
```

The per-record AES key and the key commitment come from HKDF-SHA256-Expand keyed
by the subject's data key, over the key id, template id and salt; the nonce is twelve
zero bytes (each record key encrypts exactly one message). The AEAD's associated
data is every byte before the ciphertext, so the header, the template id and the
label are bound.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from collections.abc import Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

__all__ = [
    "ALGORITHM",
    "AS_IS",
    "KEY_LEN",
    "MAGIC",
    "VERSION",
    "Opened",
    "RecordKdf",
    "UnsealError",
    "derive_record_keys",
    "hkdf_sha256",
    "open_record",
    "plaintext_of",
    "seal_batch",
    "seal_plaintext",
    "seal_record",
    "unwrap_key",
    "wrap_key",
]

MAGIC: Final = b"PGST"
VERSION: Final = 1
ALGORITHM: Final = 1  # HKDF-SHA256 record keys, AES-256-GCM, HKDF key commitment
KEY_LEN: Final = 32
KEY_ID_LEN: Final = 16
TID_LEN: Final = 16
SALT_LEN: Final = 32
COMMIT_LEN: Final = 32
NONCE_LEN: Final = 12
TAG_LEN: Final = 16
_FIXED: Final = struct.Struct(">4sBB16s16s32s32sI")
HEADER_LEN: Final = _FIXED.size  # 106
MAX_LABEL_LEN: Final = 1 << 20
MAX_DIM: Final = 1 << 20
_INFO: Final = b"purposeguard/sealed-template/v1\x00"
_NONCE: Final = bytes(NONCE_LEN)
# Plaintext: one dtype byte, then the values in little-endian order.
DTYPES: Final[dict[int, np.dtype[Any]]] = {
    1: np.dtype("<f4"),
    2: np.dtype("<f8"),
    3: np.dtype("<f2"),
}
_CODES: Final = {(dt.kind, dt.itemsize): code for code, dt in DTYPES.items()}
_CODE_BYTES: Final = {code: bytes((code,)) for code in DTYPES}
# The dtype byte of each little-endian dtype string, for tests and verifiers.
ALGORITHM_DTYPE_CODES: Final = {dt.str: code for code, dt in DTYPES.items()}


class UnsealError(Exception):
    """Raised by `open_record` for every failure; callers turn it into the one
    opaque `IntegrityError`. Carries no detail on purpose."""


def hkdf_sha256(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 HKDF with SHA-256 (extract, then expand to *length* bytes)."""
    if not 0 < length <= 255 * 32:
        raise ValueError("HKDF output length out of range")
    prk = hmac.digest(salt, ikm, "sha256")
    out = b""
    block = b""
    counter = 1
    while len(out) < length:
        block = hmac.digest(prk, block + info + bytes((counter,)), "sha256")
        out += block
        counter += 1
    return out[:length]


_IPAD: Final = bytes(x ^ 0x36 for x in range(256))
_OPAD: Final = bytes(x ^ 0x5C for x in range(256))


class RecordKdf:
    """The record-key derivation of one data key: HKDF-SHA256-Expand (RFC 5869 2.3)
    with the data key as the pseudorandom key.

    The data key is 32 uniformly random bytes, so the extract step is not needed
    (RFC 5869 3.3); the per-record randomness is the salt, in `info`. HMAC-SHA256
    is computed from precomputed inner and outer states (several times faster than a
    one-shot HMAC per call). Holds key material: keep it inside the key ring.
    """

    __slots__ = ("_inner", "_outer")

    def __init__(self, data_key: bytes) -> None:
        if len(data_key) != KEY_LEN:
            raise ValueError("a data key is 32 bytes")
        padded = data_key.ljust(64, b"\0")
        self._inner = hashlib.sha256(padded.translate(_IPAD))
        self._outer = hashlib.sha256(padded.translate(_OPAD))

    def derive(self, salt: bytes, key_id: bytes, template_id: bytes) -> tuple[bytes, bytes, bytes]:
        """`(aes_key, nonce, commitment)` for one record.

        `OKM = HKDF-Expand(PRK=data_key, info=INFO || key_id || template_id || salt,
        L=64)`; the AES key is `OKM[0:32]` and the commitment `OKM[32:64]`. The
        nonce is twelve zero bytes: a record key is unique to its record (a fresh
        256-bit salt) and encrypts exactly one message, so a nonce never repeats
        under a key.
        """
        # T1 = HMAC(PRK, info || 0x01), T2 = HMAC(PRK, T1 || info || 0x02), from the
        # precomputed pad states (this runs twice per seal + unseal; seal_batch inlines it).
        info = _INFO + key_id + template_id + salt
        inner = self._inner.copy()
        inner.update(info + b"\x01")
        outer = self._outer.copy()
        outer.update(inner.digest())
        t1 = outer.digest()
        inner = self._inner.copy()
        inner.update(t1 + info + b"\x02")
        outer = self._outer.copy()
        outer.update(inner.digest())
        return t1, _NONCE, outer.digest()


def derive_record_keys(
    data_key: bytes, salt: bytes, key_id: bytes, template_id: bytes
) -> tuple[bytes, bytes, bytes]:
    """`RecordKdf(data_key).derive(salt, key_id, template_id)`."""
    return RecordKdf(data_key).derive(salt, key_id, template_id)


def plaintext_of(values: npt.NDArray[np.floating[Any]]) -> bytes:
    """The plaintext of *values*: their dtype byte, then the values little-endian.

    Raises:
        ValueError: a dtype the format lacks (float16, float32 and float64 only).
    """
    dt = values.dtype
    code = _CODES.get((dt.kind, dt.itemsize))
    if code is None:
        raise ValueError(f"cannot seal {dt.name} values (float16, float32 or float64 only)")
    want = DTYPES[code]
    if dt != want or not values.flags.c_contiguous:
        values = np.ascontiguousarray(values, dtype=want)
    return _CODE_BYTES[code] + values.tobytes()


def seal_plaintext(
    kdf: RecordKdf, key_id: bytes, template_id: bytes, label_bytes: bytes, plaintext: bytes,
    salt: bytes,
) -> bytes:  # fmt: skip
    """Seal a `plaintext_of` under the data key of *kdf* (no checks of purpose;
    see the warning). Checks the lengths the format fixes; the caller builds
    *plaintext* with `plaintext_of`."""
    if len(label_bytes) > MAX_LABEL_LEN:
        raise ValueError("the label encoding is longer than the format allows")
    if len(key_id) != KEY_ID_LEN or len(template_id) != TID_LEN or len(salt) != SALT_LEN:
        raise ValueError("malformed key, key id, template id or salt length")
    key, nonce, commitment = kdf.derive(salt, key_id, template_id)
    header = (
        _FIXED.pack(
            MAGIC, VERSION, ALGORITHM, key_id, template_id, salt, commitment, len(label_bytes)
        )
        + label_bytes
    )
    return header + AESGCM(key).encrypt(nonce, plaintext, header)


def seal_record(
    *,
    kdf: RecordKdf,
    key_id: bytes,
    template_id: bytes,
    label_bytes: bytes,
    values: npt.NDArray[np.floating[Any]],
    salt: bytes,
) -> bytes:
    """Seal raw *values* under the data key of *kdf* (no checks of purpose; see the
    warning)."""
    return seal_plaintext(kdf, key_id, template_id, label_bytes, plaintext_of(values), salt)


# The dtypes that need no conversion before sealing, and their dtype byte.
AS_IS: Final = {dt: _CODE_BYTES[code] for code, dt in DTYPES.items()}


def seal_batch(
    records: Sequence[tuple[tuple[bytes, RecordKdf], bytes, bytes, npt.NDArray[np.floating[Any]]]],
    salts: Sequence[bytes] | None = None,
) -> list[bytes]:
    """Seal many records: each `((key id, kdf), template id, label bytes, values)`,
    with a fresh random salt each (or the given *salts*, one per record). The same
    bytes as `seal_record` record by record, without its per-call overhead
    (this is the loop of `seal_many`; no checks of purpose, see the warning).

    Raises:
        ValueError: a dtype the format lacks, a length the format does not allow, or
            not one salt per record.
    """
    n = len(records)
    if salts is None:
        pool = os.urandom(SALT_LEN * n)
        salts = [pool[i : i + SALT_LEN] for i in range(0, SALT_LEN * n, SALT_LEN)]
    elif len(salts) != n:
        raise ValueError("one salt per record")
    pack = _FIXED.pack
    aead = AESGCM
    as_is = AS_IS
    out: list[bytes] = []
    append = out.append
    for record, salt in zip(records, salts, strict=True):
        (key_id, kdf), template_id, label_bytes, values = record
        code = as_is.get(values.dtype)  # tobytes() is C order whatever the layout
        plaintext = plaintext_of(values) if code is None else code + values.tobytes()
        llen = len(label_bytes)
        if llen > MAX_LABEL_LEN:
            raise ValueError("the label encoding is longer than the format allows")
        if len(key_id) != KEY_ID_LEN or len(template_id) != TID_LEN or len(salt) != SALT_LEN:
            raise ValueError("malformed key, key id, template id or salt length")
        # RecordKdf.derive, inlined: OKM[0:32] is the AES key, OKM[32:64] the commitment.
        info = _INFO + key_id + template_id + salt
        inner = kdf._inner.copy()
        inner.update(info + b"\x01")
        outer = kdf._outer.copy()
        outer.update(inner.digest())
        key = outer.digest()
        inner = kdf._inner.copy()
        inner.update(key + info + b"\x02")
        outer = kdf._outer.copy()
        outer.update(inner.digest())
        header = (
            pack(MAGIC, VERSION, ALGORITHM, key_id, template_id, salt, outer.digest(), llen)
            + label_bytes
        )
        append(header + aead(key).encrypt(_NONCE, plaintext, header))
    return out


class Opened:
    """A parsed sealed template. `key_id` is known before decryption; the rest only
    after `decrypt` succeeds."""

    __slots__ = ("_blob", "_hlen", "commitment", "key_id", "label_bytes", "salt", "template_id")

    def __init__(self, blob: bytes) -> None:
        if len(blob) < HEADER_LEN + TAG_LEN + 1:
            raise UnsealError
        magic, version, alg, key_id, tid, salt, commitment, llen = _FIXED.unpack_from(blob)
        if magic != MAGIC or version != VERSION or alg != ALGORITHM or llen > MAX_LABEL_LEN:
            raise UnsealError
        hlen = HEADER_LEN + llen
        if len(blob) < hlen + TAG_LEN + 1:
            raise UnsealError
        self.key_id: bytes = key_id
        self.template_id: bytes = tid
        self.salt: bytes = salt
        self.commitment: bytes = commitment
        self.label_bytes: bytes = blob[HEADER_LEN:hlen]
        self._blob = blob
        self._hlen = hlen

    def decrypt(self, kdf: RecordKdf) -> npt.NDArray[np.floating[Any]]:
        """Check the key commitment, then authenticate and decrypt; the values as a
        read-only little-endian array. Any failure is `UnsealError`."""
        key, nonce, commitment = kdf.derive(self.salt, self.key_id, self.template_id)
        if not hmac.compare_digest(commitment, self.commitment):
            raise UnsealError
        view = memoryview(self._blob)
        try:
            plaintext = AESGCM(key).decrypt(nonce, view[self._hlen :], view[: self._hlen])
        except InvalidTag:
            raise UnsealError from None
        dt = DTYPES.get(plaintext[0])
        body = len(plaintext) - 1
        if dt is None or body == 0 or body % dt.itemsize or body // dt.itemsize > MAX_DIM:
            raise UnsealError
        # The slice copies the values to the start of a new bytes object, where they
        # are aligned (numpy is several times slower on the odd offset 1).
        return np.frombuffer(plaintext[1:], dtype=dt)


def open_record(blob: bytes) -> Opened:
    """Parse the header of *blob* (nothing is authenticated yet)."""
    return Opened(blob)


def wrap_key(kek: bytes, key: bytes) -> bytes:
    """RFC 3394 AES key wrap of *key* under *kek* (40 bytes for a 32-byte key)."""
    return aes_key_wrap(kek, key)


def unwrap_key(kek: bytes, wrapped: bytes) -> bytes:
    """Undo `wrap_key`; `UnsealError` if the integrity check fails."""
    try:
        return aes_key_unwrap(kek, wrapped)
    except (InvalidUnwrap, ValueError):
        raise UnsealError from None
