"""Policy overhead benchmark: a use decision with every preset active against the core
decision without a policy.

Run ``python benchmarks/policy.py`` (``--quick`` for a fast, noisier pass). It times,
side by side in one process, ``guard.check(template, "face.verification.login",
Operation.COMPARE)``:

1. with a guard without a policy (the core decision);
2. with a guard whose policy is ``Policy.preset(<all nine presets>)`` and whose
   consent registry holds each template's written consent (every rule in force:
   consent form, coverage, withdrawal, terms, BIPA's and Colorado's interaction
   windows, the CCPA limit, ...);

each in two workloads: the same template again and again (a guard reuses a granted
decision once it has checked expiry and consent again, and with a policy until the
time the policy says its verdict stands), and 8,192 templates in turn (more than a
guard keeps decisions for: every call decides from scratch, and the policy reuses
the plan it compiled for the label's purposes, the purpose and the operation).

It also times a full ``@uses``-style COMPARE through ``similarity`` (scope entry,
decision, audit event, the BIPA interaction recorded after it).

The target is a ratio of at most 2.0 (policy / core) for each workload. Figures are
medians over many batches (31 by default) of a tight loop timed with
``time.perf_counter_ns``; the contenders take turns batch by batch. This is a
measurement, not a test: it always exits 0.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

import purposeguard as pg
from purposeguard.audit import MemorySink
from purposeguard.policy import PRESETS, CollectionContext, Consent, ConsentRegistry, Policy

PURPOSE = "face.verification.login"
ALLOWED = "face.verification"
ROTATION = 8_192
TARGET_RATIO = 2.0
T0 = datetime(2026, 1, 1, tzinfo=UTC)

Loop = Callable[[int], None]


@dataclass
class Result:
    name: str
    median_ns: float
    spread_ns: float


def _time_batch(loop: Loop, n: int) -> float:
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


def _calibrate(loop: Loop, batch_ns: int) -> int:
    n = 64
    while True:
        per_call = _time_batch(loop, n)
        if per_call * n >= batch_ns / 4 or n >= 1 << 24:
            break
        n *= 4
    return max(16, int(batch_ns / max(per_call, 1.0)))


def measure(
    contenders: dict[str, tuple[str, Loop]], batches: int, batch_ns: int
) -> dict[str, Result]:
    sizes = {k: _calibrate(loop, batch_ns) for k, (_, loop) in contenders.items()}
    samples: dict[str, list[float]] = {k: [] for k in contenders}
    for _ in range(batches):
        for k, (_, loop) in contenders.items():
            samples[k].append(_time_batch(loop, sizes[k]))
    out = {}
    for k, (name, _) in contenders.items():
        q = statistics.quantiles(samples[k], n=4)
        out[k] = Result(name, statistics.median(samples[k]), q[2] - q[0])
    return out


def all_presets_policy() -> Policy:
    return Policy.preset(
        *PRESETS,
        impact_assessment="PIA-2026-01",
        necessity="door access for staff only",
        notice="https://example.com/biometrics",
        alternatives={"face.verification": "badge"},
        storage="user_device",
        processing=["face.verification"],
    )


def make_templates(
    guard: pg.Guard, registry: ConsentRegistry | None, count: int
) -> list[pg.FaceTemplate]:
    rng = np.random.default_rng(7)
    context = CollectionContext(place="private", source="camera")
    out = []
    with pg.using(guard):
        for i in range(count):
            consent = None
            if registry is not None:
                consent = f"c-{i}"
                registry.add(
                    Consent(
                        id=consent,
                        subject=f"u-{i}",
                        purposes=[ALLOWED],
                        form="written",
                        given_at=T0 - timedelta(days=1),
                        notice="notice-v1",
                    )
                )
            out.append(
                pg.FaceTemplate.wrap(
                    rng.standard_normal(128).astype(np.float32),
                    subject=f"u-{i}",
                    purposes=ALLOWED,
                    ttl=timedelta(days=300),
                    consent=consent,
                    context=context if registry is not None else None,
                )
            )
    return out


def check_loop(guard: pg.Guard, templates: list[pg.FaceTemplate]) -> Loop:
    check = guard.check
    op = pg.Operation.COMPARE
    ts = templates
    m = len(ts)

    at = [0]  # where the last batch stopped: every batch continues the rotation

    def loop(n: int) -> None:
        i = at[0]
        for _ in range(n):
            check(ts[i], PURPOSE, op)
            i += 1
            if i == m:
                i = 0
        at[0] = i

    return loop


def similarity_loop(guard: pg.Guard, t: pg.FaceTemplate) -> Loop:
    probe = np.ones(t.dim, dtype=np.float32)
    scope = pg.purpose(PURPOSE)

    def loop(n: int) -> None:
        with pg.using(guard):
            for _ in range(n):
                with scope:
                    pg.similarity(probe, t)

    return loop


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter batches")
    args = parser.parse_args(argv)
    batches, batch_ns = (9, 20_000_000) if args.quick else (31, 50_000_000)

    clock = pg.FrozenClock(T0)
    core = pg.Guard(audit=MemorySink(), clock=clock)
    registry = ConsentRegistry()
    policed = pg.Guard(
        policy=all_presets_policy(), consents=registry, audit=MemorySink(), clock=clock
    )

    core_ts = make_templates(core, None, ROTATION)
    pol_ts = make_templates(policed, registry, ROTATION)
    for g, t in ((core, core_ts[0]), (policed, pol_ts[0])):
        assert g.check(t, PURPOSE, pg.Operation.COMPARE).allowed
        assert not g.check(t, "face.identification", pg.Operation.SEARCH).allowed

    # Sinks grow with every event: drain them between batches in the similarity loops.
    def drained(guard: pg.Guard, loop: Loop) -> Loop:
        sink = guard.audit
        assert isinstance(sink, MemorySink)

        def run(n: int) -> None:
            loop(n)
            sink.events.clear()

        return run

    contenders = {
        "core_same": ("core: guard.check, same template", check_loop(core, core_ts[:1])),
        "pol_same": ("all presets: guard.check, same template", check_loop(policed, pol_ts[:1])),
        "core_rot": (f"core: guard.check, {ROTATION:,} templates", check_loop(core, core_ts)),
        "pol_rot": (
            f"all presets: guard.check, {ROTATION:,} templates",
            check_loop(policed, pol_ts),
        ),
        "core_sim": (
            "core: similarity() in a scope",
            drained(core, similarity_loop(core, core_ts[0])),
        ),
        "pol_sim": (
            "all presets: similarity() in a scope",
            drained(policed, similarity_loop(policed, pol_ts[0])),
        ),
    }
    results = measure(contenders, batches, batch_ns)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"purposeguard policy benchmark (python {sys.version.split()[0]}, load {load:.2f})")
    print(f"{'contender':<48} {'median':>10} {'IQR':>9}")
    for r in results.values():
        print(f"{r.name:<48} {r.median_ns:>8.0f}ns {r.spread_ns:>7.0f}ns")
    print()
    for key, what in (
        ("same", "same template"),
        ("rot", "templates in turn"),
        ("sim", "similarity"),
    ):
        ratio = results[f"pol_{key}"].median_ns / results[f"core_{key}"].median_ns
        ok = "met" if ratio <= TARGET_RATIO else "NOT met"
        target = f"(target <= {TARGET_RATIO}x: {ok})"
        print(f"ratio all presets / core, {what:<18} {ratio:5.2f}x  {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
