"""The active purpose scope, held in a ContextVar (task-local, not inherited by threads)."""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING

import attrs

from ._purposes import Operation, Purpose

if TYPE_CHECKING:
    from ._guard import Guard

__all__ = ["ACTIVE", "GUARD_OVERRIDE", "ScopeState", "VerifiedGrant"]


@attrs.frozen
class VerifiedGrant:
    """A purpose grant that a grant verifier has checked.

    Attributes:
        grant_id: the grant's unique id (recorded in audit events).
        principal: who the grant was issued to.
        purposes: the purposes it covers (each with its descendants).
        operations: the operations it covers, or `None` for all.
        issuer: who issued it.
    """

    grant_id: str
    principal: str
    purposes: frozenset[Purpose]
    operations: frozenset[Operation] | None = None
    issuer: str | None = None

    def covers(self, purpose: Purpose) -> bool:
        """Whether *purpose* is within one of the granted purposes."""
        return any(purpose.is_within(g) for g in self.purposes)


@attrs.frozen
class ScopeState:
    """What a `purpose(...)` scope put in force."""

    purpose: Purpose
    principal: str | None = None
    grant: VerifiedGrant | None = None


ACTIVE: ContextVar[ScopeState | None] = ContextVar("purposeguard.active_scope", default=None)
GUARD_OVERRIDE: ContextVar[Guard | None] = ContextVar("purposeguard.guard", default=None)
