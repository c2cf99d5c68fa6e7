"""Purpose grants: issuing, verifying, and the guard enforcing them end to end."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, strategies as st

import purposeguard as pg
from purposeguard import grants
from purposeguard.audit import JsonlSink, MemorySink, Outcome, verify
from purposeguard.grants import GrantAuthority, GrantVerifier

from .conftest import T0

LOGIN = pg.Purpose("face.verification.login")
VERIFICATION = "face.verification"
HOUR = timedelta(hours=1)


@pytest.fixture(scope="module")
def authority() -> GrantAuthority:
    return GrantAuthority.generate(issuer="policy.example")


@pytest.fixture
def verifier(authority: GrantAuthority) -> GrantVerifier:
    return GrantVerifier([authority.public_key], audience="gate-app")


def token(authority: GrantAuthority, **kw: object) -> str:
    args: dict[str, object] = {
        "principal": "svc-gate",
        "purposes": [VERIFICATION],
        "audience": "gate-app",
        "ttl": HOUR,
        "now": T0,
    }
    args.update(kw)
    return authority.issue(**args)  # type: ignore[arg-type]


def claims_of(tok: str) -> dict[str, object]:
    part = tok.split(".")[1]
    data: dict[str, object] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return data


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# -- issuing and verifying -------------------------------------------------------------


def test_issue_and_verify(authority: GrantAuthority, verifier: GrantVerifier) -> None:
    tok = token(authority, operations=["compare", pg.Operation.REVEAL])
    assert tok.startswith("pg1.")
    assert tok.count(".") == 2
    g = verifier.verify(tok, purpose=LOGIN, principal="svc-gate", now=T0 + timedelta(minutes=5))
    assert isinstance(g, pg.VerifiedGrant)
    assert g.principal == "svc-gate"
    assert g.issuer == "policy.example"
    assert g.purposes == frozenset({pg.Purpose(VERIFICATION)})
    assert g.operations == frozenset({pg.Operation.COMPARE, pg.Operation.REVEAL})
    assert g.grant_id == claims_of(tok)["jti"]
    assert len(g.grant_id) == 32
    # No principal named in the scope: the grant's principal stands.
    assert verifier.verify(tok, purpose=LOGIN, principal=None, now=T0).principal == "svc-gate"


def test_claims_name_no_algorithm(authority: GrantAuthority) -> None:
    c = claims_of(token(authority))
    assert set(c) == {"aud", "exp", "iat", "iss", "jti", "kid", "nbf", "ops", "pur", "sub", "v"}
    assert c["kid"] == authority.key_id == grants.key_id(authority.public_key)
    assert c["exp"] == c["nbf"] + 3600  # type: ignore[operator]
    assert c["ops"] is None


def test_grant_ids_are_unique(authority: GrantAuthority) -> None:
    ids = {claims_of(token(authority))["jti"] for _ in range(50)}
    assert len(ids) == 50


@pytest.mark.parametrize(
    ("kw", "principal", "purpose", "at", "match"),
    [
        ({}, "svc-gate", LOGIN, T0 + HOUR + timedelta(seconds=30), "expired"),
        ({}, "svc-gate", LOGIN, T0 - timedelta(minutes=5), "not valid yet"),
        ({"audience": "other-app"}, "svc-gate", LOGIN, T0, "another audience"),
        ({}, "svc-other", LOGIN, T0, "another principal"),
        ({}, "svc-gate", pg.Purpose("face.identification"), T0, "does not cover"),
        ({"purposes": LOGIN}, "svc-gate", pg.Purpose(VERIFICATION), T0, "does not cover"),
        ({"ttl": timedelta(days=2)}, "svc-gate", LOGIN, T0, "longer"),
    ],
    ids=["expired", "early", "audience", "principal", "purpose", "parent", "lifetime"],
)
def test_refusals(
    authority: GrantAuthority,
    verifier: GrantVerifier,
    kw: dict[str, object],
    principal: str,
    purpose: pg.Purpose,
    at: datetime,
    match: str,
) -> None:
    tok = token(authority, **kw)
    with pytest.raises(pg.GrantError, match=match):
        verifier.verify(tok, purpose=purpose, principal=principal, now=at)


def test_clock_skew_is_bounded(authority: GrantAuthority) -> None:
    v = GrantVerifier([authority.public_key], audience="gate-app", leeway=timedelta(seconds=30))
    tok = token(authority)
    for at in (T0 - timedelta(seconds=30), T0 + HOUR + timedelta(seconds=29)):
        v.verify(tok, purpose=LOGIN, principal=None, now=at)
    for at in (T0 - timedelta(seconds=31), T0 + HOUR + timedelta(seconds=30)):
        with pytest.raises(pg.GrantError):
            v.verify(tok, purpose=LOGIN, principal=None, now=at)


def test_forgeries(authority: GrantAuthority, verifier: GrantVerifier) -> None:
    tok = token(authority, operations=["compare"])
    head, payload, sig = tok.split(".")
    c = claims_of(tok)
    # Widen the claims and keep the signature.
    c["ops"] = None
    c["pur"] = ["face"]
    widened = b64(json.dumps(c, sort_keys=True, separators=(",", ":")).encode())
    with pytest.raises(pg.GrantError, match="signature"):
        verifier.verify(f"{head}.{widened}.{sig}", purpose=LOGIN, principal=None, now=T0)
    # Signed by another key that claims the trusted key's id.
    rogue = Ed25519PrivateKey.generate()
    forged_sig = b64(rogue.sign(f"{head}.{widened}".encode()))
    with pytest.raises(pg.GrantError, match="signature"):
        verifier.verify(f"{head}.{widened}.{forged_sig}", purpose=LOGIN, principal=None, now=T0)
    # A perfectly good token from an authority this verifier does not trust.
    other = GrantAuthority.generate(issuer="policy.example")
    with pytest.raises(pg.GrantError, match="does not trust"):
        verifier.verify(token(other), purpose=LOGIN, principal=None, now=T0)
    # Algorithm games: another version prefix, an extra part, a stripped signature.
    for bad in (f"pg2.{payload}.{sig}", f"{tok}.x", f"{head}.{payload}.", f"{head}.{payload}"):
        with pytest.raises(pg.GrantError):
            verifier.verify(bad, purpose=LOGIN, principal=None, now=T0)


@given(st.text(max_size=300) | st.binary(max_size=200).map(lambda b: "pg1." + b64(b) + ".AA"))
def test_garbage_is_a_grant_error(garbage: str) -> None:
    v = GrantVerifier([bytes(32)], audience="a")
    with pytest.raises(pg.GrantError):
        v.verify(garbage, purpose=LOGIN, principal=None, now=T0)


@given(st.data())
def test_any_changed_character_is_refused(data: st.DataObject) -> None:
    authority = GrantAuthority.generate(issuer="i")
    v = GrantVerifier([authority.public_key], audience="gate-app")
    tok = token(authority)
    pos = data.draw(st.integers(0, len(tok) - 1))
    ch = data.draw(st.sampled_from("ABCxyz019-_.=").filter(lambda c: c != tok[pos]))
    changed = tok[:pos] + ch + tok[pos + 1 :]
    try:
        g = v.verify(changed, purpose=LOGIN, principal=None, now=T0)
    except pg.GrantError:
        return
    # Only base64's unused low bits of the last character may change without effect
    # (and canonical decoding refuses even that): anything accepted must be identical.
    assert g == v.verify(tok, purpose=LOGIN, principal=None, now=T0)  # pragma: no cover


def test_non_token_types_are_grant_errors(verifier: GrantVerifier) -> None:
    for bad in (None, b"pg1.a.b", 12, "x" * 10_000):
        with pytest.raises(pg.GrantError):
            verifier.verify(bad, purpose=LOGIN, principal=None, now=T0)  # type: ignore[arg-type]


def test_issue_arguments(authority: GrantAuthority) -> None:
    with pytest.raises(pg.PolicyError, match="purpose"):
        token(authority, purposes=[])
    with pytest.raises(pg.PolicyError):
        token(authority, purposes=["Not A Purpose"])
    with pytest.raises(pg.PolicyError, match="operation"):
        token(authority, operations=["peek"])
    with pytest.raises(pg.PolicyError, match="operations is empty"):
        token(authority, operations=[])
    with pytest.raises(pg.PolicyError, match="ttl"):
        token(authority, ttl=timedelta(0))
    with pytest.raises(pg.PolicyError, match="timedelta"):
        token(authority, ttl=3600)
    with pytest.raises(pg.PolicyError, match="timezone"):
        token(authority, now=datetime(2026, 1, 1))
    with pytest.raises(pg.PolicyError, match="principal"):
        token(authority, principal="")
    with pytest.raises(pg.PolicyError, match="Ed25519PrivateKey"):
        GrantAuthority(b"k" * 32, issuer="x")  # type: ignore[arg-type]


def test_verifier_arguments(authority: GrantAuthority) -> None:
    with pytest.raises(pg.PolicyError, match="at least one"):
        GrantVerifier([], audience="a")
    with pytest.raises(pg.PolicyError, match="public key"):
        GrantVerifier([b"short"], audience="a")
    with pytest.raises(pg.PolicyError, match="leeway"):
        GrantVerifier([authority.public_key], audience="a", leeway=timedelta(hours=1))
    with pytest.raises(pg.PolicyError, match="audience"):
        GrantVerifier([authority.public_key], audience="")
    single = GrantVerifier(authority.public_key, audience="a")  # one key alone is accepted
    assert single.key_ids == {authority.key_id}


def test_reprs_show_no_key_material(authority: GrantAuthority, verifier: GrantVerifier) -> None:
    assert authority.public_key.hex() not in repr(authority)
    assert "policy.example" in repr(authority)
    assert "gate-app" in repr(verifier)


def test_public_names() -> None:
    assert sorted(grants.__all__) == grants.__all__
    for name in grants.__all__:
        obj = getattr(grants, name)
        assert obj.__module__ == "purposeguard.grants"
        assert obj.__doc__
        assert obj.__doc__.strip()


# -- end to end through the guard --------------------------------------------------------


class CountingVerifier:
    """Delegates to a real GrantVerifier and counts the calls."""

    def __init__(self, inner: GrantVerifier) -> None:
        self.inner = inner
        self.calls = 0

    def verify(
        self, token: str, *, purpose: pg.Purpose, principal: str | None, now: datetime
    ) -> pg.VerifiedGrant:
        self.calls += 1
        return self.inner.verify(token, purpose=purpose, principal=principal, now=now)


@pytest.fixture
def granted(
    authority: GrantAuthority, clock: pg.FrozenClock, sink: MemorySink
) -> Iterator[tuple[pg.Guard, CountingVerifier]]:
    v = CountingVerifier(GrantVerifier([authority.public_key], audience="gate-app"))
    g = pg.Guard(clock=clock, audit=sink, require_grants=True, grant_verifier=v)
    with pg.using(g):
        yield g, v


def template() -> pg.FaceTemplate:
    return pg.FaceTemplate.wrap(
        np.arange(1.0, 9.0), subject="u-7", purposes=VERIFICATION, ttl=timedelta(days=30)
    )


def test_grant_id_is_in_every_event_of_the_scope(
    granted: tuple[pg.Guard, CountingVerifier], authority: GrantAuthority, sink: MemorySink
) -> None:
    _, v = granted
    t = template()
    tok = token(authority)
    sink.clear()
    with pg.purpose(LOGIN, grant=tok):
        t.reveal()
        pg.similarity(t, np.ones(8))
        with pg.purpose(LOGIN):  # a nested scope inherits the grant
            t.reveal()
    gid = claims_of(tok)["jti"]
    assert [e.grant_id for e in sink.events] == [gid, gid, gid]
    assert {e.principal for e in sink.events} == {"svc-gate"}
    assert v.calls == 1  # verified once, at scope entry, not per access


def test_grant_operations_are_enforced_per_access(
    granted: tuple[pg.Guard, CountingVerifier], authority: GrantAuthority, sink: MemorySink
) -> None:
    t = template()
    with pg.purpose(LOGIN, grant=token(authority, operations=["compare"])):
        pg.similarity(t, np.ones(8))
        with pytest.raises(pg.GrantError, match="does not cover reveal"):
            t.reveal()
    assert [e.outcome for e in sink.events[-2:]] == [Outcome.GRANTED, Outcome.DENIED]


@pytest.mark.parametrize(
    ("kw", "principal", "advance"),
    [
        ({}, None, HOUR + timedelta(minutes=1)),
        ({"audience": "other-app"}, None, timedelta(0)),
        ({"purposes": "face.liveness"}, None, timedelta(0)),
        ({}, "svc-intruder", timedelta(0)),
    ],
    ids=["expired", "audience", "out-of-scope", "principal"],
)
def test_bad_grants_keep_the_scope_closed(
    granted: tuple[pg.Guard, CountingVerifier],
    authority: GrantAuthority,
    clock: pg.FrozenClock,
    sink: MemorySink,
    kw: dict[str, object],
    principal: str | None,
    advance: timedelta,
) -> None:
    t = template()
    tok = token(authority, **kw)
    clock.advance(advance)
    with pytest.raises(pg.GrantError), pg.purpose(LOGIN, grant=tok, principal=principal):
        t.reveal()  # pragma: no cover - never reached
    assert sink.events[-1].outcome is Outcome.DENIED
    assert sink.events[-1].operation is None


def test_forged_and_missing_grants_even_in_audit_mode(
    granted: tuple[pg.Guard, CountingVerifier], authority: GrantAuthority
) -> None:
    guard, _ = granted
    tok = token(authority)
    head, payload, _ = tok.split(".")
    forged = f"{head}.{payload}.{b64(bytes(64))}"
    with pg.using(guard.evolve(mode=pg.Mode.AUDIT)):
        with pytest.raises(pg.GrantError), pg.purpose(LOGIN, grant=forged):
            pass  # pragma: no cover
        with pytest.raises(pg.GrantError), pg.purpose(LOGIN):
            pass  # pragma: no cover


def test_a_cached_token_is_still_checked_for_time(
    granted: tuple[pg.Guard, CountingVerifier], authority: GrantAuthority, clock: pg.FrozenClock
) -> None:
    tok = token(authority)
    with pg.purpose(LOGIN, grant=tok):
        pass
    clock.advance(HOUR + timedelta(minutes=1))  # past the expiry and the leeway
    with pytest.raises(pg.GrantError, match="expired"), pg.purpose(LOGIN, grant=tok):
        pass  # pragma: no cover


def test_grants_in_the_tamper_evident_log(
    tmp_path: Path, authority: GrantAuthority, clock: pg.FrozenClock
) -> None:
    log = tmp_path / "audit.jsonl"
    key = b"k" * 32
    v = GrantVerifier([authority.public_key], audience="gate-app")
    with (
        JsonlSink(log, key=key) as s,
        pg.using(pg.Guard(clock=clock, audit=s, require_grants=True, grant_verifier=v)),
    ):
        t = template()
        with pg.purpose(LOGIN, grant=token(authority)):
            t.reveal()
    result = verify(log, key=key)
    assert result.ok
    assert result.events == 2
    last = json.loads(log.read_bytes().splitlines()[-1])["entry"]["event"]
    assert last["grant_id"] is not None
    assert last["principal"] == "svc-gate"
