"""The protocols purposeguard calls into: implement these to plug in your own parts.

Each protocol says who calls it and what an implementation must guarantee. A guard
library must fail loudly: an implementation that cannot answer must raise, never
return a permissive default.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from datetime import datetime
from typing import Protocol, runtime_checkable

from ._context import VerifiedGrant
from ._decision import AccessRequest, RuleFinding
from ._events import AuditEvent
from ._purposes import Purpose

__all__ = [
    "AccessRequest",
    "AuditSink",
    "Clock",
    "ConsentLookup",
    "GrantVerifierLike",
    "KeyStore",
    "PolicyRules",
    "RuleFinding",
    "VerifiedGrant",
]


@runtime_checkable
class Clock(Protocol):
    """Where a guard reads the time. Called on every check.

    `now()` must return a timezone-aware datetime (UTC preferred) and must not go
    backwards in production (`FrozenClock` may, for tests).
    """

    def now(self) -> datetime:
        """The current time, timezone-aware."""
        ...


@runtime_checkable
class AuditSink(Protocol):
    """Receives one [`AuditEvent`][purposeguard.audit.AuditEvent] per checked access.

    The guard calls `emit` before the access proceeds (and before a denial is
    raised). If `emit` raises, the access is denied with `AuditError`: a sink must
    raise rather than drop an event it could not record. `flush` makes emitted events
    durable; `close` releases resources. Sinks may be called from several threads.
    """

    def emit(self, event: AuditEvent) -> None:
        """Record *event*, or raise."""
        ...

    def flush(self) -> None:
        """Make every emitted event durable."""
        ...

    def close(self) -> None:
        """Flush and release resources."""
        ...


@runtime_checkable
class ConsentLookup(Protocol):
    """Answers whether a consent id is withdrawn. Called on every check of a template
    whose label names a consent.

    An implementation that does not know the id must answer `True` (treat it as
    withdrawn): fail closed.
    """

    def is_withdrawn(self, consent_id: str) -> bool:
        """Whether *consent_id* has been withdrawn (or is unknown)."""
        ...


@runtime_checkable
class PolicyRules(Protocol):
    """Rules beyond the label and the taxonomy (jurisdiction presets, company rules).

    The guard calls `evaluate` on every check that the label and the taxonomy permit
    and on every collection, and denies when it returns any finding. It must return
    *every* rule that denies, not only the first; it must not have side effects.

    Optional methods the core calls when a policy has them (`purposeguard.policy.Policy`
    implements all of them):

    - `validate_guard(guard)` when a guard is built: raise `PolicyError` if the
      guard cannot serve the policy (e.g. no consent registry).
    - `guard_warnings() -> Iterable[str]` when a guard is built: each is issued as a
      `PurposeWarning` (undeclared duties).
    - `granted_until(request) -> datetime | None` after a granted decision: until
      when the guard may reuse it (`None`: do not); and `remembered_until(label,
      purpose, operation, now, consents)` before building a request: a granted verdict
      still standing, or `None` to evaluate. Neither may ever deny or grant more
      than `evaluate` would.
    - `after_access(guard, operation, subjects, now)` after a granted access is
      audited (e.g. to record the subjects' interactions).
    - `check_retention(*, guard, purposes, subject, consent, collected_at,
      expires_at)` at wrap and rebind: raise `PolicyError` for an expiry beyond
      what the policy allows.
    - `filing_alerts(stats) -> Iterable[str]` from `GuardedStore.stats()`.
    """

    def evaluate(self, request: AccessRequest) -> Iterable[RuleFinding]:
        """The findings of every rule that denies *request* (empty: no objection)."""
        ...


@runtime_checkable
class GrantVerifierLike(Protocol):
    """Checks a signed purpose grant when a `purpose(name, grant=token)` scope opens.

    Must raise [`GrantError`][purposeguard.GrantError] for a forged, expired, out-of-audience
    or out-of-scope grant, and return the verified grant otherwise.
    """

    def verify(
        self, token: str, *, purpose: Purpose, principal: str | None, now: datetime
    ) -> VerifiedGrant:
        """Verify *token* for *purpose* (and *principal*, if named) at *now*."""
        ...


@runtime_checkable
class KeyStore(Protocol):
    """Where a [`KeyRing`][purposeguard.crypto.KeyRing] keeps its wrapped data keys.

    Entries are opaque bytes keyed by a key id (32 lowercase hex digits); the key ring
    wraps every data key under its key-encryption key and MACs every entry, so a store
    never sees a key in clear and a tampered entry is detected when it is loaded. The
    key ring calls `load` when it opens (and when it meets a key id it does not
    know), `put` when it creates, rotates or shreds a key, and `replace_all` when
    the key-encryption key is rotated.

    An implementation must make `put` and `replace_all` durable and atomic before
    returning (all entries or none), and must raise rather than drop a write. When
    `put` replaces an existing entry (a shredded key becomes a tombstone), the old
    bytes must be destroyed as far as the medium allows.
    """

    def load(self) -> Mapping[str, bytes]:
        """Every entry, by key id."""
        ...

    def put(self, entries: Mapping[str, bytes]) -> None:
        """Add or replace *entries*, atomically and durably."""
        ...

    def replace_all(self, entries: Mapping[str, bytes]) -> None:
        """Replace the whole content with *entries*, atomically and durably."""
        ...

    def key_ids(self) -> Collection[str]:
        """The key ids of every entry."""
        ...
