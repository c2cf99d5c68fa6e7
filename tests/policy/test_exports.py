"""purposeguard.policy's public surface: DESIGN.md's names, __all__, modules, docstrings."""

from __future__ import annotations

import inspect
import types

import pytest

import purposeguard.policy as policy

DESIGN_POLICY = {
    "Policy", "Consent", "ConsentForm", "ConsentRegistry", "CollectionContext",
}  # fmt: skip
CONSTANTS = {"FILING_THRESHOLD", "FORBIDDEN_ZONES", "LOCAL_RULES", "PRESETS", "RULES"}


def test_all_is_the_public_names_and_holds_design_names() -> None:
    public = {
        n
        for n, v in vars(policy).items()
        if not n.startswith("_") and not isinstance(v, types.ModuleType)
    }
    assert sorted(policy.__all__) == sorted(public)
    assert set(policy.__all__) >= DESIGN_POLICY
    assert {f.value for f in policy.ConsentForm} >= {"separate", "explicit", "written", "opt_out"}
    assert {p.value for p in policy.Place} == {"private", "public", "device"}
    assert {s.value for s in policy.Source} == {"camera", "upload", "web_scrape", "cctv_bulk"}


@pytest.mark.parametrize("name", sorted(set(policy.__all__) - CONSTANTS))
def test_member_module_and_docstring(name: str) -> None:
    obj = getattr(policy, name)
    assert obj.__module__ == "purposeguard.policy"
    doc = vars(obj).get("__doc__") if inspect.isclass(obj) else obj.__doc__
    assert isinstance(doc, str)
    assert doc.strip()
    if inspect.isclass(obj):
        for attr, value in vars(obj).items():
            if not attr.startswith("_") and inspect.isfunction(value):
                assert value.__doc__, f"{name}.{attr} has no docstring"
