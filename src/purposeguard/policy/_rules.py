"""The rule table: every rule id of the legal rule map, how the library treats it, and
which presets put it in force."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

import attrs

__all__ = ["PRESETS", "RULES", "Enforcement", "Rule"]


class Enforcement(enum.StrEnum):
    """How purposeguard treats a rule."""

    ENFORCED = "enforced"
    """The policy denies what breaks it, naming the rule id."""
    DUTY = "duty"
    """A duty of the deployment, declared on the Policy; a missing declaration is
    reported (`PurposeWarning` when a guard is built, `policy lint`, `report`)."""
    RECORDED = "recorded"
    """The library provides the means or keeps the record (audit log, erasure, alerts);
    whether the deployment meets the duty cannot be checked in code."""


@attrs.frozen
class Rule:
    """One rule of the legal rule map (the documentation's reference page "Rule map").

    Attributes:
        id: the rule id, e.g. `"IL-03"`.
        source: the article or section it comes from.
        summary: what it requires, in one sentence.
        enforcement: how purposeguard treats it.
        enforced_by: what in purposeguard enforces or records it.
    """

    id: str
    source: str
    summary: str
    enforcement: Enforcement
    enforced_by: str


_E, _D, _R = Enforcement.ENFORCED, Enforcement.DUTY, Enforcement.RECORDED


def _rules() -> dict[str, Rule]:
    table = [
        # China: PIPL
        (
            "CN-01",
            "PIPL Art 5-6",
            "Specific purpose from a closed taxonomy; no wildcard.",
            _E,
            "taxonomy + label conformance (core); the policy refuses a label allowing the bare "
            "root 'face' at collection",
        ),
        (
            "CN-02",
            "PIPL Art 13",
            "A lawful basis on record (consent or one of bases 2-7).",
            _E,
            "policy: a template must name a registered consent record of its subject, except "
            "public security (Art 26)",
        ),
        (
            "CN-03",
            "PIPL Art 14(2)",
            "A change of purpose needs new consent.",
            _E,
            "policy: the consent must cover the purpose in use; FaceTemplate.rebind with a "
            "fresh consent",
        ),
        (
            "CN-04",
            "PIPL Art 15-16",
            "Easy withdrawal.",
            _R,
            "ConsentRegistry.withdraw, GuardedStore.withdraw_consent",
        ),
        (
            "CN-05",
            "PIPL Art 17, 30",
            "Notice before consent.",
            _E,
            "policy: a consent record must name the notice shown (Consent.notice)",
        ),
        (
            "CN-06",
            "PIPL Art 19",
            "Shortest retention; finite expiry.",
            _E,
            "core: finite expires_at; policy: expiry within the consent's term",
        ),
        (
            "CN-07",
            "PIPL Art 26",
            "Public-place capture only for public security, with signs, unless separate consent.",
            _E,
            "policy at collection: CollectionContext(place='public')",
        ),
        (
            "CN-08",
            "PIPL Art 28-29, 31",
            "Biometrics are sensitive: separate consent, before "
            "collection; guardian under 14; necessity.",
            _E,
            "policy: consent form, coverage, given_at, guardian; necessity is a declared duty",
        ),
        (
            "CN-09",
            "PIPL Art 47",
            "Stop and delete on withdrawal or when the purpose ends.",
            _E,
            "policy: withdrawn consent or ended term denies every use; stores erase",
        ),
        (
            "CN-10",
            "PIPL Art 23, 25",
            "Sharing needs separate consent naming the recipient.",
            _E,
            "policy on EXPORT with a Disclosure context",
        ),
        (
            "CN-11",
            "PIPL Art 38-39, 55",
            "Cross-border transfer: mechanism, separate consent, PIA.",
            _E,
            "policy on EXPORT with Disclosure(cross_border=True)",
        ),
        (
            "CN-12",
            "PIPL Art 51",
            "Encryption, access control, audit.",
            _R,
            "core audit of every access; purposeguard.crypto sealing",
        ),
        (
            "CN-13",
            "PIPL Art 54",
            "Regular compliance audits; over 10 M people every 2 years.",
            _R,
            "GuardedStore.stats() alerts at 10,000,000 subjects",
        ),
        (
            "CN-14",
            "PIPL Art 55-56",
            "Impact assessment before sensitive processing; kept 3 years.",
            _D,
            "Policy(impact_assessment=...)",
        ),
        # China: face-recognition measures
        (
            "FR-01",
            "CN Measures Art 2",
            "R&D and algorithm training are outside the Measures.",
            _E,
            "policy: FR rules do not apply to face.model_development",
        ),
        (
            "FR-02",
            "CN Measures Art 4-7",
            "Notice, separate consent, guardian under 14.",
            _E,
            "policy: consent form, notice, guardian",
        ),
        (
            "FR-03",
            "CN Measures Art 8",
            "Face data stays in the device unless separate consent to transfer.",
            _E,
            "policy on STORE (central storage) and EXPORT",
        ),
        (
            "FR-04",
            "CN Measures Art 9",
            "Impact assessment with 4 points; redo on change.",
            _D,
            "Policy(impact_assessment=...)",
        ),
        (
            "FR-05",
            "CN Measures Art 10, 12",
            "Not the only verification method: an alternative.",
            _D,
            "Policy(alternatives={'face.verification': ...})",
        ),
        (
            "FR-06",
            "CN Measures Art 13",
            "Public places: public security only; never in hotel "
            "rooms, baths, changing rooms, toilets.",
            _E,
            "policy at collection: place and zone",
        ),
        (
            "FR-07",
            "CN Measures Art 15",
            "File with the CAC on reaching 100,000 people.",
            _R,
            "GuardedStore.stats() alerts at 100,000 subjects; Policy(filing=...)",
        ),
        # EU
        (
            "EU-01",
            "GDPR 9(1)(2)",
            "Explicit consent or a cited 9(2) ground for identifying use.",
            _E,
            "policy: consent form or Consent(basis=..., ground=...)",
        ),
        (
            "EU-02",
            "GDPR 5(1)(b), 6(4)",
            "Further use only with new consent (conservative).",
            _E,
            "policy: the consent must cover the purpose in use; rebind",
        ),
        (
            "EU-03",
            "GDPR 5(1)(c), 25",
            "Minimise: templates not images; zeroise probes.",
            _R,
            "templates only; values never leave unchecked",
        ),
        (
            "EU-04",
            "GDPR 5(1)(e), 7(3), 17",
            "Storage limitation; withdrawal; erasure.",
            _E,
            "policy: withdrawn consent or ended term denies; expiry within the term",
        ),
        (
            "EU-05",
            "GDPR 30",
            "Record of processing activities.",
            _R,
            "report (processing purposes declared on the Policy)",
        ),
        (
            "EU-06",
            "GDPR 35",
            "DPIA for large-scale biometrics or public monitoring.",
            _D,
            "Policy(impact_assessment=...)",
        ),
        (
            "EU-07",
            "EDPB Opinion 11/2024",
            "1:1 verification only with person-held templates or keys.",
            _E,
            "policy on STORE: Policy(storage=...)",
        ),
        (
            "AI-01",
            "AI Act 5(1)(e)",
            "No untargeted scraping to build face databases.",
            _E,
            "policy at collection: source web_scrape or cctv_bulk",
        ),
        (
            "AI-02",
            "AI Act 5(1)(h), 5(2)-(5)",
            "Real-time remote identification: 3 police cases with prior authorisation only.",
            _E,
            "policy: Authorisation records",
        ),
        (
            "AI-03",
            "AI Act 5(1)(f)(g)",
            "No emotion recognition at work or school; no sensitive categorisation.",
            _E,
            "policy: purpose and zone",
        ),
        (
            "AI-04",
            "AI Act Annex III, 12, 14, 26",
            "Log remote identification; two-person confirmation.",
            _R,
            "audit events of every SEARCH",
        ),
        # US states
        (
            "IL-01",
            "BIPA 15(a)",
            "Destroy at purpose end or 3 years after last interaction.",
            _E,
            "policy: retention cap at wrap; uses refused after the window",
        ),
        (
            "IL-02",
            "BIPA 15(b)",
            "Written notice of purpose and term; written release.",
            _E,
            "policy: consent form 'written' with a notice",
        ),
        (
            "IL-03",
            "BIPA 15(c)",
            "No sale or profit, even with consent.",
            _E,
            "policy: face.commercial.sale and Disclosure(sale=True) refused",
        ),
        (
            "IL-04",
            "BIPA 15(d)-(e)",
            "Disclosure only with consent, for a transaction, by law or warrant.",
            _E,
            "policy on EXPORT with a Disclosure",
        ),
        (
            "TX-01",
            "Tex. Bus. & Com. Code 503.001",
            "Notice and consent before capture; destroy within a year of purpose end.",
            _E,
            "policy: consent and retention cap",
        ),
        (
            "WA-01",
            "RCW 19.375.020; MHMDA",
            "Consent or opt-out before enrolment; separate "
            "consent to share; signed authorisation to sell.",
            _E,
            "policy: consent and EXPORT",
        ),
        (
            "CO-01",
            "Colorado Privacy Act (HB24-1130)",
            "Delete at purpose end or 24 months after last interaction.",
            _E,
            "policy: retention cap at wrap; uses refused after",
        ),
        (
            "CA-01",
            "CCPA 1798.121",
            "Right to limit the use of sensitive data.",
            _E,
            "policy: ConsentRegistry.request_limit blocks all but verification",
        ),
        # Standards
        (
            "ST-01",
            "ISO/IEC 24745",
            "Irreversible, unlinkable, renewable templates.",
            _R,
            "purposeguard.crypto per-purpose projections and key rotation",
        ),
        (
            "ST-02",
            "ISO/IEC 30107-3",
            "Presentation-attack detection tested.",
            _R,
            "face.liveness purpose; not checkable in code",
        ),
        (
            "ST-03",
            "NIST SP 800-63B",
            "Biometrics only with a physical authenticator.",
            _R,
            "not checkable in code",
        ),
        (
            "ST-04",
            "GB/T 41819-2022",
            "Delete raw images after matching.",
            _R,
            "templates only; images never enter purposeguard",
        ),
    ]
    return {
        rid: Rule(id=rid, source=src, summary=summ, enforcement=kind, enforced_by=by)
        for rid, src, summ, kind, by in table
    }


RULES: Final[Mapping[str, Rule]] = MappingProxyType(_rules())
"""Every rule id of the legal rule map, with how purposeguard treats it."""

_STANDARDS: Final = ("ST-01", "ST-02", "ST-03", "ST-04")


def _ids(prefix: str, n: int) -> tuple[str, ...]:
    return tuple(f"{prefix}-{i:02d}" for i in range(1, n + 1))


PRESETS: Final[Mapping[str, frozenset[str]]] = MappingProxyType(
    {
        "pipl": frozenset(_ids("CN", 14) + _STANDARDS),
        "cn_face_2025": frozenset(_ids("FR", 7) + _STANDARDS),
        "gdpr": frozenset(_ids("EU", 7) + _STANDARDS),
        "eu_ai_act": frozenset(_ids("AI", 4) + _STANDARDS),
        "bipa": frozenset(_ids("IL", 4) + _STANDARDS),
        "texas_cubi": frozenset(("TX-01", *_STANDARDS)),
        "washington": frozenset(("WA-01", *_STANDARDS)),
        "colorado": frozenset(("CO-01", *_STANDARDS)),
        "ccpa": frozenset(("CA-01", *_STANDARDS)),
    }
)
"""The rule ids each preset puts in force."""
