"""Reports: the record of processing of a store, from its labels, policy, consents and log.

[`build_report`][purposeguard.reports.build_report] reads a store (a
[`GuardedStore`][purposeguard.stores.GuardedStore] or an SQLite store file), its
[`Policy`][purposeguard.policy.Policy], its consent registry and its
[`JsonlSink`][purposeguard.audit.JsonlSink] audit log (verified first) and returns a
[`Report`][purposeguard.reports.Report]: the GDPR Art. 30 record of processing with the skeleton of
a PIPL Art. 55-56 impact assessment. Render it with
[`Report.to_markdown`][purposeguard.reports.Report.to_markdown] or
[`Report.to_html`][purposeguard.reports.Report.to_html] (one self-contained page with small SVG
charts):

```python
report = build_report(store="faces.db", policy=Policy.preset("gdpr"),
                      audit_log="audit.jsonl", key=key)
if report.tampered:
    ...  # the log failed verification: the report says so at the top
Path("record.html").write_text(report.to_html(), encoding="utf-8")
```

`NO_RULE` is the bucket under which denials that name no rule id (a label or a
purpose scope refused them) are counted.

A report holds counts, purposes, rule ids and policy settings: never a template value,
a subject id or a consent id. The command line is `purposeguard report`.
"""

from ._build import (
    NO_RULE,
    AuditSummary,
    ConsentSummary,
    FilingState,
    PurposeEntry,
    Report,
    build_report,
)

__all__ = [
    "NO_RULE",
    "AuditSummary",
    "ConsentSummary",
    "FilingState",
    "PurposeEntry",
    "Report",
    "build_report",
]

# Show public names as purposeguard.reports.X in reprs, tracebacks and docs.
for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("purposeguard.reports._"):
        _obj.__module__ = __name__
del _name, _obj
