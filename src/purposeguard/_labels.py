"""Labels: what a template may be used for, until when, for whom, on what consent."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Final

import attrs

from ._clock import ensure_aware
from ._errors import PolicyError, PurposeViolationError
from ._purposes import Purpose, PurposeLike, purpose_set

__all__ = ["Label"]

_ENCODING_VERSION: Final = 1
_KEYS: Final = frozenset(
    {
        "v",
        "allowed",
        "prohibited",
        "subject",
        "expires_at",
        "collected_at",
        "consent",
        "jurisdictions",
        "lineage",
    }
)


def _purposes(value: Any) -> frozenset[Purpose]:
    return purpose_set(value, "purposes")


def _strs(value: Any) -> frozenset[str]:
    if isinstance(value, str):
        return frozenset((value,))
    try:
        return frozenset(value)
    except TypeError:
        raise PolicyError("jurisdictions must be a string or an iterable of strings") from None


def _lineage(value: Iterable[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    try:
        return tuple(value)
    except TypeError:
        raise PolicyError("lineage must be an iterable of strings") from None


def _encodable(value: str) -> bool:
    # Lone surrogates cannot be encoded; such a label would have no canonical bytes.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _aware(value: Any) -> datetime:
    return ensure_aware(value, "expires_at")


def _aware_or_none(value: Any) -> datetime | None:
    return None if value is None else ensure_aware(value, "collected_at")


def _check_subject(_: Any, __: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str) or not value.strip() or not _encodable(value):
        raise PolicyError("subject must be a non-empty string")


def _check_consent(_: Any, __: attrs.Attribute[str | None], value: object) -> None:
    if value is not None and (
        not isinstance(value, str) or not value.strip() or not _encodable(value)
    ):
        raise PolicyError("consent must be a non-empty string id or None")


def _ts(value: datetime) -> str:
    # isoformat, unlike strftime's %Y, always gives four-digit years (0005, not 5).
    return value.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


@attrs.frozen(kw_only=True)
class Label:
    """The purpose label carried by a face template. Immutable.

    A purpose *p* is permitted by the label iff *p* is within some allowed purpose and,
    for every prohibited *q*, *p* is neither within *q* nor an ancestor of *q* (Byun and
    Li's conformance rule; deny overrides allow). Whether an operation may then happen
    also depends on the taxonomy, the clock and consent: see
    [`Guard.check`][purposeguard.Guard.check].

    Attributes:
        allowed: the purposes the template may serve (non-empty).
        prohibited: purposes it must never serve, whatever `allowed` says.
        subject: the data subject's (pseudonymous) identifier.
        expires_at: timezone-aware UTC instant from which it may no longer be used.
        collected_at: when it was collected, if known.
        consent: the id of the consent record behind it, if any.
        jurisdictions: the laws that applied at collection (e.g. `{"pipl"}`).
        lineage: the derivation steps that produced it (transform names, `restrict`).
    """

    allowed: frozenset[Purpose] = attrs.field(converter=_purposes)
    subject: str = attrs.field(validator=_check_subject)
    expires_at: datetime = attrs.field(converter=_aware)
    prohibited: frozenset[Purpose] = attrs.field(default=frozenset(), converter=_purposes)
    collected_at: datetime | None = attrs.field(default=None, converter=_aware_or_none)
    consent: str | None = attrs.field(default=None, validator=_check_consent)
    jurisdictions: frozenset[str] = attrs.field(default=frozenset(), converter=_strs)
    lineage: tuple[str, ...] = attrs.field(default=(), converter=_lineage)
    _permits: dict[Purpose, bool] = attrs.field(
        factory=dict, init=False, eq=False, hash=False, repr=False
    )
    # The canonical encoding, computed once: labels are immutable and sealing, storing
    # and auditing ask for it again and again.
    _encoded: list[bytes] = attrs.field(factory=list, init=False, eq=False, hash=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if not self.allowed:
            raise PolicyError("a label needs at least one allowed purpose")
        if self.collected_at is not None and self.expires_at <= self.collected_at:
            raise PolicyError("expires_at must be after collected_at")
        for j in self.jurisdictions:
            if not isinstance(j, str) or not j or not _encodable(j):
                raise PolicyError("jurisdictions must be non-empty strings")
        for step in self.lineage:
            if not isinstance(step, str) or not _encodable(step):
                raise PolicyError("lineage entries must be strings")

    # -- conformance ---------------------------------------------------------------

    def permits(self, purpose: PurposeLike) -> bool:
        """Whether *purpose* conforms to the label (allowed and not prohibited).

        This is purpose conformance only; expiry, the taxonomy's operations and consent
        are the guard's business.
        """
        p = purpose if isinstance(purpose, Purpose) else Purpose(purpose)
        cached = self._permits.get(p)
        if cached is None:
            cached = self.why_not(p) is None
            if len(self._permits) < 256:
                self._permits[p] = cached
        return cached

    def why_not(self, purpose: PurposeLike) -> str | None:
        """A sentence saying why *purpose* does not conform, or `None` if it does."""
        p = Purpose(purpose)
        for q in sorted(self.prohibited):
            if p.is_within(q):
                return f"purpose {p.name!r} is prohibited by the label (within {q.name!r})"
            if q.is_within(p):
                return (
                    f"purpose {p.name!r} covers the prohibited purpose {q.name!r} "
                    "(deny overrides allow)"
                )
        if not any(p.is_within(a) for a in self.allowed):
            shown = ", ".join(a.name for a in sorted(self.allowed))
            return f"purpose {p.name!r} is not within the label's allowed purposes ({shown})"
        return None

    def is_expired(self, now: datetime) -> bool:
        """Whether the label has expired at *now* (expired means `now >= expires_at`)."""
        return now >= self.expires_at

    # -- derivation ----------------------------------------------------------------

    def restrict(
        self,
        purposes: PurposeLike | Iterable[PurposeLike],
        *,
        expires_at: datetime | None = None,
    ) -> Label:
        """Return a label allowing only *purposes* (and expiring no later than now).

        Raises:
            PurposeViolationError: a purpose is not within the allowed ones, or
                *expires_at* is later than the label's: that would broaden it.
                Broadening needs a fresh consent.
            PolicyError: *purposes* is empty or malformed.
        """
        new = purpose_set(purposes, "purposes")
        if not new:
            raise PolicyError("restrict() needs at least one purpose")
        for p in sorted(new):
            if not any(p.is_within(a) for a in self.allowed):
                raise PurposeViolationError(
                    f"restrict() to {p.name!r} would broaden the label: it is not within "
                    f"{', '.join(a.name for a in sorted(self.allowed))}; broadening needs "
                    "fresh consent"
                )
        until = self.expires_at
        if expires_at is not None:
            until = ensure_aware(expires_at, "expires_at")
            if until > self.expires_at:
                raise PurposeViolationError(
                    "restrict() cannot move expires_at later; that needs fresh consent"
                )
        return attrs.evolve(
            self, allowed=new, expires_at=until, lineage=(*self.lineage, "restrict")
        )

    def rebind(
        self,
        purposes: PurposeLike | Iterable[PurposeLike],
        *,
        consent: str,
        expires_at: datetime | None = None,
        at: datetime | None = None,
    ) -> Label:
        """Return a label allowing *purposes* on a fresh *consent* (may broaden).

        Only [`FaceTemplate.rebind`][purposeguard.FaceTemplate.rebind] should call
        this: it checks the consent with the guard's policy and audits the change. The
        prohibited purposes stay; `collected_at` becomes *at* (the rebind time);
        `expires_at` is kept unless given; `"rebind"` is appended to the lineage.

        Raises:
            PolicyError: no purposes, or no consent id.
            PurposeViolationError: a purpose is prohibited by this label.
        """
        new = purpose_set(purposes, "purposes")
        if not new:
            raise PolicyError("rebind() needs at least one purpose")
        if not isinstance(consent, str) or not consent.strip():
            raise PolicyError("rebind() needs the id of a fresh consent")
        for p in sorted(new):
            for q in sorted(self.prohibited):
                if p.is_within(q):
                    raise PurposeViolationError(
                        f"rebind() to {p.name!r} is within the prohibited purpose {q.name!r}: "
                        "a consent does not lift a prohibition"
                    )
        return attrs.evolve(
            self,
            allowed=new,
            consent=consent,
            expires_at=self.expires_at if expires_at is None else expires_at,
            collected_at=self.collected_at if at is None else at,
            lineage=(*self.lineage, "rebind"),
        )

    @classmethod
    def combine(cls, *labels: Label, step: str | None = None) -> Label:
        """The label of data derived from data under all of *labels*.

        `allowed` is the narrowest common purposes, `prohibited` the union,
        `expires_at` the earliest, `jurisdictions` the union and `lineage` the
        inputs' steps joined, followed by *step*. Every purpose the result permits is
        permitted by each input.

        Raises:
            PolicyError: no labels, different subjects, different consent ids, or no
                common purpose.
        """
        if not labels:
            raise PolicyError("combine() needs at least one label")
        first = labels[0]
        subjects = {lab.subject for lab in labels}
        if len(subjects) > 1:
            raise PolicyError(
                f"cannot combine labels of {len(subjects)} different subjects: derived data "
                "must belong to one data subject"
            )
        consents = {lab.consent for lab in labels} - {None}
        if len(consents) > 1:
            raise PolicyError(
                "cannot combine labels resting on different consents "
                f"({', '.join(sorted(c for c in consents if c))}); rebind first"
            )
        allowed = first.allowed
        for lab in labels[1:]:
            allowed = _meet(allowed, lab.allowed)
            if not allowed:
                raise PolicyError("the labels have no purpose in common")
        lineage: list[str] = []
        for lab in labels:
            for s in lab.lineage:
                if s not in lineage:
                    lineage.append(s)
        if step is not None:
            lineage.append(step)
        collected = [lab.collected_at for lab in labels if lab.collected_at is not None]
        return cls(
            allowed=allowed,
            prohibited=frozenset().union(*(lab.prohibited for lab in labels)),
            subject=first.subject,
            expires_at=min(lab.expires_at for lab in labels),
            collected_at=min(collected) if collected else None,
            consent=next(iter(consents)) if consents else None,
            jurisdictions=frozenset().union(*(lab.jurisdictions for lab in labels)),
            lineage=tuple(lineage),
        )

    # -- encoding ------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The label as JSON-compatible data (sorted lists, ISO-8601 UTC times)."""
        return {
            "v": _ENCODING_VERSION,
            "allowed": sorted(p.name for p in self.allowed),
            "prohibited": sorted(p.name for p in self.prohibited),
            "subject": self.subject,
            "expires_at": _ts(self.expires_at),
            "collected_at": None if self.collected_at is None else _ts(self.collected_at),
            "consent": self.consent,
            "jurisdictions": sorted(self.jurisdictions),
            "lineage": list(self.lineage),
        }

    def to_bytes(self) -> bytes:
        """Canonical, deterministic encoding: equal labels give equal bytes.

        Used as AEAD associated data and in audit records.
        """
        if not self._encoded:
            self._encoded.append(
                json.dumps(
                    self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
                ).encode("utf-8")
            )
        return self._encoded[0]

    @classmethod
    def from_bytes(cls, data: bytes) -> Label:
        """Decode [`to_bytes`][purposeguard.Label.to_bytes] output; anything not canonical is a
        `PolicyError`."""
        try:
            raw = json.loads(bytes(data).decode("utf-8"))
        except (UnicodeDecodeError, ValueError, TypeError, RecursionError):
            raise PolicyError("malformed label encoding") from None
        if not isinstance(raw, dict) or set(raw) != _KEYS or raw["v"] != _ENCODING_VERSION:
            raise PolicyError("malformed label encoding: unexpected fields or version")
        try:
            label = cls(
                allowed=raw["allowed"],
                prohibited=raw["prohibited"],
                subject=raw["subject"],
                expires_at=datetime.fromisoformat(raw["expires_at"]),
                collected_at=None
                if raw["collected_at"] is None
                else datetime.fromisoformat(raw["collected_at"]),
                consent=raw["consent"],
                jurisdictions=raw["jurisdictions"],
                lineage=raw["lineage"],
            )
        except (TypeError, ValueError, AttributeError) as e:
            if isinstance(e, PolicyError):
                raise
            raise PolicyError("malformed label encoding: bad field value") from None
        if label.to_bytes() != bytes(data):
            raise PolicyError("label encoding is not canonical")
        return label


def _meet(a: frozenset[Purpose], b: frozenset[Purpose]) -> frozenset[Purpose]:
    out = {x for x in a if any(x.is_within(y) for y in b)}
    out |= {y for y in b if any(y.is_within(x) for x in a)}
    return frozenset(out)
