"""Audit: the events every checked access produces, and where they go.

A guard emits exactly one [`AuditEvent`][purposeguard.audit.AuditEvent] per checked operation to
its sink before the operation proceeds; if the sink fails, the access is denied with
[`AuditError`][purposeguard.AuditError]. Events hold template ids, subjects, purposes and
rule ids, never template values.

Sinks: [`MemorySink`][purposeguard.audit.MemorySink] (tests),
[`LoggingSink`][purposeguard.audit.LoggingSink] (the default, stdlib logger `purposeguard.audit`),
[`MultiSink`][purposeguard.audit.MultiSink] (fan-out). Implement
[`AuditSink`][purposeguard.typing.AuditSink] for your own.

Evidence: [`JsonlSink`][purposeguard.audit.JsonlSink] is the tamper-evident log (hash chain,
forward-secure MACs, signed Merkle checkpoints, rotation); [`verify`][purposeguard.audit.verify]
checks it and returns a [`VerifyResult`][purposeguard.audit.VerifyResult];
[`pseudonymise`][purposeguard.audit.pseudonymise] computes the pseudonym a sink writes for a
subject. The format is in `docs/reference/audit-log-format.md`.
"""

from purposeguard._events import AuditEvent, LoggingSink, MemorySink, MultiSink, Outcome
from purposeguard.audit._jsonl import JsonlSink, pseudonymise
from purposeguard.audit._verify import VerifyResult, verify
from purposeguard.typing import AuditSink

__all__ = [
    "AuditEvent",
    "AuditSink",
    "JsonlSink",
    "LoggingSink",
    "MemorySink",
    "MultiSink",
    "Outcome",
    "VerifyResult",
    "pseudonymise",
    "verify",
]

for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith(("purposeguard._", __name__ + "._")):
        _obj.__module__ = __name__
del _name, _obj
