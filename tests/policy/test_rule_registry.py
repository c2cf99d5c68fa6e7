"""Every rule of the legal rule map is known, and every enforced rule has a scenario
that it denies and that stops naming it when the rule is taken out of force.

The check is uniform: with every preset in force the scenario is denied and the rule
is among the denying ids; with that one rule waived, the denying ids are exactly the
same minus that rule (so a scenario the rule alone denies then runs). Removing a
rule's code makes the first half fail.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

import purposeguard as pg
from purposeguard.policy import (
    PRESETS,
    RULES,
    CollectionContext,
    ConsentRegistry,
    Enforcement,
    Policy,
    disclose,
)
from purposeguard.stores import GuardedStore, MemoryBackend

from .conftest import PRIVATE, World, denying_rules, full_policy

# The ids of research/legal-rules.md, section 1.
LEGAL_RULE_IDS = (
    [f"CN-{i:02d}" for i in range(1, 15)]
    + [f"FR-{i:02d}" for i in range(1, 8)]
    + [f"EU-{i:02d}" for i in range(1, 8)]
    + [f"AI-{i:02d}" for i in range(1, 5)]
    + [f"IL-{i:02d}" for i in range(1, 5)]
    + ["TX-01", "WA-01", "CO-01", "CA-01"]
    + [f"ST-{i:02d}" for i in range(1, 5)]
)

Scenario = Callable[[Policy], set[str]]


def _wrap(policy: Policy, **wrap: object) -> set[str]:
    w = World(policy)
    w.consent()
    return denying_rules(lambda: w.wrap(**wrap))  # type: ignore[arg-type]


def _with_consent(policy: Policy, consent: Mapping[str, object], **wrap: object) -> set[str]:
    w = World(policy)
    w.consent(**consent)  # type: ignore[arg-type]
    return denying_rules(lambda: w.wrap(**wrap))  # type: ignore[arg-type]


def _use_after(
    policy: Policy, change: Callable[[World], object], purpose: str, op: pg.Operation
) -> set[str]:
    w = World(policy)
    w.consent(purposes=["face.verification", "face.identification"])
    t = w.wrap(["face.verification", "face.identification"])
    change(w)

    def use() -> None:
        with pg.using(w.guard), pg.purpose(purpose):
            w.guard.authorize(op, (t,))

    return denying_rules(use)


def _disclose(policy: Policy, **how: object) -> set[str]:
    w = World(policy)
    w.consent(form="written", transfer=True, recipients=["bank"])
    t = w.wrap()

    def share() -> None:
        with pg.using(w.guard), pg.purpose("face.verification.payment"):
            disclose(t, **how)  # type: ignore[arg-type]

    return denying_rules(share)


def _enrol(policy: Policy) -> set[str]:
    w = World(policy)
    w.consent()
    t = w.wrap()
    store = GuardedStore(MemoryBackend(), guard=w.guard)
    return denying_rules(lambda: store.enrol(t))


def _public(**kw: object) -> CollectionContext:
    return CollectionContext(place="public", source="camera", **kw)  # type: ignore[arg-type]


SCENARIOS: dict[str, Scenario] = {
    "CN-01": lambda p: _with_consent(p, {"purposes": "face"}, purposes="face"),
    "CN-02": lambda p: _wrap(p, consent=None),
    "CN-03": lambda p: _wrap(p, purposes="face.identification"),
    "CN-05": lambda p: _with_consent(p, {"notice": None}),
    "CN-06": lambda p: _with_consent(p, {"term": timedelta(days=20)}),
    "CN-07": lambda p: _wrap(p, context=_public(signage=False)),
    "CN-08": lambda p: _with_consent(p, {"form": "explicit"}),
    "CN-09": lambda p: _use_after(
        p, lambda w: w.registry.withdraw("c1"), "face.verification.login", pg.Operation.COMPARE
    ),
    "CN-10": lambda p: _disclose(p, recipient="insurer"),
    "CN-11": lambda p: _disclose(p, recipient="bank", cross_border=True),
    "FR-02": lambda p: _wrap(
        p, context=CollectionContext(place="private", source="camera", subject_age=10)
    ),
    "FR-03": lambda p: _enrol(p.evolve(storage="central")),
    "FR-06": lambda p: _wrap(
        p, context=CollectionContext(place="private", source="camera", zone="changing room")
    ),
    "EU-01": lambda p: _with_consent(p, {"form": "plain"}),
    "EU-02": lambda p: _wrap(p, purposes="face.identification"),
    "EU-04": lambda p: _use_after(
        p, lambda w: w.registry.withdraw("c1"), "face.verification.login", pg.Operation.COMPARE
    ),
    "EU-07": lambda p: _enrol(p.evolve(storage="central")),
    "AI-01": lambda p: _wrap(p, context=CollectionContext(place="private", source="web_scrape")),
    "AI-02": lambda p: _with_consent(
        p, {"purposes": "face.identification"}, purposes="face.identification.realtime_remote"
    ),
    "AI-03": lambda p: _with_consent(
        p,
        {"purposes": "face.analytics"},
        purposes="face.analytics.sensitive_categorisation",
    ),
    "IL-01": lambda p: _wrap(p, ttl=timedelta(days=365 * 4)),
    "IL-02": lambda p: _with_consent(p, {"form": "separate"}),
    "IL-03": lambda p: _with_consent(
        p, {"purposes": "face.commercial.sale"}, purposes="face.commercial.sale"
    ),
    "IL-04": lambda p: _disclose(p, recipient="insurer", reason="consent"),
    "TX-01": lambda p: _wrap(p, ttl=timedelta(days=400)),
    "WA-01": lambda p: _wrap(p, purposes="face.identification"),
    "CO-01": lambda p: _wrap(p, ttl=timedelta(days=365 * 2 + 30)),
    "CA-01": lambda p: _use_after(
        p,
        lambda w: w.registry.request_limit("u1"),
        "face.identification.closed_set_optin",
        pg.Operation.SEARCH,
    ),
}
ENFORCED = sorted(r for r, rule in RULES.items() if rule.enforcement is Enforcement.ENFORCED)


def test_every_rule_of_the_legal_map_is_known() -> None:
    assert sorted(RULES) == sorted(LEGAL_RULE_IDS)
    for rid, rule in RULES.items():
        assert rule.id == rid
        assert rule.summary
        assert rule.source
        assert rule.enforced_by


def test_every_preset_is_built_of_known_rules() -> None:
    assert set(PRESETS) == {
        "pipl", "cn_face_2025", "gdpr", "eu_ai_act", "bipa",
        "texas_cubi", "washington", "colorado", "ccpa",
    }  # fmt: skip
    covered = set().union(*PRESETS.values())
    assert covered == set(RULES)


def test_every_enforced_rule_has_a_scenario() -> None:
    # FR-01 narrows other rules, so it has its own test below.
    assert sorted(set(SCENARIOS) | {"FR-01"}) == ENFORCED


@pytest.mark.parametrize("rule", sorted(SCENARIOS))
def test_rule_denies_its_scenario_and_only_it_stops_naming_it_when_waived(rule: str) -> None:
    policy = full_policy()
    with_rule = SCENARIOS[rule](policy)
    assert rule in with_rule, f"{rule} did not deny its scenario (denied by {with_rule})"
    without = SCENARIOS[rule](policy.without(rule))
    assert without == with_rule - {rule}


def test_fr01_takes_model_development_out_of_the_cn_measures() -> None:
    policy = Policy.preset(
        "cn_face_2025",
        impact_assessment="PIA",
        necessity="n",
        alternatives={"face.verification": "PIN"},
    )
    scenario = {"purposes": "face.model_development", "form": "explicit"}
    kw = {"purposes": "face.model_development.training"}
    assert "FR-02" not in _with_consent(policy, scenario, **kw)
    assert "FR-02" in _with_consent(policy.without("FR-01"), scenario, **kw)


@pytest.mark.parametrize(
    ("missing", "rules"),
    [
        ("impact_assessment", ("CN-14", "FR-04", "EU-06")),
        ("necessity", ("CN-08", "FR-02")),
        ("notice", ("IL-01", "CA-01")),
        ("alternatives", ("FR-05",)),
    ],
)
def test_an_undeclared_duty_is_a_warning_naming_its_rules_when_the_guard_is_built(
    missing: str, rules: tuple[str, ...]
) -> None:
    policy = full_policy(**{missing: None})
    with pytest.warns(pg.PurposeWarning) as caught:
        pg.Guard(policy=policy, consents=ConsentRegistry())
    text = " ".join(str(w.message) for w in caught)
    for r in rules:
        assert r in text
    # Declared, or with its rules waived, nothing is said.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pg.Guard(policy=full_policy(), consents=ConsentRegistry())
        pg.Guard(policy=policy.without(*rules), consents=ConsentRegistry())


def test_fr05_counts_only_the_declared_verification_purposes() -> None:
    policy = full_policy(alternatives=None, processing=["face.analytics.counting"])
    assert not any("FR-05" in m for m in policy.guard_warnings())
    policy = full_policy(
        alternatives={"face.verification.login": "password"},
        processing=["face.verification.login", "face.verification.payment"],
    )
    [warning] = [m for m in policy.guard_warnings() if "FR-05" in m]
    assert "face.verification.payment" in warning
    assert "login" not in warning


def test_fr07_filing_alert_at_100000_subjects_and_cn13_at_ten_million() -> None:
    policy = full_policy()
    assert policy.filing_alerts({"subjects": 99_999}) == []
    [alert] = policy.filing_alerts({"subjects": 100_000})
    assert alert.startswith("FR-07")
    assert policy.evolve(filing="CAC-GD-2026-0001").filing_alerts({"subjects": 100_000}) == []
    assert policy.without("FR-07").filing_alerts({"subjects": 100_000}) == []
    alerts = policy.filing_alerts({"subjects": 10_000_001})
    assert [a[:5] for a in alerts] == ["FR-07", "CN-13"]
    assert policy.without("CN-13").filing_alerts({"subjects": 10_000_001})[0][:5] == "FR-07"
    assert policy.filing_alerts({}) == []


class _CountingBackend(MemoryBackend):
    # A memory backend that reports a large population, as a big deployment's would.
    def subjects(self) -> int:
        return 100_000 + super().subjects()


def test_fr07_alert_reaches_store_stats() -> None:
    w = World(full_policy())
    store = GuardedStore(_CountingBackend(), guard=w.guard)
    assert store.stats()["alerts"][0].startswith("FR-07")
    plain = GuardedStore(MemoryBackend(), guard=pg.Guard())
    assert "alerts" not in plain.stats()


def test_rule_map_doc_lists_every_rule_with_its_enforcement() -> None:
    doc = Path(__file__).parents[2] / "docs" / "reference" / "rule-map.md"
    text = doc.read_text(encoding="utf-8")
    for rid, rule in RULES.items():
        row = re.search(rf"^\| {rid} \|.*$", text, re.MULTILINE)
        assert row is not None, f"{rid} missing from the rule map"
        assert rule.enforcement.value in row.group(0)
        if rid in SCENARIOS:
            assert "test_rule_registry" in row.group(0)


def test_a_granted_use_names_no_rule(world: World) -> None:
    world.consent()
    t = world.wrap()
    with pg.using(world.guard), pg.purpose("face.verification.login"):
        assert pg.similarity(np.arange(1.0, 9.0), t) == pytest.approx(1.0)
    assert all(e.rule_ids == () for e in world.sink.events)


def test_unchanged_wrap_is_permitted_under_every_preset_alone() -> None:
    for name in PRESETS:
        policy = Policy.preset(name).evolve(
            impact_assessment="PIA", necessity="n", notice="https://n",
            alternatives={"face.verification": "PIN"}, storage="user_device",
        )  # fmt: skip
        w = World(policy)
        w.consent()
        t = w.wrap(context=PRIVATE)
        assert w.guard.check(t, "face.verification.login", pg.Operation.COMPARE).allowed, name
