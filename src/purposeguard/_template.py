"""FaceTemplate: an embedding that carries its label and lets no value out unchecked."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, Final, NoReturn

import numpy as np
import numpy.typing as npt

from ._clock import ensure_aware
from ._errors import AccessDeniedError, InvalidTemplateError, PolicyError
from ._guard import Guard, current_guard
from ._labels import Label
from ._purposes import Operation, Purpose, PurposeLike, purpose_set

__all__ = ["FaceTemplate", "as_vector"]

_HINT: Final = (
    "use template.reveal() under a purpose that permits REVEAL, or "
    "purposeguard.crypto.seal() to move a template between processes"
)
_MAX_DIM: Final = 1 << 20


def _refuse(what: str) -> NoReturn:
    raise AccessDeniedError(f"{what} of a FaceTemplate is refused: {_HINT}")


def as_vector(vector: object, what: str = "vector") -> npt.NDArray[np.floating[Any]]:
    """Validate *vector* as a finite, real, non-empty 1-D numeric array and return a
    frozen copy. Messages describe shapes and types, never values."""
    if isinstance(vector, FaceTemplate):
        raise InvalidTemplateError(
            f"{what} is already a FaceTemplate; use restrict() or @transform to derive one"
        )
    if isinstance(vector, str | bytes | bytearray | memoryview):
        raise InvalidTemplateError(f"{what} must be a numeric array, got {type(vector).__name__}")
    try:
        arr = np.array(vector, copy=True)
    except Exception:
        raise InvalidTemplateError(
            f"{what} could not be read as a numeric array ({type(vector).__name__})"
        ) from None
    kind = arr.dtype.kind
    if kind == "c":
        raise InvalidTemplateError(f"{what} must be real, got a complex array")
    if kind not in "fiu":
        raise InvalidTemplateError(
            f"{what} must be numeric (float or int), got dtype {arr.dtype.name}"
        )
    if arr.ndim != 1:
        raise InvalidTemplateError(
            f"{what} must be 1-D, got a {arr.ndim}-D array of shape {arr.shape}"
        )
    if arr.size == 0:
        raise InvalidTemplateError(f"{what} is empty")
    if arr.size > _MAX_DIM:
        raise InvalidTemplateError(f"{what} has {arr.size} entries; at most {_MAX_DIM}")
    if kind != "f":
        arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise InvalidTemplateError(f"{what} contains NaN or infinite entries")
    arr.flags.writeable = False
    return arr


class _Vault:
    """Holds the values; refuses every generic way out, like the template itself."""

    __slots__ = ("_v",)

    def __init__(self, v: npt.NDArray[np.floating[Any]]) -> None:
        self._v = v

    def __reduce_ex__(self, protocol: object) -> NoReturn:
        _refuse("pickling")

    def __copy__(self) -> NoReturn:
        _refuse("copying")

    def __deepcopy__(self, memo: object) -> NoReturn:
        _refuse("copying")

    def __repr__(self) -> str:
        return "<redacted>"


class FaceTemplate:
    """A face embedding bound to its [`Label`][purposeguard.Label].

    Create one with [`wrap`][purposeguard.FaceTemplate.wrap] at the point of collection. The values
    come out only through [`reveal`][purposeguard.FaceTemplate.reveal], under a purpose the label
    permits; comparison, search and transformation go through the guard too. `repr`, `str` and
    `format` are redacted; pickling, copying, numpy conversion, `bytes`, iteration, indexing and
    numeric conversion raise [`AccessDeniedError`][purposeguard.AccessDeniedError]. Equality and
    hashing are by `id`, never by values. The full list of refused ways out is in
    the security page's blocked bypasses.

    A template cannot be constructed directly: `FaceTemplate(...)` raises `TypeError`.
    Reading its properties (`id`, `label`, `subject`, `purposes`, `expires_at`, `dim`,
    `dtype`) is not an access and is not audited.
    """

    __slots__ = ("_id", "_label", "_vault")

    _id: str
    _label: Label
    _vault: _Vault

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise TypeError("create templates with FaceTemplate.wrap(...)")

    @classmethod
    def _new(
        cls, values: npt.NDArray[np.floating[Any]], label: Label, tid: str | None = None
    ) -> FaceTemplate:
        # Internal constructor: values must come from as_vector().
        self = object.__new__(cls)
        object.__setattr__(self, "_id", tid if tid is not None else secrets.token_hex(16))
        object.__setattr__(self, "_label", label)
        object.__setattr__(self, "_vault", _Vault(values))
        return self

    @classmethod
    def wrap(
        cls,
        vector: object,
        *,
        subject: str,
        purposes: PurposeLike | Iterable[PurposeLike],
        expires_at: datetime | None = None,
        ttl: timedelta | None = None,
        prohibited: PurposeLike | Iterable[PurposeLike] = (),
        consent: str | None = None,
        jurisdictions: str | Iterable[str] = (),
        collected_at: datetime | None = None,
        context: object | None = None,
    ) -> FaceTemplate:
        """Wrap an embedding at the point of collection (a COLLECT, audited).

        Args:
            vector: a finite, real, non-empty 1-D numeric array-like (at most 2**20
                entries); it is copied and frozen, and integer input becomes `float64`.
            subject: the data subject's identifier (non-empty).
            purposes: the allowed purposes: one, or an iterable (`str` or `Purpose`).
            expires_at: timezone-aware expiry after the guard's now. Exactly one of
                `expires_at` and `ttl`.
            ttl: positive lifetime, counted from the guard's clock.
            prohibited: purposes the template must never serve.
            consent: id of the consent record behind the collection.
            jurisdictions: the laws that apply (e.g. `"pipl"`).
            collected_at: when it was collected (default: the guard's now); not in the
                future.
            context: where and how the face was captured, for the policy's collection
                rules ([`CollectionContext`][purposeguard.policy.CollectionContext]).

        The collection is checked against the template's own label (some allowed
        purpose must allow COLLECT and the policy's collection rules must pass); inside
        a purpose scope it must also be permitted for the active purpose.

        Raises:
            InvalidTemplateError: bad vector, subject, expiry or ttl.
            PolicyError: malformed, unknown or no purposes; an expiry beyond a
                taxonomy's or policy's maximum retention (the message names the
                latest expiry accepted).
            AccessDeniedError: (a subclass) the collection is not permitted.
        """
        guard = current_guard()
        values, label = cls._prepare(
            guard,
            vector,
            subject=subject,
            purposes=purposes,
            expires_at=expires_at,
            ttl=ttl,
            prohibited=prohibited,
            consent=consent,
            jurisdictions=jurisdictions,
            collected_at=collected_at,
            context=context,
        )
        template = cls._new(values, label)
        _authorize_collect(guard, template, context)
        return template

    @classmethod
    def _prepare(
        cls,
        guard: Guard,
        vector: object,
        *,
        subject: str,
        purposes: PurposeLike | Iterable[PurposeLike],
        expires_at: datetime | None,
        ttl: timedelta | None,
        prohibited: PurposeLike | Iterable[PurposeLike],
        consent: str | None,
        jurisdictions: str | Iterable[str],
        collected_at: datetime | None,
        context: object | None = None,
    ) -> tuple[npt.NDArray[np.floating[Any]], Label]:
        # Every check of wrap() but the collection decision: shared with adoption.
        values = as_vector(vector)
        if not isinstance(subject, str) or not subject.strip():
            raise InvalidTemplateError("subject must be a non-empty string")
        now = guard.clock.now()
        if collected_at is None:
            collected = now
        else:
            collected = _aware(collected_at, "collected_at")
            if collected > now:
                raise InvalidTemplateError("collected_at is in the future")
        if (expires_at is None) == (ttl is None):
            raise InvalidTemplateError("give exactly one of expires_at and ttl")
        if ttl is not None:
            if not isinstance(ttl, timedelta):
                raise InvalidTemplateError(f"ttl must be a timedelta, got {type(ttl).__name__}")
            if ttl <= timedelta(0):
                raise InvalidTemplateError("ttl must be positive")
            until = now + ttl
        else:
            until = _aware(expires_at, "expires_at")
            if until <= now:
                raise InvalidTemplateError(
                    "expires_at must be after the guard's current time (it is in the past)"
                )
        allowed = purpose_set(purposes, "purposes")
        if not allowed:
            raise PolicyError("purposes is empty: a template needs at least one purpose")
        banned = purpose_set(prohibited, "prohibited")
        guard.taxonomy.require(sorted(allowed | banned))
        _check_retention(guard, allowed, collected, until)
        _check_policy_retention(guard, allowed, subject, consent, collected, until)
        label = Label(
            allowed=allowed,
            prohibited=banned,
            subject=subject,
            expires_at=until,
            collected_at=collected,
            consent=consent,
            jurisdictions=jurisdictions,
        )
        return values, label

    # -- identity and label ----------------------------------------------------------

    @property
    def id(self) -> str:
        """Random 128-bit hex id, assigned at wrap."""
        return self._id

    @property
    def label(self) -> Label:
        """The label."""
        return self._label

    @property
    def subject(self) -> str:
        """The data subject's identifier."""
        return self._label.subject

    @property
    def purposes(self) -> frozenset[Purpose]:
        """The allowed purposes."""
        return self._label.allowed

    @property
    def expires_at(self) -> datetime:
        """When the template stops being usable (UTC)."""
        return self._label.expires_at

    @property
    def dim(self) -> int:
        """The number of entries in the vector."""
        return int(self._vault._v.shape[0])

    @property
    def dtype(self) -> np.dtype[Any]:
        """The numpy dtype of the values."""
        return self._vault._v.dtype

    # -- the checked ways in and out ------------------------------------------------

    def reveal(self) -> npt.NDArray[np.floating[Any]]:
        """The values, as a read-only copy. Needs an active purpose permitting REVEAL.

        Raises:
            AccessDeniedError: (a subclass) not permitted; the access is audited.
        """
        current_guard().authorize(Operation.REVEAL, (self,))
        out = self._vault._v.copy()
        out.flags.writeable = False
        return out

    def restrict(self, purposes: PurposeLike | Iterable[PurposeLike]) -> FaceTemplate:
        """A new template (new id, same values) whose label allows only *purposes*.

        Raises:
            PurposeViolationError: that would broaden the label.
        """
        label = self._label.restrict(purposes)
        current_guard().taxonomy.require(sorted(label.allowed))
        return FaceTemplate._new(self._vault._v, label)

    def rebind(
        self,
        purposes: PurposeLike | Iterable[PurposeLike],
        *,
        consent: object,
        expires_at: datetime | None = None,
        context: object | None = None,
    ) -> FaceTemplate:
        """A new template (new id, same values) allowing *purposes* on a fresh *consent*.

        The only way to broaden a label (PIPL Art. 14, GDPR Art. 6(4)): the new label
        rests on *consent* (the id of a registered consent, or a consent record, which
        is registered in the guard's consent registry first) and its `collected_at` is
        the rebind time. The rebind is a COLLECT of the new template, checked and
        audited like `wrap` (a policy checks that the consent covers every new
        purpose, in the form its rules demand); the retention rules apply to the new
        expiry (default: the old one). The original template is unchanged.

        Raises:
            PolicyError: no consent id, unknown purposes, or an expiry beyond a cap.
            PurposeViolationError: a new purpose is prohibited by the label.
            AccessDeniedError: (a subclass) the policy refuses the rebind.
        """
        guard = current_guard()
        cid = consent if isinstance(consent, str) else getattr(consent, "id", None)
        if not isinstance(cid, str) or not cid:
            raise PolicyError("rebind() needs a consent record or its id")
        if not isinstance(consent, str):
            # A record given here is registered (a no-op if it already is; a different
            # record under a registered id is refused by the registry).
            add = getattr(guard.consents, "add", None)
            if callable(add):
                add(consent)
        now = guard.clock.now()
        label = self._label.rebind(purposes, consent=cid, expires_at=expires_at, at=now)
        guard.taxonomy.require(sorted(label.allowed | label.prohibited))
        _check_retention(guard, label.allowed, now, label.expires_at)
        _check_policy_retention(guard, label.allowed, label.subject, cid, now, label.expires_at)
        template = FaceTemplate._new(self._vault._v, label)
        guard.begin(Operation.COLLECT, (template,), context=context, own_purpose=True).commit(
            extra_ids=[self._id], note=f"rebind of template {self._id} on consent {cid}"
        )
        return template

    def _values(self) -> npt.NDArray[np.floating[Any]]:
        # For purposeguard's own checked operations only: callers authorize first.
        return self._vault._v

    # -- identity semantics -----------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FaceTemplate):
            return self._id == other._id
        return NotImplemented

    def __hash__(self) -> int:
        return hash(("purposeguard.FaceTemplate", self._id))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("FaceTemplate is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("FaceTemplate is immutable")

    # -- redaction ------------------------------------------------------------------------

    def __repr__(self) -> str:
        purposes = ",".join(sorted(p.name for p in self._label.allowed))
        return (
            f"<FaceTemplate {self._id} dim={self.dim} purposes={purposes} "
            f"expires={self._label.expires_at.isoformat()} values=redacted>"
        )

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    # -- every other way out is refused -----------------------------------------------------

    def __reduce_ex__(self, protocol: object) -> NoReturn:
        _refuse("pickling")

    def __reduce__(self) -> NoReturn:
        _refuse("pickling")

    def __getstate__(self) -> NoReturn:
        _refuse("pickling")

    def __copy__(self) -> NoReturn:
        _refuse("copying")

    def __deepcopy__(self, memo: object) -> NoReturn:
        _refuse("copying")

    def __array__(self, *args: object, **kwargs: object) -> NoReturn:
        _refuse("numpy conversion")

    def __array_ufunc__(self, *args: object, **kwargs: object) -> NoReturn:
        _refuse("numpy arithmetic")

    def __array_function__(self, *args: object, **kwargs: object) -> NoReturn:
        _refuse("numpy functions")

    def __buffer__(self, flags: int) -> NoReturn:
        _refuse("the buffer protocol (memoryview)")

    def __bytes__(self) -> NoReturn:
        _refuse("bytes()")

    def __iter__(self) -> NoReturn:
        _refuse("iteration")

    def __getitem__(self, key: object) -> NoReturn:
        _refuse("indexing")

    def __contains__(self, item: object) -> NoReturn:
        _refuse("membership testing")

    def __len__(self) -> NoReturn:
        _refuse("len() (use .dim)")

    def __float__(self) -> NoReturn:
        _refuse("float()")

    def __int__(self) -> NoReturn:
        _refuse("int()")

    def __complex__(self) -> NoReturn:
        _refuse("complex()")

    def __index__(self) -> NoReturn:
        _refuse("index()")

    def __bool__(self) -> bool:
        return True

    def tolist(self) -> NoReturn:
        """Refused: use [`reveal`][purposeguard.FaceTemplate.reveal]."""
        _refuse("tolist()")

    def tobytes(self) -> NoReturn:
        """Refused: use [`reveal`][purposeguard.FaceTemplate.reveal]."""
        _refuse("tobytes()")


def _aware(value: object, what: str) -> datetime:
    try:
        return ensure_aware(value, what)
    except PolicyError as e:
        raise InvalidTemplateError(str(e)) from None


def _check_retention(
    guard: Guard, allowed: frozenset[Purpose], collected: datetime, until: datetime
) -> None:
    caps = [
        (spec.max_retention, p)
        for p in allowed
        if (spec := guard.taxonomy._specs[p]).max_retention is not None
    ]
    for cap, p in sorted(caps, key=lambda c: (c[0], c[1].name)):
        if cap is not None and until - collected > cap:
            raise PolicyError(
                f"expiry exceeds the maximum retention of {cap} that the taxonomy sets for "
                f"{p.name!r}; the latest accepted expiry is {(collected + cap).isoformat()}"
            )


def _check_policy_retention(
    guard: Guard,
    allowed: frozenset[Purpose],
    subject: str,
    consent: str | None,
    collected: datetime,
    until: datetime,
) -> None:
    # A policy that caps retention (purposeguard.policy.Policy) refuses a later expiry.
    check = getattr(guard.policy, "check_retention", None)
    if callable(check):
        check(
            guard=guard,
            purposes=allowed,
            subject=subject,
            consent=consent,
            collected_at=collected,
            expires_at=until,
        )


def _authorize_collect(guard: Guard, template: FaceTemplate, context: object | None) -> None:
    # Outside a scope the label itself must allow COLLECT for one of its purposes.
    guard.authorize(Operation.COLLECT, (template,), context=context, own_purpose=True)
