"""Policy files: a deployment's rules over presets; bad files refused at the line."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

import purposeguard as pg
from purposeguard.policy import ConsentForm, Policy, Storage

from .conftest import World, denying_rules

GOOD = """\
# Company biometric policy
presets = ["pipl", "gdpr", "eu_ai_act"]
rules = ["IL-03"]
storage = "user_device"
processing = ["face.verification.login"]

[waivers]
"AI-04" = "not composed here"

[duties]
impact_assessment = "DPIA-2026-01"
notice = "https://example.com/biometrics"
necessity = "door access"
alternatives = { "face.verification" = "badge" }

[purposes."face.analytics"]
banned = true

[purposes."face.verification.login"]
consent_form = "written"
max_retention_days = 90
"""


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_policy_file_loads_over_its_presets(tmp_path: Path) -> None:
    policy = Policy.from_toml(_file(tmp_path, GOOD))
    assert policy.presets == ("pipl", "gdpr", "eu_ai_act")
    assert "IL-03" in policy.rules
    assert "CN-08" in policy.rules
    assert "EU-01" in policy.rules
    assert policy.storage is Storage.USER_DEVICE
    assert policy.banned == {pg.Purpose("face.analytics")}
    assert policy.consent_forms == {pg.Purpose("face.verification.login"): ConsentForm.WRITTEN}
    assert policy.max_retention == {pg.Purpose("face.verification.login"): timedelta(days=90)}
    assert policy.impact_assessment == "DPIA-2026-01"
    assert policy.alternatives == {pg.Purpose("face.verification"): "badge"}


def test_a_company_ban_refuses_face_analytics_entirely(tmp_path: Path) -> None:
    w = World(Policy.from_toml(_file(tmp_path, GOOD)))
    w.consent(purposes="face.analytics", form="separate")
    rules = denying_rules(lambda: w.wrap("face.analytics.counting"))
    assert rules == {"LOCAL-BAN"}


def test_deployment_form_and_retention_apply(tmp_path: Path) -> None:
    w = World(Policy.from_toml(_file(tmp_path, GOOD)))
    w.consent(form="separate")
    assert denying_rules(lambda: w.wrap("face.verification.login")) == {"LOCAL-FORM"}
    assert denying_rules(lambda: w.wrap("face.verification.payment")) == set()
    w.consent("c2", form="written")
    rules = denying_rules(
        lambda: w.wrap("face.verification.login", consent="c2", ttl=timedelta(days=91))
    )
    assert rules == {"LOCAL-RETENTION"}


def test_a_waiver_takes_a_rule_out_with_its_reason(tmp_path: Path) -> None:
    policy = Policy.from_toml(_file(tmp_path, GOOD))
    assert "AI-04" not in policy.rules
    assert policy.waivers == {"AI-04": "not composed here"}


@pytest.mark.parametrize(
    ("change", "line", "words"),
    [
        (('"face.analytics"', '"face.analytcs"'), 16, "unknown purpose 'face.analytcs'"),
        (('rules = ["IL-03"]', 'rules = ["IL-33"]'), 3, "unknown rule id 'IL-33'"),
        (('"AI-04" =', '"AI-99" ='), 8, "unknown rule id 'AI-99'"),
        (('"AI-04" =', '"IL-01" ='), 8, "IL-01 is not in force"),
        (('"AI-04" =', '"IL-03" ='), 3, "both added under rules and waived"),
        (('"gdpr",', '"gdrp",'), 2, "unknown preset 'gdrp'"),
        (("storage =", "storag ="), 4, "unknown key 'storag'"),
        (("banned = true", "banned = true\nconsent_form = 'written'"), 16, "contradictory"),
        (('consent_form = "written"', 'consent_form = "opt_out"'), 20, "contradicts CN-08"),
        (
            ('processing = ["face.verification.login"]', 'processing = ["face.analytics"]'),
            5,
            "banned by the same policy",
        ),
        (('consent_form = "written"', 'consent_form = "signed"'), 20, "unknown consent form"),
        (("max_retention_days = 90", "max_retention_days = -1"), 21, "positive number"),
        (('storage = "user_device"', 'storage = "cloud"'), 4, "storage must be one of"),
        (("necessity =", "necesity ="), 13, "unknown key 'necesity'"),
    ],
)
def test_a_bad_policy_file_is_refused_at_the_line(
    tmp_path: Path, change: tuple[str, str], line: int, words: str
) -> None:
    assert change[0] in GOOD
    path = _file(tmp_path, GOOD.replace(*change))
    with pytest.raises(pg.PolicyError) as info:
        Policy.from_toml(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert words in message


def test_contradicting_a_preset_prohibition_is_refused(tmp_path: Path) -> None:
    text = 'presets = ["bipa"]\nprocessing = [\n  "face.commercial.sale",\n]\n'
    with pytest.raises(pg.PolicyError, match=r"policy.toml:3: .*contradicts IL-03"):
        Policy.from_toml(_file(tmp_path, text))


def test_syntax_errors_and_unreadable_files_are_policy_errors(tmp_path: Path) -> None:
    with pytest.raises(pg.PolicyError, match=r"policy\.toml"):
        Policy.from_toml(_file(tmp_path, "presets = [\n"))
    with pytest.raises(pg.PolicyError, match="name at least one preset"):
        Policy.from_toml(_file(tmp_path, "storage = 'device'\n"))
    bad = tmp_path / "latin1.toml"
    bad.write_bytes('presets = ["pipl"] # caf\xe9\n'.encode("latin-1"))
    with pytest.raises(pg.PolicyError, match="not UTF-8"):
        Policy.from_toml(bad)
    with pytest.raises(pg.PolicyError, match="cannot read"):
        Policy.from_toml(tmp_path / "missing.toml")
