"""The public surface: __all__, DESIGN.md's names, __module__ and docstrings."""

from __future__ import annotations

import importlib
import inspect
import sys
import types

import pytest

import purposeguard as pg

# The public names DESIGN.md lists for the core (sections Purposes and operations,
# Labels, Templates, Declaring purpose, The guard, Exceptions).
DESIGN_CORE = {
    "Purpose",
    "Operation",
    "Taxonomy",
    "Label",
    "FaceTemplate",
    "purpose",
    "current_purpose",
    "uses",
    "transform",
    "collects",
    "similarity",
    "Guard",
    "Mode",
    "configure",
    "using",
    "Decision",
    "Clock",
    "SystemClock",
    "FrozenClock",
    "PurposeGuardError",
    "AccessDeniedError",
    "PurposeViolationError",
    "ExpiredTemplateError",
    "ConsentError",
    "GrantError",
    "TemplateNotFoundError",
    "InvalidTemplateError",
    "PolicyError",
    "IntegrityError",
    "AuditError",
    "PurposeWarning",
}
# DESIGN.md's section Audit (the tamper-evident JsonlSink and verify() are another issue).
DESIGN_AUDIT = {"AuditEvent", "AuditSink", "MemorySink", "LoggingSink", "Outcome"}
# DESIGN.md's section Testing toolkit (StoreMachine belongs to the stores issue).
DESIGN_TESTING = {"strategies", "capture_audit", "FrozenClock"}

PACKAGES = ["purposeguard", "purposeguard.audit", "purposeguard.reports"]


def public_names(module: types.ModuleType) -> set[str]:
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }


def is_public_module(name: str) -> bool:
    return name.split(".")[0] == "purposeguard" and not any(
        part.startswith("_") for part in name.split(".")
    )


@pytest.mark.parametrize("name", PACKAGES)
def test_all_equals_the_public_names(name: str) -> None:
    module = importlib.import_module(name)
    assert sorted(module.__all__) == sorted(public_names(module))
    assert len(module.__all__) == len(set(module.__all__))


def test_design_names_are_exported() -> None:
    assert set(pg.__all__) >= DESIGN_CORE
    audit = importlib.import_module("purposeguard.audit")
    assert set(audit.__all__) >= DESIGN_AUDIT
    testing = importlib.import_module("purposeguard.testing")
    assert set(testing.__all__) >= DESIGN_TESTING
    for name in testing.__all__:
        assert getattr(testing, name) is not None


def test_exceptions_hierarchy_matches_design() -> None:
    access = [pg.PurposeViolationError, pg.ExpiredTemplateError, pg.ConsentError, pg.GrantError]
    for exc in access:
        assert issubclass(exc, pg.AccessDeniedError)
    assert issubclass(pg.AccessDeniedError, pg.PurposeGuardError)
    assert issubclass(pg.AccessDeniedError, PermissionError)
    assert issubclass(pg.TemplateNotFoundError, KeyError)
    assert issubclass(pg.InvalidTemplateError, ValueError)
    assert issubclass(pg.PolicyError, ValueError)
    others: list[type[Exception]] = [
        pg.TemplateNotFoundError, pg.InvalidTemplateError, pg.PolicyError,
        pg.IntegrityError, pg.AuditError,
    ]  # fmt: skip
    for other in others:
        assert issubclass(other, pg.PurposeGuardError)
    assert issubclass(pg.PurposeWarning, UserWarning)
    assert not issubclass(pg.PurposeWarning, pg.PurposeGuardError)
    assert pg.AccessDeniedError("x").decision is None


def test_outcome_values() -> None:
    from purposeguard.audit import Outcome

    assert {o.value for o in Outcome} == {"granted", "denied", "would_deny"}
    assert Outcome("would_deny") is Outcome.WOULD_DENY
    assert str(Outcome.WOULD_DENY) == "would_deny"


def test_operations_match_design() -> None:
    assert [o.name for o in pg.Operation] == [
        "COLLECT", "REVEAL", "COMPARE", "SEARCH", "TRANSFORM", "STORE", "EXPORT", "DELETE",
    ]  # fmt: skip


def _members() -> list[tuple[str, str]]:
    out = []
    for package in PACKAGES:
        module = importlib.import_module(package)
        out += [(package, name) for name in module.__all__]
    return out


@pytest.mark.parametrize(("package", "name"), _members(), ids=lambda v: str(v))
def test_member_module_and_docstring(package: str, name: str) -> None:
    obj = getattr(sys.modules[package], name)
    if isinstance(obj, str | int | frozenset | tuple):
        return  # a constant: documented in its module's docstring, it has no __module__
    module = getattr(obj, "__module__", None)
    assert isinstance(module, str)
    assert is_public_module(module), f"{package}.{name} claims module {module}"
    # The claimed module really holds the name (so reprs, pickles and docs resolve).
    assert getattr(importlib.import_module(module), name) is obj
    # Its own docstring, not one inherited from a base class.
    doc = vars(obj).get("__doc__") if inspect.isclass(obj) else obj.__doc__
    assert isinstance(doc, str), f"{package}.{name} has no docstring"
    assert doc.strip(), f"{package}.{name} has an empty docstring"


def test_submodules_have_docstrings() -> None:
    for name in ["purposeguard", "purposeguard.audit", "purposeguard.testing",
                 "purposeguard.testing.strategies", "purposeguard.cli",
                 "purposeguard.typing"]:  # fmt: skip
        assert importlib.import_module(name).__doc__
