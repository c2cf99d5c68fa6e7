"""The exceptions purposeguard raises, and the warning it issues in audit mode.

```text
PurposeGuardError(Exception)
├── AccessDeniedError(PurposeGuardError, PermissionError)   .decision
│   ├── PurposeViolationError     purpose/operation not permitted, no active purpose,
│   │                             or a scope escape
│   ├── ExpiredTemplateError
│   ├── ConsentError              missing, insufficient or withdrawn consent
│   └── GrantError                missing, forged, expired or out-of-scope grant
├── TemplateNotFoundError(PurposeGuardError, KeyError)
├── InvalidTemplateError(PurposeGuardError, ValueError)
├── PolicyError(PurposeGuardError, ValueError)      bad purpose, taxonomy, policy or config
├── IntegrityError(PurposeGuardError)               tampered sealed template, key or audit log
└── AuditError(PurposeGuardError)                   audit sink failed: the access is denied
PurposeWarning(UserWarning)                          audit-mode would-deny
```

Messages name template ids, purposes and rule ids. They never contain a template's
values: an exception may be logged, shown to a user or sent to an error tracker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._decision import Decision

__all__ = [
    "AccessDeniedError",
    "AuditError",
    "ConsentError",
    "ExpiredTemplateError",
    "GrantError",
    "IntegrityError",
    "InvalidTemplateError",
    "PolicyError",
    "PurposeGuardError",
    "PurposeViolationError",
    "PurposeWarning",
    "TemplateNotFoundError",
]


class PurposeGuardError(Exception):
    """Base class of every exception raised by purposeguard."""


class AccessDeniedError(PurposeGuardError, PermissionError):
    """An access to face data was refused.

    `decision` is the [`Decision`][purposeguard.Decision] that refused it (`None` when
    the access was refused before any label was consulted: pickling, copying, numpy
    conversion and the other blocked bypasses raise this class itself). Catchable as
    `PermissionError`; pickles with its message and decision.
    """

    decision: Decision | None

    def __init__(self, message: str, decision: Decision | None = None) -> None:
        super().__init__(message)
        self.decision = decision

    def __reduce__(self) -> tuple[object, ...]:
        # Exceptions cross process boundaries (multiprocessing, error trackers); keep
        # the message and the decision, which hold no template values.
        return (type(self), (str(self), self.decision))


class PurposeViolationError(AccessDeniedError):
    """The purpose or operation is not permitted by the label or the taxonomy, no purpose
    is active, or a nested scope tried to leave the purpose of its enclosing scope; also
    a `restrict` that would broaden a label."""


class ExpiredTemplateError(AccessDeniedError):
    """The template's label has expired at the guard's clock time."""


class ConsentError(AccessDeniedError):
    """Consent is missing, insufficient for the purpose, or withdrawn."""


class GrantError(AccessDeniedError):
    """A purpose grant is missing, forged, expired or does not cover the access, or the
    grant verifier failed."""


class TemplateNotFoundError(PurposeGuardError, KeyError):
    """No template with that id is visible to the caller.

    A template that exists but that the caller may not see is reported exactly like a
    missing one, so that lookups are not an enrolment oracle. Catchable as `KeyError`;
    `str()` gives the plain message.
    """

    def __str__(self) -> str:
        # KeyError.__str__ would repr() the message and add quotes.
        return str(self.args[0]) if self.args else ""


class InvalidTemplateError(PurposeGuardError, ValueError):
    """A vector or template argument is malformed (the message never shows values).

    Catchable as `ValueError`.
    """


class PolicyError(PurposeGuardError, ValueError):
    """A purpose, taxonomy, label, policy or configuration is invalid or refused.

    Catchable as `ValueError`.
    """


class IntegrityError(PurposeGuardError):
    """Sealed data, a key or an audit log failed an integrity check.

    Deliberately opaque: every cause (wrong key, changed byte, swapped label, shredded
    key, truncation) gives the same exception, so that failures are no oracle.
    """


class AuditError(PurposeGuardError):
    """The audit sink failed; the access it was recording is denied, in every mode.

    The sink's exception is chained as `__cause__`.
    """


class PurposeWarning(UserWarning):
    """Issued in audit mode for an access that enforce mode would have denied.

    `decision` is the decision that would have denied it. Also issued when a guard is
    built over a policy that reports undeclared deployment duties (`decision` is then
    `None`).
    """

    decision: Decision | None

    def __init__(self, message: str, decision: Decision | None = None) -> None:
        super().__init__(message)
        self.decision = decision
