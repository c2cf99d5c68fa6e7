"""Building the record of processing from a store, its policy, its consents and its log.

Everything here reads metadata only: labels (purposes, subject, consent id, times),
consent records, policy settings and audit events. No template vector is read by the
builder itself, and no subject id or consent id is copied into a
[`Report`][purposeguard.reports.Report]: subjects appear only as counts.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections import Counter
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import attrs
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from purposeguard._errors import PolicyError
from purposeguard._labels import Label
from purposeguard._purposes import Purpose
from purposeguard._taxonomy import Taxonomy
from purposeguard.audit import verify
from purposeguard.policy import (
    FILING_THRESHOLD,
    ConsentForm,
    ConsentRegistry,
    LegalBasis,
    Policy,
    SQLiteConsentRegistry,
)
from purposeguard.policy._policy import _FORMS  # the consent form each rule asks for
from purposeguard.stores import GuardedStore, MemoryBackend, SQLiteBackend

__all__ = [
    "NO_RULE",
    "AuditSummary",
    "ConsentSummary",
    "FilingState",
    "PurposeEntry",
    "Report",
    "build_report",
]

NO_RULE: Final = "(label or scope)"
"""The bucket of denials that name no rule id: the label did not permit the purpose,
no purpose was declared, the template expired, a grant was missing."""

_ERASURE_KINDS: Final = ("erase_subject", "withdraw_consent", "purge_expired")
_ERASURE_RE: Final = re.compile(
    r"\A(?P<kind>erase_subject|purge_expired|withdraw_consent .*?) removed (?P<n>[0-9]+)(?::|\Z)"
)


def _frozen_map(value: Mapping[Any, Any]) -> Mapping[Any, Any]:
    return MappingProxyType(dict(value))


@attrs.frozen(kw_only=True)
class PurposeEntry:
    """One purpose of the record of processing.

    Attributes:
        purpose: the purpose's name.
        description: the taxonomy's sentence for it ("" if none).
        sensitive: whether the taxonomy marks it as sensitive processing.
        declared: whether the policy declares it in `processing` (`None`: the
            policy declares no processing list, or there is no policy).
        templates: stored templates whose label allows it.
        subjects: distinct subjects among those templates.
        consent_form: the strongest consent form the rules in force ask for it
            (`None`: none asked, or no policy).
        retention_rules: the retention caps in force for it, one sentence each,
            starting with the rule id.
        longest_days: the longest retention among its templates (expiry minus
            collection, in days), `None` if no template has a collection time.
        latest_expiry: the latest expiry among its templates.
        expired: its templates already expired at the report's time (due for purge).
        beyond_cap: its templates whose expiry lies beyond what the policy accepts
            today (checked with
            [`Policy.latest_expiry`][purposeguard.policy.Policy.latest_expiry]).
        granted: granted uses under it in the audit log.
        denied: denied or would-deny uses under it in the audit log.
    """

    purpose: str
    description: str = ""
    sensitive: bool = False
    declared: bool | None = None
    templates: int = 0
    subjects: int = 0
    consent_form: str | None = None
    retention_rules: tuple[str, ...] = ()
    longest_days: float | None = None
    latest_expiry: datetime | None = None
    expired: int = 0
    beyond_cap: int = 0
    granted: int = 0
    denied: int = 0


@attrs.frozen(kw_only=True)
class ConsentSummary:
    """The consent registry in counts (no ids, no subjects).

    Attributes:
        total: consent records registered.
        withdrawn: of those, withdrawn.
        by_form: records per [`ConsentForm`][purposeguard.policy.ConsentForm] value (every
            form listed, zero included).
        by_basis: records per [`LegalBasis`][purposeguard.policy.LegalBasis] value (every
            basis listed, zero included).
        by_purpose: records covering each purpose named in a record.
        with_guardian: records given by a guardian for a minor.
        with_transfer: records consenting to a transfer off the device or abroad.
        with_recipients: records naming recipients of disclosures.
        recipients: distinct recipients named (organisations, not subjects).
        with_term: records with a term (a purpose end).
        templates_by_basis: stored templates per basis of the record their label
            names; `"no record"` (the label names none) and `"unregistered"`
            (it names an id the registry does not hold).
    """

    total: int = 0
    withdrawn: int = 0
    by_form: Mapping[str, int] = attrs.field(factory=dict, converter=_frozen_map)
    by_basis: Mapping[str, int] = attrs.field(factory=dict, converter=_frozen_map)
    by_purpose: Mapping[str, int] = attrs.field(factory=dict, converter=_frozen_map)
    with_guardian: int = 0
    with_transfer: int = 0
    with_recipients: int = 0
    recipients: int = 0
    with_term: int = 0
    templates_by_basis: Mapping[str, int] = attrs.field(factory=dict, converter=_frozen_map)


@attrs.frozen(kw_only=True)
class FilingState:
    """The CN Measures' filing duty (FR-07) against the store's subject count.

    Attributes:
        subjects: distinct subjects stored.
        threshold: the filing threshold (100,000).
        in_force: whether FR-07 is in force in the policy.
        filing: the filing reference the policy declares, if any.
        alerts: the policy's alerts for these counts (FR-07, CN-13); empty if none.
    """

    subjects: int
    threshold: int = FILING_THRESHOLD
    in_force: bool = False
    filing: str | None = None
    alerts: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class AuditSummary:
    """What the audit log shows, from its verified entries only.

    Attributes:
        path: the log's first file.
        verified: whether the whole log verified (chain, MACs, files, checkpoints).
        reason: the verifier's sentence: a summary, or why verification failed.
        first_bad_seq: the first entry that failed, if known.
        entries: entries verified (the figures below cover only these).
        log_id: the log's id.
        events: events among the verified entries.
        first_at, last_at: the times of the first and last event.
        outcomes: events per outcome (`granted`, `denied`, `would_deny`).
        operations: events per operation (`"use"` for scope entries and admissions).
        denials_by_rule: denied and would-deny events per rule id (an event naming
            two rules counts for each); [`NO_RULE`][purposeguard.reports.NO_RULE] for denials
            naming none.
        denials_by_day: per UTC day (`YYYY-MM-DD`), denials per rule id.
        erasures: per kind (`erase_subject`, `withdraw_consent`,
            `purge_expired`), a pair (events, templates removed).
        subjects_erased: distinct subjects (or pseudonyms) erased by `erase_subject`.
    """

    path: str
    verified: bool
    reason: str
    first_bad_seq: int | None = None
    entries: int = 0
    log_id: str | None = None
    events: int = 0
    first_at: datetime | None = None
    last_at: datetime | None = None
    outcomes: Mapping[str, int] = attrs.field(factory=dict, converter=_frozen_map)
    operations: Mapping[str, int] = attrs.field(factory=dict, converter=_frozen_map)
    denials_by_rule: Mapping[str, int] = attrs.field(factory=dict, converter=_frozen_map)
    denials_by_day: Mapping[str, Mapping[str, int]] = attrs.field(
        factory=dict, converter=_frozen_map
    )
    erasures: Mapping[str, tuple[int, int]] = attrs.field(factory=dict, converter=_frozen_map)
    subjects_erased: int = 0


@attrs.frozen(kw_only=True)
class Report:
    """A record of processing (GDPR Art. 30) with the skeleton of a PIPL Art. 55-56
    impact assessment, built by [`build_report`][purposeguard.reports.build_report].

    It holds counts, purposes, rule ids and policy settings only: never a template
    value, a subject id or a consent id. Render it with
    [`to_markdown`][purposeguard.reports.Report.to_markdown] or
    [`to_html`][purposeguard.reports.Report.to_html] (a self-contained page: inline CSS and SVG, no
    script, no external asset).

    Attributes:
        generated_at: the time the report was built (its "now").
        store: the store it describes (a file path or the backend's name).
        backend: the backend's name.
        templates: templates stored.
        subjects: distinct subjects stored.
        dim: the vector dimension (`None` if empty).
        policy: a short description of the policy (`None`: no policy given).
        presets: the presets composed into the policy.
        rules: the rule ids in force.
        waivers: rule ids waived, with the reason.
        declarations: the deployment's declarations (impact assessment, necessity,
            notice, storage, filing, alternatives), `None` where undeclared.
        duties: what `policy lint` reports: undeclared duties and settings.
        purposes: the purposes processed, sorted by name.
        consents: the consent registry in counts (`None`: no registry given).
        filing: the FR-07 filing state.
        audit: the audit log's summary (`None`: no log given).
        notes: limits of this report (what it could not read), one sentence each.
    """

    generated_at: datetime
    store: str
    backend: str
    templates: int
    subjects: int
    dim: int | None
    policy: str | None
    presets: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()
    waivers: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_map)
    declarations: Mapping[str, str | None] = attrs.field(factory=dict, converter=_frozen_map)
    duties: tuple[str, ...] = ()
    purposes: tuple[PurposeEntry, ...] = ()
    consents: ConsentSummary | None = None
    filing: FilingState = attrs.field(factory=lambda: FilingState(subjects=0))
    audit: AuditSummary | None = None
    notes: tuple[str, ...] = ()

    @property
    def tampered(self) -> bool:
        """Whether an audit log was given and failed verification."""
        return self.audit is not None and not self.audit.verified

    def to_markdown(self) -> str:
        """The report as Markdown (GitHub-flavoured tables)."""
        from ._render import markdown

        return markdown(self)

    def to_html(self) -> str:
        """The report as one self-contained HTML page (inline CSS and SVG charts)."""
        from ._render import html

        return html(self)


# -- reading the store ----------------------------------------------------------------


def _labels(store: GuardedStore) -> Iterator[Label] | None:
    # The labels of every stored template, or None if the backend cannot list them.
    backend = store.backend
    if isinstance(backend, SQLiteBackend) and backend.path != ":memory:":
        return _sqlite_labels(backend.path)
    if isinstance(backend, MemoryBackend):
        return _memory_labels(backend)
    return None


def _sqlite_labels(path: str) -> Iterator[Label]:
    # The label column only (documented in SQLiteBackend), read-only: no vector is read.
    uri = Path(path).resolve().as_uri() + "?mode=ro"
    conn = sqlite3.connect(uri, uri=True)
    try:
        cur = conn.execute("SELECT label FROM pg_templates")
        while rows := cur.fetchmany(4096):
            for (blob,) in rows:
                if not isinstance(blob, bytes):
                    raise PolicyError(f"the store {path} holds a template without a label")
                yield Label.from_bytes(blob)
    finally:
        conn.close()


def _memory_labels(backend: MemoryBackend) -> Iterator[Label]:
    for tid in backend.ids():
        rec = backend.fetch(tid)
        if rec is not None:
            yield rec.label


# -- policy ---------------------------------------------------------------------------


def _required_form(policy: Policy, p: Purpose) -> str | None:
    best: ConsentForm | None = None
    for rid, form in _FORMS.items():
        applies = rid in policy.rules and policy._form_applies(rid, p)
        if applies and (best is None or form.rank > best.rank):
            best = form
    for q, form in policy.consent_forms.items():
        if p.is_within(q) and (best is None or form.rank > best.rank):
            best = form
    return None if best is None else best.value


def _retention_rules(policy: Policy, p: Purpose, taxonomy: Taxonomy) -> tuple[str, ...]:
    on = policy.rules
    out = []
    if "IL-01" in on:
        out.append(
            "IL-01: the earlier of the purpose's end and 3 years after the last interaction"
        )
    if "CO-01" in on:
        out.append(
            "CO-01: the earlier of the purpose's end and 24 months after the last interaction"
        )
    if "TX-01" in on:
        out.append("TX-01: one year after the purpose's end")
    terms = [r for r in ("CN-06", "EU-04") if r in on]
    if terms:
        out.append(f"{'/'.join(terms)}: the consent's term, where it has one")
    for q, cap in sorted(policy.max_retention.items()):
        if p.is_within(q) or q.is_within(p):
            out.append(f"LOCAL-RETENTION: {_days(cap)} from collection ({q.name})")
    inherent = taxonomy.spec(p).max_retention if p in taxonomy else None
    if inherent is not None:
        out.append(f"taxonomy: {_days(inherent)} from collection")
    return tuple(out)


def _describe(policy: Policy) -> str:
    names = "+".join(policy.presets) or "custom"
    return f"{names} ({len(policy.rules)} rules in force)"


def _days(d: timedelta) -> str:
    days = d / timedelta(days=1)
    return f"{days:g} day" + ("s" if days != 1 else "")


def _declarations(policy: Policy) -> dict[str, str | None]:
    alternatives = "; ".join(f"{p.name}: {m}" for p, m in sorted(policy.alternatives.items()))
    return {
        "impact assessment": policy.impact_assessment,
        "necessity": policy.necessity,
        "notice": policy.notice,
        "storage": None if policy.storage is None else policy.storage.value,
        "filing": policy.filing,
        "alternatives": alternatives or None,
        "banned purposes": ", ".join(p.name for p in sorted(policy.banned)) or None,
    }


# -- consents -------------------------------------------------------------------------


def _consent_summary(registry: ConsentRegistry, labels: list[Label]) -> ConsentSummary:
    by_form: Counter[str] = Counter({f.value: 0 for f in ConsentForm})
    by_basis: Counter[str] = Counter({b.value: 0 for b in LegalBasis})
    by_purpose: Counter[str] = Counter()
    recipients: set[str] = set()
    total = withdrawn = guardian = transfer = named = term = 0
    for c in registry:
        total += 1
        by_form[c.form.value] += 1
        by_basis[c.basis.value] += 1
        for p in c.purposes:
            by_purpose[p.name] += 1
        withdrawn += registry.withdrawn_at(c.id) is not None
        guardian += c.guardian is not None
        transfer += c.transfer
        named += bool(c.recipients)
        recipients |= c.recipients
        term += c.term is not None
    templates: Counter[str] = Counter()
    for lab in labels:
        if lab.consent is None:
            templates["no record"] += 1
            continue
        rec = registry.get(lab.consent)
        if rec is None or rec.subject != lab.subject:
            templates["unregistered"] += 1
        else:
            templates[rec.basis.value] += 1
    return ConsentSummary(
        total=total,
        withdrawn=withdrawn,
        by_form=dict(by_form),
        by_basis=dict(by_basis),
        by_purpose=dict(sorted(by_purpose.items())),
        with_guardian=guardian,
        with_transfer=transfer,
        with_recipients=named,
        recipients=len(recipients),
        with_term=term,
        templates_by_basis=dict(sorted(templates.items())),
    )


# -- the audit log --------------------------------------------------------------------


def _events(files: tuple[str, ...], entries: int) -> Iterator[dict[str, Any]]:
    # The events among the first *entries* entries (those that verified), in order.
    seen = 0
    for f in files:
        with open(f, "rb") as fh:
            for raw in fh:
                if seen >= entries:
                    return
                seen += 1
                entry = json.loads(raw)["entry"]
                if entry.get("kind") == "event":
                    yield entry["event"]


def _audit_summary(
    path: str | os.PathLike[str],
    key: bytes,
    checkpoint: str | os.PathLike[str] | None,
    public_key: Ed25519PublicKey | bytes | None,
) -> tuple[AuditSummary, Counter[str], Counter[str]]:
    result = verify(path, key=key, checkpoint=checkpoint, public_key=public_key)
    outcomes: Counter[str] = Counter({"granted": 0, "denied": 0, "would_deny": 0})
    operations: Counter[str] = Counter()
    by_rule: Counter[str] = Counter()
    by_day: dict[str, Counter[str]] = {}
    erasures = {k: [0, 0] for k in _ERASURE_KINDS}
    erased: set[str] = set()
    granted: Counter[str] = Counter()
    denied: Counter[str] = Counter()
    first = last = None
    events = 0
    for ev in _events(result.files, result.entries):
        events += 1
        at = datetime.fromisoformat(ev["at"]).astimezone(UTC)
        first = at if first is None or at < first else first
        last = at if last is None or at > last else last
        outcome = ev["outcome"]
        outcomes[outcome] += 1
        op = ev["operation"] or "use"
        operations[op] += 1
        purpose = ev["purpose"]
        if outcome == "granted":
            if purpose is not None and op != "delete":
                granted[purpose] += 1
        else:
            if purpose is not None:
                denied[purpose] += 1
            day = by_day.setdefault(at.date().isoformat(), Counter())
            for rid in ev["rule_ids"] or [NO_RULE]:
                by_rule[rid] += 1
                day[rid] += 1
        if op == "delete" and outcome == "granted":
            m = _ERASURE_RE.match(ev["reason"])
            if m is not None:
                kind = m.group("kind").split(" ", 1)[0]
                erasures[kind][0] += 1
                erasures[kind][1] += int(m.group("n"))
                if kind == "erase_subject":
                    erased.update(ev["subjects"])
    summary = AuditSummary(
        path=str(path),
        verified=result.ok,
        reason=result.reason,
        first_bad_seq=result.first_bad_seq,
        entries=result.entries,
        log_id=result.log_id,
        events=events,
        first_at=first,
        last_at=last,
        outcomes=dict(outcomes),
        operations=dict(sorted(operations.items())),
        denials_by_rule=dict(sorted(by_rule.items(), key=lambda kv: (-kv[1], kv[0]))),
        denials_by_day={
            d: _frozen_map(dict(sorted(c.items()))) for d, c in sorted(by_day.items())
        },
        erasures={k: (v[0], v[1]) for k, v in erasures.items()},
        subjects_erased=len(erased),
    )
    return summary, granted, denied


# -- the builder ----------------------------------------------------------------------


def _open_store(store: GuardedStore | str | os.PathLike[str]) -> tuple[GuardedStore, str, bool]:
    if isinstance(store, GuardedStore):
        backend = store.backend
        where = backend.path if isinstance(backend, SQLiteBackend) else backend.name
        return store, where, False
    if isinstance(store, bytes) or not isinstance(store, str | os.PathLike):
        raise PolicyError(
            f"store must be a GuardedStore or the path of an SQLite store file, "
            f"got {type(store).__name__}"
        )
    p = Path(store)
    if not p.is_file():
        # SQLiteBackend would create a new store there: a report never does.
        raise FileNotFoundError(2, "no such store file", str(p))
    if p.stat().st_size == 0 and not Path(f"{p}-wal").exists():
        raise PolicyError(f"{p} is empty: not a purposeguard store")
    return GuardedStore(SQLiteBackend(p)), str(p), True


def _open_consents(
    consents: ConsentRegistry | str | os.PathLike[str] | None,
) -> tuple[ConsentRegistry | None, bool]:
    if consents is None or isinstance(consents, ConsentRegistry):
        return consents, False
    if isinstance(consents, bytes) or not isinstance(consents, str | os.PathLike):
        raise PolicyError(
            f"consents must be a ConsentRegistry or the path of an SQLite consent registry, "
            f"got {type(consents).__name__}"
        )
    p = Path(consents)
    if not p.is_file():
        # SQLiteConsentRegistry would create an empty registry there.
        raise FileNotFoundError(2, "no such consent registry file", str(p))
    try:
        return SQLiteConsentRegistry(p), True
    except sqlite3.DatabaseError as e:
        raise PolicyError(f"{p} is not a consent registry ({e})") from None


def build_report(
    *,
    store: GuardedStore | str | os.PathLike[str],
    policy: Policy | None = None,
    audit_log: str | os.PathLike[str] | None = None,
    key: bytes | None = None,
    consents: ConsentRegistry | str | os.PathLike[str] | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    public_key: Ed25519PublicKey | bytes | None = None,
    now: datetime | None = None,
) -> Report:
    """Build the record of processing of *store* under *policy*.

    Args:
        store: a [`GuardedStore`][purposeguard.stores.GuardedStore], or the path of an existing
            SQLite store file (never created; opened, read and closed). Per-purpose
            figures need the labels: they are read for SQLite and memory backends;
            for others the report says they are missing.
        policy: the store's policy; without one, rules, duties, consent forms and
            retention caps are not assessed (the report says so).
        audit_log: the first file of a [`JsonlSink`][purposeguard.audit.JsonlSink] log.
            It is verified with *key* (and *checkpoint* / *public_key*, if given)
            before anything is read from it; figures come from the verified entries
            only, and [`Report.tampered`][purposeguard.reports.Report.tampered] tells whether
            verification failed.
        key: the audit log's key (required with *audit_log*).
        consents: a [`ConsentRegistry`][purposeguard.policy.ConsentRegistry], or the path of an
            existing SQLite consent registry file (never created).
        checkpoint: the log's checkpoint file, to detect a cut tail (see
            [`purposeguard.audit.verify`][purposeguard.audit.verify]); needs
            *public_key*.
        public_key: the trusted Ed25519 public key of the checkpoints.
        now: the report's time (default: the current time); expiries are judged at it.

    Returns:
        A [`Report`][purposeguard.reports.Report]. It never raises for a tampered log: check
        [`Report.tampered`][purposeguard.reports.Report.tampered].

    Raises:
        PolicyError: a bad argument (a log without key, a short key, a file that is
            not a store or a registry).
        FileNotFoundError: the store, registry or log file does not exist.
        IntegrityError: the store file is damaged.
    """
    if policy is not None and not isinstance(policy, Policy):
        raise PolicyError(f"policy must be a Policy, got {type(policy).__name__}")
    if audit_log is not None and key is None:
        raise PolicyError("an audit log is verified before it is reported on: give its key")
    if audit_log is None and (key is not None or checkpoint is not None):
        raise PolicyError("key and checkpoint are only used with audit_log")
    at = datetime.now(UTC) if now is None else now
    if at.tzinfo is None:
        raise PolicyError("now must be timezone-aware")
    notes: list[str] = []
    # Verify the log first: a bad key or a missing file fails before anything is opened.
    audit = granted = denied = None
    if audit_log is not None:
        assert key is not None
        audit, granted, denied = _audit_summary(audit_log, key, checkpoint, public_key)
    registry, own_registry = _open_consents(consents)
    guarded, where, own_store = _open_store(store)
    try:
        stats = guarded.stats()
        source = _labels(guarded)
        labels = list(source) if source is not None else []
    finally:
        if own_store:
            guarded.close()
    try:
        consent_summary = None if registry is None else _consent_summary(registry, labels)
        purposes = _purposes(policy, labels, registry, at)
    finally:
        if own_registry:
            assert registry is not None
            registry.close()
    if source is None:
        notes.append(
            f"the {stats['backend']} backend cannot list its labels: per-purpose counts "
            "and retention are missing"
        )
    if policy is None:
        notes.append(
            "no policy given: rules in force, duties, consent forms and retention caps "
            "are not assessed"
        )
    if registry is None:
        notes.append("no consent registry given: consents and legal bases are not counted")
    if audit is None:
        notes.append("no audit log given: uses, denials and erasures are not reported")
    elif not audit.verified:
        notes.append(
            f"the audit log FAILED verification; its figures cover only the {audit.entries} "
            "entries verified before the fault"
        )
    if granted is not None and denied is not None:
        purposes = tuple(
            attrs.evolve(e, granted=granted[e.purpose], denied=denied[e.purpose])
            for e in _with_logged(purposes, granted, denied, policy)
        )
    subjects = int(stats["subjects"])
    filing = FilingState(
        subjects=subjects,
        in_force=policy is not None and "FR-07" in policy.rules,
        filing=None if policy is None else policy.filing,
        alerts=() if policy is None else tuple(policy.filing_alerts(stats)),
    )
    return Report(
        generated_at=at,
        store=where,
        backend=str(stats["backend"]),
        templates=int(stats["templates"]),
        subjects=subjects,
        dim=stats["dim"],
        policy=None if policy is None else _describe(policy),
        presets=() if policy is None else policy.presets,
        rules=() if policy is None else tuple(sorted(policy.rules)),
        waivers={} if policy is None else dict(sorted(policy.waivers.items())),
        declarations={} if policy is None else _declarations(policy),
        duties=() if policy is None else tuple(policy.lint()),
        purposes=purposes,
        consents=consent_summary,
        filing=filing,
        audit=audit,
        notes=tuple(notes),
    )


def _entry(p: Purpose, policy: Policy | None, taxonomy: Taxonomy) -> PurposeEntry:
    spec = taxonomy.spec(p) if p in taxonomy else None
    return PurposeEntry(
        purpose=p.name,
        description="" if spec is None else spec.description,
        sensitive=False if spec is None else spec.sensitive,
        declared=None
        if policy is None or policy.processing is None
        else any(p.is_within(q) for q in policy.processing),
        consent_form=None if policy is None else _required_form(policy, p),
        retention_rules=() if policy is None else _retention_rules(policy, p, taxonomy),
    )


def _purposes(
    policy: Policy | None,
    labels: list[Label],
    registry: ConsentRegistry | None,
    at: datetime,
) -> tuple[PurposeEntry, ...]:
    taxonomy = Taxonomy.default()
    names: set[Purpose] = set()
    if policy is not None and policy.processing is not None:
        names |= policy.processing
    for lab in labels:
        names |= lab.allowed
    count: Counter[Purpose] = Counter()
    subjects: dict[Purpose, set[str]] = {}
    longest: dict[Purpose, float] = {}
    latest: dict[Purpose, datetime] = {}
    expired: Counter[Purpose] = Counter()
    beyond: Counter[Purpose] = Counter()
    for lab in labels:
        over = False
        if policy is not None and lab.collected_at is not None:
            limit = policy.latest_expiry(
                lab.allowed,
                subject=lab.subject,
                collected_at=lab.collected_at,
                consent=lab.consent,
                consents=registry,
            )
            over = limit is not None and lab.expires_at > limit.latest
        for p in lab.allowed:
            count[p] += 1
            subjects.setdefault(p, set()).add(lab.subject)
            if lab.collected_at is not None:
                days = (lab.expires_at - lab.collected_at) / timedelta(days=1)
                longest[p] = max(days, longest.get(p, days))
            if p not in latest or lab.expires_at > latest[p]:
                latest[p] = lab.expires_at
            expired[p] += lab.expires_at <= at
            beyond[p] += over
    out = []
    for p in sorted(names):
        out.append(
            attrs.evolve(
                _entry(p, policy, taxonomy),
                templates=count[p],
                subjects=len(subjects.get(p, ())),
                longest_days=longest.get(p),
                latest_expiry=latest.get(p),
                expired=expired[p],
                beyond_cap=beyond[p],
            )
        )
    return tuple(out)


def _with_logged(
    purposes: tuple[PurposeEntry, ...],
    granted: Counter[str],
    denied: Counter[str],
    policy: Policy | None,
) -> list[PurposeEntry]:
    # Purposes used (or refused) in the log but absent from the store are listed too.
    have = {e.purpose for e in purposes}
    taxonomy = Taxonomy.default()
    extra = []
    for name in sorted((set(granted) | set(denied)) - have):
        try:
            p = Purpose(name)
        except PolicyError:
            continue
        extra.append(_entry(p, policy, taxonomy))
    return sorted([*purposes, *extra], key=lambda e: e.purpose)
