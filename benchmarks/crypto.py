"""Sealing benchmark: purposeguard.crypto against a bare AES-256-GCM round trip.

Run ``python benchmarks/crypto.py`` (``--quick`` for a fast, noisier pass). It times,
side by side in one process, on a 512-d float32 template (2,048 value bytes):

1. bare AES-256-GCM: ``encrypt`` then ``decrypt`` of the same 2,049 bytes with the
   label's bytes as associated data, a pre-built ``AESGCM`` object and a fresh random
   nonce each time: the floor;
2. the floor of per-record keys: on each side, the record-key derivation (HKDF, two
   HMAC-SHA256 blocks), a new ``AESGCM`` object and the AEAD call, with nothing else:
   what the design costs before any parsing or checking;
3. the sealed format without the guard (``seal_values`` / ``open_sealed``: HKDF record
   key and commitment, header, AES-256-GCM, label binding, key lookup): what the
   format costs;
4. ``seal`` then ``unseal`` through the public API with an enforcing guard and a sink
   that drops events: the format plus the EXPORT and COLLECT checks and their two
   audit events;
5. ``seal_many`` over batches of 10,000 distinct templates of distinct subjects (one
   key-store write per batch for new subjects, then none): throughput, measured on
   1,000,000 seals (``--quick``: 100,000, and the figure is extrapolated, as it says),
   beside the ceiling of this machine: the per-record-key floor of 2 (sealing side
   only: a salt, the record-key derivation, a new ``AESGCM`` and ``encrypt``) over the
   same 10,000 templates, with nothing else.

Figures are medians over many batches (contenders 1-4 take turns batch by batch, so
ratios stay fair when the machine's load changes; the load average is printed). This
is a measurement, not a test: it always exits 0.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import time
from collections.abc import Callable
from datetime import timedelta

import numpy as np
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import purposeguard as pg
from purposeguard.audit import AuditEvent
from purposeguard.crypto import KeyRing, seal, seal_many, unseal
from purposeguard.crypto._hazmat import RecordKdf
from purposeguard.crypto._sealing import open_sealed, seal_values

DIM = 512


class DropSink:
    """Accepts every event and keeps none (the audit cost without storage)."""

    def emit(self, event: AuditEvent) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def per_call_us(fn: Callable[[], object], n: int) -> float:
    gc.disable()
    try:
        t0 = time.perf_counter_ns()
        for _ in range(n):
            fn()
        return (time.perf_counter_ns() - t0) / n / 1000
    finally:
        gc.enable()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions, 100k seals")
    args = ap.parse_args()
    batches, per_batch = (11, 300) if args.quick else (31, 1000)
    total = 100_000 if args.quick else 1_000_000

    guard = pg.Guard(audit=DropSink())
    with pg.using(guard):
        ring = KeyRing.generate()
        rng = np.random.default_rng(0)
        t = pg.FaceTemplate.wrap(
            rng.standard_normal(DIM).astype(np.float32),
            subject="subject-0",
            purposes="face.verification",
            ttl=timedelta(days=30),
            consent="consent-0",
        )
        values = t._values()
        label_bytes = t.label.to_bytes()
        aead = AESGCM(os.urandom(32))
        plaintext = b"\x01" + values.tobytes()

        def bare() -> None:
            nonce = os.urandom(12)
            aead.decrypt(nonce, aead.encrypt(nonce, plaintext, label_bytes), label_bytes)

        kdf = RecordKdf(os.urandom(32))
        kid, tid = os.urandom(16), bytes.fromhex(t.id)

        def floor() -> None:
            salt = os.urandom(32)
            key, nonce, _ = kdf.derive(salt, kid, tid)
            sealed = AESGCM(key).encrypt(nonce, plaintext, label_bytes)
            key, nonce, _ = kdf.derive(salt, kid, tid)
            AESGCM(key).decrypt(nonce, sealed, label_bytes)

        items = [(t.id, t.label, values)]

        def fmt() -> None:
            open_sealed(seal_values(ring, items)[0], ring)

        def public() -> None:
            unseal(seal(t, ring), ring)

        # Same answers first: the sealed paths give back the same values.
        assert np.array_equal(open_sealed(seal_values(ring, items)[0], ring)[2], values)
        assert unseal(seal(t, ring), ring).id == t.id
        contenders = {"bare AES-256-GCM round trip": bare, "per-record key floor": floor,
                      "sealed format": fmt, "seal + unseal (public API)": public}  # fmt: skip
        times: dict[str, list[float]] = {k: [] for k in contenders}
        for _ in range(batches):
            for name, fn in contenders.items():
                times[name].append(per_call_us(fn, per_batch))
        med = {k: statistics.median(v) for k, v in times.items()}
        base = med["bare AES-256-GCM round trip"]
        print(f"load average: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
        print(f"512-d float32 template, label {len(label_bytes)} bytes; medians of {batches}")
        for name, us in med.items():
            print(f"  {name:32s} {us:8.2f} us   {us / base:5.2f}x bare")
        print("  target: seal + unseal <= 3x bare")

        # Throughput: distinct templates of distinct subjects, sealed in batches.
        pool = [
            pg.FaceTemplate.wrap(
                row,
                subject=f"s-{i}",
                purposes="face.verification",
                ttl=timedelta(days=30),
            )
            for i, row in enumerate(rng.standard_normal((10_000, DIM)).astype(np.float32))
        ]
        t0 = time.perf_counter()
        seal_many(pool, ring)  # creates the 10,000 subjects' keys (one store write)
        first = time.perf_counter() - t0
        done = 0
        t0 = time.perf_counter()
        gc.disable()
        try:
            while done < total:
                out = seal_many(pool, ring)
                done += len(out)
        finally:
            gc.enable()
        elapsed = time.perf_counter() - t0
        rate = done / elapsed
        records = [
            (bytes.fromhex(p.id), p.label.to_bytes(), b"\x01" + p._values().tobytes())
            for p in pool
        ]

        def seal_floor() -> float:
            t0 = time.perf_counter()
            for tid, label, x in records:
                key, nonce, _ = kdf.derive(os.urandom(32), kid, tid)
                AESGCM(key).encrypt(nonce, x, label)
            return len(records) / (time.perf_counter() - t0)

        gc.disable()
        try:
            ceiling = statistics.median(seal_floor() for _ in range(5 if args.quick else 15))
        finally:
            gc.enable()
        print(
            f"seal_many: first batch of 10,000 (new keys) {first:.2f} s; "
            f"{done:,} seals in {elapsed:.2f} s = {rate:,.0f}/s"
            + ("" if done >= 1_000_000 else f" (1,000,000 extrapolated: {1e6 / rate:.1f} s)")
        )
        print(
            f"  per-record key floor, sealing only: {ceiling:,.0f}/s "
            f"(seal_many reaches {rate / ceiling:.0%} of it)"
        )
        print("  target: > 100,000 seals/s")


if __name__ == "__main__":
    main()
