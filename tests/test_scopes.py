"""Declaring purpose: scopes, decorators, threads and tasks, @uses, @transform,
@collects, similarity and grants."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

import purposeguard as pg
from purposeguard.audit import MemorySink, Outcome

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)
VALUES = np.array([0.6, 0.8, 0.0, 0.0])
OTHER = np.array([0.0, 0.6, 0.8, 0.0])
LOGIN = pg.Purpose("face.verification.login")
Arr = npt.NDArray[np.float64]


def wrap(
    purposes: object = "face.verification", vector: object = VALUES, **kw: Any
) -> pg.FaceTemplate:
    kw.setdefault("subject", "u-17")
    if "expires_at" not in kw:
        kw.setdefault("ttl", 30 * DAY)
    return pg.FaceTemplate.wrap(vector, purposes=purposes, **kw)  # type: ignore[arg-type]


# -- purpose(): context manager, decorator, async --------------------------------------------


def test_purpose_as_context_manager(guard: pg.Guard) -> None:
    assert pg.current_purpose() is None
    with pg.purpose("face.verification.login") as p:
        assert p == LOGIN
        assert pg.current_purpose() == LOGIN
    assert pg.current_purpose() is None


def test_purpose_accepts_a_purpose_object(guard: pg.Guard) -> None:
    with pg.purpose(LOGIN):
        assert pg.current_purpose() is LOGIN


def test_purpose_scope_is_reset_after_an_exception(guard: pg.Guard) -> None:
    with pytest.raises(RuntimeError), pg.purpose(LOGIN):
        raise RuntimeError
    assert pg.current_purpose() is None


def test_purpose_as_decorator(guard: pg.Guard) -> None:
    @pg.purpose("face.verification.payment")
    def inside(x: int) -> tuple[int, pg.Purpose | None]:
        return x + 1, pg.current_purpose()

    assert inside(1) == (2, pg.Purpose("face.verification.payment"))
    assert pg.current_purpose() is None
    assert inside.__name__ == "inside"


def test_purpose_as_async_decorator(guard: pg.Guard) -> None:
    @pg.purpose("face.verification.payment")
    async def inside() -> pg.Purpose | None:
        await asyncio.sleep(0)
        return pg.current_purpose()

    assert asyncio.run(inside()) == pg.Purpose("face.verification.payment")
    assert pg.current_purpose() is None


def test_purpose_async_with(guard: pg.Guard) -> None:
    async def main() -> list[pg.Purpose | None]:
        seen = [pg.current_purpose()]
        async with pg.purpose(LOGIN):
            await asyncio.sleep(0)
            seen.append(pg.current_purpose())
        seen.append(pg.current_purpose())
        return seen

    assert asyncio.run(main()) == [None, LOGIN, None]


def test_scope_object_can_be_reentered(guard: pg.Guard) -> None:
    scope = pg.purpose("face.verification")
    with scope:
        with pg.purpose(LOGIN):
            assert pg.current_purpose() == LOGIN
        assert pg.current_purpose() == pg.Purpose("face.verification")
    with scope:
        assert pg.current_purpose() == pg.Purpose("face.verification")
    assert pg.current_purpose() is None


def test_malformed_purpose_is_refused_at_once() -> None:
    with pytest.raises(pg.PolicyError):
        pg.purpose("Face Verification")
    with pytest.raises(pg.PolicyError):
        pg.purpose(12)  # type: ignore[arg-type]


def test_unknown_purpose_on_entry(guard: pg.Guard, sink: MemorySink) -> None:
    scope = pg.purpose("face.verification.unknown")
    with pytest.raises(pg.PolicyError), scope:
        pass
    assert pg.current_purpose() is None

    @pg.purpose("retail.loyalty")
    def f() -> None:
        raise AssertionError("must not run")

    with pytest.raises(pg.PolicyError):
        f()


def test_bad_principal_and_grant_arguments() -> None:
    with pytest.raises(pg.PolicyError):
        pg.purpose(LOGIN, principal="")
    with pytest.raises(pg.PolicyError):
        pg.purpose(LOGIN, grant=b"token")  # type: ignore[arg-type]


# -- nesting -------------------------------------------------------------------------------


def test_nested_scopes_narrow(guard: pg.Guard) -> None:
    with pg.purpose("face.verification"), pg.purpose(LOGIN):
        assert pg.current_purpose() == LOGIN
        with pg.purpose(LOGIN):  # equal is within
            assert pg.current_purpose() == LOGIN


@pytest.mark.parametrize(
    ("outer", "inner"),
    [
        ("face.verification.login", "face.verification"),
        ("face.verification.login", "face.verification.payment"),
        ("face.verification", "face.identification"),
        ("face.analytics.counting", "face"),
    ],
)
def test_escaping_a_scope_is_a_violation(
    guard: pg.Guard, sink: MemorySink, outer: str, inner: str
) -> None:
    with pg.purpose(outer):
        with pytest.raises(pg.PurposeViolationError) as exc, pg.purpose(inner):
            raise AssertionError("the inner scope must not open")
        assert pg.current_purpose() == pg.Purpose(outer)
    assert "narrow" in str(exc.value)
    assert sink.events[-1].outcome is Outcome.DENIED
    assert sink.events[-1].purpose == pg.Purpose(inner)


def test_escaping_a_scope_through_a_decorator(guard: pg.Guard) -> None:
    ran: list[bool] = []

    @pg.purpose("face.identification")
    def search() -> None:
        ran.append(True)

    with pg.purpose(LOGIN), pytest.raises(pg.PurposeViolationError):
        search()
    assert ran == []


def test_escaping_in_audit_mode_would_deny(audit_guard: pg.Guard, sink: MemorySink) -> None:
    with pg.purpose(LOGIN):
        with pytest.warns(pg.PurposeWarning, match="narrow"), pg.purpose("face.identification"):
            assert pg.current_purpose() == pg.Purpose("face.identification")
        assert pg.current_purpose() == LOGIN
    assert [e.outcome for e in sink.events] == [Outcome.WOULD_DENY]


# -- threads and tasks ---------------------------------------------------------------------


def test_new_thread_starts_without_purpose(guard: pg.Guard, sink: MemorySink) -> None:
    t = wrap()
    seen: dict[str, object] = {}

    def worker() -> None:
        seen["purpose"] = pg.current_purpose()
        with pg.using(guard):
            try:
                seen["values"] = t.reveal()
            except pg.PurposeViolationError as e:
                seen["error"] = e

    with pg.purpose(LOGIN):
        t.reveal()  # allowed here
        th = threading.Thread(target=worker)
        th.start()
        th.join()
    assert seen["purpose"] is None
    assert "values" not in seen
    assert isinstance(seen["error"], pg.PurposeViolationError)
    assert sink.events[-1].purpose is None
    assert sink.events[-1].outcome is Outcome.DENIED


def test_thread_can_declare_its_own_purpose(guard: pg.Guard) -> None:
    t = wrap()
    out: list[object] = []

    @pg.purpose(LOGIN)
    def worker() -> None:
        out.append(t.reveal())

    def run() -> None:
        with pg.using(guard):
            worker()

    th = threading.Thread(target=run)
    th.start()
    th.join()
    assert len(out) == 1
    np.testing.assert_array_equal(out[0], VALUES)


TASK_PURPOSES = [
    "face.verification",
    "face.verification.login",
    "face.verification.payment",
    "face.verification.device_unlock",
    "face.verification.access_control",
    "face.identification",
    "face.identification.closed_set_optin",
    "face.analytics",
    "face.analytics.counting",
    "face.liveness",
]


def test_interleaved_tasks_see_only_their_own_purpose(guard: pg.Guard) -> None:
    t = wrap("face.verification")
    trace: list[int] = []
    problems: list[str] = []

    async def child() -> pg.Purpose | None:
        await asyncio.sleep(0)
        return pg.current_purpose()

    async def worker(i: int) -> None:
        mine = pg.Purpose(TASK_PURPOSES[i % len(TASK_PURPOSES)])
        async with pg.purpose(mine):
            for _ in range(5):
                trace.append(i)
                await asyncio.sleep(0)
                if pg.current_purpose() != mine:
                    problems.append(f"task {i} saw {pg.current_purpose()} not {mine}")
                permitted = guard.check(t, mine, pg.Operation.REVEAL).allowed
                try:
                    t.reveal()
                    revealed = True
                except pg.PurposeViolationError:
                    revealed = False
                if revealed != permitted:
                    problems.append(f"task {i}: reveal {revealed}, decision {permitted}")
                if await asyncio.create_task(child()) != mine:
                    problems.append(f"task {i}: a child task did not inherit {mine}")
        if pg.current_purpose() is not None:
            problems.append(f"task {i} kept a purpose after its scope")

    async def main() -> None:
        await asyncio.gather(*(worker(i) for i in range(50)))
        assert pg.current_purpose() is None

    asyncio.run(main())
    assert problems == []
    assert len(trace) == 250
    # The tasks really interleaved: task 0 did not finish before task 49 started.
    assert trace.index(49) < len(trace) - 1 - trace[::-1].index(0)


def test_child_task_inherits_and_cannot_leak_back(guard: pg.Guard) -> None:
    async def child() -> pg.Purpose | None:
        inherited = pg.current_purpose()
        with pg.purpose("face.verification.login"):
            await asyncio.sleep(0)
        return inherited

    async def main() -> tuple[pg.Purpose | None, pg.Purpose | None]:
        async with pg.purpose("face.verification"):
            got = await asyncio.create_task(child())
            return got, pg.current_purpose()

    assert asyncio.run(main()) == (pg.Purpose("face.verification"),) * 2


def test_child_task_cannot_escape_the_parent_purpose(guard: pg.Guard) -> None:
    async def child() -> None:
        with pg.purpose("face.identification"):
            pass

    async def main() -> None:
        async with pg.purpose(LOGIN):
            await asyncio.create_task(child())

    with pytest.raises(pg.PurposeViolationError):
        asyncio.run(main())


# -- @uses -----------------------------------------------------------------------------------


def _place(kind: str, t: pg.FaceTemplate) -> object:
    return {
        "arg": t,
        "list": [1, t],
        "tuple": (t, "x"),
        "set": {t},
        "frozenset": frozenset({t}),
        "dict": {"probe": t},
        "nested": {"a": [({"b": t},)]},
    }[kind]


KINDS = ["arg", "list", "tuple", "set", "frozenset", "dict", "nested"]


@pytest.mark.parametrize("kind", KINDS)
def test_uses_checks_templates_before_the_body(
    guard: pg.Guard, sink: MemorySink, kind: str
) -> None:
    ok = wrap("face.verification")
    bad = wrap("face.analytics")
    ran: list[bool] = []

    @pg.uses(LOGIN)
    def body(first: object, *, second: object = None) -> pg.Purpose | None:
        ran.append(True)
        return pg.current_purpose()

    assert body(_place(kind, ok)) == LOGIN
    assert ran == [True]
    ran.clear()
    with pytest.raises(pg.PurposeViolationError) as exc:
        body(ok, second=_place(kind, bad))
    assert ran == []
    assert bad.id in str(exc.value)
    event = sink.events[-1]
    assert event.operation is None
    assert set(event.template_ids) == {ok.id, bad.id}
    assert event.outcome is Outcome.DENIED


@pytest.mark.parametrize("kind", KINDS)
def test_uses_async_checks_before_the_body(guard: pg.Guard, kind: str) -> None:
    bad = wrap("face.analytics")
    ran: list[bool] = []

    @pg.uses(LOGIN)
    async def body(arg: object) -> None:
        ran.append(True)

    with pytest.raises(pg.PurposeViolationError):
        asyncio.run(body(_place(kind, bad)))
    assert ran == []


def test_uses_async_runs_in_scope(guard: pg.Guard) -> None:
    t = wrap()

    @pg.uses(LOGIN)
    async def body(arg: pg.FaceTemplate) -> tuple[pg.Purpose | None, float]:
        await asyncio.sleep(0)
        return pg.current_purpose(), pg.similarity(arg, VALUES)

    p, score = asyncio.run(body(t))
    assert p == LOGIN
    assert score == pytest.approx(1.0)


def test_uses_checks_expiry_and_consent_before_the_body(
    guard: pg.Guard, clock: pg.FrozenClock
) -> None:
    ran: list[bool] = []

    @pg.uses(LOGIN)
    def body(arg: pg.FaceTemplate) -> None:
        ran.append(True)

    soon = wrap(ttl=timedelta(seconds=5))
    withdrawn = wrap(consent="c-1")
    clock.advance(timedelta(seconds=5))
    with pytest.raises(pg.ExpiredTemplateError):
        body(soon)

    class Withdrawn:
        def is_withdrawn(self, consent_id: str) -> bool:
            return True

    with pg.using(guard.evolve(consents=Withdrawn())), pytest.raises(pg.ConsentError):
        body(withdrawn)
    assert ran == []


def test_uses_checks_operations_again_inside(guard: pg.Guard) -> None:
    t = wrap(["face.liveness"])

    @pg.uses("face.liveness")
    def body(arg: pg.FaceTemplate) -> None:
        arg.reveal()  # admitted for liveness, but liveness has no REVEAL

    with pytest.raises(pg.PurposeViolationError, match="reveal"):
        body(t)


def test_uses_without_templates_emits_nothing(guard: pg.Guard, sink: MemorySink) -> None:
    @pg.uses(LOGIN)
    def body(x: int) -> int:
        return x * 2

    assert body(21) == 42
    assert sink.events == []


def test_uses_is_a_scope_that_must_narrow(guard: pg.Guard) -> None:
    ran: list[bool] = []

    @pg.uses("face.identification")
    def body() -> None:
        ran.append(True)

    with pg.purpose(LOGIN), pytest.raises(pg.PurposeViolationError):
        body()
    assert ran == []


# -- @transform ------------------------------------------------------------------------------


@pg.transform(name="normalise")
def normalise(v: Arr) -> Arr:
    return v / np.linalg.norm(v)


@pg.transform
def average(a: Arr, b: Arr) -> Arr:
    return (a + b) / 2.0


@pg.transform("to_float")
def to_float(v: Arr) -> float:
    return float(v.sum())


def test_transform_with_templates_labels_the_result(guard: pg.Guard, sink: MemorySink) -> None:
    a = wrap(
        ["face.verification", "face.liveness"],
        vector=VALUES * 3,
        prohibited="face.verification.payment",
        expires_at=T0 + 10 * DAY,
    )
    b = wrap(["face.verification.login", "face.liveness"], vector=OTHER, ttl=5 * DAY)
    with pg.purpose(LOGIN):
        n = normalise(a)
        m = average(n, b)
    assert isinstance(n, pg.FaceTemplate)
    assert isinstance(m, pg.FaceTemplate)
    assert n.id not in (a.id,)
    assert n.label.lineage == ("transform:normalise",)
    assert m.label.lineage == ("transform:normalise", f"transform:{average.__qualname__}")
    assert m.purposes == {pg.Purpose("face.verification.login"), pg.Purpose("face.liveness")}
    assert m.label.prohibited == {pg.Purpose("face.verification.payment")}
    assert m.expires_at == T0 + 5 * DAY
    assert m.subject == "u-17"
    with pg.purpose(LOGIN):
        np.testing.assert_allclose(n.reveal(), VALUES)
        np.testing.assert_allclose(m.reveal(), (VALUES + OTHER) / 2)
    ops = [e.operation for e in sink.events]
    assert ops.count(pg.Operation.TRANSFORM) == 2


def test_transform_input_is_read_only(guard: pg.Guard) -> None:
    @pg.transform
    def scribble(v: Arr) -> Arr:
        v[0] = 99.0
        return v

    t = wrap()
    with pg.purpose(LOGIN), pytest.raises(ValueError, match="read-only"):
        scribble(t)
    with pg.purpose(LOGIN):
        np.testing.assert_array_equal(t.reveal(), VALUES)


def test_transform_of_different_subjects_is_a_policy_error(guard: pg.Guard) -> None:
    a = wrap(subject="a-1")
    b = wrap(subject="b-2")
    with pg.purpose(LOGIN), pytest.raises(pg.PolicyError, match="subject"):
        average(a, b)


def test_transform_returning_a_non_array(guard: pg.Guard) -> None:
    t = wrap()
    with pg.purpose(LOGIN), pytest.raises(pg.InvalidTemplateError, match="to_float"):
        to_float(t)


def test_transform_returning_structures(guard: pg.Guard) -> None:
    @pg.transform
    def split(v: Arr) -> dict[str, object]:
        return {"head": v[:2], "both": (v[:2], v[2:])}

    with pg.purpose(LOGIN):
        out = split(wrap())
    assert isinstance(out, dict)
    assert isinstance(out["head"], pg.FaceTemplate)
    assert all(isinstance(x, pg.FaceTemplate) for x in out["both"])


def test_transform_of_plain_arrays_is_a_plain_function(sink: MemorySink) -> None:
    out = normalise(VALUES * 2)
    assert isinstance(out, np.ndarray)
    np.testing.assert_allclose(out, VALUES)
    assert to_float(np.ones(3)) == 3.0  # no wrapping of a non-array result
    assert sink.events == []


def test_transform_needs_a_purpose(guard: pg.Guard) -> None:
    with pytest.raises(pg.PurposeViolationError):
        normalise(wrap())


@pytest.mark.parametrize(
    ("allowed", "active", "permitted"),
    [
        ("face.liveness", "face.liveness", True),
        ("face.verification", "face.verification.login", True),
        ("face.analytics", "face.analytics.emotion", True),
        ("face.commercial", "face.commercial.marketing", False),  # no TRANSFORM
        ("face.verification", "face.identification", False),  # does not conform
    ],
)
def test_transform_must_be_permitted(
    guard: pg.Guard, allowed: str, active: str, permitted: bool
) -> None:
    t = wrap(allowed)
    with pg.purpose(active):
        if permitted:
            assert isinstance(normalise(t), pg.FaceTemplate)
        else:
            with pytest.raises(pg.PurposeViolationError, match="transform"):
                normalise(t)


def test_liveness_transform_but_no_reveal(guard: pg.Guard) -> None:
    t = wrap("face.liveness")
    with pg.purpose("face.liveness"):
        out = normalise(t)
        assert isinstance(out, pg.FaceTemplate)
        with pytest.raises(pg.PurposeViolationError):
            out.reveal()


# -- @collects -------------------------------------------------------------------------------


def test_collects_wraps_a_1d_result(guard: pg.Guard, sink: MemorySink) -> None:
    @pg.collects("face.verification", subject="u-5", ttl=DAY, consent="c-5")
    def embed(image: str) -> Arr:
        return VALUES.copy()

    t = embed("img.png")
    assert isinstance(t, pg.FaceTemplate)
    assert t.subject == "u-5"
    assert t.label.consent == "c-5"
    assert t.expires_at == T0 + DAY
    assert sink.events[-1].operation is pg.Operation.COLLECT


def test_collects_2d_and_lists_become_lists(guard: pg.Guard) -> None:
    @pg.collects("face.verification", subject="u-5", ttl=DAY)
    def faces(n: int) -> Arr:
        return np.tile(VALUES, (n, 1))

    @pg.collects("face.verification", subject="u-5", ttl=DAY)
    def as_list() -> list[Arr]:
        return [VALUES, OTHER]

    two = faces(2)
    assert isinstance(two, list)
    assert len(two) == 2
    assert all(isinstance(x, pg.FaceTemplate) for x in two)
    assert two[0] != two[1]
    pair = as_list()
    assert isinstance(pair, list)
    assert [x.dim for x in pair] == [4, 4]


def test_collects_none_stays_none(guard: pg.Guard, sink: MemorySink) -> None:
    @pg.collects("face.verification", subject="u-5", ttl=DAY)
    def no_face() -> None:
        return None

    assert no_face() is None
    assert sink.events == []


def test_collects_subject_and_consent_as_callables(guard: pg.Guard) -> None:
    @pg.collects(
        "face.verification",
        subject=lambda user, **_: f"user-{user}",
        consent=lambda user, **_: f"c-{user}",
        ttl=DAY,
    )
    def embed(user: int, *, camera: str = "front") -> Arr:
        return VALUES

    t = embed(7, camera="back")
    assert isinstance(t, pg.FaceTemplate)
    assert t.subject == "user-7"
    assert t.label.consent == "c-7"


def test_collects_async(guard: pg.Guard) -> None:
    @pg.collects("face.liveness", subject="u-1", ttl=DAY)
    async def embed() -> Arr:
        await asyncio.sleep(0)
        return VALUES

    t = asyncio.run(embed())
    assert isinstance(t, pg.FaceTemplate)
    assert t.purposes == {pg.Purpose("face.liveness")}


def test_collects_validates_its_arguments() -> None:
    with pytest.raises(pg.InvalidTemplateError):
        pg.collects("face.verification", subject="u")
    with pytest.raises(pg.InvalidTemplateError):
        pg.collects("face.verification", subject="u", ttl=DAY, expires_at=T0 + DAY)
    with pytest.raises(pg.PolicyError):
        pg.collects([], subject="u", ttl=DAY)
    with pytest.raises(pg.PolicyError):
        pg.collects("Bad Purpose", subject="u", ttl=DAY)


def test_collects_bad_result_is_invalid(guard: pg.Guard) -> None:
    @pg.collects("face.verification", subject="u-5", ttl=DAY)
    def broken() -> Arr:
        return np.array([np.nan, 1.0])

    with pytest.raises(pg.InvalidTemplateError):
        broken()


def test_collects_for_a_purpose_without_collect_is_denied(guard: pg.Guard) -> None:
    @pg.collects("face", subject="u-5", ttl=DAY)
    def embed() -> Arr:
        return VALUES

    with pytest.raises(pg.PurposeViolationError):
        embed()


# -- similarity and distance -------------------------------------------------------------------


def test_similarity_metrics(guard: pg.Guard) -> None:
    a = wrap(vector=VALUES)
    b = wrap(vector=OTHER)
    with pg.purpose(LOGIN):
        assert pg.similarity(a, a) == pytest.approx(1.0)
        assert pg.similarity(a, b) == pytest.approx(0.48)
        assert pg.similarity(a, b, metric="dot") == pytest.approx(0.48)
        assert pg.similarity(a, OTHER * 10) == pytest.approx(0.48)
        assert pg.similarity(VALUES * 2, b, metric="dot") == pytest.approx(0.96)
        assert pg.distance(a, b) == pytest.approx(float(np.linalg.norm(VALUES - OTHER)))
        assert pg.distance(a, b, metric="cosine") == pytest.approx(0.52)
        assert pg.distance(a, a) == pytest.approx(0.0)


def test_similarity_of_plain_arrays_needs_no_purpose(sink: MemorySink) -> None:
    assert pg.similarity(VALUES, OTHER) == pytest.approx(0.48)
    assert sink.events == []


def test_similarity_errors(guard: pg.Guard) -> None:
    a = wrap()
    short = wrap(vector=[1.0, 2.0])
    with pg.purpose(LOGIN):
        with pytest.raises(pg.InvalidTemplateError, match="dimension"):
            pg.similarity(a, short)
        with pytest.raises(pg.InvalidTemplateError, match="dimension"):
            pg.distance(a, np.ones(7))
        with pytest.raises(pg.InvalidTemplateError):
            pg.similarity(a, np.zeros(4))
        with pytest.raises(pg.InvalidTemplateError):
            pg.similarity(a, [np.nan, 0.0, 0.0, 0.0])
        with pytest.raises(pg.PolicyError):
            pg.similarity(a, a, metric="manhattan")  # type: ignore[arg-type]
        with pytest.raises(pg.PolicyError):
            pg.distance(a, a, metric="dot")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "active", ["face.analytics", "face.analytics.counting", "face.analytics.demographics"]
)
def test_compare_denied_for_analytics(guard: pg.Guard, sink: MemorySink, active: str) -> None:
    t = wrap("face.analytics")
    with pg.purpose(active):
        with pytest.raises(pg.PurposeViolationError, match="compare"):
            pg.similarity(t, VALUES)
        with pytest.raises(pg.PurposeViolationError):
            pg.distance(VALUES, t)
    assert sink.events[-1].operation is pg.Operation.COMPARE
    assert sink.events[-1].outcome is Outcome.DENIED


def test_compare_denied_when_either_side_is_denied(guard: pg.Guard) -> None:
    ok = wrap("face.verification")
    other = wrap("face.identification")
    with pg.purpose(LOGIN), pytest.raises(pg.PurposeViolationError) as exc:
        pg.similarity(ok, other)
    assert other.id in str(exc.value)


# -- grants ------------------------------------------------------------------------------------


class FakeVerifier:
    """Accepts tokens 'ok:<purpose>[:<op>,<op>]'; anything else is forged."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, pg.Purpose, str | None, datetime]] = []

    def verify(
        self, token: str, *, purpose: pg.Purpose, principal: str | None, now: datetime
    ) -> pg.VerifiedGrant:
        self.calls.append((token, purpose, principal, now))
        parts = token.split(":")
        if parts[0] != "ok" or len(parts) < 2:
            raise pg.GrantError("forged grant")
        ops = None
        if len(parts) == 3:
            ops = frozenset(pg.Operation(o) for o in parts[2].split(","))
        granted = pg.Purpose(parts[1])
        if not purpose.is_within(granted):
            raise pg.GrantError(f"grant does not cover {purpose.name}")
        return pg.VerifiedGrant(
            grant_id=f"g-{len(self.calls)}",
            principal=principal or "svc",
            purposes=frozenset({granted}),
            operations=ops,
        )


class ExplodingVerifier:
    def verify(
        self, token: str, *, purpose: pg.Purpose, principal: str | None, now: datetime
    ) -> pg.VerifiedGrant:
        raise KeyError("no key loaded")


class LyingVerifier:
    """Returns something that is not a VerifiedGrant."""

    def verify(
        self, token: str, *, purpose: pg.Purpose, principal: str | None, now: datetime
    ) -> pg.VerifiedGrant:
        return "yes"  # type: ignore[return-value]


class SloppyVerifier:
    """Verifies the signature but returns a grant for another purpose."""

    def verify(
        self, token: str, *, purpose: pg.Purpose, principal: str | None, now: datetime
    ) -> pg.VerifiedGrant:
        return pg.VerifiedGrant(
            grant_id="g-x", principal="svc", purposes=frozenset({pg.Purpose("face.liveness")})
        )


@pytest.fixture
def verifier() -> FakeVerifier:
    return FakeVerifier()


@pytest.fixture
def grant_guard(
    clock: pg.FrozenClock, sink: MemorySink, verifier: FakeVerifier
) -> Iterator[pg.Guard]:
    g = pg.Guard(clock=clock, audit=sink, require_grants=True, grant_verifier=verifier)
    with pg.using(g):
        yield g


def test_missing_grant(grant_guard: pg.Guard, sink: MemorySink) -> None:
    with pytest.raises(pg.GrantError), pg.purpose(LOGIN):
        raise AssertionError("must not open")
    assert pg.current_purpose() is None
    assert sink.events[-1].outcome is Outcome.DENIED


def test_missing_grant_is_denied_even_in_audit_mode(grant_guard: pg.Guard) -> None:
    with (
        pg.using(grant_guard.evolve(mode=pg.Mode.AUDIT)),
        pytest.raises(pg.GrantError),
        pg.purpose(LOGIN),
    ):
        raise AssertionError("must not open")


@pytest.mark.parametrize("token", ["forged", "ok:face.identification", "ok"])
def test_bad_grant(grant_guard: pg.Guard, token: str) -> None:
    with pytest.raises(pg.GrantError), pg.purpose(LOGIN, grant=token):
        raise AssertionError("must not open")


def test_good_grant_opens_the_scope(
    grant_guard: pg.Guard, verifier: FakeVerifier, sink: MemorySink, clock: pg.FrozenClock
) -> None:
    t = pg.FaceTemplate._new(
        VALUES,
        pg.Label(allowed="face.verification", subject="u-1", expires_at=T0 + DAY),
    )
    with pg.purpose(LOGIN, grant="ok:face.verification", principal="alice"):
        t.reveal()
    assert verifier.calls == [("ok:face.verification", LOGIN, "alice", clock.now())]
    assert sink.events[-1].grant_id == "g-1"
    assert sink.events[-1].principal == "alice"
    assert sink.events[-1].outcome is Outcome.GRANTED


def test_grant_limited_operations(grant_guard: pg.Guard, sink: MemorySink) -> None:
    t = pg.FaceTemplate._new(
        VALUES,
        pg.Label(allowed="face.verification", subject="u-1", expires_at=T0 + DAY),
    )
    with pg.purpose(LOGIN, grant="ok:face.verification:compare"):
        assert pg.similarity(t, VALUES) == pytest.approx(1.0)
        with pytest.raises(pg.GrantError, match="reveal"):
            t.reveal()
        with pytest.raises(pg.GrantError):
            normalise(t)
    assert sink.events[-1].outcome is Outcome.DENIED


def test_nested_scope_inherits_the_grant(grant_guard: pg.Guard, sink: MemorySink) -> None:
    t = pg.FaceTemplate._new(
        VALUES,
        pg.Label(allowed="face.verification", subject="u-1", expires_at=T0 + DAY),
    )
    with (
        pg.purpose("face.verification", grant="ok:face.verification:compare"),
        pg.purpose(LOGIN),
    ):
        pg.similarity(t, VALUES)
        assert sink.events[-1].grant_id == "g-1"
        with pytest.raises(pg.GrantError):
            t.reveal()  # the inherited grant's limits still apply


def test_verifier_that_breaks_fails_closed(clock: pg.FrozenClock, sink: MemorySink) -> None:
    for verifier in (ExplodingVerifier(), LyingVerifier(), SloppyVerifier()):
        g = pg.Guard(clock=clock, audit=sink, require_grants=True, grant_verifier=verifier)
        with pg.using(g), pytest.raises(pg.GrantError), pg.purpose(LOGIN, grant="ok:x"):
            raise AssertionError("must not open")


def test_grant_without_a_verifier_is_a_policy_error(guard: pg.Guard) -> None:
    with pytest.raises(pg.PolicyError), pg.purpose(LOGIN, grant="ok:face"):
        pass


def test_transform_of_templates_in_lists_and_keywords(guard: pg.Guard) -> None:
    @pg.transform(name="mean")
    def mean(vs: list[Arr], *, weight: Arr) -> Arr:
        assert all(isinstance(v, np.ndarray) for v in vs)
        assert isinstance(weight, np.ndarray)
        result: Arr = np.mean(vs, axis=0) * weight
        return result

    a, b, w = wrap(vector=VALUES), wrap(vector=OTHER), wrap(vector=np.ones(4))
    with pg.purpose(LOGIN):
        out = mean([a, b], weight=w)
        assert isinstance(out, pg.FaceTemplate)
        np.testing.assert_allclose(out.reveal(), (VALUES + OTHER) / 2)
        plain = mean([VALUES, OTHER], weight=np.ones(4))
    assert isinstance(plain, np.ndarray)


def test_scope_object_describes_itself() -> None:
    scope = pg.purpose("face.verification.login")
    assert scope.purpose == LOGIN
    assert repr(scope) == "purpose('face.verification.login')"
