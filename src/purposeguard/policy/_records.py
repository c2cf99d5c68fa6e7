"""The records the rules read: consents, collection contexts, disclosures, authorisations."""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, Final

import attrs

from purposeguard._clock import ensure_aware
from purposeguard._errors import PolicyError
from purposeguard._purposes import Purpose, PurposeLike, purpose_set

__all__ = [
    "Authorisation",
    "CollectionContext",
    "Consent",
    "ConsentForm",
    "Disclosure",
    "DisclosureReason",
    "LegalBasis",
    "Place",
    "Source",
    "Storage",
]


def _enum_member(kind: type[enum.Enum], value: object, what: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        known = ", ".join(repr(m.value) for m in kind)
        raise PolicyError(f"{what} must be one of {known}, got {value!r}") from None


class ConsentForm(enum.StrEnum):
    """How a consent was given, weakest first.

    The forms are ranked; a consent of a stronger form satisfies a rule asking for a
    weaker one: `opt_out` < `plain` < `explicit` < `separate` < `written`.
    A written release (BIPA) names the purpose and is signed, so it is also separate
    (PIPL) and explicit (GDPR); a separate consent (PIPL, given for this processing
    alone) is also explicit. Composing presets asks for the strongest form any of them
    asks for.
    """

    OPT_OUT = "opt_out"
    """Notice with a chance to object (Washington's opt-out, CCPA's notice at collection)."""
    PLAIN = "plain"
    """Informed consent, not necessarily separate from other terms (Texas CUBI)."""
    EXPLICIT = "explicit"
    """An express statement of consent (GDPR Art. 9(2)(a))."""
    SEPARATE = "separate"
    """Consent given separately for this processing alone (PIPL Art. 29)."""
    WRITTEN = "written"
    """A written, signed release; an electronic signature counts (BIPA 15(b))."""

    @property
    def rank(self) -> int:
        """Strength of the form: higher satisfies every lower one."""
        return _FORM_RANK[self]


_FORM_RANK: Final = {f: i for i, f in enumerate(ConsentForm)}


class LegalBasis(enum.StrEnum):
    """The lawful basis a consent record rests on (PIPL Art. 13, GDPR Art. 6 and 9(2))."""

    CONSENT = "consent"
    """The data subject's consent."""
    CONTRACT = "contract"
    """Necessary for a contract with the subject, or for human-resources management."""
    LEGAL_OBLIGATION = "legal_obligation"
    """Necessary to fulfil a statutory duty."""
    VITAL_INTERESTS = "vital_interests"
    """A public-health emergency or protecting someone's life or health."""
    PUBLIC_INTEREST = "public_interest"
    """News reporting or supervision in the public interest, or a task in it."""
    PUBLICLY_DISCLOSED = "publicly_disclosed"
    """Data the subject made public themselves."""
    LAW = "law"
    """Another basis that a law or regulation provides."""


class Place(enum.StrEnum):
    """Where a face was captured."""

    PRIVATE = "private"
    """Premises not open to the public (an office behind access control, a home)."""
    PUBLIC = "public"
    """A public place (street, station, shop floor): PIPL Art. 26 applies."""
    DEVICE = "device"
    """The subject's own device (phone unlock, a kiosk the subject operates)."""


class Source(enum.StrEnum):
    """How the face image reached the system."""

    CAMERA = "camera"
    """A camera pointed at the subject, for this purpose."""
    UPLOAD = "upload"
    """An image the subject uploaded to an online service."""
    WEB_SCRAPE = "web_scrape"
    """Images collected from the internet without targeting a person (AI Act 5(1)(e))."""
    CCTV_BULK = "cctv_bulk"
    """Faces harvested in bulk from CCTV footage (AI Act 5(1)(e))."""


class Storage(enum.StrEnum):
    """Where a deployment keeps templates (FR-03, EU-07)."""

    DEVICE = "device"
    """In the face-recognition device itself (the CN Measures' default)."""
    USER_DEVICE = "user_device"
    """On a device the subject holds (EDPB Opinion 11/2024)."""
    CENTRAL_USER_KEY = "central_user_key"
    """Centrally, encrypted under a key only the subject holds (EDPB Opinion 11/2024)."""
    CENTRAL = "central"
    """In a central database the operator controls."""


class DisclosureReason(enum.StrEnum):
    """Why a template is disclosed to someone else (BIPA 15(d))."""

    CONSENT = "consent"
    """The subject consented to this recipient."""
    TRANSACTION = "transaction"
    """It completes a financial transaction the subject requested."""
    LAW = "law"
    """A law requires it."""
    WARRANT = "warrant"
    """A valid warrant or subpoena requires it."""


_ZONE = re.compile(r"[a-z][a-z0-9_]*")
FORBIDDEN_ZONES: Final = frozenset(
    {
        "hotel_room",
        "guest_room",
        "bath",
        "bathroom",
        "public_bath",
        "shower",
        "changing_room",
        "fitting_room",
        "locker_room",
        "toilet",
        "restroom",
    }
)
"""Deployment zones where faces must never be captured (CN Measures Art. 13, FR-06)."""
WORK_OR_SCHOOL_ZONES: Final = frozenset({"workplace", "office", "school", "classroom"})
"""Zones where emotion recognition is banned (AI Act Art. 5(1)(f), AI-03)."""


def _nonempty(what: str) -> Any:
    def check(_: Any, __: Any, value: object) -> None:
        if not isinstance(value, str) or not value.strip():
            raise PolicyError(f"{what} must be a non-empty string")

    return check


def _optional_text(what: str) -> Any:
    def check(_: Any, __: Any, value: object) -> None:
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise PolicyError(f"{what} must be a non-empty string or None")

    return check


def _aware(what: str) -> Any:
    return lambda v: ensure_aware(v, what)


def _purposes(what: str) -> Any:
    def convert(value: PurposeLike | Iterable[PurposeLike]) -> frozenset[Purpose]:
        out = purpose_set(value, what)
        if not out:
            raise PolicyError(f"{what} must name at least one purpose")
        return out

    return convert


def _form(value: object) -> ConsentForm:
    return _enum_member(ConsentForm, value, "form")  # type: ignore[no-any-return]


def _basis(value: object) -> LegalBasis:
    return _enum_member(LegalBasis, value, "basis")  # type: ignore[no-any-return]


def _strings(what: str) -> Any:
    def convert(value: object) -> frozenset[str]:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, Iterable):
            raise PolicyError(f"{what} must be a string or an iterable of strings")
        out = frozenset(items)
        for item in out:
            if not isinstance(item, str) or not item.strip():
                raise PolicyError(f"{what} must hold non-empty strings")
        return out

    return convert


def _consent_purposes(value: PurposeLike | Iterable[PurposeLike]) -> frozenset[Purpose]:
    return _purposes("consent purposes")(value)  # type: ignore[no-any-return]


def _authorised_purposes(value: PurposeLike | Iterable[PurposeLike]) -> frozenset[Purpose]:
    return _purposes("authorisation purposes")(value)  # type: ignore[no-any-return]


def _given_at(value: object) -> datetime:
    return ensure_aware(value, "given_at")


def _granted_at(value: object) -> datetime:
    return ensure_aware(value, "granted_at")


def _expires_at(value: object) -> datetime:
    return ensure_aware(value, "expires_at")


def _recipients(value: object) -> frozenset[str]:
    return _strings("recipients")(value)  # type: ignore[no-any-return]


def _term(_: Any, __: Any, value: object) -> None:
    if value is None:
        return
    if not isinstance(value, timedelta):
        raise PolicyError(f"term must be a timedelta or None, got {type(value).__name__}")
    if value <= timedelta(0):
        raise PolicyError("term must be positive")


@attrs.frozen(kw_only=True)
class Consent:
    """A record of the legal basis for processing one subject's face data.

    Immutable. Registered in a [`ConsentRegistry`][purposeguard.policy.ConsentRegistry], it is what
    a template's `consent` id points at; the rules read it on every decision.

    Attributes:
        id: unique id; the template labels name it.
        subject: the data subject it belongs to (must equal the label's subject).
        purposes: the purposes it covers (each with its descendants).
        form: how it was given: a [`ConsentForm`][purposeguard.policy.ConsentForm] or its string
            value.
        given_at: when it was given (timezone-aware); rules require it no later than
            the collection.
        term: how long the purpose lasts (BIPA's "term"); `None` lets the active
            presets' retention caps stand for it.
        notice: id or version of the notice the subject saw (CN-05, IL-02, TX-01).
        guardian: who consented for a minor (PIPL under 14, GDPR Art. 8).
        recipients: recipients the subject agreed to disclosure to (CN-10, IL-04).
        transfer: separate consent to move the data off the device or abroad
            (FR-03, CN-11).
        basis: the lawful basis; anything but `consent` needs *ground*.
        ground: the legal ground cited when *basis* is not consent (e.g. "GDPR 9(2)(g)").

    Raises:
        PolicyError: a field is missing or malformed.
    """

    id: str = attrs.field(validator=_nonempty("consent id"))
    subject: str = attrs.field(validator=_nonempty("subject"))
    purposes: frozenset[Purpose] = attrs.field(converter=_consent_purposes)
    form: ConsentForm = attrs.field(converter=_form)
    given_at: datetime = attrs.field(converter=_given_at)
    term: timedelta | None = attrs.field(default=None, validator=_term)
    notice: str | None = attrs.field(default=None, validator=_optional_text("notice"))
    guardian: str | None = attrs.field(default=None, validator=_optional_text("guardian"))
    recipients: frozenset[str] = attrs.field(default=frozenset(), converter=_recipients)
    transfer: bool = attrs.field(default=False)
    basis: LegalBasis = attrs.field(default=LegalBasis.CONSENT, converter=_basis)
    ground: str | None = attrs.field(default=None, validator=_optional_text("ground"))

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.transfer, bool):
            raise PolicyError("transfer must be true or false")
        if self.basis is not LegalBasis.CONSENT and self.ground is None:
            raise PolicyError(
                f"consent {self.id!r}: basis {self.basis.value!r} needs the legal ground "
                "it rests on (ground='...')"
            )
        if self.term is not None:
            try:
                self.given_at + self.term
            except OverflowError:
                raise PolicyError(f"consent {self.id!r}: term is too long") from None

    def covers(self, purpose: PurposeLike) -> bool:
        """Whether *purpose* is within one of the purposes consented to."""
        p = purpose if isinstance(purpose, Purpose) else Purpose(purpose)
        return any(p.is_within(c) for c in self.purposes)

    @property
    def ends_at(self) -> datetime | None:
        """When the consented purpose ends (`given_at + term`), if a term is given."""
        return None if self.term is None else self.given_at + self.term


def _place(value: object) -> Place:
    return _enum_member(Place, value, "place")  # type: ignore[no-any-return]


def _source(value: object) -> Source:
    return _enum_member(Source, value, "source")  # type: ignore[no-any-return]


def _zone(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise PolicyError(f"zone must be a string or None, got {type(value).__name__}")
    z = value.strip().lower().replace(" ", "_").replace("-", "_")
    if not _ZONE.fullmatch(z):
        raise PolicyError("zone must be a short name such as 'lobby' or 'changing_room'")
    return z


def _age(_: Any, __: Any, value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 150:
        raise PolicyError("subject_age must be a whole number of years between 0 and 149")


@attrs.frozen(kw_only=True)
class CollectionContext:
    """Where and how a face was captured; given to `FaceTemplate.wrap(context=...)`.

    Attributes:
        place: `private`, `public` or `device` (a [`Place`][purposeguard.policy.Place] or its
            value).
        source: `camera`, `upload`, `web_scrape` or `cctv_bulk`.
        zone: the deployment zone (`"lobby"`, `"changing_room"`, `"workplace"`);
            normalised to lowercase with underscores. Forbidden zones (hotel rooms,
            baths, changing rooms, toilets) are refused under FR-06.
        subject_age: the subject's age in years, if known (guardian rules).
        signage: whether signs announce the capture (CN-07 for public places).

    Raises:
        PolicyError: an unknown place or source, a malformed zone or age.
    """

    place: Place = attrs.field(converter=_place)
    source: Source = attrs.field(converter=_source)
    zone: str | None = attrs.field(default=None, converter=_zone)
    subject_age: int | None = attrs.field(default=None, validator=_age)
    signage: bool = attrs.field(default=False)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.signage, bool):
            raise PolicyError("signage must be true or false")

    @property
    def forbidden_zone(self) -> bool:
        """Whether `zone` is one where capture is
        never allowed."""
        return self.zone in FORBIDDEN_ZONES


def _reason(value: object) -> DisclosureReason:
    return _enum_member(DisclosureReason, value, "reason")  # type: ignore[no-any-return]


_MECHANISMS: Final = frozenset({"cac_assessment", "certification", "standard_contract"})


@attrs.frozen(kw_only=True)
class Disclosure:
    """The context of an EXPORT: who receives the template and why.

    Pass it as `context=` to an EXPORT (see
    [`purposeguard.policy.disclose`][purposeguard.policy.disclose]).

    Attributes:
        recipient: who receives it.
        reason: a [`DisclosureReason`][purposeguard.policy.DisclosureReason] (or its value).
        cross_border: the data leaves the jurisdiction (CN-11).
        mechanism: for a cross-border transfer, `cac_assessment`, `certification`
            or `standard_contract` (PIPL Art. 38).
        sale: the recipient pays for it (refused under BIPA, IL-03).
    """

    recipient: str = attrs.field(validator=_nonempty("recipient"))
    reason: DisclosureReason = attrs.field(default=DisclosureReason.CONSENT, converter=_reason)
    cross_border: bool = False
    mechanism: str | None = attrs.field(default=None)
    sale: bool = False

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.cross_border, bool) or not isinstance(self.sale, bool):
            raise PolicyError("cross_border and sale must be true or false")
        if self.mechanism is not None and self.mechanism not in _MECHANISMS:
            raise PolicyError(
                f"mechanism must be one of {', '.join(sorted(_MECHANISMS))}, "
                f"got {self.mechanism!r}"
            )


@attrs.frozen(kw_only=True)
class Authorisation:
    """A prior judicial or independent authorisation of real-time remote
    identification (AI Act Art. 5(2)-(5), AI-02).

    Attributes:
        id: the authorisation's reference.
        purposes: the purposes it authorises (e.g.
            `face.public_security.law_enforcement.victim_search`).
        authority: who granted it.
        granted_at: when it was granted.
        expires_at: when it stops covering uses.
        urgent: use began before the authorisation was requested; such an
            authorisation may last at most 24 hours.

    Raises:
        PolicyError: malformed, or an urgent authorisation longer than 24 hours.
    """

    id: str = attrs.field(validator=_nonempty("authorisation id"))
    purposes: frozenset[Purpose] = attrs.field(converter=_authorised_purposes)
    authority: str = attrs.field(validator=_nonempty("authority"))
    granted_at: datetime = attrs.field(converter=_granted_at)
    expires_at: datetime = attrs.field(converter=_expires_at)
    urgent: bool = False

    def __attrs_post_init__(self) -> None:
        if self.expires_at <= self.granted_at:
            raise PolicyError(f"authorisation {self.id!r}: expires_at must be after granted_at")
        if self.urgent and self.expires_at - self.granted_at > timedelta(hours=24):
            raise PolicyError(
                f"authorisation {self.id!r}: an urgent authorisation lasts at most 24 hours"
            )

    def covers(self, purpose: Purpose, now: datetime) -> bool:
        """Whether it covers *purpose* at *now*."""
        return self.granted_at <= now < self.expires_at and any(
            purpose.is_within(a) for a in self.purposes
        )
