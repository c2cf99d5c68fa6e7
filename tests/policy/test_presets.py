"""Presets, composition, the guard integration and the rules' behaviour in detail."""

from __future__ import annotations

import warnings
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import purposeguard as pg
from purposeguard.audit import Outcome
from purposeguard.policy import (
    PRESETS,
    Authorisation,
    CollectionContext,
    Consent,
    ConsentRegistry,
    Disclosure,
    Policy,
    disclose,
)
from purposeguard.testing import strategies
from purposeguard.typing import PolicyRules

from .conftest import DUTIES, PRIVATE, T0, World, denying_rules, full_policy
from .test_rule_registry import SCENARIOS


def test_presets_compose_and_unknown_names_are_refused() -> None:
    p = Policy.preset("pipl", "gdpr", "pipl")
    assert p.presets == ("pipl", "gdpr")
    assert p.rules == PRESETS["pipl"] | PRESETS["gdpr"]
    assert isinstance(p, PolicyRules)
    assert "pipl+gdpr" in repr(p)
    with pytest.raises(pg.PolicyError, match="unknown preset 'gpdr'"):
        Policy.preset("gpdr")
    with pytest.raises(pg.PolicyError, match="at least one"):
        Policy.preset()
    with pytest.raises(pg.PolicyError, match="unknown rule id 'XX-01'"):
        Policy(rules=["XX-01"])
    with pytest.raises(pg.PolicyError, match="not in force"):
        Policy.preset("gdpr").without("IL-03")
    with pytest.raises(pg.PolicyError, match="unknown rule id"):
        Policy.preset("gdpr").without("nope")


def test_contradictory_settings_in_code_are_refused() -> None:
    with pytest.raises(pg.PolicyError, match="banned by the same policy"):
        Policy(banned="face.analytics", processing=["face.analytics.counting"])
    with pytest.raises(pg.PolicyError, match="contradicts IL-02"):
        Policy.preset("bipa", consent_forms={"face.verification": "explicit"})
    with pytest.raises(pg.PolicyError, match="contradicts AI-03"):
        Policy.preset("eu_ai_act", processing=["face.analytics.sensitive_categorisation"])
    with pytest.raises(pg.PolicyError, match=r"unknown purpose 'face\.nope'"):
        Policy(banned="face.nope")
    with pytest.raises(pg.PolicyError, match="both in force and waived"):
        Policy(rules=["IL-03"], waivers={"IL-03": "x"})
    with pytest.raises(pg.PolicyError, match="needs the reason"):
        Policy(waivers={"IL-03": " "})
    with pytest.raises(pg.PolicyError, match="storage must be one of"):
        Policy(storage="cloud")
    with pytest.raises(pg.PolicyError, match="positive timedelta"):
        Policy(max_retention={"face": timedelta(0)})


_SCENARIO_RULES = sorted(SCENARIOS)


@settings(max_examples=30, deadline=None)
@given(
    names=st.lists(st.sampled_from(sorted(PRESETS)), min_size=1, max_size=4, unique=True),
    scenario=st.sampled_from(_SCENARIO_RULES),
)
def test_a_composition_denies_whatever_any_member_denies(names: list[str], scenario: str) -> None:
    def run(*presets: str) -> set[str]:
        return SCENARIOS[scenario](Policy.preset(*presets, **DUTIES))

    composed = run(*names)
    members = [run(n) for n in names]
    assert set().union(*members) <= composed
    # Nothing denies in the composition that no member denies (only the members' rules).
    assert composed <= set().union(*members) | set().union(*(PRESETS[n] for n in names))


def test_or_composes_rules_bans_caps_and_forms() -> None:
    a = Policy.preset("gdpr", max_retention={"face": timedelta(days=30)}, storage="user_device")
    b = Policy(
        banned="face.analytics",
        max_retention={"face": timedelta(days=10)},
        consent_forms={"face.verification": "written"},
    )
    c = a | b
    assert c.rules == a.rules
    assert c.banned == b.banned
    assert c.max_retention == {pg.Purpose("face"): timedelta(days=10)}
    assert c.consent_forms == b.consent_forms
    assert c.storage is a.storage
    with pytest.raises(TypeError):
        _ = a | "pipl"  # type: ignore[operator]


def test_a_guard_needs_a_consent_registry_for_rules_that_read_consents() -> None:
    policy = full_policy()
    with pytest.raises(pg.PolicyError, match="consents=ConsentRegistry"):
        pg.Guard(policy=policy)

    class Lookup:
        def is_withdrawn(self, consent_id: str) -> bool:
            return False

    with pytest.raises(pg.PolicyError, match="got Lookup"):
        pg.Guard(policy=policy, consents=Lookup())
    # A policy of bans alone reads no consent record.
    assert not Policy(banned="face.analytics").needs_consents
    pg.Guard(policy=Policy(banned="face.analytics"))


def test_a_ban_also_refuses_collecting_inside_the_banned_purposes_scope() -> None:
    # The label allows only an ancestor of the banned purpose; collecting under the
    # banned purpose itself is processing for it, and nothing is returned.
    guard = pg.Guard(policy=Policy(banned="face.analytics.emotion"), clock=pg.FrozenClock(T0))
    vector = np.ones(8)
    with (
        pg.using(guard),
        pg.purpose("face.analytics.emotion"),
        pytest.raises(pg.PurposeViolationError) as info,
    ):
        pg.FaceTemplate.wrap(vector, subject="u", purposes="face.analytics", ttl=timedelta(days=1))
    assert info.value.decision is not None
    assert info.value.decision.rule_ids == ("LOCAL-BAN",)
    # A sibling purpose under the same label is untouched by the ban.
    with pg.using(guard), pg.purpose("face.analytics.counting"):
        t = pg.FaceTemplate.wrap(
            vector, subject="u", purposes="face.analytics", ttl=timedelta(days=1)
        )
    assert t.label.permits("face.analytics.counting")


def test_a_denial_lists_every_rule_and_names_them_in_the_message(world: World) -> None:
    world.consent(form="opt_out", notice=None)
    with pytest.raises(pg.ConsentError) as info:
        world.wrap(context=CollectionContext(place="private", source="cctv_bulk"))
    rules = set(info.value.decision.rule_ids)  # type: ignore[union-attr]
    assert {"AI-01", "CN-05", "CN-08", "FR-02", "EU-01", "IL-02", "TX-01"} <= rules
    for r in rules:
        assert r in str(info.value)
    [event] = world.sink.events
    assert event.outcome is Outcome.DENIED
    assert set(event.rule_ids) == rules


def test_audit_mode_records_would_deny_with_the_rules_and_lets_it_through() -> None:
    w = World(full_policy(), mode=pg.Mode.AUDIT)
    w.consent(form="explicit")
    with pytest.warns(pg.PurposeWarning, match="CN-08"):
        t = w.wrap()
    assert isinstance(t, pg.FaceTemplate)
    [event] = w.sink.events
    assert event.outcome is Outcome.WOULD_DENY
    assert "IL-02" in event.rule_ids


def test_evaluate_has_no_side_effects() -> None:
    w = World(full_policy())
    w.consent()
    t = w.wrap()
    before = (w.registry.generation, w.registry.last_interaction("u1"), len(w.sink.events))
    policy = w.guard.policy
    assert isinstance(policy, Policy)
    request = pg.AccessRequest(label=t.label, purpose=pg.Purpose("face.verification.login"),
                               operation=pg.Operation.COMPARE, now=T0 + timedelta(days=1),
                               consents=w.registry)  # fmt: skip
    for _ in range(3):
        assert list(policy.evaluate(request)) == []
    assert (w.registry.generation, w.registry.last_interaction("u1"), len(w.sink.events)) == before


def test_public_security_under_pipl_needs_no_consent_but_signs_and_the_lock_holds() -> None:
    w = World(Policy.preset("pipl", **DUTIES))
    street = CollectionContext(place="public", source="camera", signage=True)
    cctv = w.wrap("face.public_security.public_place_cctv", consent=None, context=street)
    assert w.guard.check(cctv, "face.public_security.public_place_cctv", pg.Operation.SEARCH)
    # Any other purpose from a public place needs separate consent covering it.
    assert denying_rules(lambda: w.wrap("face.analytics.counting", consent=None,
                                        context=street)) == {"CN-02", "CN-07"}  # fmt: skip
    w.consent(purposes="face.analytics", form="explicit")
    assert "CN-07" in denying_rules(lambda: w.wrap("face.analytics.counting", context=street))
    w.consent("c2", purposes="face.analytics", form="separate")
    w.wrap("face.analytics.counting", consent="c2", context=street)


def test_forbidden_zones_are_refused_whatever_the_consent() -> None:
    w = World(full_policy())
    w.consent()
    for zone in ("hotel room", "toilet", "Changing-Room", "bath"):
        ctx = CollectionContext(place="private", source="camera", zone=zone)

        def collect(ctx: CollectionContext = ctx) -> object:
            return w.wrap(context=ctx)

        assert denying_rules(collect) == {"FR-06"}
    with pytest.raises(pg.PolicyError, match="zone"):
        CollectionContext(place="private", source="camera", zone="room 101!")
    with pytest.raises(pg.PolicyError, match="place must be one of"):
        CollectionContext(place="street", source="camera")
    with pytest.raises(pg.PolicyError, match="subject_age"):
        CollectionContext(place="private", source="camera", subject_age=-1)


def test_a_capture_needs_a_context_but_data_collected_earlier_does_not() -> None:
    w = World(full_policy())
    w.consent()
    assert denying_rules(lambda: w.wrap(context=None)) == {"AI-01", "FR-06", "CN-07"}
    earlier = T0 - timedelta(hours=1)
    w.wrap(context=None, collected_at=earlier)


def test_emotion_recognition_at_work_is_banned_elsewhere_allowed() -> None:
    w = World(full_policy())
    w.consent(purposes="face.analytics", form="written")
    office = CollectionContext(place="private", source="camera", zone="workplace")
    shop = CollectionContext(place="private", source="camera", zone="shop_floor")
    assert denying_rules(lambda: w.wrap("face.analytics.emotion", context=office)) == {"AI-03"}
    assert denying_rules(lambda: w.wrap("face.analytics.emotion", context=shop)) == set()


def test_realtime_identification_needs_an_authorisation_in_force() -> None:
    w = World(full_policy())
    victim = "face.public_security.law_enforcement.victim_search"
    street = CollectionContext(place="public", source="camera", signage=True)
    assert denying_rules(lambda: w.wrap(victim, consent=None, context=street)) == {"AI-02"}
    w.registry.add_authorisation(
        Authorisation(
            id="a1",
            purposes=victim,
            authority="district court",
            granted_at=T0,
            expires_at=T0 + timedelta(hours=12),
            urgent=True,
        )
    )
    t = w.wrap(victim, consent=None, context=street)
    assert w.guard.check(t, victim, pg.Operation.SEARCH).allowed
    w.clock.advance(timedelta(hours=13))
    assert w.guard.check(t, victim, pg.Operation.SEARCH).rule_ids == ("AI-02",)
    w.clock.set(T0)
    assert w.guard.check(t, victim, pg.Operation.SEARCH).allowed
    # The policy's remembered verdict does not reach back before the authorisation
    # was granted. (The guard's own cache assumes, as the Clock protocol says, that
    # time does not go backwards: drop it for this frozen-clock jump.)
    w.clock.set(T0 - timedelta(minutes=1))
    w.guard.forget_decisions()
    assert w.guard.check(t, victim, pg.Operation.SEARCH).rule_ids == ("AI-02",)
    w.clock.set(T0)
    w.registry.revoke_authorisation("a1")
    assert w.guard.check(t, victim, pg.Operation.SEARCH).rule_ids == ("AI-02",)
    # The parent purpose is not one of the three cases: banned outright.
    w2 = World(full_policy())
    w2.consent(purposes="face.public_security")
    parent = "face.public_security.law_enforcement"
    assert denying_rules(lambda: w2.wrap(parent, consent=None, context=street)) == {"AI-02"}


def test_disclosures() -> None:
    w = World(full_policy())
    w.consent(form="written", transfer=True, recipients=["bank"])
    t = w.wrap()

    def share(**how: Any) -> set[str]:
        def run() -> None:
            with pg.using(w.guard), pg.purpose("face.verification.payment"):
                disclose(t, **how)

        return denying_rules(run)

    assert share(recipient="bank") == set()
    assert share(recipient="police", reason="warrant") == set()
    assert share(recipient="bank", sale=True) == {"IL-03"}  # even with written consent
    assert share(recipient="bank", cross_border=True, mechanism="standard_contract") == set()
    assert share(recipient="insurer", reason="transaction") == {"CN-10", "WA-01"}
    with pytest.raises(pg.PolicyError, match="mechanism"):
        Disclosure(recipient="bank", mechanism="handshake")
    # An EXPORT with no disclosure (sealing for another process) is a transfer off the
    # device: FR-03 asks for separate consent to it.
    w.consent("c2", form="written")
    t2 = w.wrap(consent="c2")

    def export() -> None:
        with pg.using(w.guard), pg.purpose("face.verification.payment"):
            w.guard.authorize(pg.Operation.EXPORT, (t2,))

    assert denying_rules(export) == {"FR-03"}


def test_washington_sale_needs_a_signed_recent_authorisation_naming_the_buyer() -> None:
    w = World(Policy.preset("washington"))
    w.consent(form="written", recipients=["broker"])
    t = w.wrap()

    def sell() -> set[str]:
        def run() -> None:
            with pg.using(w.guard), pg.purpose("face.verification"):
                disclose(t, recipient="broker", sale=True)

        return denying_rules(run)

    assert sell() == set()
    w.clock.advance(timedelta(days=400))
    assert sell() == {"WA-01"}
    # With BIPA too, no sale at all.
    w2 = World(Policy.preset("washington", "bipa", notice="https://n"))
    w2.consent(form="written", recipients=["broker"])
    t2 = w2.wrap()
    with (
        pg.using(w2.guard),
        pg.purpose("face.verification"),
        pytest.raises(pg.PurposeViolationError, match="IL-03"),
    ):
        disclose(t2, recipient="broker", sale=True)


def test_a_consent_of_another_subject_or_unknown_id_is_no_basis(world: World) -> None:
    world.consent(subject="someone-else")
    assert "CN-02" in denying_rules(lambda: world.wrap())
    assert "CN-02" in denying_rules(lambda: world.wrap(consent="unknown"))


def test_a_consent_given_after_collection_does_not_count(world: World) -> None:
    world.consent(given_at=T0 + timedelta(seconds=1))
    assert {"CN-08", "EU-01", "IL-02"} <= denying_rules(lambda: world.wrap())


def test_interactions_are_recorded_only_after_granted_accesses(world: World) -> None:
    world.consent()
    t = world.wrap()
    assert world.registry.last_interaction("u1") == T0
    world.clock.advance(timedelta(days=1))
    with (
        pg.using(world.guard),
        pg.purpose("face.identification"),
        pytest.raises(pg.PurposeViolationError),
    ):
        pg.similarity(np.ones(8), t)
    assert world.registry.last_interaction("u1") == T0


def test_no_warning_when_every_duty_is_declared_and_lint_lists_the_rest() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pg.Guard(policy=full_policy(), consents=ConsentRegistry())
    lint = Policy.preset("gdpr", "cn_face_2025").lint()
    assert any(m.startswith("FR-03/EU-07: storage is not declared") for m in lint)
    assert any(m.startswith("EU-05") for m in lint)
    assert full_policy().lint() == []


def test_unchanged_defaults_for_guards_without_a_policy(guard: pg.Guard) -> None:
    t = pg.FaceTemplate.wrap(np.ones(3), subject="s", purposes="face.verification",
                             ttl=timedelta(days=1), context=PRIVATE)  # fmt: skip
    assert guard.check(t, "face.verification", pg.Operation.COMPARE).allowed


@settings(max_examples=40, deadline=None)
@given(
    names=st.lists(st.sampled_from(sorted(PRESETS)), min_size=2, max_size=4, unique=True),
    record=strategies.consents(subject="u1"),
    context=strategies.collection_contexts(),
    purpose=st.sampled_from(
        [
            "face.verification.login",
            "face.identification",
            "face.analytics.counting",
            "face.model_development.training",
            "face.public_security.public_place_cctv",
        ]
    ),
)
def test_a_composition_permits_a_collection_exactly_when_every_member_does(
    names: list[str],
    record: Consent,
    context: CollectionContext,
    purpose: str,
) -> None:
    def denied(*presets: str) -> set[str]:
        w = World(Policy.preset(*presets, **DUTIES))
        w.registry.add(record)
        return denying_rules(lambda: w.wrap(purpose, consent=record.id, context=context))

    members = [denied(n) for n in names]
    composed = denied(*names)
    assert (composed == set()) == all(m == set() for m in members)


def test_a_remembered_verdict_is_shared_by_labels_of_one_shape_and_dropped_on_change() -> None:
    policy = full_policy()
    w = World(policy)
    other = pg.Guard(policy=policy, consents=w.registry, clock=w.clock, audit=w.sink)
    w.consent(purposes=["face.verification", "face.identification"])
    a = w.wrap(["face.verification", "face.identification"])
    b = w.wrap(["face.verification", "face.identification"])
    search = ("face.identification.closed_set_optin", pg.Operation.SEARCH)
    assert w.guard.check(a, *search).allowed
    assert other.check(b, *search).allowed  # answered from the policy's memory
    w.registry.request_limit("u1")
    assert other.check(b, *search).rule_ids == ("CA-01",)
    assert w.guard.check(a, *search).rule_ids == ("CA-01",)
