"""Policy: jurisdiction presets and a deployment's own rules, compiled for the hot path.

The guard calls [`Policy.evaluate`][purposeguard.policy.Policy.evaluate] on every decision. Rules
that depend only on the label's allowed purposes, the purpose in use and the operation are compiled
once per such triple into a `_Plan` (static findings plus the few record checks
that remain); the record checks are dictionary lookups in the consent registry.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from os import PathLike
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

import attrs

from purposeguard._clock import ensure_aware
from purposeguard._decision import AccessRequest, RuleFinding
from purposeguard._errors import (
    AccessDeniedError,
    ConsentError,
    ExpiredTemplateError,
    PolicyError,
    PurposeViolationError,
)
from purposeguard._labels import Label
from purposeguard._purposes import Operation, Purpose, PurposeLike, purpose_set
from purposeguard._taxonomy import Taxonomy

from ._dates import FAR_FUTURE, add_months
from ._records import (
    WORK_OR_SCHOOL_ZONES,
    CollectionContext,
    Consent,
    ConsentForm,
    Disclosure,
    DisclosureReason,
    LegalBasis,
    Place,
    Source,
    Storage,
)
from ._registry import ConsentRegistry
from ._rules import PRESETS, RULES, Enforcement

if TYPE_CHECKING:
    from purposeguard._guard import Guard

__all__ = ["FILING_THRESHOLD", "Policy", "RetentionLimit"]

FILING_THRESHOLD: Final = 100_000
"""Distinct subjects stored at which the CN Measures require a filing (FR-07)."""
AUDIT_THRESHOLD: Final = 10_000_000
"""Individuals above which PIPL audits are due at least every two years (CN-13)."""

_P = Purpose
ROOT: Final = _P("face")
VERIFICATION: Final = _P("face.verification")
IDENTIFICATION: Final = _P("face.identification")
REALTIME: Final = _P("face.identification.realtime_remote")
PUBLIC_SECURITY: Final = _P("face.public_security")
POLICE_CASES: Final = (
    _P("face.public_security.law_enforcement.victim_search"),
    _P("face.public_security.law_enforcement.imminent_threat"),
    _P("face.public_security.law_enforcement.serious_crime"),
)
EMOTION: Final = _P("face.analytics.emotion")
SENSITIVE_CATEGORISATION: Final = _P("face.analytics.sensitive_categorisation")
MODEL_DEVELOPMENT: Final = _P("face.model_development")
COMMERCIAL: Final = _P("face.commercial")
SALE: Final = _P("face.commercial.sale")
# GDPR reaches face data only when it is used to identify someone (conflict 7).
_IDENTIFYING: Final = (VERIFICATION, IDENTIFICATION, PUBLIC_SECURITY, COMMERCIAL)

LOCAL_BAN: Final = "LOCAL-BAN"
LOCAL_FORM: Final = "LOCAL-FORM"
LOCAL_RETENTION: Final = "LOCAL-RETENTION"
LOCAL_RULES: Final = frozenset({LOCAL_BAN, LOCAL_FORM, LOCAL_RETENTION})
"""Rule ids of a deployment's own rules (bans, consent forms, retention caps)."""

# A COLLECT of a label collected this recently, with no lineage, is a capture: wrap()
# stamps collected_at from the guard's clock a moment before it decides.
_CAPTURE_WINDOW: Final = timedelta(seconds=1)
_PLAN_LIMIT: Final = 4096  # compiled plans a policy keeps
_GRANTED_LIMIT: Final = 65536  # granted verdicts a policy keeps (a few MB)
_MINOR_CN: Final = 14  # PIPL Art 31, CN Measures
_MINOR_EU_ONLINE: Final = 16  # GDPR Art 8 default (member states may lower it to 13)
_LAWFUL_DISCLOSURE: Final = frozenset({DisclosureReason.LAW, DisclosureReason.WARRANT})
_PERSON_HELD: Final = frozenset({Storage.USER_DEVICE, Storage.CENTRAL_USER_KEY})
_ON_DEVICE: Final = frozenset({Storage.DEVICE, Storage.USER_DEVICE})

# The consent form each rule asks for when consent is the basis.
_FORMS: Final = {
    "CN-08": ConsentForm.SEPARATE,
    "FR-02": ConsentForm.SEPARATE,
    "EU-01": ConsentForm.EXPLICIT,
    "IL-02": ConsentForm.WRITTEN,
    "TX-01": ConsentForm.PLAIN,
    "WA-01": ConsentForm.OPT_OUT,
}
# Rules whose requirements govern retention, and the window after the last interaction.
_WINDOWS: Final = {"IL-01": 36, "CO-01": 24}  # months
_TERM_RULES: Final = ("CN-09", "EU-04", "IL-01", "CO-01")
_WITHDRAWAL_RULES: Final = ("CN-09", "EU-04")


@attrs.frozen
class RetentionLimit:
    """The latest expiry a policy accepts for a template, and the rules that set it.

    Attributes:
        latest: the latest acceptable `expires_at`.
        rule_ids: the rules whose cap is exactly
            `latest`.
        caps: every applicable cap, as `(rule id, latest expiry)` pairs, earliest first.
    """

    latest: datetime
    rule_ids: tuple[str, ...]
    caps: tuple[tuple[str, datetime], ...]


@attrs.frozen
class _Need:
    # A consent requirement of one rule for one purpose.
    rule: str
    purpose: Purpose
    record: bool
    form: ConsentForm | None
    consent_basis: bool
    notice: bool
    cover: bool
    before: bool


@attrs.frozen(eq=False)
class _Granted:
    # A granted verdict of evaluate(), valid from since until until while the registry
    # keeps its generation.
    registry: object
    generation: int | None
    since: datetime
    until: datetime


@attrs.frozen(eq=False)
class _Plan:
    # What evaluate() does for one (allowed purposes, purpose, operation).
    static: tuple[RuleFinding, ...]
    needs: tuple[_Need, ...]
    # Per purpose: (purpose, strongest form rank, basis must be consent, notice, cover,
    # before): when a record passes these, no need fails and the needs are skipped.
    quick: tuple[tuple[Purpose, int, bool, bool, bool, bool], ...]
    capture: bool
    withdrawal: tuple[str, ...]
    term: tuple[str, ...]
    windows: tuple[tuple[str, int], ...]
    limit: bool
    authorise: tuple[Purpose, ...]
    store_transfer: bool
    export: bool
    dynamic: bool  # whether any of the record checks above applies


def _within(p: Purpose, roots: Iterable[Purpose]) -> bool:
    return any(p.is_within(r) for r in roots)


def _form(value: object, where: str) -> ConsentForm:
    try:
        return ConsentForm(value)  # type: ignore[arg-type]
    except ValueError:
        known = ", ".join(f.value for f in ConsentForm)
        raise PolicyError(f"{where}: unknown consent form {value!r} (known: {known})") from None


def _storage(value: object) -> Storage | None:
    if value is None:
        return None
    try:
        return Storage(value)  # type: ignore[arg-type]
    except ValueError:
        known = ", ".join(s.value for s in Storage)
        raise PolicyError(f"storage must be one of {known}, got {value!r}") from None


def _text(what: str) -> Any:
    def check(_: Any, __: Any, value: object) -> None:
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise PolicyError(f"{what} must be a non-empty string or None")

    return check


def _purpose_map(what: str, convert: Any) -> Any:
    def run(value: Mapping[Any, Any] | None) -> Mapping[Purpose, Any]:
        if value is None:
            return MappingProxyType({})
        if not isinstance(value, Mapping):
            raise PolicyError(f"{what} must be a mapping of purposes")
        return MappingProxyType(
            {Purpose(k): convert(v, f"{what}[{k!s}]") for k, v in value.items()}
        )

    return run


def _alternative(value: object, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise PolicyError(f"{where}: the alternative method must be a non-empty string")
    return value


def _retention(value: object, where: str) -> timedelta:
    if not isinstance(value, timedelta) or value <= timedelta(0):
        raise PolicyError(f"{where}: the retention cap must be a positive timedelta")
    return value


def _rule_ids(value: Iterable[str], what: str) -> frozenset[str]:
    if isinstance(value, str):
        value = (value,)
    out = frozenset(value)
    for r in sorted(out):
        if r not in RULES:
            raise PolicyError(f"{what}: unknown rule id {r!r}")
    return out


def _waivers(value: Mapping[str, str] | None) -> Mapping[str, str]:
    if value is None:
        return MappingProxyType({})
    if not isinstance(value, Mapping):
        raise PolicyError("waivers must map rule ids to the reason they do not apply")
    for rid, why in value.items():
        if rid not in RULES:
            raise PolicyError(f"waivers: unknown rule id {rid!r}")
        if not isinstance(why, str) or not why.strip():
            raise PolicyError(f"waivers: rule {rid} needs the reason it does not apply")
    return MappingProxyType(dict(value))


def _rule_set(value: Iterable[str]) -> frozenset[str]:
    if isinstance(value, str):
        return frozenset((value,))
    return frozenset(value)


def _banned(value: PurposeLike | Iterable[PurposeLike]) -> frozenset[Purpose]:
    return purpose_set(value, "banned")


def _processing(value: PurposeLike | Iterable[PurposeLike] | None) -> frozenset[Purpose] | None:
    return None if value is None else purpose_set(value, "processing")


def _consent_forms(value: Mapping[Any, Any] | None) -> Mapping[Purpose, ConsentForm]:
    return _purpose_map("consent_forms", _form)(value)  # type: ignore[no-any-return]


def _max_retention(value: Mapping[Any, Any] | None) -> Mapping[Purpose, timedelta]:
    return _purpose_map("max_retention", _retention)(value)  # type: ignore[no-any-return]


def _alternatives(value: Mapping[Any, Any] | None) -> Mapping[Purpose, str]:
    return _purpose_map("alternatives", _alternative)(value)  # type: ignore[no-any-return]


@attrs.frozen(kw_only=True, eq=False)
class Policy:
    """The rules of the law (presets) and of the deployment, checked on every decision.

    Build one with [`preset`][purposeguard.policy.Policy.preset] (`Policy.preset("pipl", "gdpr")`)
    or [`from_toml`][purposeguard.policy.Policy.from_toml], and give it to `Guard(policy=...,
    consents=registry)`. A policy whose rules read consent records needs the guard to have a
    [`ConsentRegistry`][purposeguard.policy.ConsentRegistry] (checked when the guard is built).
    Policies are immutable; [`evolve`][purposeguard.policy.Policy.evolve],
    [`without`][purposeguard.policy.Policy.without] and `|` return new ones.

    Every denial is a [`RuleFinding`][purposeguard.RuleFinding] naming a rule id from
    [`RULES`][purposeguard.policy.RULES] (or `LOCAL-BAN`, `LOCAL-FORM`, `LOCAL-RETENTION` for the
    deployment's own rules), and `decision.rule_ids` lists every rule that denies.

    Attributes:
        presets: the preset names composed into it.
        rules: the rule ids in force (the presets' and any added), less waivers.
        waivers: rule ids taken out of force, each with the reason it does not apply.
        banned: purposes the deployment never processes (`LOCAL-BAN`).
        consent_forms: stronger consent forms the deployment asks for, per purpose.
        max_retention: retention caps of the deployment, per purpose.
        storage: where templates are kept (FR-03, EU-07); `None`: not declared,
            treated as central storage.
        processing: the purposes the deployment declares it processes (record of
            processing, EU-05); `None`: not declared.
        impact_assessment: reference of the PIA/DPIA (CN-14, FR-04, EU-06, CN-11).
        notice: reference of the public notice and retention schedule (IL-01, CA-01).
        necessity: the necessity justification for processing biometrics (CN-08).
        alternatives: the method offered instead of face recognition, per purpose
            (FR-05).
        filing: reference of the filing with the provincial CAC (FR-07).
    """

    presets: tuple[str, ...] = ()
    rules: frozenset[str] = attrs.field(default=frozenset(), converter=_rule_set)
    waivers: Mapping[str, str] = attrs.field(default=None, converter=_waivers)
    banned: frozenset[Purpose] = attrs.field(default=frozenset(), converter=_banned)
    consent_forms: Mapping[Purpose, ConsentForm] = attrs.field(
        default=None, converter=_consent_forms
    )
    max_retention: Mapping[Purpose, timedelta] = attrs.field(
        default=None, converter=_max_retention
    )
    storage: Storage | None = attrs.field(default=None, converter=_storage)
    processing: frozenset[Purpose] | None = attrs.field(default=None, converter=_processing)
    impact_assessment: str | None = attrs.field(default=None, validator=_text("impact_assessment"))
    notice: str | None = attrs.field(default=None, validator=_text("notice"))
    necessity: str | None = attrs.field(default=None, validator=_text("necessity"))
    alternatives: Mapping[Purpose, str] = attrs.field(default=None, converter=_alternatives)
    filing: str | None = attrs.field(default=None, validator=_text("filing"))
    _plans: dict[tuple[object, ...], _Plan] = attrs.field(factory=dict, init=False, repr=False)
    # The last granted request evaluate() saw and until when it stands (a memo for
    # granted_until, which the guard calls right after; checked by identity).
    _last: list[tuple[AccessRequest, datetime] | None] = attrs.field(
        factory=lambda: [None], init=False, repr=False
    )
    # Granted verdicts per (plan, consent id, subject, collected_at): see evaluate().
    _granted: dict[tuple[object, ...], _Granted] = attrs.field(
        factory=dict, init=False, repr=False
    )

    def __attrs_post_init__(self) -> None:
        for rid in sorted(self.rules):
            if rid not in RULES:
                raise PolicyError(f"unknown rule id {rid!r}")
        overlap = sorted(self.rules & set(self.waivers))
        if overlap:
            raise PolicyError(
                f"rule(s) {', '.join(overlap)} are both in force and waived: a policy "
                "takes a rule out of force only through its waiver"
            )
        taxonomy = Taxonomy.default()
        for what, purposes in (
            ("banned", self.banned),
            ("consent_forms", self.consent_forms),
            ("max_retention", self.max_retention),
            ("alternatives", self.alternatives),
            ("processing", self.processing or ()),
        ):
            for p in sorted(purposes):
                if p not in taxonomy:
                    raise PolicyError(f"{what}: unknown purpose {p.name!r}")
        for what, purposes in (
            ("consent_forms", self.consent_forms),
            ("max_retention", self.max_retention),
            ("alternatives", self.alternatives),
            ("processing", self.processing or ()),
        ):
            for p in sorted(purposes):
                if _within(p, self.banned):
                    raise PolicyError(
                        f"{what}: purpose {p.name!r} is banned by the same policy "
                        "(contradictory settings)"
                    )
        for p, form in sorted(self.consent_forms.items()):
            for rid, needed in _FORMS.items():
                if rid in self.rules and form.rank < needed.rank and self._form_applies(rid, p):
                    raise PolicyError(
                        f"consent_forms: {form.value!r} for {p.name!r} contradicts {rid}, "
                        f"which asks for {needed.value!r} or stronger"
                    )
        if self.processing is not None:
            for p in sorted(self.processing):
                if "IL-03" in self.rules and p.is_within(SALE):
                    raise PolicyError(
                        f"processing: {p.name!r} contradicts IL-03 (sale is refused even "
                        "with consent)"
                    )
                if "AI-03" in self.rules and p.is_within(SENSITIVE_CATEGORISATION):
                    raise PolicyError(
                        f"processing: {p.name!r} contradicts AI-03 (sensitive "
                        "categorisation is banned)"
                    )

    # -- construction ------------------------------------------------------------------

    @classmethod
    def preset(cls, *names: str, **settings: Any) -> Policy:
        """The policy of the named presets composed: at least as strict as each.

        Names: `pipl`, `cn_face_2025`, `gdpr`, `eu_ai_act`, `bipa`,
        `texas_cubi`, `washington`, `colorado`, `ccpa`. Composing takes every
        rule of every preset, so the shortest retention, the strongest consent form
        and every prohibition apply. *settings* are the deployment's declarations
        (`storage`, `impact_assessment`, `alternatives` ...; see the class).

        Raises:
            PolicyError: no name, an unknown name, or a bad setting.
        """
        if not names:
            raise PolicyError(f"Policy.preset() needs at least one of: {', '.join(PRESETS)}")
        rules: set[str] = set(settings.pop("rules", ()))
        seen: list[str] = []
        for name in names:
            if name not in PRESETS:
                raise PolicyError(f"unknown preset {name!r} (known: {', '.join(sorted(PRESETS))})")
            if name not in seen:
                seen.append(name)
            rules |= PRESETS[name]
        waivers = settings.get("waivers") or {}
        return cls(presets=tuple(seen), rules=frozenset(rules) - set(waivers), **settings)

    @classmethod
    def from_toml(cls, path: str | PathLike[str]) -> Policy:
        """Load a deployment's policy file: presets plus its own rules.

        See `docs/reference/policy.md` for the format. Unknown keys, presets,
        purposes and rule ids, and contradictory settings are refused with the file
        name and line.

        Raises:
            PolicyError: the file is unreadable or wrong, with `path:line` in front.
        """
        from ._toml import load

        return load(path)

    def evolve(self, **changes: Any) -> Policy:
        """A copy with *changes* applied (validated like a new policy)."""
        return attrs.evolve(self, **changes)

    def without(self, *rule_ids: str, reason: str = "taken out of force") -> Policy:
        """A copy with *rule_ids* waived (for staged roll-outs and tests).

        Raises:
            PolicyError: an unknown id, or a rule not in force.
        """
        for r in rule_ids:
            if r not in RULES:
                raise PolicyError(f"unknown rule id {r!r}")
            if r not in self.rules:
                raise PolicyError(f"rule {r} is not in force in this policy")
        waivers = dict(self.waivers)
        waivers.update(dict.fromkeys(rule_ids, reason))
        return attrs.evolve(self, rules=self.rules - set(rule_ids), waivers=waivers)

    def __or__(self, other: Policy) -> Policy:
        """The composition of two policies: every rule, ban and cap of both; a
        declaration of either (the left one wins where both declare)."""
        if not isinstance(other, Policy):
            return NotImplemented
        rules = self.rules | other.rules
        waivers = {
            r: why for r, why in {**other.waivers, **self.waivers}.items() if r not in rules
        }
        forms = dict(other.consent_forms)
        for p, f in self.consent_forms.items():
            forms[p] = max(f, forms.get(p, f), key=lambda x: x.rank)
        caps = dict(other.max_retention)
        for p, c in self.max_retention.items():
            caps[p] = min(c, caps.get(p, c))
        processing = (
            None
            if self.processing is None and other.processing is None
            else (self.processing or frozenset()) | (other.processing or frozenset())
        )
        return Policy(
            presets=tuple(dict.fromkeys(self.presets + other.presets)),
            rules=rules,
            waivers=waivers,
            banned=self.banned | other.banned,
            consent_forms=forms,
            max_retention=caps,
            storage=self.storage if self.storage is not None else other.storage,
            processing=processing,
            impact_assessment=self.impact_assessment or other.impact_assessment,
            notice=self.notice or other.notice,
            necessity=self.necessity or other.necessity,
            alternatives={**other.alternatives, **self.alternatives},
            filing=self.filing or other.filing,
        )

    def __repr__(self) -> str:
        return f"<Policy {'+'.join(self.presets) or 'custom'}: {len(self.rules)} rules>"

    # -- what the guard calls ----------------------------------------------------------

    @property
    def needs_consents(self) -> bool:
        """Whether some rule in force reads consent records (then the guard needs a
        [`ConsentRegistry`][purposeguard.policy.ConsentRegistry])."""
        readers = {
            "CN-02", "CN-03", "CN-05", "CN-07", "CN-08", "CN-09", "CN-10", "CN-11",
            "FR-02", "FR-03", "FR-06", "EU-01", "EU-02", "EU-04", "AI-02",
            "IL-01", "IL-02", "IL-04", "TX-01", "WA-01", "CO-01", "CA-01",
        }  # fmt: skip
        return bool(self.rules & readers) or bool(self.consent_forms)

    def validate_guard(self, guard: Guard) -> None:
        """Called by `Guard(...)`: refuse a guard that cannot give this policy what
        its rules read, and let the guard forget cached decisions when the registry
        changes.

        Raises:
            PolicyError: the policy reads consent records and the guard's
                `consents` is not a [`ConsentRegistry`][purposeguard.policy.ConsentRegistry].
        """
        registry = guard.consents
        if self.needs_consents and not isinstance(registry, ConsentRegistry):
            got = "none" if registry is None else type(registry).__name__
            raise PolicyError(
                "this policy's rules read consent records: build the guard with "
                f"consents=ConsentRegistry() (or SQLiteConsentRegistry(path)); got {got}"
            )
        forget = getattr(guard, "forget_decisions", None)
        if isinstance(registry, ConsentRegistry) and callable(forget):
            registry.on_change(forget)

    def guard_warnings(self) -> list[str]:
        """Sentences for every deployment duty that is in force but not declared
        (the guard issues each as a [`PurposeWarning`][purposeguard.PurposeWarning])."""
        return [m for level, m in self._duty_issues() if level == "duty"]

    def lint(self) -> list[str]:
        """Every issue `policy lint` reports: undeclared duties and settings the
        rules in force depend on, each sentence starting with the rule id."""
        return [m for _, m in self._duty_issues()]

    def _duty_issues(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        on = self.rules

        def ids(*candidates: str) -> str:
            return "/".join(r for r in candidates if r in on)

        pia = ids("CN-14", "FR-04", "EU-06")
        if pia and self.impact_assessment is None:
            out.append(
                (
                    "duty",
                    f"{pia}: no impact assessment declared; carry one out before processing "
                    "and declare it (Policy(impact_assessment='PIA-...'))",
                )
            )
        nec = ids("CN-08", "FR-02")
        if nec and self.necessity is None:
            out.append(
                (
                    "duty",
                    f"{nec}: no necessity justification declared for processing biometrics "
                    "(Policy(necessity='...'))",
                )
            )
        notice = ids("IL-01", "CA-01")
        if notice and self.notice is None:
            out.append(
                (
                    "duty",
                    f"{notice}: no public notice with the retention schedule declared "
                    "(Policy(notice='https://...'))",
                )
            )
        if "FR-05" in on:
            used = (
                [p for p in self.processing if p.is_within(VERIFICATION)]
                if self.processing is not None
                else [VERIFICATION]
            )
            missing = [p for p in used if not _within(p, self.alternatives)]
            if missing:
                names = ", ".join(p.name for p in sorted(missing))
                out.append(
                    (
                        "duty",
                        f"FR-05: no alternative to face verification declared for {names}; "
                        "face recognition must not be the only way "
                        "(Policy(alternatives={'face.verification': 'PIN'}))",
                    )
                )
        store = ids("FR-03", "EU-07")
        if store and self.storage is None:
            out.append(
                (
                    "lint",
                    f"{store}: storage is not declared, so it is treated as central "
                    "(Policy(storage='device' | 'user_device' | 'central_user_key' | "
                    "'central'))",
                )
            )
        if "EU-05" in on and self.processing is None:
            out.append(
                (
                    "lint",
                    "EU-05: the purposes processed are not declared for the record of "
                    "processing (Policy(processing=[...]))",
                )
            )
        return out

    def filing_alerts(self, stats: Mapping[str, Any]) -> list[str]:
        """Alerts for a store's [`stats`][purposeguard.stores.GuardedStore.stats]: FR-07
        at 100,000 distinct subjects without a declared filing, CN-13 at 10,000,000."""
        subjects = stats.get("subjects")
        if not isinstance(subjects, int):
            return []
        out = []
        if "FR-07" in self.rules and subjects >= FILING_THRESHOLD and self.filing is None:
            out.append(
                f"FR-07: {subjects} distinct subjects stored (threshold {FILING_THRESHOLD:,}): "
                "file with the provincial CAC within 30 working days and declare it "
                "(Policy(filing='...'))"
            )
        if "CN-13" in self.rules and subjects > AUDIT_THRESHOLD:
            out.append(
                f"CN-13: {subjects} distinct subjects stored (over {AUDIT_THRESHOLD:,}): a "
                "personal-information compliance audit is due at least every two years"
            )
        return out

    def after_access(
        self,
        guard: Guard,
        operation: Operation | None,
        subjects: Sequence[str],
        now: datetime,
    ) -> None:
        """Called by the guard after a *granted* access: a granted collection or 1:1
        comparison is an interaction of the subject, which restarts BIPA's and
        Colorado's windows (IL-01, CO-01). Searches are not: a subject found in a
        gallery did not interact."""
        if operation is not Operation.COLLECT and operation is not Operation.COMPARE:
            return
        if "IL-01" not in self.rules and "CO-01" not in self.rules:
            return
        registry = guard.consents
        if isinstance(registry, ConsentRegistry):
            for s in subjects:
                registry.record_interaction(s, now)

    # -- retention -----------------------------------------------------------------------

    def latest_expiry(
        self,
        purposes: PurposeLike | Iterable[PurposeLike],
        *,
        subject: str,
        collected_at: datetime,
        consent: Consent | str | None = None,
        consents: ConsentRegistry | None = None,
    ) -> RetentionLimit | None:
        """The latest expiry this policy accepts for a template of *subject* allowing
        *purposes*, collected at *collected_at*, on *consent* (a record, or an id
        looked up in *consents*). `None`: no rule in force caps it.

        BIPA (IL-01): the earlier of the purpose's end and 3 years after the last
        interaction; Texas (TX-01): a year after the purpose's end; Colorado (CO-01):
        the earlier of the purpose's end and 24 months after the last interaction;
        PIPL and GDPR (CN-06, EU-04): the consent's term. The purpose ends at
        `consent.given_at + consent.term`; without a term, the preset's cap counts
        from the collection (Texas: the purpose is taken to end at collection).
        """
        allowed = purpose_set(purposes, "purposes")
        collected = ensure_aware(collected_at, "collected_at")
        record = consent
        if isinstance(consent, str):
            record = consents.get(consent) if consents is not None else None
        last = collected
        if consents is not None:
            seen = consents.last_interaction(subject)
            if seen is not None and seen > last:
                last = seen
        caps = self._caps(
            allowed, record if isinstance(record, Consent) else None, collected, last
        )
        if not caps:
            return None
        caps.sort(key=lambda c: (c[1], c[0]))
        latest = caps[0][1]
        return RetentionLimit(
            latest=latest,
            rule_ids=tuple(r for r, at in caps if at == latest),
            caps=tuple(caps),
        )

    def _caps(
        self,
        allowed: frozenset[Purpose],
        record: Consent | None,
        collected: datetime,
        last: datetime,
    ) -> list[tuple[str, datetime]]:
        on = self.rules
        end = record.ends_at if record is not None else None
        caps: list[tuple[str, datetime]] = []
        if end is not None:
            caps.extend((r, end) for r in ("CN-06", "EU-04") if r in on)
        for rid, months in _WINDOWS.items():
            if rid in on:
                window = add_months(last, months)
                caps.append((rid, window if end is None else min(end, window)))
        if "TX-01" in on:
            caps.append(("TX-01", add_months(end if end is not None else collected, 12)))
        for p, cap in self.max_retention.items():
            if any(a.is_within(p) or p.is_within(a) for a in allowed):
                try:
                    caps.append((LOCAL_RETENTION, collected + cap))
                except OverflowError:
                    caps.append((LOCAL_RETENTION, FAR_FUTURE))
        return caps

    def check_retention(
        self,
        *,
        guard: Guard,
        purposes: frozenset[Purpose],
        subject: str,
        consent: str | None,
        collected_at: datetime,
        expires_at: datetime,
    ) -> None:
        """Called by `FaceTemplate.wrap` (and `rebind`): refuse an expiry beyond
        [`latest_expiry`][purposeguard.policy.Policy.latest_expiry]. Never clamps.

        Raises:
            PolicyError: naming every rule whose cap the expiry exceeds and the latest
                expiry accepted.
        """
        registry = guard.consents if isinstance(guard.consents, ConsentRegistry) else None
        limit = self.latest_expiry(
            purposes,
            subject=subject,
            collected_at=collected_at,
            consent=consent,
            consents=registry,
        )
        if limit is None or expires_at <= limit.latest:
            return
        broken = [r for r, at in limit.caps if expires_at > at]
        raise PolicyError(
            f"expiry {expires_at.isoformat()} exceeds the retention allowed by "
            f"{', '.join(dict.fromkeys(broken))}; the latest expiry accepted is "
            f"{limit.latest.isoformat()} [rules: {', '.join(dict.fromkeys(broken))}]"
        )

    # -- evaluation ----------------------------------------------------------------------

    def evaluate(self, request: AccessRequest) -> list[RuleFinding]:
        """The findings of every rule that denies *request* (empty: no objection).

        No side effects on what is decided: rules are compiled once per (allowed
        purposes, purpose, operation), and a granted verdict is remembered per (those,
        consent id, subject, collection time) until the time it stands or a change in
        the consent registry.
        """
        p = request.purpose
        if p is None:
            return []
        label = request.label
        op = request.operation
        registry = request.consents
        # Keyed by strings and cached hashes, not by Purpose and Operation (whose
        # hashes are computed in Python).
        key = (
            label.allowed,
            p._name,
            None if op is None else op._value_,
            label.consent,
            label.subject,
            label.collected_at,
        )
        if request.context is None:
            hit = self._granted.get(key)
            if (
                hit is not None
                and hit.registry is registry
                and hit.generation == registry.generation  # type: ignore[attr-defined]
                and hit.since <= request.now < hit.until
            ):
                self._last[0] = (request, hit.until)
                return []
        plan = self._plan(label.allowed, p, op)
        if not plan.dynamic:
            return list(plan.static)
        generation = registry.generation if isinstance(registry, ConsentRegistry) else None
        findings = list(plan.static)
        self._dynamic(plan, request, findings)
        if (
            not findings
            and not plan.capture
            and request.context is None
            and generation is not None
        ):
            until = self._until(plan, request)
            if until is not None:
                if len(self._granted) >= _GRANTED_LIMIT:
                    self._granted.clear()
                self._granted[key] = _Granted(
                    registry=registry, generation=generation, since=request.now, until=until
                )
                self._last[0] = (request, until)
        return findings

    def remembered_until(
        self,
        label: Label,
        purpose: Purpose,
        operation: Operation | None,
        now: datetime,
        consents: object,
    ) -> datetime | None:
        """Called by the guard before it builds a request: if
        [`evaluate`][purposeguard.policy.Policy.evaluate] granted this question (same allowed
        purposes, purpose, operation, consent, subject and collection time, no context) and the
        verdict still stands at *now* with the registry unchanged, until when; otherwise `None`
        (the guard then evaluates). Never denies by itself."""
        hit = self._granted.get(
            (
                label.allowed,
                purpose._name,
                None if operation is None else operation._value_,
                label.consent,
                label.subject,
                label.collected_at,
            )
        )
        if (
            hit is not None
            and hit.registry is consents
            and hit.generation == consents.generation  # type: ignore[attr-defined]
            and hit.since <= now < hit.until
        ):
            return min(hit.until, label.expires_at)
        return None

    def _plan(self, allowed: frozenset[Purpose], p: Purpose, op: Operation | None) -> _Plan:
        key = (allowed, p._name, None if op is None else op._value_)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._compile(allowed, p, op)
            if len(self._plans) >= _PLAN_LIMIT:
                self._plans.clear()
            self._plans[key] = plan
        return plan

    def granted_until(self, request: AccessRequest) -> datetime | None:
        """Called by the guard after a granted decision: until when the same decision
        stands, if nothing in the consent registry changes (the registry tells the
        guard when it does). `None`: do not reuse it."""
        last = self._last[0]
        if last is not None and last[0] is request:
            return last[1]  # what evaluate() just found for this very request
        if request.context is not None or request.purpose is None:
            return None
        return self._until(self._plan(request.label.allowed, request.purpose, request.operation),
                           request)  # fmt: skip

    def _until(self, plan: _Plan, request: AccessRequest) -> datetime | None:
        until = request.label.expires_at
        registry = request.consents
        if not isinstance(registry, ConsentRegistry):
            return until if not plan.dynamic else None
        label = request.label
        record = registry.get(label.consent) if label.consent is not None else None
        if plan.term and record is not None and record.ends_at is not None:
            until = min(until, record.ends_at)
        if plan.windows:
            last = _last_interaction(registry, label)
            if last is None:
                return None
            for _, months in plan.windows:
                until = min(until, add_months(last, months))
        for target in plan.authorise:
            auth = registry.authorisation_for(target, request.now)
            if auth is None:
                return None
            until = min(until, auth.expires_at)
        return until

    def _form_applies(self, rule: str, p: Purpose) -> bool:
        if p.is_within(PUBLIC_SECURITY):
            return False  # Art 26 / Directive 2016/680: not consent-based (see AI-02)
        if rule == "FR-02" and "FR-01" in self.rules and p.is_within(MODEL_DEVELOPMENT):
            return False
        return not (rule == "EU-01" and not _within(p, _IDENTIFYING))

    def _compile(self, allowed: frozenset[Purpose], p: Purpose, op: Operation | None) -> _Plan:
        on = self.rules
        static: list[RuleFinding] = []
        collect = op is Operation.COLLECT
        targets = sorted(allowed) if collect else [p]

        def deny(rule: str, reason: str, error: type[AccessDeniedError]) -> None:
            static.append(RuleFinding(rule, reason, error))

        # A collection is refused if the label allows a banned purpose, and also if it
        # happens for one: collecting inside a banned purpose's scope, under a label
        # that allows an ancestor of it, is processing for the banned purpose.
        for t in sorted({*targets, p}):
            for b in sorted(self.banned):
                if t.is_within(b):
                    deny(LOCAL_BAN, f"the deployment bans {b.name!r} ({t.name!r})",
                         PurposeViolationError)  # fmt: skip
            if "IL-03" in on and t.is_within(SALE):
                deny("IL-03", f"{t.name!r}: selling face data is refused even with consent",
                     PurposeViolationError)  # fmt: skip
            if "AI-03" in on and t.is_within(SENSITIVE_CATEGORISATION):
                deny("AI-03", f"{t.name!r}: inferring sensitive traits from faces is banned",
                     PurposeViolationError)  # fmt: skip
            if "AI-02" in on and t.is_within(PUBLIC_SECURITY) and not _within(t, POLICE_CASES):
                deny(
                    "AI-02",
                    f"{t.name!r}: public-security face recognition is banned in the EU "
                    "outside the three authorised police cases (victim search, imminent "
                    "threat, serious crime)",
                    PurposeViolationError,
                )
        if collect and "CN-01" in on and ROOT in allowed:
            deny("CN-01", "the label allows the whole of 'face': name specific purposes",
                 PurposeViolationError)  # fmt: skip
        eu07 = op is Operation.STORE and "EU-07" in on and p.is_within(VERIFICATION)
        if eu07 and self.storage not in _PERSON_HELD:
            where = "undeclared (central)" if self.storage is None else self.storage.value
            deny(
                "EU-07",
                f"1:1 verification templates must be held by the person or under "
                f"their key; storage is {where}",
                PurposeViolationError,
            )
        needs: list[_Need] = []
        quick = []
        for t in targets:
            mine = self._needs(t)
            needs.extend(mine)
            if mine:
                quick.append(
                    (
                        t,
                        max((n.form.rank for n in mine if n.form is not None), default=-1),
                        any(n.consent_basis for n in mine),
                        any(n.notice for n in mine),
                        any(n.cover for n in mine),
                        any(n.before for n in mine),
                    )
                )
        authorise = tuple(
            t
            for t in targets
            if "AI-02" in on and (t.is_within(REALTIME) or _within(t, POLICE_CASES))
        )
        fr = "FR-03" in on and not ("FR-01" in on and p.is_within(MODEL_DEVELOPMENT))
        store_transfer = op is Operation.STORE and fr and self.storage not in _ON_DEVICE
        withdrawal = tuple(r for r in _WITHDRAWAL_RULES if r in on)
        term = tuple(r for r in _TERM_RULES if r in on)
        windows = tuple((r, m) for r, m in _WINDOWS.items() if r in on)
        limit = "CA-01" in on and not p.is_within(VERIFICATION)
        return _Plan(
            static=tuple(static),
            needs=tuple(needs),
            quick=tuple(quick),
            capture=collect,
            withdrawal=withdrawal,
            term=term,
            windows=windows,
            limit=limit,
            authorise=authorise,
            store_transfer=store_transfer,
            export=op is Operation.EXPORT,
            dynamic=bool(
                needs
                or collect
                or withdrawal
                or term
                or windows
                or limit
                or authorise
                or store_transfer
                or op is Operation.EXPORT
            ),
        )

    def _needs(self, t: Purpose) -> list[_Need]:
        on = self.rules
        out: list[_Need] = []

        def need(rule: str, **kw: Any) -> None:
            base: dict[str, Any] = {
                "record": True, "form": None, "consent_basis": False, "notice": False,
                "cover": False, "before": False,
            }  # fmt: skip
            base.update(kw)
            out.append(_Need(rule=rule, purpose=t, **base))

        if t.is_within(PUBLIC_SECURITY):
            return out  # not consent-based; AI-02 and CN-07 govern it
        if "CN-02" in on:
            need("CN-02")
        if "CN-03" in on:
            need("CN-03", record=False, cover=True)
        if "CN-05" in on:
            need("CN-05", record=False, notice=True)
        if "CN-08" in on:
            need("CN-08", record=False, form=ConsentForm.SEPARATE, cover=True, before=True)
        if "FR-02" in on and self._form_applies("FR-02", t):
            need("FR-02", form=ConsentForm.SEPARATE, notice=True, before=True)
        if "EU-01" in on and self._form_applies("EU-01", t):
            need("EU-01", form=ConsentForm.EXPLICIT, cover=True, before=True)
        if "EU-02" in on and self._form_applies("EU-01", t):
            need("EU-02", record=False, cover=True)
        if "IL-02" in on:
            need("IL-02", form=ConsentForm.WRITTEN, consent_basis=True, notice=True,
                 cover=True, before=True)  # fmt: skip
        if "TX-01" in on:
            need("TX-01", form=ConsentForm.PLAIN, consent_basis=True, notice=True,
                 cover=True, before=True)  # fmt: skip
        if "WA-01" in on:
            need("WA-01", form=ConsentForm.OPT_OUT, cover=True, before=True)
        for q, form in self.consent_forms.items():
            if t.is_within(q):
                need(LOCAL_FORM, form=form, cover=True, before=True)
        return out

    def _dynamic(self, plan: _Plan, request: AccessRequest, out: list[RuleFinding]) -> None:
        label = request.label
        now = request.now
        registry = request.consents if isinstance(request.consents, ConsentRegistry) else None
        cid = label.consent
        record = registry.get(cid) if registry is not None and cid is not None else None
        mine = record if record is not None and record.subject == label.subject else None
        if plan.needs and not _quick_ok(plan.quick, label, mine):
            _check_needs(plan.needs, label, cid, record, mine, out)
        withdrawn = (
            record is not None
            and registry is not None
            and plan.withdrawal
            and registry.withdrawn_at(record.id) is not None
        )
        if withdrawn:
            assert record is not None
            for r in plan.withdrawal:
                out.append(RuleFinding(r, f"consent {record.id!r} was withdrawn", ConsentError))
        if mine is not None and plan.term:
            end = mine.ends_at
            if end is not None and now >= end:
                for r in plan.term:
                    out.append(
                        RuleFinding(
                            r,
                            f"the purpose consented to in {mine.id!r} ended at {end.isoformat()}",
                            ExpiredTemplateError,
                        )
                    )
        if plan.windows and registry is not None:
            last = _last_interaction(registry, label)
            for r, months in plan.windows:
                if last is None or now >= add_months(last, months):
                    when = "no interaction on record" if last is None else last.isoformat()
                    out.append(
                        RuleFinding(
                            r,
                            f"more than {months} months since the subject's last "
                            f"interaction ({when})",
                            ExpiredTemplateError,
                        )
                    )
        if plan.limit and registry is not None and registry.limit_requested(label.subject):
            out.append(
                RuleFinding(
                    "CA-01",
                    "the subject limited the use of their sensitive data to the service "
                    "they asked for (1:1 verification)",
                    ConsentError,
                )
            )
        for target in plan.authorise:
            if registry is None or registry.authorisation_for(target, now) is None:
                out.append(
                    RuleFinding(
                        "AI-02",
                        f"{target.name!r}: real-time remote identification needs a prior "
                        "authorisation in force (ConsentRegistry.add_authorisation)",
                        PurposeViolationError,
                    )
                )
        if plan.store_transfer and not _transfer_ok(mine):
            out.append(
                RuleFinding(
                    "FR-03",
                    "face data leaves the recognition device (storage is not on the device) "
                    "without separate consent to the transfer",
                    ConsentError,
                )
            )
        if plan.export:
            self._export(request, mine, out)
        if plan.capture:
            self._capture(request, mine, out)

    def _export(
        self, request: AccessRequest, mine: Consent | None, out: list[RuleFinding]
    ) -> None:
        on = self.rules
        ctx = request.context
        d = ctx if isinstance(ctx, Disclosure) else None
        p = request.purpose
        assert p is not None
        fr_scope = not ("FR-01" in on and p.is_within(MODEL_DEVELOPMENT))

        def deny(rule: str, reason: str, error: type[AccessDeniedError] = ConsentError) -> None:
            out.append(RuleFinding(rule, reason, error))

        lawful = d is not None and d.reason in _LAWFUL_DISCLOSURE
        if "FR-03" in on and fr_scope and not lawful and not _transfer_ok(mine):
            deny("FR-03", "exporting face data off the device needs separate consent to the "
                 "transfer (Consent(transfer=True, form='separate'))")  # fmt: skip
        if d is None:
            return
        named = mine is not None and d.recipient in mine.recipients
        strong = mine is not None and mine.form.rank >= ConsentForm.SEPARATE.rank
        if d.sale:
            if "IL-03" in on:
                deny("IL-03", "selling face data is refused even with consent",
                     PurposeViolationError)  # fmt: skip
            if "WA-01" in on:
                fresh = mine is not None and request.now - mine.given_at <= timedelta(days=365)
                if not (named and mine is not None and mine.form is ConsentForm.WRITTEN and fresh):
                    deny("WA-01", f"a sale to {d.recipient!r} needs a signed authorisation "
                         "naming the recipient, given within the last year")  # fmt: skip
        if "CN-10" in on and not lawful and not (named and strong):
            deny("CN-10", f"disclosure to {d.recipient!r} needs separate consent naming "
                 "that recipient")  # fmt: skip
        if "IL-04" in on and d.reason is DisclosureReason.CONSENT and not named:
            deny("IL-04", f"disclosure to {d.recipient!r} on consent needs a consent naming "
                 "that recipient")  # fmt: skip
        if "WA-01" in on and not d.sale and not lawful and not (named and strong):
            deny("WA-01", f"sharing with {d.recipient!r} needs separate consent naming that "
                 "recipient")  # fmt: skip
        if "CN-11" in on and d.cross_border:
            missing = []
            if not _transfer_ok(mine):
                missing.append("separate consent to the transfer")
            if d.mechanism is None:
                missing.append("a transfer mechanism (CAC assessment, certification or "
                               "standard contract)")  # fmt: skip
            if self.impact_assessment is None:
                missing.append("an impact assessment")
            if missing:
                deny("CN-11", f"cross-border transfer lacks {', '.join(missing)}")

    def _capture(
        self, request: AccessRequest, mine: Consent | None, out: list[RuleFinding]
    ) -> None:
        on = self.rules
        label = request.label
        ctx = request.context
        if not isinstance(ctx, CollectionContext):
            collected = label.collected_at
            fresh = (
                not label.lineage
                and collected is not None
                and request.now - collected <= _CAPTURE_WINDOW
            )
            if not fresh:
                # Not a capture (unsealing, data collected earlier, a rebind): the
                # collection rules applied when the face was captured.
                return
            needing: list[str] = [r for r in ("AI-01", "FR-06", "CN-07") if r in on]
            if "AI-03" in on and any(a.is_within(EMOTION) for a in label.allowed):
                needing.append("AI-03")
            for r in needing:
                out.append(
                    RuleFinding(
                        r,
                        "no CollectionContext: say where and how the face was captured "
                        "(wrap(..., context=CollectionContext(place=..., source=...)))",
                        PurposeViolationError,
                    )
                )
            return
        if "AI-01" in on and ctx.source in (Source.WEB_SCRAPE, Source.CCTV_BULK):
            out.append(
                RuleFinding(
                    "AI-01",
                    f"enrolment from untargeted {ctx.source.value} is banned",
                    PurposeViolationError,
                )
            )
        if "FR-06" in on and ctx.forbidden_zone:
            out.append(
                RuleFinding(
                    "FR-06",
                    f"faces must never be captured in a {ctx.zone}",
                    PurposeViolationError,
                )
            )
        if "AI-03" in on and ctx.zone in WORK_OR_SCHOOL_ZONES:
            for a in sorted(label.allowed):
                if a.is_within(EMOTION) or EMOTION.is_within(a):
                    out.append(
                        RuleFinding(
                            "AI-03",
                            f"emotion recognition in a {ctx.zone} is banned",
                            PurposeViolationError,
                        )
                    )
                    break
        if ctx.place is Place.PUBLIC:
            lock = [r for r in ("CN-07", "FR-06") if r in on]
            for a in sorted(label.allowed):
                if a.is_within(PUBLIC_SECURITY) or not lock:
                    continue
                ok = (
                    mine is not None
                    and mine.basis is LegalBasis.CONSENT
                    and mine.form.rank >= ConsentForm.SEPARATE.rank
                    and mine.covers(a)
                )
                if not ok:
                    for r in lock:
                        if r == "FR-06" and "FR-01" in on and a.is_within(MODEL_DEVELOPMENT):
                            continue
                        out.append(
                            RuleFinding(
                                r,
                                f"captured in a public place: usable only for public "
                                f"security; {a.name!r} needs separate consent covering it",
                                ConsentError,
                            )
                        )
            if "CN-07" in on and not ctx.signage:
                out.append(
                    RuleFinding(
                        "CN-07",
                        "public-place capture needs signs announcing it (signage=True)",
                        PurposeViolationError,
                    )
                )
        age = ctx.subject_age
        if age is not None and (mine is None or mine.guardian is None):
            guardians: list[str] = []
            if age < _MINOR_CN:
                guardians += [r for r in ("CN-08", "FR-02") if r in on]
            online = ctx.source is Source.UPLOAD
            if online and age < _MINOR_EU_ONLINE and "EU-01" in on:
                guardians.append("EU-01")
            for r in guardians:
                out.append(
                    RuleFinding(
                        r,
                        f"the subject is {age}: consent must come from a guardian "
                        "(Consent(guardian=...))",
                        ConsentError,
                    )
                )


def _transfer_ok(mine: Consent | None) -> bool:
    return (
        mine is not None
        and mine.transfer
        and mine.basis is LegalBasis.CONSENT
        and mine.form.rank >= ConsentForm.SEPARATE.rank
    )


def _last_interaction(registry: ConsentRegistry, label: Label) -> datetime | None:
    last = label.collected_at
    seen = registry.last_interaction(label.subject)
    if seen is not None and (last is None or seen > last):
        last = seen
    return last


def _quick_ok(
    quick: tuple[tuple[Purpose, int, bool, bool, bool, bool], ...],
    label: Label,
    mine: Consent | None,
) -> bool:
    if mine is None:
        return False
    by_consent = mine.basis is LegalBasis.CONSENT
    rank = mine.form.rank
    collected = label.collected_at
    for t, need_rank, basis, notice, cover, before in quick:
        if basis and not by_consent:
            return False
        if by_consent and (rank < need_rank or (notice and mine.notice is None)):
            return False
        if cover and not mine.covers(t):
            return False
        if before and (collected is None or mine.given_at > collected):
            return False
    return True


def _check_needs(
    needs: tuple[_Need, ...],
    label: Label,
    cid: str | None,
    record: Consent | None,
    mine: Consent | None,
    out: list[RuleFinding],
) -> None:
    for n in needs:
        t = n.purpose.name
        if mine is None:
            if not n.record:
                continue
            if cid is None:
                why = f"{t!r}: the template rests on no consent record"
            elif record is None:
                why = f"{t!r}: consent {cid!r} is not registered"
            else:
                why = f"{t!r}: consent {cid!r} belongs to another subject"
            out.append(RuleFinding(n.rule, why, ConsentError))
            continue
        by_consent = mine.basis is LegalBasis.CONSENT
        if n.consent_basis and not by_consent:
            out.append(
                RuleFinding(
                    n.rule,
                    f"{t!r}: needs the subject's consent; {mine.id!r} rests on {mine.basis.value}",
                    ConsentError,
                )
            )
        if n.form is not None and by_consent and mine.form.rank < n.form.rank:
            out.append(
                RuleFinding(
                    n.rule,
                    f"{t!r}: consent {mine.id!r} is {mine.form.value!r}; "
                    f"{n.form.value!r} or stronger is required",
                    ConsentError,
                )
            )
        if n.cover and not mine.covers(n.purpose):
            out.append(
                RuleFinding(
                    n.rule,
                    f"{t!r} is not covered by consent {mine.id!r}: a new purpose needs "
                    "fresh consent (rebind)",
                    ConsentError,
                )
            )
        if n.notice and by_consent and mine.notice is None:
            out.append(
                RuleFinding(
                    n.rule, f"consent {mine.id!r} names no notice shown first", ConsentError
                )
            )
        if n.before and (label.collected_at is None or mine.given_at > label.collected_at):
            out.append(
                RuleFinding(
                    n.rule,
                    f"consent {mine.id!r} was not given before the collection",
                    ConsentError,
                )
            )


RULE_ENFORCEMENT: Final = MappingProxyType({r.id: r.enforcement for r in RULES.values()})
_ = Enforcement  # re-exported through RULES
