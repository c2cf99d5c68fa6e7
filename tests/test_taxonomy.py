"""The taxonomy: the default face tree, inheritance, narrowing, extension, TOML."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given

from purposeguard import Operation, PolicyError, Purpose, PurposeSpec, Taxonomy
from purposeguard.testing import strategies as pgst

Op = Operation
VERIFY = frozenset({Op.COLLECT, Op.REVEAL, Op.COMPARE, Op.TRANSFORM, Op.STORE, Op.EXPORT})
IDENTIFY = VERIFY | {Op.SEARCH}
ANALYTICS = frozenset({Op.COLLECT, Op.TRANSFORM, Op.STORE})
LIVENESS = frozenset({Op.COLLECT, Op.TRANSFORM})
MODEL_DEV = frozenset({Op.COLLECT, Op.REVEAL, Op.TRANSFORM, Op.STORE})
COMMERCIAL = frozenset({Op.COLLECT, Op.STORE})

# Every node of DESIGN.md's default face taxonomy and the operations it allows.
DEFAULT_TREE: dict[str, frozenset[Operation]] = {
    "face": frozenset(),
    "face.verification": VERIFY,
    "face.verification.device_unlock": VERIFY,
    "face.verification.login": VERIFY,
    "face.verification.payment": VERIFY,
    "face.verification.access_control": VERIFY,
    "face.identification": IDENTIFY,
    "face.identification.closed_set_optin": IDENTIFY,
    "face.identification.retrospective_search": IDENTIFY,
    "face.identification.realtime_remote": IDENTIFY,
    "face.public_security": IDENTIFY,
    "face.public_security.public_place_cctv": IDENTIFY,
    "face.public_security.law_enforcement": IDENTIFY,
    "face.public_security.law_enforcement.victim_search": IDENTIFY,
    "face.public_security.law_enforcement.imminent_threat": IDENTIFY,
    "face.public_security.law_enforcement.serious_crime": IDENTIFY,
    "face.analytics": ANALYTICS,
    "face.analytics.counting": ANALYTICS,
    "face.analytics.demographics": ANALYTICS,
    "face.analytics.emotion": ANALYTICS,
    "face.analytics.sensitive_categorisation": ANALYTICS,
    "face.liveness": LIVENESS,
    "face.model_development": MODEL_DEV,
    "face.model_development.training": MODEL_DEV,
    "face.model_development.evaluation": MODEL_DEV,
    "face.commercial": COMMERCIAL,
    "face.commercial.marketing": COMMERCIAL,
    "face.commercial.sale": COMMERCIAL,
}


# -- the default face taxonomy -------------------------------------------------------


def test_default_taxonomy_has_exactly_the_designed_purposes() -> None:
    tax = Taxonomy.default()
    assert sorted(p.name for p in tax) == sorted(DEFAULT_TREE)
    assert len(tax) == len(DEFAULT_TREE)
    assert tax.roots() == (Purpose("face"),)
    assert Taxonomy.default() == tax


@pytest.mark.parametrize(("name", "ops"), sorted(DEFAULT_TREE.items()))
def test_default_taxonomy_operations(name: str, ops: frozenset[Operation]) -> None:
    tax = Taxonomy.default()
    assert tax.operations(name) == ops
    for op in Operation:
        expected = op is Op.DELETE or op in ops
        assert tax.allows(name, op) is expected, (name, op)
        assert tax.allows(Purpose(name), op) is expected


def test_face_allows_nothing_but_delete() -> None:
    tax = Taxonomy.default()
    assert tax.operations("face") == frozenset()
    assert [op for op in Operation if tax.allows("face", op)] == [Op.DELETE]


def test_verification_has_no_search_and_identification_has_search() -> None:
    tax = Taxonomy.default()
    for p in tax:
        if p.is_within("face.verification"):
            assert not tax.allows(p, Op.SEARCH), p
        if p.is_within("face.identification") or p.is_within("face.public_security"):
            assert tax.allows(p, Op.SEARCH), p
    assert Op.SEARCH in tax.operations("face.identification.closed_set_optin")
    assert Op.SEARCH not in tax.operations("face.verification.login")


def test_default_children() -> None:
    tax = Taxonomy.default()
    assert [c.name for c in tax.children("face.public_security.law_enforcement")] == [
        "face.public_security.law_enforcement.imminent_threat",
        "face.public_security.law_enforcement.serious_crime",
        "face.public_security.law_enforcement.victim_search",
    ]
    assert tax.children("face.liveness") == ()


def test_default_face_is_sensitive_and_inherited() -> None:
    tax = Taxonomy.default()
    assert all(tax.spec(p).sensitive for p in tax)


def test_spec_reports_declared_and_effective_operations() -> None:
    tax = Taxonomy.default()
    parent = tax.spec("face.verification")
    child = tax.spec("face.verification.login")
    assert isinstance(child, PurposeSpec)
    assert parent.declared == VERIFY
    assert child.declared is None
    assert child.operations == VERIFY
    assert child.purpose == Purpose("face.verification.login")
    assert child.description


def test_membership() -> None:
    tax = Taxonomy.default()
    assert "face.verification.login" in tax
    assert Purpose("face.analytics") in tax
    assert "face.verification.nope" not in tax
    assert "Not A Purpose" not in tax
    assert 42 not in tax


# -- unknown purposes ----------------------------------------------------------------


def test_unknown_purpose_is_a_policy_error() -> None:
    tax = Taxonomy.default()
    for query in (tax.spec, tax.operations):
        with pytest.raises(PolicyError, match=r"unknown purpose 'face\.verification\.nope'"):
            query("face.verification.nope")
    with pytest.raises(PolicyError, match="unknown purpose"):
        tax.allows("face.nope", Op.COLLECT)
    with pytest.raises(PolicyError, match=r"unknown purpose 'marketing'"):
        tax.require([Purpose("face.verification"), Purpose("marketing")])
    tax.require([Purpose("face"), Purpose("face.liveness")])  # no error
    with pytest.raises(PolicyError, match="invalid purpose"):
        tax.spec("Face")


# -- narrowing only ------------------------------------------------------------------


def test_extend_adds_a_child_that_inherits() -> None:
    tax = Taxonomy.default().extend("face.verification.kiosk", description="A kiosk.")
    assert tax.operations("face.verification.kiosk") == VERIFY
    assert tax.spec("face.verification.kiosk").description == "A kiosk."
    assert "face.verification.kiosk" not in Taxonomy.default(), "extend returns a new one"


def test_extend_adds_missing_ancestors() -> None:
    tax = Taxonomy.default().extend("face.verification.kiosk.lobby.door")
    assert "face.verification.kiosk" in tax
    assert "face.verification.kiosk.lobby" in tax
    assert tax.operations("face.verification.kiosk.lobby.door") == VERIFY


def test_extend_may_narrow() -> None:
    tax = Taxonomy.default().extend("face.verification.login", operations=["compare", Op.STORE])
    assert tax.operations("face.verification.login") == {Op.COMPARE, Op.STORE}
    tax = tax.extend("face.verification.login.otp")
    assert tax.operations("face.verification.login.otp") == {Op.COMPARE, Op.STORE}
    assert tax.operations("face.verification.payment") == VERIFY


def test_extend_may_narrow_to_nothing() -> None:
    tax = Taxonomy.default().extend("face.liveness.passive", operations=[])
    assert tax.operations("face.liveness.passive") == frozenset()
    assert tax.allows("face.liveness.passive", Op.DELETE)


def test_broadening_a_child_raises() -> None:
    with pytest.raises(PolicyError, match=r"'face\.verification\.login'.*search.*narrow"):
        Taxonomy.default().extend("face.verification.login", operations=["compare", "search"])


def test_broadening_below_an_inheriting_node_raises() -> None:
    # face.verification.login declares nothing; its ceiling is face.verification's set.
    with pytest.raises(PolicyError, match="search"):
        Taxonomy.default().extend("face.verification.login.x", operations=["search"])


def test_broadening_a_narrowed_child_raises() -> None:
    tax = Taxonomy.default().extend("face.analytics.counting", operations=["collect"])
    with pytest.raises(PolicyError, match="store"):
        tax.extend("face.analytics.counting.door", operations=["store"])


def test_narrowing_a_parent_below_its_children_raises() -> None:
    tax = Taxonomy.default().extend("face.liveness.active", operations=["collect", "transform"])
    with pytest.raises(PolicyError, match=r"face\.liveness\.active"):
        tax.extend("face.liveness", operations=["collect"])


def test_delete_in_a_declared_set_is_not_a_broadening() -> None:
    tax = Taxonomy.default().extend("face.liveness.x", operations=["collect", "delete"])
    assert tax.operations("face.liveness.x") == {Op.COLLECT}


def test_new_root_may_declare_anything() -> None:
    tax = Taxonomy.default().extend("voice", operations=list(Operation))
    assert tax.operations("voice") == frozenset(Operation) - {Op.DELETE}
    assert set(tax.roots()) == {Purpose("face"), Purpose("voice")}


def test_extend_rejects_unknown_operation_and_bad_purpose() -> None:
    with pytest.raises(PolicyError, match=r"unknown operation 'fly'"):
        Taxonomy.default().extend("face.liveness.x", operations=["collect", "fly"])
    with pytest.raises(PolicyError):
        Taxonomy.default().extend("face.Liveness")


def test_extend_keeps_what_is_not_given() -> None:
    tax = Taxonomy.default().extend(
        "face.liveness.x", operations=["collect"], max_retention=timedelta(days=3)
    )
    again = tax.extend("face.liveness.x", description="later")
    spec = again.spec("face.liveness.x")
    assert spec.operations == {Op.COLLECT}
    assert spec.max_retention == timedelta(days=3)
    assert spec.description == "later"


@given(pgst.taxonomies())
def test_random_taxonomies_only_narrow_down_the_tree(tax: Taxonomy) -> None:
    def governed(q: Purpose) -> bool:
        # Some declaration, on q or above it, sets q's operations.
        return any(tax.spec(a).declared is not None for a in (q, *q.ancestors()))

    for p in tax:
        for a in p.ancestors():
            if governed(a):
                assert tax.operations(p) <= tax.operations(a), (p, a)
            assert tax.spec(p).sensitive >= tax.spec(a).sensitive
        if tax.spec(p).declared is None:
            expected = tax.operations(p.parent) if p.parent is not None else frozenset()
            assert tax.operations(p) == expected
        if not governed(p):
            assert tax.operations(p) == frozenset()


# -- retention -----------------------------------------------------------------------


def test_max_retention_is_inherited_and_only_shortens() -> None:
    tax = (
        Taxonomy.default()
        .extend("face.verification", max_retention=timedelta(days=30))
        .extend("face.verification.login", max_retention=timedelta(days=7))
        .extend("face.verification.payment", max_retention=timedelta(days=90))
    )
    assert tax.spec("face.verification").max_retention == timedelta(days=30)
    assert tax.spec("face.verification.device_unlock").max_retention == timedelta(days=30)
    assert tax.spec("face.verification.login").max_retention == timedelta(days=7)
    assert tax.spec("face.verification.payment").max_retention == timedelta(days=30)
    assert tax.spec("face.identification").max_retention is None
    assert tax.spec("face").max_retention is None


@pytest.mark.parametrize("bad", [timedelta(0), timedelta(days=-1), 30, "30 days"])
def test_max_retention_must_be_a_positive_timedelta(bad: Any) -> None:
    with pytest.raises(PolicyError, match="max_retention"):
        Taxonomy.default().extend("face.liveness", max_retention=bad)


def test_sensitivity_and_separate_consent_are_inherited() -> None:
    tax = Taxonomy().extend("voice", separate_consent=True).extend("voice.id")
    assert tax.spec("voice.id").separate_consent
    assert not tax.spec("voice.id").sensitive
    tax = tax.extend("voice.id", sensitive=True)
    assert tax.spec("voice.id").sensitive
    assert not tax.spec("voice").sensitive


# -- mappings and TOML ---------------------------------------------------------------


def test_from_mapping_builds_over_a_base() -> None:
    data = {
        "purposes": {
            "face.verification.kiosk": {
                "operations": ["compare", "store"],
                "max_retention_days": 30,
                "separate_consent": True,
                "description": "Kiosk sign-in.",
            }
        }
    }
    tax = Taxonomy.from_mapping(data, base=Taxonomy.default())
    spec = tax.spec("face.verification.kiosk")
    assert spec.operations == {Op.COMPARE, Op.STORE}
    assert spec.max_retention == timedelta(days=30)
    assert spec.separate_consent
    assert spec.description == "Kiosk sign-in."
    assert "face.identification" in tax
    bare = Taxonomy.from_mapping(data)
    assert "face.identification" not in bare
    assert sorted(p.name for p in bare) == ["face", "face.verification", "face.verification.kiosk"]


@pytest.mark.parametrize(
    ("entry", "match"),
    [
        ({"operations": ["compare"], "colour": "red"}, "unknown key.*colour"),
        ({"operations": ["teleport"]}, "unknown operation 'teleport'"),
        ({"operations": 5}, "operations must be a list"),
        ({"max_retention_days": 0}, "max_retention_days"),
        ({"max_retention_days": -3}, "max_retention_days"),
        ({"max_retention_days": "30"}, "max_retention_days"),
        ({"max_retention_days": True}, "max_retention_days"),
        ({"max_retention_days": float("nan")}, "max_retention_days"),
        ({"max_retention_days": float("inf")}, "max_retention_days"),
        ({"max_retention_days": 1e300}, "max_retention_days"),
        ({"max_retention_days": 10**30}, "max_retention_days"),
        ({"sensitive": "yes"}, "sensitive must be true or false"),
        ({"separate_consent": 1}, "separate_consent must be true or false"),
        ("not a table", "expected a table"),
    ],
)
def test_from_mapping_rejects_bad_entries(entry: Any, match: str) -> None:
    with pytest.raises(PolicyError, match=match) as info:
        Taxonomy.from_mapping({"purposes": {"face.liveness.x": entry}}, base=Taxonomy.default())
    assert "face.liveness.x" in str(info.value)


def test_from_mapping_rejects_bad_structure() -> None:
    with pytest.raises(PolicyError, match="unknown taxonomy table"):
        Taxonomy.from_mapping({"purposes": {}, "extras": {}})
    with pytest.raises(PolicyError, match="table of purpose names"):
        Taxonomy.from_mapping({"purposes": ["face"]})
    with pytest.raises(PolicyError, match="invalid purpose"):
        Taxonomy.from_mapping({"purposes": {"Face.X": {}}})
    with pytest.raises(PolicyError, match="narrow"):
        Taxonomy.from_mapping(
            {"purposes": {"face.verification.x": {"operations": ["search"]}}},
            base=Taxonomy.default(),
        )


def test_to_mapping_round_trips() -> None:
    tax = (
        Taxonomy.default()
        .extend("face.verification.kiosk", operations=["compare"], separate_consent=True)
        .extend("face.liveness", max_retention=timedelta(days=1.5))
        .extend("voice.id", sensitive=False, max_retention=timedelta(hours=36, microseconds=7))
    )
    data = tax.to_mapping()
    assert Taxonomy.from_mapping(data) == tax
    assert Taxonomy.from_mapping(Taxonomy.default().to_mapping()) == Taxonomy.default()
    assert data["purposes"]["face.verification.kiosk"]["operations"] == ["compare"]


@given(pgst.taxonomies())
def test_to_mapping_round_trips_random_taxonomies(tax: Taxonomy) -> None:
    again = Taxonomy.from_mapping(tax.to_mapping())
    assert again == tax
    assert [again.spec(p) for p in again] == [tax.spec(p) for p in tax]


def test_taxonomies_compare_by_content() -> None:
    a = Taxonomy.default().extend("face.liveness.x")
    b = Taxonomy.default().extend("face.liveness.x")
    assert a == b
    assert hash(a) == hash(b)
    assert a != Taxonomy.default()
    assert a != "taxonomy"
    assert "29 purposes" in repr(a)


GOOD_TOML = """\
# A deployment's own purposes.
[purposes."face.verification.kiosk"]
operations = ["compare", "store"]
max_retention_days = 30
description = "Kiosk sign-in."

[purposes."face.analytics.footfall"]
sensitive = true
"""


def _write(tmp_path: Path, text: str, name: str = "taxonomy.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_from_toml_good_file(tmp_path: Path) -> None:
    tax = Taxonomy.from_toml(_write(tmp_path, GOOD_TOML))
    assert tax.operations("face.verification.kiosk") == {Op.COMPARE, Op.STORE}
    assert tax.spec("face.verification.kiosk").max_retention == timedelta(days=30)
    assert tax.operations("face.analytics.footfall") == ANALYTICS
    assert "face.identification" in tax, "the default taxonomy is the base"
    assert Taxonomy.from_toml(str(tmp_path / "taxonomy.toml")) == tax
    bare = Taxonomy.from_toml(tmp_path / "taxonomy.toml", base=Taxonomy())
    assert "face.identification" not in bare


def _toml_error(tmp_path: Path, text: str) -> str:
    path = _write(tmp_path, text)
    with pytest.raises(PolicyError) as info:
        Taxonomy.from_toml(path)
    message = str(info.value)
    assert str(path) in message, "the message names the file"
    return message


def test_from_toml_unknown_key_names_file_and_line(tmp_path: Path) -> None:
    text = GOOD_TOML + '\n[purposes."face.liveness.x"]\noperations = ["collect"]\ncolour = "red"\n'
    message = _toml_error(tmp_path, text)
    assert "colour" in message
    header = text.splitlines().index('[purposes."face.liveness.x"]') + 1
    assert header == 10
    assert f":{header}:" in message  # the header line of the offending purpose


def test_from_toml_unknown_operation(tmp_path: Path) -> None:
    message = _toml_error(tmp_path, GOOD_TOML.replace('"store"', '"teleport"'))
    assert "unknown operation 'teleport'" in message
    assert ":2:" in message


def test_from_toml_bad_retention(tmp_path: Path) -> None:
    message = _toml_error(tmp_path, GOOD_TOML.replace("= 30", "= -30"))
    assert "max_retention_days must be a positive number" in message
    assert ":2:" in message


def test_from_toml_line_is_the_exact_purpose_not_a_longer_one(tmp_path: Path) -> None:
    text = (
        '[purposes."face.liveness.xy"]\n'
        'operations = ["collect"]\n'
        '[purposes."face.liveness.x"]\n'
        'operations = ["search"]\n'
    )
    message = _toml_error(tmp_path, text)
    assert "face.liveness.x" in message
    assert ":3:" in message


def test_from_toml_broadening(tmp_path: Path) -> None:
    message = _toml_error(
        tmp_path, '\n[purposes."face.verification.kiosk"]\noperations = ["search"]\n'
    )
    assert "narrow" in message
    assert ":2:" in message


def test_from_toml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    message = _toml_error(tmp_path, '[purposes."face.x"]\noperations = ["collect"\n\nfoo = \n')
    assert "line" in message


def test_from_toml_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes('[purposes."face.x"]\ndescription = "caf\xe9"\n'.encode("latin-1"))
    with pytest.raises(PolicyError) as info:
        Taxonomy.from_toml(path)
    assert str(path) in str(info.value)


def test_from_toml_missing_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        Taxonomy.from_toml(tmp_path / "missing.toml")
