"""Core overhead benchmark: purposeguard's decision path against a bare call and peers.

Run ``python benchmarks/core.py`` (or ``--quick`` for a fast, noisier pass). It times,
side by side in one process:

1. a bare Python call (a no-op function of two arguments): the floor;
2. ``guard.check(template, "face.verification.login", Operation.COMPARE)``, the same
   template again and again (a guard reuses a granted decision once it has checked
   expiry and consent again), and over 8,192 templates in turn (more than a guard keeps
   decisions for: every call builds its decision anew);
3. a call through ``@pg.uses("face.verification.login")`` of a function taking two
   templates, in enforce mode with a ``MemorySink`` (scope entry, admission of both
   templates, one audit event);
4. the same purpose decision made by two general-purpose authorization engines, if
   installed (``pip install -e .[bench]``):

   * cedarpy: ``is_authorized`` with a pre-parsed ``PolicySet`` and a pre-parsed
     ``Entities`` handle (the most favourable way to call it). The purpose tree is an
     entity hierarchy, each purpose carries the operations the taxonomy allows for it,
     and the template is an entity with ``allowed``, ``prohibited`` and
     ``expires_at`` attributes. A ``permit`` admits the purpose when it is ``in`` an
     allowed purpose, allows the operation and the label is not expired; a ``forbid``
     (deny overrides allow) refuses it when it is within a prohibited purpose or is an
     ancestor of one (Byun and Li's rule, as the guard applies it).
   * casbin: ``Enforcer.enforce`` on an in-memory model: the purpose tree through role
     inheritance (``g``), the taxonomy's operations through ``g2``, the label's allowed
     and prohibited purposes as allow and deny policies, the expiry as an attribute of
     the request object.

Before timing, every contender is asked the same questions and must give the same
answers (allowed for ``face.verification.login``, denied for a prohibited purpose, for
``face.identification`` and for an expired label), so the peers make *the same*
decision, not a cheaper one.

Each figure is the median over many batches (31 by default) of the per-call time of a
tight loop timed with ``time.perf_counter_ns``; garbage collection is off while a batch
runs, as in ``timeit``, and the contenders take turns batch by batch so that the ratios
stay fair when the machine's load changes (the load average is printed: absolute
figures from a busy machine are high). This is a measurement, not a test: it always
exits 0.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np

import purposeguard as pg
from purposeguard.audit import MemorySink, Outcome

PURPOSE = "face.verification.login"
ALLOWED = "face.verification"
OTHER = "face.identification"  # 1:N: a change of purpose, and prohibited by the label
PRINCIPAL = "benchmarks.core"

# More templates than a guard keeps granted decisions for (twice its cache, read from
# the guard module when it says; the benchmark still runs if that name goes away).
ROTATION = max(
    8_192, 2 * int(getattr(importlib.import_module("purposeguard._guard"), "_GRANTED_LIMIT", 0))
)

TARGET_CHECK_NS = 2_000
TARGET_USES_NS = 8_000
TARGET_CEDAR_RATIO = 20.0

Loop = Callable[[int], None]


# -- timing --------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    median_ns: float
    spread_ns: float  # interquartile range of the per-call batch figures
    best_ns: float  # the fastest batch: what the code costs when nothing else runs


def _time_batch(loop: Loop, n: int, before: Callable[[], None] | None) -> float:
    if before is not None:
        before()
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter_ns()
        loop(n)
        t1 = time.perf_counter_ns()
    finally:
        if gc_was_on:
            gc.enable()
    return (t1 - t0) / n


@dataclass
class Contender:
    key: str
    name: str
    loop: Loop
    before: Callable[[], None] | None = None  # run before each batch, untimed


def _calibrate(c: Contender, batch_ns: int) -> int:
    # Warm up, then size the batch so that one takes about batch_ns.
    n = 64
    while True:
        per_call = _time_batch(c.loop, n, c.before)
        if per_call * n >= batch_ns / 4 or n >= 1 << 24:
            break
        n *= 4
    return max(16, int(batch_ns / max(per_call, 1.0)))


def measure_all(contenders: list[Contender], *, batches: int, batch_ns: int) -> dict[str, Result]:
    """Median per-call time of each contender over *batches* batches of about *batch_ns*.

    The contenders take turns batch by batch, so that a change in the machine's load
    during the run weighs on all of them alike and the ratios stay fair.
    """
    sizes = {c.key: _calibrate(c, batch_ns) for c in contenders}
    samples: dict[str, list[float]] = {c.key: [] for c in contenders}
    for _ in range(batches):
        for c in contenders:
            samples[c.key].append(_time_batch(c.loop, sizes[c.key], c.before))
    results = {}
    for c in contenders:
        q = statistics.quantiles(samples[c.key], n=4)
        xs = samples[c.key]
        results[c.key] = Result(c.name, statistics.median(xs), q[2] - q[0], min(xs))
    return results


# -- the contenders --------------------------------------------------------------------


def _noop(a: object, b: object) -> None:
    return None


def bare_loop() -> Loop:
    fn = _noop
    a, b = object(), object()

    def loop(n: int) -> None:
        for _ in range(n):
            fn(a, b)

    return loop


def make_guard() -> tuple[pg.Guard, MemorySink]:
    sink = MemorySink()
    return pg.Guard(mode=pg.Mode.ENFORCE, audit=sink), sink


def make_templates(guard: pg.Guard, count: int = 2, dim: int = 512) -> list[pg.FaceTemplate]:
    rng = np.random.default_rng(7)
    with pg.using(guard):
        return [
            pg.FaceTemplate.wrap(
                rng.standard_normal(dim).astype(np.float32),
                subject=f"u-{i}",
                purposes=ALLOWED,
                prohibited=OTHER,
                ttl=timedelta(days=365),
                consent=f"c-{i}",
            )
            for i in range(count)
        ]


def check_rotating_loop(guard: pg.Guard, templates: list[pg.FaceTemplate]) -> Loop:
    """guard.check over more templates than a guard keeps granted decisions for, so
    every call builds its decision anew (only each label's own memo of which purposes
    conform to it is warm)."""
    check = guard.check
    op = pg.Operation.COMPARE
    purpose = PURPOSE
    ts = templates
    m = len(ts)

    def loop(n: int) -> None:
        i = 0
        for _ in range(n):
            check(ts[i], purpose, op)
            i += 1
            if i == m:
                i = 0

    return loop


def check_loop(guard: pg.Guard, t: pg.FaceTemplate) -> Loop:
    check = guard.check
    op = pg.Operation.COMPARE
    purpose = PURPOSE

    def loop(n: int) -> None:
        for _ in range(n):
            check(t, purpose, op)

    return loop


@pg.uses(PURPOSE)
def verify_pair(probe: pg.FaceTemplate, enrolled: pg.FaceTemplate) -> str:
    """An application's 1:1 verification entry point, with an empty body."""
    return "ran"


def uses_loop(guard: pg.Guard, a: pg.FaceTemplate, b: pg.FaceTemplate) -> Loop:
    fn = verify_pair

    def loop(n: int) -> None:
        with pg.using(guard):  # once per batch: the decorator finds this guard
            for _ in range(n):
                fn(a, b)

    return loop


# -- cedarpy -----------------------------------------------------------------------------

CEDAR_POLICIES = """
permit (principal is App, action == Action::"compare", resource is Template)
when {
    context.purpose in resource.allowed &&
    context.purpose.operations.contains("compare") &&
    context.now < resource.expires_at
};

forbid (principal, action, resource is Template)
when {
    context.purpose in resource.prohibited ||
    resource.prohibited_covers.contains(context.purpose)
};
"""


def _ref(type_: str, id_: str) -> dict[str, str]:
    return {"type": type_, "id": id_}


def _epoch_us(at: datetime) -> int:
    return int(at.timestamp() * 1_000_000)


class CedarModel:
    """The guard's purpose decision for COMPARE, as Cedar policies and entities."""

    def __init__(self, taxonomy: pg.Taxonomy, label: pg.Label, tid: str) -> None:
        import json

        import cedarpy

        self._is_authorized = cedarpy.is_authorized
        self.policies = cedarpy.PolicySet.from_str(CEDAR_POLICIES)
        entities: list[dict[str, Any]] = []
        for p in taxonomy:
            spec = taxonomy.spec(p)
            entities.append(
                {
                    "uid": _ref("Purpose", p.name),
                    "attrs": {"operations": sorted(o.value for o in spec.operations)},
                    "parents": [] if p.parent is None else [_ref("Purpose", p.parent.name)],
                }
            )
        # q is within p iff p is q or one of q's ancestors: precomputed, as Cedar has
        # no quantifier over a set.
        covers = {q.name for q in label.prohibited}
        covers |= {a.name for q in label.prohibited for a in q.ancestors()}
        entities.append(
            {
                "uid": _ref("Template", tid),
                "attrs": {
                    "allowed": [{"__entity": _ref("Purpose", a.name)} for a in label.allowed],
                    "prohibited": [
                        {"__entity": _ref("Purpose", q.name)} for q in label.prohibited
                    ],
                    "prohibited_covers": [
                        {"__entity": _ref("Purpose", c)} for c in sorted(covers)
                    ],
                    "expires_at": _epoch_us(label.expires_at),
                },
                "parents": [],
            }
        )
        entities.append({"uid": _ref("App", PRINCIPAL), "attrs": {}, "parents": []})
        self.entities = cedarpy.Entities.from_json_str(json.dumps(entities))
        self._principal = _ref("App", PRINCIPAL)
        self._resource = _ref("Template", tid)

    def decide(self, purpose: str, operation: str, now_us: int | None = None) -> bool:
        now = time.time_ns() // 1000 if now_us is None else now_us
        request = {
            "principal": self._principal,
            "action": _ref("Action", operation),
            "resource": self._resource,
            "context": {"purpose": {"__entity": _ref("Purpose", purpose)}, "now": now},
        }
        return bool(self._is_authorized(request, self.policies, self.entities).allowed)


def cedar_loop(model: CedarModel) -> Loop:
    decide = model.decide
    purpose = PURPOSE

    def loop(n: int) -> None:
        for _ in range(n):
            decide(purpose, "compare")

    return loop


# -- casbin ------------------------------------------------------------------------------

CASBIN_MODEL = """
[request_definition]
r = sub, obj, act, purpose, now

[policy_definition]
p = sub, obj, act, purpose, eft

[role_definition]
g = _, _
g2 = _, _

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = r.sub == p.sub && r.obj.id == p.obj && r.act == p.act && g2(r.purpose, r.act) \
&& r.now < r.obj.expires_at \
&& (g(r.purpose, p.purpose) || (p.eft == "deny" && g(p.purpose, r.purpose)))
"""


@dataclass(frozen=True)
class CasbinResource:
    """The template as casbin's ABAC sees it."""

    id: str
    expires_at: int


class CasbinModel:
    """The guard's purpose decision for COMPARE, as a casbin model and policies."""

    def __init__(self, taxonomy: pg.Taxonomy, label: pg.Label, tid: str) -> None:
        import logging

        import casbin

        logging.getLogger("casbin").setLevel(logging.WARNING)
        model = casbin.Model()
        model.load_model_from_text(CASBIN_MODEL)
        self.enforcer = casbin.Enforcer(model)
        e = self.enforcer
        for p in taxonomy:
            if p.parent is not None:
                e.add_named_grouping_policy("g", p.name, p.parent.name)
            for op in taxonomy.spec(p).operations:
                e.add_named_grouping_policy("g2", p.name, op.value)
        for a in label.allowed:
            e.add_policy(PRINCIPAL, tid, "compare", a.name, "allow")
        for q in label.prohibited:
            e.add_policy(PRINCIPAL, tid, "compare", q.name, "deny")
        self.resource = CasbinResource(tid, _epoch_us(label.expires_at))

    def decide(self, purpose: str, operation: str, now_us: int | None = None) -> bool:
        now = time.time_ns() // 1000 if now_us is None else now_us
        return bool(self.enforcer.enforce(PRINCIPAL, self.resource, operation, purpose, now))


def casbin_loop(model: CasbinModel) -> Loop:
    decide = model.decide
    purpose = PURPOSE

    def loop(n: int) -> None:
        for _ in range(n):
            decide(purpose, "compare")

    return loop


# -- agreement ---------------------------------------------------------------------------

Peer = CedarModel | CasbinModel
PeerFactory = Callable[[pg.Taxonomy, pg.Label, str], Peer]


def peer_factories() -> tuple[dict[str, PeerFactory], list[str]]:
    """The peers that are installed (imported lazily), and those skipped."""
    import importlib.util

    factories: dict[str, PeerFactory] = {}
    skipped: list[str] = []
    for name, factory in (("cedarpy", CedarModel), ("casbin", CasbinModel)):
        if importlib.util.find_spec(name) is None:
            skipped.append(f"{name} (not installed: pip install -e '.[bench]')")
        else:
            factories[name] = factory
    return factories, skipped


def _cases(label: pg.Label) -> list[tuple[str, str, bool, bool]]:
    # (what, purpose, at the expiry instant?, expected verdict)
    if pg.Purpose(OTHER) in label.allowed:  # the label with an explicit carve-out
        return [
            ("allowed 1:N purpose", "face.identification.closed_set_optin", False, True),
            ("allowed 1:1 purpose", PURPOSE, False, True),
            ("prohibited purpose", "face.identification.realtime_remote", False, False),
            ("ancestor of a prohibited purpose", OTHER, False, False),
            ("purpose not allowed", "face.public_security.law_enforcement", False, False),
            ("expired label", "face.identification.closed_set_optin", True, False),
        ]
    return [
        ("allowed purpose", PURPOSE, False, True),
        ("allowed purpose itself", ALLOWED, False, True),
        ("prohibited purpose", OTHER, False, False),
        ("prohibited, within", "face.identification.realtime_remote", False, False),
        ("purpose not allowed", "face.analytics.counting", False, False),
        ("expired label", PURPOSE, True, False),
    ]


def check_agreement(
    guard: pg.Guard,
    sink: MemorySink,
    a: pg.FaceTemplate,
    b: pg.FaceTemplate,
    peers: dict[str, Peer],
    factories: dict[str, PeerFactory],
) -> int:
    """Every contender must answer the same questions the same way; returns how many
    questions were asked."""
    op = pg.Operation.COMPARE
    carve_out = pg.Label(
        allowed=[ALLOWED, OTHER],
        prohibited="face.identification.realtime_remote",
        subject="u-18",
        expires_at=a.label.expires_at,
    )
    asked = 0
    subjects: list[tuple[pg.FaceTemplate | pg.Label, dict[str, Peer]]] = [
        (a, peers),
        (carve_out, {n: f(guard.taxonomy, carve_out, "t-2") for n, f in factories.items()}),
    ]
    for subject, models in subjects:
        label = subject if isinstance(subject, pg.Label) else subject.label
        expiry_us = _epoch_us(label.expires_at)  # expired means now >= expires_at
        for what, purpose, expired, expected in _cases(label):
            g = guard.evolve(clock=pg.FrozenClock(label.expires_at)) if expired else guard
            got = g.check(subject, purpose, op).allowed
            assert got is expected, f"guard.check, {what}: {got} (expected {expected})"
            for name, model in models.items():
                answer = model.decide(purpose, "compare", expiry_us if expired else None)
                assert answer is expected, f"{name}, {what}: {answer} (expected {expected})"
            asked += 1
    assert guard.check(a, PURPOSE, op).template_id == a.id

    # The @uses call: one granted admission event naming both templates; the body runs.
    sink.clear()
    with pg.using(guard):
        assert verify_pair(a, b) == "ran"
    assert len(sink.events) == 1, sink.events
    event = sink.events[0]
    assert event.outcome is Outcome.GRANTED
    assert event.purpose == pg.Purpose(PURPOSE)
    assert event.template_ids == (a.id, b.id)

    # ... and under a purpose the labels do not permit, one denied event, no body.
    @pg.uses(OTHER)
    def identify(x: pg.FaceTemplate, y: pg.FaceTemplate) -> str:
        raise AssertionError("the body of a denied @uses call ran")

    sink.clear()
    with pg.using(guard):
        try:
            identify(a, b)
        except pg.PurposeViolationError:
            pass
        else:
            raise AssertionError("@uses(face.identification) was not denied")
    assert [e.outcome for e in sink.events] == [Outcome.DENIED]
    sink.clear()
    return asked


# -- report ------------------------------------------------------------------------------


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except (AttributeError, OSError):
        return "unknown"


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "-"


def report(results: dict[str, Result], skipped: list[str]) -> None:
    bare = results["bare"].median_ns
    check = results["check"].median_ns
    width = max(len(r.name) for r in results.values())
    print()
    head = ("median ns/call", "IQR ns", "best ns", "x bare", "x check")
    print(
        f"{'name':<{width}}  {head[0]:>14}  {head[1]:>8}  {head[2]:>8}  {head[3]:>8}  {head[4]:>8}"
    )
    print(f"{'-' * width}  {'-' * 14}  {'-' * 8}  {'-' * 8}  {'-' * 8}  {'-' * 8}")
    for r in results.values():
        print(
            f"{r.name:<{width}}  {r.median_ns:>14,.0f}  {r.spread_ns:>8,.0f}  "
            f"{r.best_ns:>8,.0f}  {r.median_ns / bare:>8.1f}  {r.median_ns / check:>8.2f}"
        )
    print()
    cold = results["cold"].median_ns
    for key in ("cedarpy", "casbin"):
        if key in results:
            peer = results[key].median_ns
            print(
                f"{key} / guard.check: {peer / check:.1f}x "
                f"({peer / cold:.1f}x against guard.check with no decision reused)"
            )
    for s in skipped:
        print(f"skipped: {s}")

    def verdict(ok: bool) -> str:
        return "MET" if ok else "MISSED"

    uses = results["uses"].median_ns
    print()
    print("targets:")
    print(
        f"  guard.check median < {TARGET_CHECK_NS:,} ns: {check:,.0f} ns -> "
        f"{verdict(check < TARGET_CHECK_NS)}"
    )
    print(
        f"  full @uses call (2 templates) < {TARGET_USES_NS:,} ns: {uses:,.0f} ns -> "
        f"{verdict(uses < TARGET_USES_NS)}"
    )
    if "cedarpy" in results:
        ratio = results["cedarpy"].median_ns / check
        print(
            f"  cedarpy >= {TARGET_CEDAR_RATIO:.0f}x slower than guard.check: {ratio:.1f}x -> "
            f"{verdict(ratio >= TARGET_CEDAR_RATIO)}"
        )
    else:
        print("  cedarpy ratio: not measured (cedarpy not installed)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer, shorter batches")
    parser.add_argument("--batches", type=int, default=None, help="batches per contender")
    args = parser.parse_args(argv)
    batches = args.batches or (11 if args.quick else 31)
    batch_ns = 5_000_000 if args.quick else 20_000_000

    print(
        f"purposeguard {pg.__version__} | Python {platform.python_version()} "
        f"({platform.python_implementation()}) | {platform.machine()} | "
        f"cedarpy {_version('cedarpy')} | casbin {_version('casbin')}"
    )
    print(
        f"{batches} batches of ~{batch_ns / 1e6:.0f} ms per contender, in turns; "
        f"medians of per-call time; load average before: {_load()}"
    )

    guard, sink = make_guard()
    a, b = make_templates(guard)
    rotation = make_templates(guard, ROTATION, dim=128)
    sink.clear()
    factories, skipped = peer_factories()
    peers = {name: f(guard.taxonomy, a.label, a.id) for name, f in factories.items()}
    asked = check_agreement(guard, sink, a, b, peers, factories)
    print(
        f"agreement: guard.check{''.join(f', {p}' for p in peers)} give the same verdict on "
        f"{asked} questions (2 labels); @uses grants and denies with one event each"
    )

    contenders = [
        Contender("bare", "bare call f(a, b)", bare_loop()),
        Contender("check", "guard.check(t, purpose, COMPARE)", check_loop(guard, a)),
        Contender(
            "cold",
            f"guard.check, {ROTATION:,} templates in turn",
            # A guard of its own, so that its turnover leaves the others' alone.
            check_rotating_loop(guard.evolve(), rotation),
        ),
        Contender(
            "uses", "@uses call, 2 templates, MemorySink", uses_loop(guard, a, b), sink.clear
        ),
    ]
    model = peers.get("cedarpy")
    if isinstance(model, CedarModel):
        contenders.append(
            Contender("cedarpy", "cedarpy is_authorized (PolicySet)", cedar_loop(model))
        )
    cmodel = peers.get("casbin")
    if isinstance(cmodel, CasbinModel):
        contenders.append(Contender("casbin", "casbin enforce", casbin_loop(cmodel)))
    results = measure_all(contenders, batches=batches, batch_ns=batch_ns)
    sink.clear()
    print(f"load average: {_load()}")
    report(results, skipped)
    return 0


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # a measurement, not a test: report and exit 0
        import traceback

        traceback.print_exc()
        print(f"benchmark failed: {type(e).__name__}: {e}", file=sys.stderr)
    sys.exit(0)
