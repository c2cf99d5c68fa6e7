"""Audit: the events every checked access produces, and where they go.

A guard emits exactly one :class:`AuditEvent` per checked operation to its sink
before the operation proceeds; if the sink fails, the access is denied with
:class:`~purposeguard.AuditError`. Events hold template ids, subjects, purposes and
rule ids, never template values.

Sinks: :class:`MemorySink` (tests), :class:`LoggingSink` (the default, stdlib logger
``purposeguard.audit``), :class:`MultiSink` (fan-out). Implement
:class:`~purposeguard.typing.AuditSink` for your own.
"""

from purposeguard._events import AuditEvent, LoggingSink, MemorySink, MultiSink, Outcome
from purposeguard.typing import AuditSink

__all__ = ["AuditEvent", "AuditSink", "LoggingSink", "MemorySink", "MultiSink", "Outcome"]

for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("purposeguard._"):
        _obj.__module__ = __name__
del _name, _obj
