"""The law as executable rules: jurisdiction presets, consent, retention, collection.

`Policy.preset("pipl", "gdpr", ...)` composes presets into the strictest policy;
`Policy.from_toml(path)` adds a deployment's own rules. Give the policy and a
[`ConsentRegistry`][purposeguard.policy.ConsentRegistry] to the guard:

```python
registry = ConsentRegistry()
guard = Guard(policy=Policy.preset("gdpr", ...), consents=registry)
```

Every rule id of the legal rule map is in [`RULES`][purposeguard.policy.RULES], with how
purposeguard treats it (enforced, a declared duty, or recorded); a denial names the rule ids in the
decision's `rule_ids` and in the error message. `docs/reference/rule-map.md` maps
each id to what enforces it and the test that proves it.
"""

from ._disclose import disclose
from ._policy import FILING_THRESHOLD, LOCAL_RULES, Policy, RetentionLimit
from ._records import (
    FORBIDDEN_ZONES,
    Authorisation,
    CollectionContext,
    Consent,
    ConsentForm,
    Disclosure,
    DisclosureReason,
    LegalBasis,
    Place,
    Source,
    Storage,
)
from ._registry import ConsentRegistry, SQLiteConsentRegistry
from ._rules import PRESETS, RULES, Enforcement, Rule

__all__ = [
    "FILING_THRESHOLD",
    "FORBIDDEN_ZONES",
    "LOCAL_RULES",
    "PRESETS",
    "RULES",
    "Authorisation",
    "CollectionContext",
    "Consent",
    "ConsentForm",
    "ConsentRegistry",
    "Disclosure",
    "DisclosureReason",
    "Enforcement",
    "LegalBasis",
    "Place",
    "Policy",
    "RetentionLimit",
    "Rule",
    "SQLiteConsentRegistry",
    "Source",
    "Storage",
    "disclose",
]

# Show public names as purposeguard.policy.X in reprs, tracebacks and docs.
for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("purposeguard.policy._"):
        _obj.__module__ = __name__
del _name, _obj
