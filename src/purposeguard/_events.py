"""Audit events and the basic sinks (memory, logging, fan-out)."""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import attrs

from ._purposes import Operation, Purpose

__all__ = ["AuditEvent", "LoggingSink", "MemorySink", "MultiSink", "Outcome"]


class Outcome(enum.StrEnum):
    """What happened to an access."""

    GRANTED = "granted"
    """It was permitted and went ahead."""
    DENIED = "denied"
    """It was refused (enforce mode)."""
    WOULD_DENY = "would_deny"
    """It was not permitted but went ahead because the guard is in audit mode."""


@attrs.frozen(kw_only=True)
class AuditEvent:
    """One audited access. Holds ids, purposes and rule ids, never template values.

    Attributes:
        seq: the guard's sequence number for the event (increasing).
        at: when it happened, by the guard's clock.
        operation: the operation, or `None` for a `@uses` admission or a scope entry.
        outcome: granted, denied or would_deny.
        purpose: the active purpose (`None` if there was none).
        template_ids: the templates involved, in the order the operation saw them.
        subjects: their data subjects, sorted and without repeats.
        principal: the principal of the active scope, if one was named.
        grant_id: the id of the grant behind the scope, if any.
        rule_ids: the ids of every rule that denied.
        reason: the reasons, as one human sentence.
        site: `module:qualname` of the code that made the access.
    """

    seq: int
    at: datetime
    operation: Operation | None
    outcome: Outcome
    purpose: Purpose | None
    template_ids: tuple[str, ...] = ()
    subjects: tuple[str, ...] = ()
    principal: str | None = None
    grant_id: str | None = None
    rule_ids: tuple[str, ...] = ()
    reason: str = ""
    site: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The event as JSON-compatible data."""
        return {
            "seq": self.seq,
            "at": self.at.isoformat(),
            "operation": None if self.operation is None else self.operation.value,
            "outcome": self.outcome.value,
            "purpose": None if self.purpose is None else self.purpose.name,
            "template_ids": list(self.template_ids),
            "subjects": list(self.subjects),
            "principal": self.principal,
            "grant_id": self.grant_id,
            "rule_ids": list(self.rule_ids),
            "reason": self.reason,
            "site": self.site,
        }


class MemorySink:
    """Keeps events in a list, in emit order: for tests and small tools.

    `events` is the list itself; `clear()` empties it. Thread-safe.
    """

    __slots__ = ("_lock", "events")

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []
        self._lock = threading.Lock()

    def emit(self, event: AuditEvent) -> None:
        """Append *event*."""
        with self._lock:
            self.events.append(event)

    def flush(self) -> None:
        """Nothing to flush."""

    def close(self) -> None:
        """Nothing to close."""

    def clear(self) -> None:
        """Forget every event."""
        with self._lock:
            self.events.clear()

    def __repr__(self) -> str:
        return f"<MemorySink with {len(self.events)} events>"


class LoggingSink:
    """Sends events to a stdlib logger (`purposeguard.audit` by default).

    The guard's default sink. Granted accesses log at INFO, denials and would-denies at
    WARNING, as one line with the outcome, operation, purpose, template ids, rule ids,
    site and reason. The event's data is attached as `record.audit` (a dict) for
    structured handlers. With no logging configured, Python's last-resort handler
    prints the WARNING lines to stderr. Not tamper-evident:
    use [`purposeguard.audit.JsonlSink`][purposeguard.audit.JsonlSink] where the record must stand
    as evidence.
    """

    __slots__ = ("_logger",)

    def __init__(self, logger: logging.Logger | str = "purposeguard.audit") -> None:
        self._logger = logging.getLogger(logger) if isinstance(logger, str) else logger

    def emit(self, event: AuditEvent) -> None:
        """Log *event*."""
        level = logging.INFO if event.outcome is Outcome.GRANTED else logging.WARNING
        if not self._logger.isEnabledFor(level):
            return
        op = "use" if event.operation is None else event.operation.value
        purpose = "-" if event.purpose is None else event.purpose.name
        self._logger.log(
            level,
            "%s %s purpose=%s templates=%s rules=%s site=%s %s",
            event.outcome.value,
            op,
            purpose,
            ",".join(event.template_ids) or "-",
            ",".join(event.rule_ids) or "-",
            event.site,
            event.reason,
            extra={"audit": event.to_dict()},
        )

    def flush(self) -> None:
        """Flush the logger's handlers."""
        for h in self._logger.handlers:
            h.flush()

    def close(self) -> None:
        """Nothing to close: the logger's handlers belong to the application."""

    def __repr__(self) -> str:
        return f"LoggingSink({self._logger.name!r})"


class MultiSink:
    """Sends every event to each of several sinks, in order.

    If any sink fails the error propagates, so the guard denies the access.
    """

    __slots__ = ("sinks",)

    def __init__(self, *sinks: Any) -> None:
        self.sinks: tuple[Any, ...] = tuple(sinks)

    def emit(self, event: AuditEvent) -> None:
        """Emit *event* to every sink."""
        for s in self.sinks:
            s.emit(event)

    def flush(self) -> None:
        """Flush every sink."""
        for s in self.sinks:
            s.flush()

    def close(self) -> None:
        """Close every sink."""
        for s in self.sinks:
            s.close()

    @classmethod
    def of(cls, sinks: Iterable[Any]) -> MultiSink:
        """Build from an iterable of sinks."""
        return cls(*sinks)

    def __repr__(self) -> str:
        return f"MultiSink({', '.join(map(repr, self.sinks))})"
