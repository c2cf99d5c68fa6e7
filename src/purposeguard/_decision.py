"""Decisions: the outcome of checking one use of one template, with the reasons."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import attrs

from ._errors import AccessDeniedError, PurposeViolationError
from ._purposes import Operation, Purpose

if TYPE_CHECKING:
    from ._labels import Label

__all__ = ["AccessRequest", "Decision", "RuleFinding"]


@attrs.frozen
class RuleFinding:
    """A rule of a policy that denies an access.

    Returned by policy objects (see
    [`purposeguard.typing.PolicyRules`][purposeguard.typing.PolicyRules]).

    Attributes:
        rule_id: the rule's id from the legal rule map, e.g. `"IL-03"`.
        reason: a human sentence (never containing template values).
        error: the [`AccessDeniedError`][purposeguard.AccessDeniedError] subclass the denial
            raises.
    """

    rule_id: str
    reason: str
    error: type[AccessDeniedError] = PurposeViolationError


@attrs.frozen(kw_only=True)
class Decision:
    """Whether one operation on one template is permitted, and why.

    Attributes:
        allowed: the verdict.
        purpose: the purpose the access was made for (`None`: no active purpose).
        operation: the operation, or `None` for the admission of templates into a
            `@uses` scope (conformance, expiry and consent only).
        template_id: the template's id (`None` for a bare label).
        reasons: human sentences: every reason for a denial; empty when allowed.
        rule_ids: the ids of every policy rule that denies.
        error: the exception class a denial raises in enforce mode.

    `bool(decision)` is `decision.allowed`; `str(decision)` explains the decision,
    whether permitted or denied, and is the message of the exception a denial raises.
    """

    allowed: bool
    purpose: Purpose | None
    operation: Operation | None
    template_id: str | None
    reasons: tuple[str, ...] = ()
    rule_ids: tuple[str, ...] = ()
    error: type[AccessDeniedError] | None = None
    _label: Label | None = attrs.field(default=None, eq=False, repr=False, alias="label")
    # Until when a granted decision may be reused (set when a policy says; None: the
    # label's expiry). Internal to the guard's decision cache.
    _until: datetime | None = attrs.field(default=None, eq=False, repr=False, alias="until")

    def __bool__(self) -> bool:
        return self.allowed

    def exception(self) -> AccessDeniedError:
        """The exception this decision raises when enforced (call only on denials)."""
        err = self.error or PurposeViolationError
        return err(str(self), self)

    def __str__(self) -> str:
        op = self.operation.value if self.operation is not None else "use"
        tid = f"template {self.template_id}" if self.template_id else "data"
        under = f"for {self.purpose.name!r}" if self.purpose is not None else "with no purpose"
        if not self.allowed:
            why = "; ".join(self.reasons) or "denied"
            rules = f" [rules: {', '.join(self.rule_ids)}]" if self.rule_ids else ""
            return f"{op} of {tid} {under} denied: {why}{rules}"
        parts = []
        if self.purpose is not None and self._label is not None:
            within = sorted(a.name for a in self._label.allowed if self.purpose.is_within(a))
            parts.append(f"{self.purpose.name!r} is within allowed {', '.join(within)}")
            if self._label.prohibited:
                parts.append("touches no prohibited purpose")
            parts.append(f"label valid until {self._label.expires_at.isoformat()}")
        if self.operation is not None and self.operation is not Operation.DELETE:
            parts.append(f"the taxonomy allows {op} for it")
        elif self.operation is Operation.DELETE:
            parts.append("erasure is always permitted")
        return f"{op} of {tid} {under} permitted: {'; '.join(parts)}"


@attrs.frozen(kw_only=True)
class AccessRequest:
    """What a policy is asked about: one operation on one labelled template.

    Attributes:
        label: the template's label.
        purpose: the active purpose (`None` if there is none).
        operation: the operation (`None` for a `@uses` admission).
        now: the guard's clock time.
        template_id: the template's id (`None` while wrapping or for a bare label).
        context: the collection context given to `wrap` (`None` otherwise), or the
            context of another operation (e.g. a disclosure's recipient for EXPORT).
        consents: the guard's consent registry (`Guard(consents=...)`), for rules that
            read consent records; `None` if the guard has none.
    """

    label: Label
    purpose: Purpose | None
    operation: Operation | None
    now: datetime
    template_id: str | None = None
    context: object | None = None
    consents: object | None = None
