"""Where the laws conflict (legal-rules.md section 3), composition takes the strictest.

One test per conflict: each shows what the presets say alone and what their
composition does.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import numpy as np
import pytest

import purposeguard as pg
from purposeguard.policy import CollectionContext, Policy
from purposeguard.stores import GuardedStore, MemoryBackend

from .conftest import T0, World, denying_rules

DECLARED: dict[str, Any] = {
    "impact_assessment": "PIA",
    "necessity": "n",
    "notice": "https://n",
    "alternatives": {"face.verification": "PIN"},
}


def policy(*names: str, **settings: Any) -> Policy:
    return Policy.preset(*names, **{**DECLARED, **settings})


def test_1_public_security_is_consent_free_under_pipl_but_banned_for_eu_operators() -> None:
    cctv = "face.public_security.public_place_cctv"
    street = CollectionContext(place="public", source="camera", signage=True)

    def collect(p: Policy) -> set[str]:
        w = World(p)
        return denying_rules(lambda: w.wrap(cctv, consent=None, context=street))

    assert collect(policy("pipl")) == set()
    assert collect(policy("eu_ai_act")) == {"AI-02"}
    assert collect(policy("pipl", "eu_ai_act")) == {"AI-02"}


@pytest.mark.parametrize(
    ("preset", "weakest"),
    [
        ("pipl", "separate"),
        ("gdpr", "explicit"),
        ("bipa", "written"),
        ("texas_cubi", "plain"),
        ("washington", "opt_out"),
    ],
)
def test_2_consent_form_each_preset_accepts_its_own_and_composition_needs_the_strongest(
    preset: str, weakest: str
) -> None:
    forms = ["opt_out", "plain", "explicit", "separate", "written"]

    def accepted(p: Policy, form: str) -> bool:
        w = World(p)
        w.consent(form=form)
        return denying_rules(lambda: w.wrap()) == set()

    alone = policy(preset)
    assert [f for f in forms if accepted(alone, f)] == forms[forms.index(weakest) :]
    together = policy("pipl", "gdpr", "bipa", "texas_cubi", "washington")
    assert [f for f in forms if accepted(together, f)] == ["written"]


def test_3_retention_caps_take_the_minimum() -> None:
    def latest(p: Policy) -> Any:
        limit = p.latest_expiry("face.verification", subject="u1", collected_at=T0)
        assert limit is not None
        return limit

    assert latest(policy("bipa")).latest == T0.replace(year=2029)
    assert latest(policy("colorado")).latest == T0.replace(year=2028)
    assert latest(policy("texas_cubi")).latest == T0.replace(year=2027)
    both = latest(policy("bipa", "colorado", "texas_cubi"))
    assert both.latest == T0.replace(year=2027)
    assert both.rule_ids == ("TX-01",)
    assert [r for r, _ in both.caps] == ["TX-01", "CO-01", "IL-01"]
    # PIPL and GDPR set no number of their own.
    assert policy("pipl", "gdpr").latest_expiry("face", subject="u", collected_at=T0) is None


@pytest.mark.parametrize(
    ("storage", "cn", "eu", "both"),
    [
        ("device", set(), {"EU-07"}, {"EU-07"}),
        ("central_user_key", {"FR-03"}, set(), {"FR-03"}),
        ("central", {"FR-03"}, {"EU-07"}, {"EU-07", "FR-03"}),
        ("user_device", set(), set(), set()),
    ],
)
def test_4_storage_on_device_in_china_person_held_in_the_eu_composed_needs_both(
    storage: str, cn: set[str], eu: set[str], both: set[str]
) -> None:
    def enrol(p: Policy) -> set[str]:
        w = World(p)
        w.consent(form="written")
        t = w.wrap()
        return denying_rules(lambda: GuardedStore(MemoryBackend(), guard=w.guard).enrol(t))

    assert enrol(policy("cn_face_2025", storage=storage)) == cn
    assert enrol(policy("gdpr", storage=storage)) == eu
    assert enrol(policy("cn_face_2025", "gdpr", storage=storage)) == both


def test_5_records_kept_for_years_hold_no_template_values() -> None:
    # CN keeps records >= 3 years, the AI Act >= 6 months, GDPR limits storage: the
    # log can be kept that long only because it holds ids and purposes, never values.
    w = World(policy("pipl", "eu_ai_act", "gdpr", storage="user_device"))
    w.consent(purposes=["face.verification", "face.identification"])
    values = np.array([0.123456789, 9.87654321, 5.5555555, 1.2345678])
    with pg.using(w.guard):
        t = pg.FaceTemplate.wrap(
            values,
            subject="u1",
            purposes=["face.verification", "face.identification"],
            ttl=timedelta(days=30),
            consent="c1",
            context=CollectionContext(place="private", source="camera"),
        )
        with pg.purpose("face.identification.closed_set_optin"):
            GuardedStore(MemoryBackend(), guard=w.guard).search(t, 1)
    text = json.dumps([repr(e) for e in w.sink.events])
    for v in values:
        assert f"{v:.5f}"[:6] not in text
    assert t.id in text


@pytest.mark.parametrize(
    ("age", "source", "pipl", "gdpr"),
    [
        (13, "camera", {"CN-08"}, set()),
        (15, "upload", set(), {"EU-01"}),
        (15, "camera", set(), set()),
        (17, "upload", set(), set()),
    ],
)
def test_6_minors_cn_under_14_everywhere_gdpr_under_16_online_composed_both(
    age: int, source: str, pipl: set[str], gdpr: set[str]
) -> None:
    ctx = CollectionContext(place="private", source=source, subject_age=age)

    def collect(p: Policy, guardian: str | None = None) -> set[str]:
        w = World(p)
        w.consent(guardian=guardian)
        return denying_rules(lambda: w.wrap(context=ctx))

    assert collect(policy("pipl")) == pipl
    assert collect(policy("gdpr")) == gdpr
    assert collect(policy("pipl", "gdpr")) == pipl | gdpr
    assert collect(policy("pipl", "gdpr"), guardian="parent-7") == set()


def test_7_scope_gdpr_reaches_identifying_uses_pipl_all_face_data() -> None:
    def counting(p: Policy) -> set[str]:
        w = World(p)
        return denying_rules(lambda: w.wrap("face.analytics.counting", consent=None))

    assert counting(policy("gdpr")) == set()
    assert counting(policy("pipl")) == {"CN-02"}
    assert counting(policy("pipl", "gdpr")) == {"CN-02"}

    def verifying(p: Policy) -> set[str]:
        w = World(p)
        return denying_rules(lambda: w.wrap("face.verification", consent=None))

    assert verifying(policy("gdpr")) == {"EU-01"}
