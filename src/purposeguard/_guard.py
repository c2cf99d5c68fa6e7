"""The guard: configuration, decisions, enforcement and audit emission."""

from __future__ import annotations

import enum
import itertools
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from ._clock import SystemClock
from ._context import ACTIVE, GUARD_OVERRIDE, ScopeState, VerifiedGrant
from ._decision import AccessRequest, Decision
from ._errors import (
    AccessDeniedError,
    AuditError,
    ConsentError,
    ExpiredTemplateError,
    GrantError,
    PolicyError,
    PurposeViolationError,
    PurposeWarning,
)
from ._events import AuditEvent, LoggingSink, Outcome
from ._labels import Label
from ._purposes import Operation, Purpose, PurposeLike
from ._taxonomy import Taxonomy
from .typing import AuditSink, Clock, ConsentLookup, GrantVerifierLike, PolicyRules

if TYPE_CHECKING:
    pass

__all__ = ["Guard", "Labelled", "Mode", "PendingAccess", "configure", "current_guard", "using"]


class Labelled(Protocol):
    """Anything with a label and an id: a [`FaceTemplate`][purposeguard.FaceTemplate], or a store's
    record."""

    @property
    def id(self) -> str:
        """The template id."""
        ...

    @property
    def label(self) -> Label:
        """The label."""
        ...


class _Active(enum.Enum):
    SCOPE = "the active scope"


class Mode(enum.Enum):
    """What the guard does with an access that is not permitted."""

    ENFORCE = "enforce"
    """Raise the denial's exception; the access does not happen."""
    AUDIT = "audit"
    """Record it as `would_deny`, issue a [`PurposeWarning`][purposeguard.PurposeWarning], and let
    it through."""


def _mode(value: Mode | str) -> Mode:
    try:
        return Mode(value)
    except ValueError:
        raise PolicyError(f"mode must be 'enforce' or 'audit', got {value!r}") from None


def _sink(value: AuditSink | None) -> AuditSink:
    return LoggingSink() if value is None else value


def _clock(value: Clock | None) -> Clock:
    return SystemClock() if value is None else value


def _is(proto: type, what: str, optional: bool = True) -> Callable[[Any, Any, Any], None]:
    def check(_: Any, __: Any, value: Any) -> None:
        if value is None and optional:
            return
        if not isinstance(value, proto):
            raise PolicyError(
                f"{what} must implement {proto.__name__} (got {type(value).__name__})"
            )

    return check


def _hook(policy: object, name: str) -> Callable[..., Any] | None:
    hook = getattr(policy, name, None)
    return hook if callable(hook) else None


_INTERNAL = "purposeguard"
_INTERNED = Purpose._interned  # name -> Purpose: what Purpose(name) returns, if known
_GRANTED_LIMIT = 4096  # granted decisions a guard keeps for reuse


_internal_modules: dict[str, bool] = {}  # module name -> _is_internal(name)


def _is_internal(module: str) -> bool:
    return module == _INTERNAL or (
        module.startswith("purposeguard.") and not module.startswith("purposeguard.testing")
    )


def caller_site(start: int = 2) -> tuple[str, int]:
    """`module:qualname` of the first frame outside purposeguard, and its stacklevel
    counted from the frame *start* levels above this function's caller."""
    f: Any = sys._getframe(start)
    level = 1
    known = _internal_modules
    while f is not None:
        mod = f.f_globals.get("__name__", "?")
        internal = known.get(mod)
        if internal is None:
            internal = _is_internal(mod)
            if len(known) < 4096:
                known[mod] = internal
        if not internal:
            return f"{mod}:{f.f_code.co_qualname}", level
        f = f.f_back
        level += 1
    return "?", 1


def _outside_level() -> int:
    """The stacklevel, for a warning issued by this function's caller, of the first
    frame outside purposeguard and attrs (`Guard(...)` or `guard.evolve(...)`)."""
    f: Any = sys._getframe(1)
    level = 1
    while f is not None:
        mod = f.f_globals.get("__name__", "?")
        if not (_is_internal(mod) or mod.split(".")[0] in ("attr", "attrs")):
            return level
        f = f.f_back
        level += 1
    return 1


@attrs.frozen(kw_only=True)
class Guard:
    """The configuration that every check uses, and the checks themselves.

    Args:
        taxonomy: the known purposes and their operations (default: the face taxonomy).
        policy: extra rules (jurisdiction presets, a deployment's rules), or `None`.
        mode: `Mode.ENFORCE` (deny by raising) or `Mode.AUDIT` (shadow mode).
        audit: where audit events go (default: `LoggingSink()`).
        clock: where the time comes from (default: `SystemClock()`).
        require_grants: every purpose scope must carry a verified grant.
        grant_verifier: checks grants; required when `require_grants` is true.
        consents: answers whether a consent id is withdrawn.

    `mode` also accepts the mode's value (`"enforce"`, `"audit"`). Each plug-in
    (`policy`: `PolicyRules`, `audit`: `AuditSink`, `clock`: `Clock`, `consents`:
    `ConsentLookup`, `grant_verifier`: `GrantVerifierLike`, all in
    `purposeguard.typing`) must implement its protocol, and `require_grants=True` needs
    a `grant_verifier`; otherwise the guard is not built (`PolicyError`). If the policy
    has a `guard_warnings()` method, each message it returns is issued as a
    [`PurposeWarning`][purposeguard.PurposeWarning] when the guard is built.

    Guards are immutable; [`evolve`][purposeguard.Guard.evolve] returns a changed copy. Install one
    with [`configure`][purposeguard.configure] (process default) or [`using`][purposeguard.using]
    (one context).
    """

    taxonomy: Taxonomy = attrs.field(
        factory=Taxonomy.default, validator=_is(Taxonomy, "taxonomy", optional=False)
    )
    policy: PolicyRules | None = attrs.field(default=None, validator=_is(PolicyRules, "policy"))
    mode: Mode = attrs.field(default=Mode.ENFORCE, converter=_mode)
    audit: AuditSink = attrs.field(
        default=None, converter=_sink, validator=_is(AuditSink, "audit", optional=False)
    )
    clock: Clock = attrs.field(
        default=None, converter=_clock, validator=_is(Clock, "clock", optional=False)
    )
    require_grants: bool = False
    grant_verifier: GrantVerifierLike | None = attrs.field(
        default=None, validator=_is(GrantVerifierLike, "grant_verifier")
    )
    consents: ConsentLookup | None = attrs.field(
        default=None, validator=_is(ConsentLookup, "consents")
    )
    _seq: Iterator[int] = attrs.field(
        factory=lambda: itertools.count(1), init=False, eq=False, repr=False
    )
    # Granted decisions, reused: see _decide. Keyed by (id(label), template id, purpose,
    # operation); each value holds its label, so that id cannot be reused while cached.
    _granted: dict[tuple[object, ...], Decision] = attrs.field(
        factory=dict, init=False, eq=False, repr=False
    )
    # Optional policy hooks (see purposeguard.policy.Policy): until when a granted
    # decision stands, and what to note after a granted access.
    _policy_until: Callable[[AccessRequest], datetime | None] | None = attrs.field(
        default=attrs.Factory(lambda g: _hook(g.policy, "granted_until"), takes_self=True),
        init=False,
        eq=False,
        repr=False,
    )
    _policy_quick: Callable[..., datetime | None] | None = attrs.field(
        default=attrs.Factory(lambda g: _hook(g.policy, "remembered_until"), takes_self=True),
        init=False,
        eq=False,
        repr=False,
    )
    _policy_after: Callable[..., None] | None = attrs.field(
        default=attrs.Factory(lambda g: _hook(g.policy, "after_access"), takes_self=True),
        init=False,
        eq=False,
        repr=False,
    )

    def __attrs_post_init__(self) -> None:
        if self.require_grants and self.grant_verifier is None:
            raise PolicyError("require_grants=True needs a grant_verifier")
        validate = getattr(self.policy, "validate_guard", None)
        if callable(validate):
            validate(self)
        announce = getattr(self.policy, "guard_warnings", None)
        if callable(announce):
            level = _outside_level()
            for message in announce():
                warnings.warn(PurposeWarning(str(message)), stacklevel=level)

    def evolve(self, **changes: Any) -> Guard:
        """A copy of this guard with *changes* applied.

        The copy continues this guard's audit sequence, so events from both, sent to
        one sink, keep increasing numbers. (A new `Guard(...)` starts at 1.)
        """
        new = attrs.evolve(self, **changes)
        object.__setattr__(new, "_seq", self._seq)
        return new

    def now(self) -> datetime:
        """The guard's clock time."""
        return self.clock.now()

    def forget_decisions(self) -> None:
        """Drop every cached decision (a consent registry calls this when a record
        that decisions may rest on changes)."""
        self._granted.clear()

    # -- deciding ------------------------------------------------------------------

    def check(
        self,
        template: Labelled | Label,
        purpose: PurposeLike | None,
        operation: Operation | None,
        *,
        context: object | None = None,
    ) -> Decision:
        """Decide whether *operation* on *template* for *purpose* is permitted.

        *template* is a template, a store record, or a bare `Label`. No side effects:
        nothing is audited, nothing is raised for a denial. Pass `operation=None` to
        check only conformance, expiry and consent (what `@uses` checks on entry).
        `str()` of the decision explains it, whether permitted or denied.

        Raises:
            PolicyError: *purpose* is malformed or not in the taxonomy.
        """
        if isinstance(template, Label):
            label, tid = template, None
        else:
            label, tid = template.label, template.id
        p = _INTERNED.get(purpose) if type(purpose) is str else None
        if p is None and purpose is not None:
            p = Purpose(purpose)
        return self._decide(label, tid, p, operation, self.clock.now(), context, None)

    def _decide(
        self,
        label: Label,
        tid: str | None,
        p: Purpose | None,
        op: Operation | None,
        now: datetime,
        context: object | None,
        grant: VerifiedGrant | None,
    ) -> Decision:
        if op is Operation.DELETE:
            if p is not None and p not in self.taxonomy._specs:
                raise PolicyError(
                    f"unknown purpose {p.name!r}: it is not in the taxonomy in force"
                )
            return Decision(allowed=True, purpose=p, operation=op, template_id=tid, label=label)
        # Fast path. Conformance and the taxonomy's operations depend only on the
        # (immutable) label, taxonomy, purpose and operation, so a granted decision can
        # be reused once expiry and consent, which change with time, are checked again.
        # Not with a grant: it is evaluated every time. With a policy, only without a
        # context and when the policy says until when its verdict stands.
        policy_until = self._policy_until
        cacheable = grant is None and (
            self.policy is None or (context is None and policy_until is not None)
        )
        if cacheable:
            key = (id(label), tid, p, op)
            hit = self._granted.get(key)
            if (
                hit is not None
                and hit._label is label
                and now < (label.expires_at if hit._until is None else hit._until)
                and (
                    label.consent is None
                    or self.consents is None
                    or not self.consents.is_withdrawn(label.consent)
                )
                # With a policy, reading the registry may have dropped cached decisions
                # (a change made by another process): then decide again.
                and (policy_until is None or self._granted.get(key) is hit)
            ):
                return hit
        reasons: list[str] = []
        rule_ids: list[str] = []
        error: type[AccessDeniedError] | None = None
        if p is None:
            reasons.append("no purpose is active: declare one with purpose(...) or @uses(...)")
            error = PurposeViolationError
        else:
            spec = self.taxonomy._specs.get(p)
            if spec is None:
                raise PolicyError(
                    f"unknown purpose {p.name!r}: it is not in the taxonomy in force"
                )
            if not label.permits(p):
                reasons.append(label.why_not(p) or "purpose not permitted")
                error = PurposeViolationError
            if op is not None and op not in spec.operations:
                reasons.append(f"the taxonomy does not allow {op.value} for {p.name!r}")
                error = PurposeViolationError
            if (
                grant is not None
                and op is not None
                and grant.operations is not None
                and op not in grant.operations
            ):
                reasons.append(f"grant {grant.grant_id} does not cover {op.value}")
                error = error or GrantError
        if now >= label.expires_at:
            reasons.append(f"the label expired at {label.expires_at.isoformat()}")
            error = error or ExpiredTemplateError
        if (
            label.consent is not None
            and self.consents is not None
            and self.consents.is_withdrawn(label.consent)
        ):
            reasons.append(f"consent {label.consent!r} is withdrawn or unknown")
            error = error or ConsentError
        # A policy may answer a repeated question from what it remembers (until when a
        # granted verdict stands) without the request being built; else it evaluates.
        remembered = None
        if self.policy is not None:
            quick = self._policy_quick
            if quick is not None and error is None and context is None and p is not None:
                remembered = quick(label, p, op, now, self.consents)
            if remembered is None:
                request = AccessRequest(
                    label=label,
                    purpose=p,
                    operation=op,
                    now=now,
                    template_id=tid,
                    context=context,
                    consents=self.consents,
                )
                for finding in self.policy.evaluate(request):
                    reasons.append(f"{finding.rule_id}: {finding.reason}")
                    if finding.rule_id not in rule_ids:
                        rule_ids.append(finding.rule_id)
                    error = error or finding.error
        if error is None:
            until = remembered
            if until is None and cacheable and self.policy is not None:
                assert policy_until is not None
                until = policy_until(request)
                cacheable = until is not None
            granted = Decision(
                allowed=True, purpose=p, operation=op, template_id=tid, label=label, until=until
            )
            if cacheable:
                self._remember(key, granted)
            return granted
        return Decision(
            allowed=False,
            purpose=p,
            operation=op,
            template_id=tid,
            reasons=tuple(reasons),
            rule_ids=tuple(rule_ids),
            error=error,
            label=label,
        )

    def _remember(self, key: tuple[object, ...], decision: Decision) -> None:
        cache = self._granted
        if len(cache) >= _GRANTED_LIMIT:
            cache.clear()
        cache[key] = decision

    # -- enforcing -----------------------------------------------------------------

    def authorize(
        self,
        operation: Operation | None,
        templates: Sequence[Labelled],
        *,
        context: object | None = None,
        scope: ScopeState | _Active | None = _Active.SCOPE,
        own_purpose: bool = False,
    ) -> Decision:
        """Check *operation* on *templates* under the active purpose, audit it, enforce it.

        *scope* defaults to the active purpose scope. With `own_purpose=True` and no
        active scope, each template is checked under the first of its own allowed
        purposes whose taxonomy entry allows the operation (how collection and
        enrolment are checked outside any scope). One audit event records the whole
        operation. In enforce mode a denial raises the denial's exception (after the
        event is recorded); in audit mode it issues a
        [`PurposeWarning`][purposeguard.PurposeWarning] and returns the denying decision. Backends
        and integrations call this; application code uses the templates' own methods.

        Raises:
            AccessDeniedError: (a subclass) in enforce mode, if any template is denied.
            AuditError: the audit sink failed; the access is denied in every mode.
        """
        return self.begin(
            operation, templates, context=context, scope=scope, own_purpose=own_purpose
        ).commit()

    def begin(
        self,
        operation: Operation | None,
        templates: Sequence[Labelled],
        *,
        context: object | None = None,
        scope: ScopeState | _Active | None = _Active.SCOPE,
        own_purpose: bool = False,
    ) -> PendingAccess:
        """Decide like [`authorize`][purposeguard.Guard.authorize], but audit and enforce only at
        `commit()`.

        For operations whose audit record names what they found (a search records the
        ids it returns): decide, do the work if permitted, then `commit` with the
        extra ids before handing anything to the caller. A pending access that is never
        committed has not been audited, so its result must not be released.
        """
        state = ACTIVE.get() if isinstance(scope, _Active) else scope
        p = state.purpose if state is not None else None
        grant = state.grant if state is not None else None
        now = self.clock.now()
        own = own_purpose and state is None and bool(templates)
        granted = None
        if (
            len(templates) > 1
            and grant is None
            and self.policy is None
            and operation is not Operation.DELETE
        ):
            granted = self._all_granted(templates, operation, p, now, context, own)
        if granted is not None:
            # Every template granted (the usual batch): no decision per template.
            if own and len(granted) == 1:
                p = next(iter(granted))
            verdict = self._all_granted_verdict(p, operation)
        else:
            if own:
                chosen = [self._own_purpose(t.label, operation) for t in templates]
                decisions = [
                    self._decide(t.label, t.id, c, operation, now, context, None)
                    for t, c in zip(templates, chosen, strict=True)
                ]
                if len(set(chosen)) == 1:
                    p = chosen[0]
            else:
                decisions = [
                    self._decide(t.label, t.id, p, operation, now, context, grant)
                    for t in templates
                ]
            denied = [d for d in decisions if not d.allowed]
            if denied or len(decisions) == 1:
                verdict = _combine(decisions, denied, p, operation)
            else:
                verdict = self._all_granted_verdict(p, operation)
        return PendingAccess(
            guard=self,
            operation=operation,
            purpose=p,
            state=state,
            now=now,
            template_ids=tuple([t.id for t in templates]),
            subjects=tuple({t.label.subject for t in templates}),
            verdict=verdict,
        )

    def _all_granted(
        self,
        templates: Sequence[Labelled],
        operation: Operation | None,
        p: Purpose | None,
        now: datetime,
        context: object | None,
        own: bool,
    ) -> set[Purpose | None] | None:
        """If every one of *templates* is granted *operation*, the purposes they are
        granted under; else `None` (the caller then decides template by template,
        for the exact reasons). *p* is the active purpose; with *own*, each template's
        own purpose is used instead (see [`authorize`][purposeguard.Guard.authorize]).

        Only for a guard without a policy, outside a grant and for operations other
        than DELETE: then a decision depends on the label's allowed and prohibited
        purposes (conformance, the purpose chosen and what the taxonomy allows for
        it), which is decided once for every set of templates with equal ones, and on
        its expiry and consent, which are checked template by template.
        """
        consents = self.consents
        decided: dict[tuple[frozenset[Purpose], frozenset[Purpose]], Purpose | None] = {}
        for t in templates:
            label = t.label
            if now >= label.expires_at:
                return None
            if (
                label.consent is not None
                and consents is not None
                and consents.is_withdrawn(label.consent)
            ):
                return None
            key = (label.allowed, label.prohibited)
            if key not in decided:
                c = self._own_purpose(label, operation) if own else p
                if not self._decide(label, t.id, c, operation, now, context, None).allowed:
                    return None
                decided[key] = c
        return set(decided.values())

    def _all_granted_verdict(self, p: Purpose | None, operation: Operation | None) -> Decision:
        # The combined verdict of several templates, every one granted: it depends on
        # p and operation only.
        key = (None, None, p, operation)
        cached = self._granted.get(key)
        if cached is None:
            cached = _combine([], [], p, operation)
            self._remember(key, cached)
        return cached

    def _own_purpose(self, label: Label, operation: Operation | None) -> Purpose:
        # The first purpose the label permits whose taxonomy entry allows the
        # operation: its allowed purposes first (the usual case), then descendants of an
        # allowed purpose that itself allows the operation (an allowed purpose may be
        # unusable because a descendant of it is prohibited while other descendants
        # stay permitted). An allowed purpose that does not allow the operation (the
        # bare root 'face') never lends it to its descendants.
        specs = self.taxonomy._specs
        candidates = sorted(label.allowed)

        def usable(c: Purpose) -> bool:
            spec = specs.get(c)
            return (
                spec is not None
                and (operation is None or operation in spec.operations)
                and label.permits(c)
            )

        for c in candidates:
            if usable(c):
                return c
        for a in candidates:
            spec = specs.get(a)
            if spec is None or (operation is not None and operation not in spec.operations):
                continue
            below = sorted((q for q in specs if q.is_within(a)), key=lambda q: (q.depth, q.name))
            for c in below:
                if usable(c):
                    return c
        return candidates[0]

    def deny_scope(
        self,
        purpose: Purpose,
        reason: str,
        error: type[AccessDeniedError],
        *,
        principal: str | None = None,
    ) -> Decision:
        """Audit a refused purpose scope (escape or grant failure) and enforce it."""
        decision = Decision(
            allowed=False,
            purpose=purpose,
            operation=None,
            template_id=None,
            reasons=(reason,),
            error=error,
        )
        outcome = Outcome.DENIED if self.mode is Mode.ENFORCE else Outcome.WOULD_DENY
        # A forged or missing grant is never let through, even in audit mode.
        if error is GrantError:
            outcome = Outcome.DENIED
        site, level = caller_site()
        self._emit(
            AuditEvent(
                seq=next(self._seq),
                at=self.clock.now(),
                operation=None,
                outcome=outcome,
                purpose=purpose,
                principal=principal,
                reason=reason,
                site=site,
            ),
            None,
        )
        if outcome is Outcome.DENIED:
            raise decision.exception()
        warnings.warn(
            PurposeWarning(f"audit mode let this through: {decision}", decision),
            stacklevel=level + 1,
        )
        return decision

    def record_denial(
        self,
        operation: Operation | None,
        reason: str,
        *,
        template_ids: Sequence[str] = (),
        subjects: Sequence[str] = (),
    ) -> None:
        """Audit a refusal that no label decided (e.g. a fetch of an unknown id).

        The event's outcome is `denied` in every mode, since nothing is let through;
        nothing is raised here (the caller raises its own error).

        Raises:
            AuditError: the sink failed.
        """
        state = ACTIVE.get()
        grant = state.grant if state is not None else None
        site, _ = caller_site()
        self._emit(
            AuditEvent(
                seq=next(self._seq),
                at=self.clock.now(),
                operation=operation,
                outcome=Outcome.DENIED,
                purpose=state.purpose if state is not None else None,
                template_ids=tuple(template_ids),
                subjects=tuple(sorted(set(subjects))),
                principal=state.principal if state is not None else None,
                grant_id=grant.grant_id if grant is not None else None,
                reason=reason,
                site=site,
            ),
            operation,
        )

    def _emit(self, event: AuditEvent, operation: Operation | None) -> None:
        try:
            self.audit.emit(event)
        except Exception as e:
            what = "use" if operation is None else operation.value
            raise AuditError(
                f"the audit sink {type(self.audit).__name__} failed ({type(e).__name__}); "
                f"the {what} was denied"
            ) from e


class PendingAccess:
    """A decided but not yet audited access (see [`Guard.begin`][purposeguard.Guard.begin])."""

    __slots__ = (
        "_done",
        "guard",
        "now",
        "operation",
        "purpose",
        "state",
        "subjects",
        "template_ids",
        "verdict",
    )

    def __init__(
        self,
        *,
        guard: Guard,
        operation: Operation | None,
        purpose: Purpose | None,
        state: ScopeState | None,
        now: datetime,
        template_ids: tuple[str, ...],
        subjects: tuple[str, ...],
        verdict: Decision,
    ) -> None:
        self.guard = guard
        self.operation = operation
        self.purpose = purpose
        self.state = state
        self.now = now
        self.template_ids = template_ids
        self.subjects = subjects
        self.verdict = verdict
        self._done = False

    @property
    def allowed(self) -> bool:
        """Whether the access is permitted."""
        return self.verdict.allowed

    @property
    def proceeds(self) -> bool:
        """Whether the access goes ahead: permitted, or denied in audit mode."""
        return self.verdict.allowed or self.guard.mode is Mode.AUDIT

    def commit(
        self,
        *,
        extra_ids: Sequence[str] = (),
        extra_subjects: Sequence[str] = (),
        note: str | None = None,
    ) -> Decision:
        """Emit the one audit event (with *extra_ids* and *extra_subjects* appended),
        then raise the denial in enforce mode or warn in audit mode.

        Raises:
            AccessDeniedError: (a subclass) a denial, in enforce mode.
            AuditError: the sink failed; the access is denied in every mode.
        """
        if self._done:
            raise PolicyError("this access was already committed")
        self._done = True
        verdict = self.verdict
        guard = self.guard
        denied = not verdict.allowed
        if not denied:
            outcome = Outcome.GRANTED
        elif guard.mode is Mode.ENFORCE:
            outcome = Outcome.DENIED
        else:
            outcome = Outcome.WOULD_DENY
        state = self.state
        grant = state.grant if state is not None else None
        reason = "; ".join(verdict.reasons) if denied else "permitted"
        if note:
            reason = f"{note}: {reason}"
        site, level = caller_site()
        guard._emit(
            AuditEvent(
                seq=next(guard._seq),
                at=self.now,
                operation=self.operation,
                outcome=outcome,
                purpose=self.purpose,
                template_ids=self.template_ids + tuple(extra_ids),
                subjects=tuple(sorted({*self.subjects, *extra_subjects})),
                principal=state.principal if state is not None else None,
                grant_id=grant.grant_id if grant is not None else None,
                rule_ids=verdict.rule_ids,
                reason=reason,
                site=site,
            ),
            self.operation,
        )
        if denied:
            if guard.mode is Mode.ENFORCE:
                raise verdict.exception()
            warnings.warn(
                PurposeWarning(f"audit mode let this through: {verdict}", verdict),
                stacklevel=level + 1,
            )
        elif guard._policy_after is not None:
            guard._policy_after(guard, self.operation, self.subjects, self.now)
        return verdict


def _combine(
    decisions: list[Decision],
    denied: list[Decision],
    p: Purpose | None,
    operation: Operation | None,
) -> Decision:
    if len(decisions) == 1:
        return decisions[0]
    if not denied:
        return Decision(allowed=True, purpose=p, operation=operation, template_id=None)
    if len(denied) == 1:
        return denied[0]
    reasons: list[str] = []
    rule_ids: list[str] = []
    for d in denied:
        reasons.extend(f"template {d.template_id}: {r}" for r in d.reasons)
        rule_ids.extend(r for r in d.rule_ids if r not in rule_ids)
    return Decision(
        allowed=False,
        purpose=p,
        operation=operation,
        template_id=None,
        reasons=tuple(reasons),
        rule_ids=tuple(rule_ids),
        error=denied[0].error,
    )


_default_lock = threading.Lock()
_default: Guard | None = None


def current_guard() -> Guard:
    """The guard in force here: the innermost [`using`][purposeguard.using], else the process
    default (created on first use as `Guard()`).

    Decorators and template methods resolve it at call time.
    """
    g = GUARD_OVERRIDE.get()
    if g is not None:
        return g
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Guard()
    return _default


def configure(guard: Guard | None = None, /, **kw: Any) -> Guard:
    """Set the process-default guard and return the previous one.

    `configure(mode=Mode.AUDIT, audit=sink)` builds a fresh `Guard(**kw)` (settings
    not given take their defaults, not the old guard's); `configure(guard)` installs
    *guard* as it is, so `configure(old)` restores.

    Raises:
        PolicyError: both a guard and settings are given, or *guard* is not a `Guard`.
    """
    global _default
    if guard is not None and kw:
        raise PolicyError("configure() takes a guard or keyword settings, not both")
    new = guard if guard is not None else Guard(**kw)
    if not isinstance(new, Guard):
        raise PolicyError(f"configure() takes a Guard, got {type(new).__name__}")
    with _default_lock:
        old = _default if _default is not None else Guard()
        _default = new
    return old


@contextmanager
def using(guard: Guard) -> Iterator[Guard]:
    """Put *guard* in force for the current context (task or thread) only.

    Usable as `with using(g):` or as a decorator; meant for tests and for code that
    runs several configurations side by side. Tasks created inside the block inherit
    it.

    Raises:
        PolicyError: *guard* is not a `Guard`.
    """
    if not isinstance(guard, Guard):
        raise PolicyError(f"using() takes a Guard, got {type(guard).__name__}")
    token = GUARD_OVERRIDE.set(guard)
    try:
        yield guard
    finally:
        GUARD_OVERRIDE.reset(token)
