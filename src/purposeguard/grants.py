"""Purpose grants: Ed25519-signed tokens that let a principal work for some purposes.

A [`GrantAuthority`][purposeguard.grants.GrantAuthority] (it belongs in a policy service, never in
the application that uses face data) issues grants; the application holds only public keys, in a
[`GrantVerifier`][purposeguard.grants.GrantVerifier] given to `Guard(require_grants=True,
grant_verifier=...)`. Entering `purpose(name, grant=token)` then needs a grant that covers the
purpose, is meant for this audience and principal, and is within its validity window; the grant's
operations are enforced on every access, and its id is in every audit event.

Token format (`docs/how-to/purpose-grants.md` has the details):

```text
"pg1." + base64url(canonical JSON claims) + "." + base64url(Ed25519 signature)
```

The signature covers the ASCII bytes `"pg1." + base64url(claims)`. The format names
no algorithm: version `pg1` means Ed25519, so a token cannot choose how it is checked.
The claims name the signing key by its id (SHA-256 of the raw public key, 32 hex digits)
and the verifier only uses keys it was given. Attenuation (narrowing a grant offline by
its holder) is not supported: ask the authority for a narrower grant.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
import secrets
import threading
from collections import OrderedDict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ._context import VerifiedGrant
from ._errors import GrantError, PolicyError
from ._purposes import Operation, Purpose, PurposeLike

__all__ = ["GrantAuthority", "GrantVerifier", "key_id"]

_PREFIX: Final = "pg1."
_VERSION: Final = 1
_MAX_TOKEN: Final = 8192
_B64: Final = re.compile(r"[A-Za-z0-9_-]+")
_CLAIMS: Final = frozenset(
    {"aud", "exp", "iat", "iss", "jti", "kid", "nbf", "ops", "pur", "sub", "v"}
)
_ENC: Final = json.JSONEncoder(
    ensure_ascii=True, allow_nan=False, sort_keys=True, separators=(",", ":")
)
_OPS: Final = {o.value: o for o in Operation}


def key_id(public_key: Ed25519PublicKey | bytes) -> str:
    """The id of an Ed25519 public key: the first 16 bytes of SHA-256 of its 32 raw
    bytes, in hex. Tokens name their signing key by it."""
    return hashlib.sha256(_raw_public(public_key)).hexdigest()[:32]


def _raw_public(value: object) -> bytes:
    if isinstance(value, Ed25519PublicKey):
        return value.public_bytes(Encoding.Raw, PublicFormat.Raw)
    if isinstance(value, bytes | bytearray) and len(value) == 32:
        return bytes(value)
    raise PolicyError(
        f"a public key must be an Ed25519PublicKey or its 32 raw bytes, got {type(value).__name__}"
    )


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    if not _B64.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not unpadded base64url")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64encode(data) != text:  # non-canonical trailing bits
        raise ValueError("not canonical base64url")
    return data


def _text(value: object, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 256:
        raise PolicyError(f"{what} must be a non-empty string of at most 256 characters")
    return value


def _seconds(value: timedelta, what: str) -> int:
    if not isinstance(value, timedelta):
        raise PolicyError(f"{what} must be a timedelta, got {type(value).__name__}")
    seconds = value.total_seconds()
    if not math.isfinite(seconds) or seconds <= 0:
        raise PolicyError(f"{what} must be positive")
    return int(seconds)


def _aware(value: datetime, what: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise PolicyError(f"{what} must be a timezone-aware datetime")
    return value


class GrantAuthority:
    """Issues purpose grants, signed with an Ed25519 private key.

    It belongs in a policy service (or an offline tool), not in the application that
    uses face data: whoever holds the private key can grant any purpose. The
    application gets only [`public_key`][purposeguard.grants.GrantAuthority.public_key] (for a
    [`GrantVerifier`][purposeguard.grants.GrantVerifier]).
    """

    __slots__ = ("_issuer", "_key", "_kid", "_public")

    def __init__(self, private_key: Ed25519PrivateKey, *, issuer: str) -> None:
        if not isinstance(private_key, Ed25519PrivateKey):
            raise PolicyError(
                f"private_key must be an Ed25519PrivateKey, got {type(private_key).__name__}"
            )
        self._issuer = _text(issuer, "issuer")
        self._key = private_key
        self._public = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self._kid = key_id(self._public)

    @classmethod
    def generate(cls, *, issuer: str) -> GrantAuthority:
        """A new authority with a fresh random key."""
        return cls(Ed25519PrivateKey.generate(), issuer=issuer)

    @property
    def issuer(self) -> str:
        """Who issues the grants (the `iss` claim)."""
        return self._issuer

    @property
    def public_key(self) -> bytes:
        """The 32 raw bytes of the public key, to give to a
        [`GrantVerifier`][purposeguard.grants.GrantVerifier]."""
        return self._public

    @property
    def key_id(self) -> str:
        """The key id that tokens carry ([`key_id`][purposeguard.grants.key_id] of the public
        key)."""
        return self._kid

    def issue(
        self,
        *,
        principal: str,
        purposes: PurposeLike | Iterable[PurposeLike],
        operations: Operation | str | Iterable[Operation | str] | None = None,
        audience: str,
        ttl: timedelta,
        not_before: datetime | None = None,
        now: datetime | None = None,
    ) -> str:
        """Sign a grant letting *principal* work for *purposes* (each with its
        descendants) in *audience* for *ttl*, starting at *not_before* (default: *now*,
        default: the system clock). *operations* limits the operations (`None`: every
        operation the taxonomy allows).

        Raises:
            PolicyError: a bad argument (no purposes, unknown operation, naive time).
        """
        principal = _text(principal, "principal")
        audience = _text(audience, "audience")
        items: list[PurposeLike] = (
            [purposes] if isinstance(purposes, str | Purpose) else list(purposes)
        )
        pur = sorted({Purpose(p).name for p in items})
        if not pur:
            raise PolicyError("a grant needs at least one purpose")
        ops: list[str] | None = None
        if operations is not None:
            op_items = [operations] if isinstance(operations, Operation | str) else operations
            try:
                ops = sorted({Operation(o).value for o in op_items})
            except ValueError:
                raise PolicyError(
                    f"unknown operation in {operations!r}; use one of {sorted(_OPS)}"
                ) from None
            if not ops:
                raise PolicyError("operations is empty: give None for every operation")
        lifetime = _seconds(ttl, "ttl")
        now = _aware(now, "now") if now is not None else datetime.now(UTC)
        start = _aware(not_before, "not_before") if not_before is not None else now
        nbf = math.floor(start.timestamp())
        claims: dict[str, Any] = {
            "aud": audience,
            "exp": nbf + lifetime,
            "iat": math.floor(now.timestamp()),
            "iss": self._issuer,
            "jti": secrets.token_hex(16),
            "kid": self._kid,
            "nbf": nbf,
            "ops": ops,
            "pur": pur,
            "sub": principal,
            "v": _VERSION,
        }
        signing_input = _PREFIX + _b64encode(_ENC.encode(claims).encode("ascii"))
        sig = self._key.sign(signing_input.encode("ascii"))
        return signing_input + "." + _b64encode(sig)

    def __repr__(self) -> str:
        return f"<GrantAuthority issuer={self._issuer!r} key_id={self._kid}>"


class GrantVerifier:
    """Checks purpose grants for one audience; give it to
    `Guard(require_grants=True, grant_verifier=...)`.

    Args:
        public_keys: the authorities' Ed25519 public keys (objects or 32 raw bytes), or one.
            Only these are trusted; a token names its key by id.
        audience: the audience this application is (tokens for another are refused).
        max_lifetime: the longest validity window (`exp - nbf`) accepted.
        leeway: the clock skew tolerated at the not-before and expiry instants.
        cache_size: how many signature-checked tokens to remember, so that entering a
            scope again with the same token skips the signature check (the time,
            audience, purpose and principal are checked on every entry); 0 disables.

    [`verify`][purposeguard.audit.verify] raises [`GrantError`][purposeguard.GrantError] for a
    malformed, forged, unknown-key, expired, not-yet-valid, too long-lived, wrong-audience,
    wrong-principal or out-of-scope token. Thread-safe.
    """

    __slots__ = (
        "_audience",
        "_cache",
        "_cache_size",
        "_keys",
        "_leeway",
        "_lock",
        "_max_lifetime",
    )

    def __init__(
        self,
        public_keys: Ed25519PublicKey | bytes | Iterable[Ed25519PublicKey | bytes],
        *,
        audience: str,
        max_lifetime: timedelta = timedelta(hours=24),
        leeway: timedelta = timedelta(seconds=30),
        cache_size: int = 1024,
    ) -> None:
        if isinstance(public_keys, bytes | bytearray | Ed25519PublicKey):
            public_keys = [public_keys]
        keys: dict[str, Ed25519PublicKey] = {}
        for k in public_keys:
            raw = _raw_public(k)
            keys[key_id(raw)] = Ed25519PublicKey.from_public_bytes(raw)
        if not keys:
            raise PolicyError("a GrantVerifier needs at least one public key")
        self._keys = keys
        self._audience = _text(audience, "audience")
        self._max_lifetime = _seconds(max_lifetime, "max_lifetime")
        if not isinstance(leeway, timedelta) or not timedelta(0) <= leeway <= timedelta(
            minutes=10
        ):
            raise PolicyError("leeway must be a timedelta between 0 and 10 minutes")
        self._leeway = leeway.total_seconds()
        if not isinstance(cache_size, int) or isinstance(cache_size, bool) or cache_size < 0:
            raise PolicyError("cache_size must be a non-negative integer")
        self._cache_size = cache_size
        self._cache: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def audience(self) -> str:
        """The audience this verifier accepts."""
        return self._audience

    @property
    def key_ids(self) -> frozenset[str]:
        """The ids of the trusted keys."""
        return frozenset(self._keys)

    def verify(
        self, token: str, *, purpose: Purpose, principal: str | None, now: datetime
    ) -> VerifiedGrant:
        """Check *token* for *purpose* (and *principal*, if one is named) at *now*.

        Raises:
            GrantError: the token is not valid here and now for this purpose.
        """
        claims = self._authentic(token)
        t = _aware(now, "now").timestamp()
        gid = claims["jti"]
        if claims["aud"] != self._audience:
            raise GrantError(f"grant {gid} is for another audience ({claims['aud']!r})")
        if t + self._leeway < claims["nbf"]:
            raise GrantError(f"grant {gid} is not valid yet")
        if t - self._leeway >= claims["exp"]:
            raise GrantError(f"grant {gid} has expired")
        if claims["exp"] - claims["nbf"] > self._max_lifetime:
            raise GrantError(f"grant {gid} is valid for longer than this verifier accepts")
        if principal is not None and principal != claims["sub"]:
            raise GrantError(f"grant {gid} was issued to another principal")
        grant: VerifiedGrant = claims["_grant"]
        p = Purpose(purpose)
        if not grant.covers(p):
            raise GrantError(f"grant {gid} does not cover {p.name!r}")
        return grant

    def _authentic(self, token: str) -> dict[str, Any]:
        """The claims of a well-formed token with a valid signature by a trusted key."""
        cache = self._cache
        hit = cache.get(token) if isinstance(token, str) else None
        if hit is not None:
            return hit
        if not isinstance(token, str) or len(token) > _MAX_TOKEN:
            raise GrantError("the grant is not a token string of a sane length")
        parts = token.split(".")
        if len(parts) != 3 or parts[0] + "." != _PREFIX:
            raise GrantError("the grant is not a pg1 token")
        try:
            payload = _b64decode(parts[1])
            sig = _b64decode(parts[2])
            claims = json.loads(payload, object_pairs_hook=_no_duplicates)
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise GrantError("the grant is malformed") from None
        if not isinstance(claims, dict) or set(claims) != _CLAIMS:
            raise GrantError("the grant does not have the pg1 claims")
        key = self._keys.get(claims["kid"]) if isinstance(claims["kid"], str) else None
        if key is None:
            raise GrantError("the grant is signed by a key this verifier does not trust")
        try:
            key.verify(sig, (parts[0] + "." + parts[1]).encode("ascii"))
        except InvalidSignature:
            raise GrantError("the grant's signature does not verify (forged or altered)") from None
        _check_claims(claims, payload)
        ops = claims["ops"]
        claims["_grant"] = VerifiedGrant(
            grant_id=claims["jti"],
            principal=claims["sub"],
            purposes=frozenset(Purpose(p) for p in claims["pur"]),
            operations=None if ops is None else frozenset(_OPS[o] for o in ops),
            issuer=claims["iss"],
        )
        if self._cache_size:
            with self._lock:
                cache[token] = claims
                if len(cache) > self._cache_size:
                    cache.popitem(last=False)
        return claims

    def __repr__(self) -> str:
        return f"<GrantVerifier audience={self._audience!r} keys={len(self._keys)}>"


def _no_duplicates(items: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in items:
        if k in out:
            raise ValueError("duplicate key")
        out[k] = v
    return out


def _check_claims(c: dict[str, Any], payload: bytes) -> None:
    # Signed by a trusted key, so these faults are the authority's; refuse them anyway.
    ok = (
        c["v"] == _VERSION
        and all(type(c[k]) is int for k in ("exp", "iat", "nbf"))
        and all(isinstance(c[k], str) and c[k] for k in ("aud", "iss", "jti", "sub"))
        and isinstance(c["pur"], list)
        and c["pur"]
        and all(isinstance(p, str) for p in c["pur"])
        and (c["ops"] is None or (isinstance(c["ops"], list) and all(o in _OPS for o in c["ops"])))
        and _ENC.encode(c).encode("ascii") == payload
    )
    if ok:
        try:
            for p in c["pur"]:
                Purpose(p)
        except PolicyError:
            ok = False
    if not ok:
        raise GrantError("the grant's claims are malformed")
