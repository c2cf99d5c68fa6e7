"""Audit log and grant benchmark: JsonlSink throughput and the cost of a granted scope.

Run ``python benchmarks/audit.py`` (``--quick`` for a fast, noisier pass). Side by side
in one process it times:

1. the reference: a bare loop of ``json.dumps(event.to_dict(), sort_keys=True)`` and
   one ``hmac.digest`` per event (what any MACed JSON log must at least do);
2. ``JsonlSink.emit`` per event, then ``flush()``, with ``durability="none"`` (batched
   writes, no fsync), ``"batch"`` at the default batch size (512: one fsync per 512
   events), ``"batch"`` with 16 events per batch (an fsync every 16 events), and
   ``"always"`` (an fsync per event);
3. entering and leaving ``purpose(name, grant=token)`` under a guard with
   ``require_grants=True``: warm (the verifier has seen the token, so the signature
   check is skipped and only the time, audience, principal and purpose are checked) and
   cold (``cache_size=0``: an Ed25519 signature check on every entry), beside a scope
   without a grant.

Every figure is the median over repetitions; the sink figures include the final flush.
Targets (issue 5): JsonlSink batch >= 100,000 events/s, with fsync per batch >= 20,000
events/s, a granted scope < 150 us. A measurement, not a test: it always exits 0.
"""

from __future__ import annotations

import argparse
import gc
import hmac
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import purposeguard as pg
from purposeguard.audit import AuditEvent, JsonlSink, MemorySink, Outcome
from purposeguard.grants import GrantAuthority, GrantVerifier

KEY = os.urandom(32)
LOGIN = "face.verification.login"


def make_event(i: int) -> AuditEvent:
    return AuditEvent(
        seq=i,
        at=datetime.now(UTC),
        operation=pg.Operation.COMPARE,
        outcome=Outcome.GRANTED,
        purpose=pg.Purpose(LOGIN),
        template_ids=("5f0c6f1d2b8e4a7f9c3d1e2a4b6c8d0e",),
        subjects=("u-000123",),
        principal="svc-gate",
        grant_id="0123456789abcdef0123456789abcdef",
        reason="permitted",
        site="app.gate:check",
    )


def median_rate(run: Callable[[], float], n: int, reps: int) -> float:
    """Events per second: n divided by the median of *reps* timed runs."""
    times = []
    for _ in range(reps):
        gc.collect()
        gc.disable()
        try:
            times.append(run())
        finally:
            gc.enable()
    return n / statistics.median(times)


def reference(events: list[AuditEvent]) -> Callable[[], float]:
    def run() -> float:
        t = time.perf_counter()
        for e in events:
            hmac.digest(
                KEY,
                json.dumps(e.to_dict(), sort_keys=True, separators=(",", ":")).encode(),
                "sha256",
            )
        return time.perf_counter() - t

    return run


def sink_run(events: list[AuditEvent], tmp: Path, **kw: Any) -> Callable[[], float]:
    counter = [0]

    def run() -> float:
        counter[0] += 1
        path = tmp / f"log-{kw.get('durability')}-{kw.get('batch_size')}-{counter[0]}.jsonl"
        sink = JsonlSink(path, key=KEY, batch_interval=60, **kw)
        try:
            t = time.perf_counter()
            for e in events:
                sink.emit(e)
            sink.flush()
            return time.perf_counter() - t
        finally:
            sink.close()
            for p in sink.files:
                p.unlink()

    return run


def scope_cost(guard: pg.Guard, token: str | None, n: int, reps: int) -> float:
    """Median seconds per entry and exit of a purpose scope."""
    scope = pg.purpose(LOGIN, grant=token)

    def run() -> float:
        t = time.perf_counter()
        for _ in range(n):
            with scope:
                pass
        return time.perf_counter() - t

    with pg.using(guard):
        run()
        return 1 / median_rate(run, n, reps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer events and repetitions")
    args = ap.parse_args()
    n, reps = (5_000, 5) if args.quick else (20_000, 15)
    events = [make_event(i) for i in range(n)]
    print(f"purposeguard audit benchmark: {n} events, median of {reps} runs")
    print(f"load average: {os.getloadavg()[0]:.2f}\n")

    with tempfile.TemporaryDirectory(prefix="pg-audit-bench-", dir=".") as d:
        tmp = Path(d)
        ref = median_rate(reference(events), n, reps)
        rows: list[tuple[str, float, float | None]] = [
            ("reference: json.dumps + HMAC per event", ref, None)
        ]
        configs: list[tuple[str, dict[str, Any], float | None]] = [
            ('JsonlSink durability="none"', {"durability": "none"}, None),
            ('JsonlSink durability="batch" (512/batch)', {"durability": "batch"}, 100_000),
            (
                'JsonlSink durability="batch" (16/batch)',
                {"durability": "batch", "batch_size": 16},
                20_000,
            ),
        ]
        for name, kw, target in configs:
            rows.append((name, median_rate(sink_run(events, tmp, **kw), n, reps), target))
        m = min(n, 2_000)
        always = median_rate(sink_run(events[:m], tmp, durability="always"), m, max(3, reps // 3))
        rows.append(('JsonlSink durability="always" (fsync each)', always, None))

    print(f"{'':46} {'events/s':>10} {'us/event':>9} {'x ref':>6}  target")
    for name, rate, target in rows:
        verdict = (
            "" if target is None else f">= {target:,}: {'met' if rate >= target else 'MISSED'}"
        )
        print(f"{name:46} {rate:10,.0f} {1e6 / rate:9.2f} {ref / rate:6.2f}  {verdict}")

    authority = GrantAuthority.generate(issuer="bench")
    token = authority.issue(
        principal="svc", purposes=["face.verification"], audience="bench", ttl=timedelta(hours=1)
    )
    base = pg.Guard(audit=MemorySink())
    warm = GrantVerifier([authority.public_key], audience="bench")
    cold = GrantVerifier([authority.public_key], audience="bench", cache_size=0)
    k = 2_000 if args.quick else 10_000
    plain = scope_cost(base, None, k, reps)
    g_warm = scope_cost(base.evolve(require_grants=True, grant_verifier=warm), token, k, reps)
    g_cold = scope_cost(
        base.evolve(require_grants=True, grant_verifier=cold), token, max(200, k // 10), reps
    )
    print(f"\n{'scope entry + exit':46} {'us':>10} {'x plain':>9}  target")
    for name, cost, target in [
        ("purpose(name) without a grant", plain, None),
        ("purpose(name, grant=token), token seen before", g_warm, 150e-6),
        ("purpose(name, grant=token), signature checked", g_cold, 150e-6),
    ]:
        verdict = "" if target is None else f"< 150 us: {'met' if cost < target else 'MISSED'}"
        print(f"{name:46} {cost * 1e6:10.2f} {cost / plain:9.1f}  {verdict}")


if __name__ == "__main__":
    main()
