"""Purposes: validation, the hierarchy, interning, ordering, pickling, immutability."""

from __future__ import annotations

import copy
import pickle
import re
from typing import Any

import numpy as np
import pytest
from hypothesis import given, strategies as st

import purposeguard as pg
from purposeguard import Operation, PolicyError, Purpose
from purposeguard.testing import strategies as pgst

NAME_RE = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*")


# -- validation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "face",
        "face.verification.login",
        "a",
        "a1",
        "a_",
        "x.y_z.k9",
        "face.public_security.law_enforcement.victim_search",
    ],
)
def test_valid_names_are_accepted(name: str) -> None:
    p = Purpose(name)
    assert p.name == name
    assert str(p) == name
    assert repr(p) == f"Purpose({name!r})"


@pytest.mark.parametrize(
    "name",
    [
        "",
        ".",
        "face.",
        ".face",
        "face..login",
        "Face",
        "face.Login",
        "1face",
        "face.1login",
        "_face",
        "face._x",
        "face-login",
        "face login",
        " face",
        "face ",
        "face\n",
        "\nface",
        "face/login",
        "fäce",
        "face.verification.login\x00",
        "ｆace",  # noqa: RUF001 - a fullwidth letter on purpose
    ],
)
def test_malformed_names_raise_policy_error(name: str) -> None:
    with pytest.raises(PolicyError) as info:
        Purpose(name)
    message = str(info.value)
    assert repr(name) in message, "the message names the offending input"
    assert "face.verification.login" in message, "the message shows the expected shape"
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__ or info.value.__context__ is None


def test_overlong_name_is_refused_and_truncated_in_the_message() -> None:
    name = "a" * 300
    with pytest.raises(PolicyError) as info:
        Purpose(name)
    assert name not in str(info.value)
    assert len(str(info.value)) < 300


def test_policy_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="invalid purpose"):
        Purpose("Not.Valid")


@pytest.mark.parametrize("value", [None, 1, 1.5, b"face", ["face"], ("face",), {"face"}, object()])
def test_non_str_input_raises_policy_error(value: Any) -> None:
    with pytest.raises(PolicyError, match=type(value).__name__) as info:
        Purpose(value)
    assert info.value.__cause__ is None


def test_a_str_subclass_is_normalised_to_a_plain_str() -> None:
    class Name(str):
        __slots__ = ()

        def __repr__(self) -> str:
            return "Name(...)"

    p = Purpose(Name("zz_subclass.name"))
    assert type(p.name) is str
    assert repr(p) == "Purpose('zz_subclass.name')"
    assert Purpose("zz_subclass.name") is p
    # Operation is a StrEnum: its value is a valid name, and the purpose is a plain one.
    q = Purpose(Operation.SEARCH)
    assert type(q.name) is str
    assert repr(q) == "Purpose('search')"


def test_non_str_message_does_not_show_the_value() -> None:
    secret = np.array([0.123456789, -0.987654321])
    with pytest.raises(PolicyError) as info:
        Purpose(secret)  # type: ignore[arg-type]
    assert "0.123" not in str(info.value)
    assert "ndarray" in str(info.value)


@given(st.text(max_size=30))
def test_any_text_is_accepted_iff_it_matches_the_grammar(name: str) -> None:
    if NAME_RE.fullmatch(name):
        assert Purpose(name).name == name
    else:
        with pytest.raises(PolicyError):
            Purpose(name)


# -- hierarchy -----------------------------------------------------------------------


def test_parent_and_ancestors() -> None:
    p = Purpose("face.verification.login")
    assert p.parent == Purpose("face.verification")
    assert p.parent is not None
    assert p.parent.parent == Purpose("face")
    assert Purpose("face").parent is None
    assert p.ancestors() == (Purpose("face.verification"), Purpose("face"))
    assert Purpose("face").ancestors() == ()
    assert p.depth == 3
    assert Purpose("face").depth == 1


def test_is_within() -> None:
    login = Purpose("face.verification.login")
    assert login.is_within("face.verification.login")
    assert login.is_within(Purpose("face.verification"))
    assert login.is_within("face")
    assert not Purpose("face.verification").is_within(login)
    assert not login.is_within("face.identification")
    assert not Purpose("face").is_within("face.verification")


def test_is_within_is_by_path_segment_not_by_string_prefix() -> None:
    assert not Purpose("face.verification_extra").is_within("face.verification")
    assert not Purpose("faces").is_within("face")
    assert not Purpose("face.ab").is_within("face.a")
    assert Purpose("face.a.b").is_within("face.a")


def test_is_within_rejects_malformed_other() -> None:
    with pytest.raises(PolicyError):
        Purpose("face").is_within("Face")


@given(pgst.purposes(), pgst.purposes())
def test_is_within_matches_the_naive_prefix_rule(p: Purpose, q: Purpose) -> None:
    naive = p.name == q.name or p.name.startswith(q.name + ".")
    assert p.is_within(q) is naive
    assert p.is_within(q.name) is naive
    if p.is_within(q) and q.is_within(p):
        assert p == q


@given(pgst.purposes())
def test_ancestors_are_exactly_the_proper_prefixes(p: Purpose) -> None:
    parts = p.name.split(".")
    expected = tuple(Purpose(".".join(parts[:i])) for i in range(len(parts) - 1, 0, -1))
    assert p.ancestors() == expected
    assert all(p.is_within(a) and a != p for a in p.ancestors())
    assert p.parent == (expected[0] if expected else None)


# -- identity, equality, ordering --------------------------------------------------


def test_interning_equality_and_hash() -> None:
    a = Purpose("face.verification")
    b = Purpose("face." + "verification")
    assert a is b
    assert a == b
    assert hash(a) == hash(b)
    assert Purpose(a) is a
    assert a != Purpose("face.identification")
    assert len({a, b, Purpose("face")}) == 2


def test_purpose_is_not_equal_to_its_str() -> None:
    p = Purpose("face")
    assert p != "face"
    assert p.__eq__("face") is NotImplemented
    assert {p: 1}.get("face") is None  # type: ignore[call-overload]


def test_ordering_is_by_name() -> None:
    names = ["face.verification", "face", "face.analytics.counting", "face.analytics", "a.z"]
    ps = [Purpose(n) for n in names]
    assert [p.name for p in sorted(ps)] == sorted(names)
    a, b = Purpose("face.a"), Purpose("face.b")
    assert a < b
    assert a <= b
    assert a <= a
    assert b > a
    assert b >= a
    assert b >= b
    assert not a > b


@pytest.mark.parametrize("op", ["<", "<=", ">", ">="])
def test_ordering_against_a_str_is_a_type_error(op: str) -> None:
    p = Purpose("face")
    funcs = {
        "<": lambda: p < "face",  # type: ignore[operator]
        "<=": lambda: p <= "face",  # type: ignore[operator]
        ">": lambda: p > "face",  # type: ignore[operator]
        ">=": lambda: p >= "face",  # type: ignore[operator]
    }
    with pytest.raises(TypeError):
        funcs[op]()


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pickle_round_trips_to_the_interned_instance(protocol: int) -> None:
    p = Purpose("face.identification.closed_set_optin")
    q = pickle.loads(pickle.dumps(p, protocol=protocol))
    assert q == p
    assert q is p
    assert q.parent == p.parent


def test_pickle_of_an_uninterned_name_round_trips() -> None:
    # A name never seen before in this process.
    p = Purpose("zz_pickle_only.k")
    q = pickle.loads(pickle.dumps([p, p.parent]))
    assert q == [p, p.parent]


def test_copy_and_deepcopy_return_the_same_purpose() -> None:
    p = Purpose("face.liveness")
    assert copy.copy(p) is p
    assert copy.deepcopy(p) is p
    assert copy.deepcopy({"k": [p]})["k"][0] is p


def test_purposes_are_immutable() -> None:
    p = Purpose("face.verification.payment")
    with pytest.raises(AttributeError):
        p._name = "face.identification"
    with pytest.raises(AttributeError):
        p.name = "face"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        p.extra = 1
    with pytest.raises(AttributeError):
        del p._name
    with pytest.raises(AttributeError):
        del p._parent
    with pytest.raises(AttributeError):
        object.__setattr__(p, "extra", 1)
    assert p.name == "face.verification.payment"
    assert p.parent == Purpose("face.verification")
    assert Purpose("face.verification.payment") is p


def test_purposes_are_exported_and_operations_are_complete() -> None:
    assert pg.Purpose is Purpose
    assert [o.name for o in Operation] == [
        "COLLECT",
        "REVEAL",
        "COMPARE",
        "SEARCH",
        "TRANSFORM",
        "STORE",
        "EXPORT",
        "DELETE",
    ]
    assert Operation("search") is Operation.SEARCH
    with pytest.raises(ValueError, match="fly"):
        Operation("fly")
