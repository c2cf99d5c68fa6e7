"""purposeguard: purpose-bound face templates.

A face template is wrapped at collection into an object that carries its label
(allowed and prohibited purposes, expiry, subject, consent). Code declares the purpose
it works for; every use of a template is checked against the label, enforced or
reported, and audited.
"""

from ._clock import FrozenClock, SystemClock
from ._context import VerifiedGrant
from ._decision import AccessRequest, Decision, RuleFinding
from ._errors import (
    AccessDeniedError,
    AuditError,
    ConsentError,
    ExpiredTemplateError,
    GrantError,
    IntegrityError,
    InvalidTemplateError,
    PolicyError,
    PurposeGuardError,
    PurposeViolationError,
    PurposeWarning,
    TemplateNotFoundError,
)
from ._guard import Guard, Mode, configure, current_guard, using
from ._labels import Label
from ._purposes import Operation, Purpose
from ._scope import (
    PurposeScope,
    collects,
    current_purpose,
    distance,
    purpose,
    similarity,
    transform,
    uses,
)
from ._taxonomy import PurposeSpec, Taxonomy
from ._template import FaceTemplate
from .typing import Clock

__version__ = "0.1.0.dev0"

__all__ = [
    "AccessDeniedError",
    "AccessRequest",
    "AuditError",
    "Clock",
    "ConsentError",
    "Decision",
    "ExpiredTemplateError",
    "FaceTemplate",
    "FrozenClock",
    "GrantError",
    "Guard",
    "IntegrityError",
    "InvalidTemplateError",
    "Label",
    "Mode",
    "Operation",
    "PolicyError",
    "Purpose",
    "PurposeGuardError",
    "PurposeScope",
    "PurposeSpec",
    "PurposeViolationError",
    "PurposeWarning",
    "RuleFinding",
    "SystemClock",
    "Taxonomy",
    "TemplateNotFoundError",
    "VerifiedGrant",
    "collects",
    "configure",
    "current_guard",
    "current_purpose",
    "distance",
    "purpose",
    "similarity",
    "transform",
    "uses",
    "using",
]

# Show public names as purposeguard.X in reprs, tracebacks and docs.
for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("purposeguard._"):
        _obj.__module__ = __name__
del _name, _obj
