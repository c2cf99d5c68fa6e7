"""PurposeProjection: a keyed random orthogonal map per purpose (unlinkable indexes)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any, Final, NoReturn

import attrs
import numpy as np
import numpy.typing as npt

from purposeguard._context import ACTIVE
from purposeguard._errors import InvalidTemplateError, PolicyError, PurposeViolationError
from purposeguard._guard import current_guard
from purposeguard._purposes import Operation, Purpose, PurposeLike
from purposeguard._template import FaceTemplate, as_vector

__all__ = ["PurposeProjection"]

_SEED_INFO: Final = b"purposeguard/purpose-projection/v1\x00"
_ID_INFO: Final = b"purposeguard/purpose-projection-id/v1"
_MAX_DIM: Final = 4096


def _gaussian(seed: bytes, n: int) -> npt.NDArray[np.float64]:
    # n standard normals from SHAKE-256(seed) by Box-Muller. A stream defined here, not
    # numpy's Generator, whose streams may change between numpy versions: a projection
    # must stay the same map for as long as its index lives.
    pairs = (n + 1) // 2
    raw = np.frombuffer(hashlib.shake_256(seed).digest(16 * pairs), dtype="<u8")
    u = ((raw >> np.uint64(11)).astype(np.float64) + 0.5) / float(1 << 53)  # in (0, 1)
    u1, u2 = u[:pairs], u[pairs:]
    r = np.sqrt(-2.0 * np.log(u1))
    z = np.concatenate([r * np.cos(2 * np.pi * u2), r * np.sin(2 * np.pi * u2)])
    return z[:n]


def orthogonal_matrix(key: bytes, purpose: Purpose, dim: int) -> npt.NDArray[np.float64]:
    """The Haar-random orthogonal matrix of (*key*, *purpose*, *dim*): Gaussian entries
    from SHAKE-256 seeded by `HMAC-SHA256(key, INFO || purpose || 0x00 || dim)`, QR
    decomposition, columns' signs fixed by the diagonal of R."""
    msg = _SEED_INFO + purpose.name.encode("ascii") + b"\x00" + str(dim).encode("ascii")
    seed = hmac.digest(key, msg, hashlib.sha256)
    g = _gaussian(seed, dim * dim).reshape(dim, dim)
    q, r = np.linalg.qr(g)
    q *= np.sign(np.diag(r))
    return np.ascontiguousarray(q)


@attrs.frozen(repr=False, eq=False)
class _Secret:
    key: bytes


class PurposeProjection:
    """A keyed orthogonal projection for one purpose: ISO/IEC 24745 unlinkability and
    renewability for an index kept for that purpose.

    `project` multiplies vectors by a random orthogonal matrix derived from a secret
    key and the purpose. What callers may rely on:

    - Within one projection, inner products, norms and cosine similarities are kept
      (up to float rounding): an index of projected templates searched with projected
      probes ranks exactly as before.
    - Between projections with different keys or purposes, the maps are independent:
      the cosine between a vector projected for one purpose and *the same* vector
      projected for another is distributed like that of two random directions
      (mean 0, standard deviation `1/sqrt(dim)`). Two purposes' indexes cannot be
      joined by matching their entries.
    - Renewal: a new key ([`generate`][purposeguard.crypto.PurposeProjection.generate]) gives a
      new, unlinkable index; the old one can be dropped.

    It is **not** irreversible. Anyone holding the key rebuilds the matrix and inverts
    it exactly (it is its own transpose); and since every inner product within a
    purpose is kept, an attacker who sees a projected index and knows a few original
    templates of it can solve for the map. Protect the key like a data key, and keep
    the raw templates sealed.

    Args:
        key: the secret (at least 32 bytes).
        purpose: the purpose whose index this projection builds.
        dim: the template dimension (1 to 4096).
    """

    __slots__ = ("_dim", "_matrix", "_purpose", "_secret")

    def __init__(self, key: bytes, *, purpose: PurposeLike, dim: int) -> None:
        if not isinstance(key, bytes | bytearray) or len(key) < 32:
            raise PolicyError("a projection key must be at least 32 bytes")
        if isinstance(dim, bool) or not isinstance(dim, int) or not 1 <= dim <= _MAX_DIM:
            raise PolicyError(f"dim must be an integer from 1 to {_MAX_DIM}")
        self._purpose = Purpose(purpose)
        self._dim = dim
        self._secret = _Secret(bytes(key))
        self._matrix = orthogonal_matrix(self._secret.key, self._purpose, dim)
        self._matrix.flags.writeable = False

    @classmethod
    def generate(cls, *, purpose: PurposeLike, dim: int) -> PurposeProjection:
        """A projection with a new random 256-bit key (renewal: a fresh, unlinkable map)."""
        return cls(secrets.token_bytes(32), purpose=purpose, dim=dim)

    @property
    def purpose(self) -> Purpose:
        """The purpose whose index this projection builds."""
        return self._purpose

    @property
    def dim(self) -> int:
        """The dimension of the vectors it maps."""
        return self._dim

    @property
    def key_id(self) -> str:
        """A 16-hex-digit fingerprint of the key (safe to store beside the index)."""
        return hmac.digest(self._secret.key, _ID_INFO, hashlib.sha256)[:8].hex()

    def export_key(self) -> bytes:
        """The secret key, to store (e.g. in a secrets manager). Whoever holds it can
        invert the projection."""
        return self._secret.key

    def project(self, vectors: npt.ArrayLike) -> npt.NDArray[np.floating[Any]]:
        """Map a 1-D vector or a 2-D array of row vectors; float32 stays float32,
        anything else becomes float64.

        Raises:
            InvalidTemplateError: not a finite real array of this dimension; a
                [`FaceTemplate`][purposeguard.FaceTemplate] (use
                [`apply`][purposeguard.crypto.PurposeProjection.apply]).
        """
        if isinstance(vectors, FaceTemplate):
            raise InvalidTemplateError("project() takes arrays; use apply() for a FaceTemplate")
        try:
            arr = np.asarray(vectors)
        except Exception:
            raise InvalidTemplateError("vectors could not be read as a numeric array") from None
        if arr.dtype.kind not in "fiu" or arr.ndim not in (1, 2) or arr.size == 0:
            raise InvalidTemplateError("vectors must be a non-empty 1-D or 2-D real array")
        if arr.shape[-1] != self._dim:
            raise InvalidTemplateError(
                f"vectors have dimension {arr.shape[-1]}; this projection maps {self._dim}"
            )
        if not np.isfinite(arr).all():
            raise InvalidTemplateError("vectors contain NaN or infinite entries")
        out = arr.astype(np.float64) @ self._matrix
        return out.astype(np.float32) if arr.dtype == np.float32 else out

    def apply(self, template: FaceTemplate) -> FaceTemplate:
        """Project *template* into a new template for this projection's purpose.

        A TRANSFORM under the active purpose, which must be within this projection's
        purpose and permitted by the label (audited). The result has the same subject,
        expiry and consent; its allowed purposes are narrowed to this projection's
        purpose, and `project:<purpose>:<key id>` is appended to its lineage.

        Raises:
            PurposeViolationError: no active purpose, or one outside this projection's.
            AccessDeniedError: (another subclass) the transformation is not permitted.
            InvalidTemplateError: the template's dimension is not this projection's.
        """
        if not isinstance(template, FaceTemplate):
            raise InvalidTemplateError(
                f"apply() takes a FaceTemplate, got {type(template).__name__}"
            )
        if template.dim != self._dim:
            raise InvalidTemplateError(
                f"template {template.id} has dimension {template.dim}; "
                f"this projection maps {self._dim}"
            )
        guard = current_guard()
        state = ACTIVE.get()
        if state is not None and not state.purpose.is_within(self._purpose):
            # Audited like a refused scope; audit mode lets it through with a warning.
            guard.deny_scope(
                state.purpose,
                f"a projection for {self._purpose.name!r} cannot be used under "
                f"{state.purpose.name!r}",
                PurposeViolationError,
                principal=state.principal,
            )
        label = template.label
        p = self._purpose
        allowed = {a for a in label.allowed if a.is_within(p)}
        if any(p.is_within(a) for a in label.allowed):
            allowed.add(p)
        guard.authorize(Operation.TRANSFORM, (template,))
        if not allowed:  # pragma: no cover - the active purpose is within p and permitted
            raise PurposeViolationError(f"template {template.id} does not allow {p.name!r}")
        new_label = attrs.evolve(
            label,
            allowed=frozenset(allowed),
            lineage=(*label.lineage, f"project:{p.name}:{self.key_id}"),
        )
        values = template._values()
        out = self.project(values.astype(np.float32) if values.dtype == np.float32 else values)
        return FaceTemplate._new(as_vector(out), new_label)

    def __repr__(self) -> str:
        return f"<PurposeProjection {self._purpose.name} dim={self._dim} key={self.key_id}>"

    def __reduce_ex__(self, protocol: object) -> NoReturn:
        raise PolicyError("a PurposeProjection holds a key and cannot be pickled")
