"""Coverage-guided fuzzing of purposeguard.crypto.unseal with atheris (not run in CI).

Every input must give a template (only the seeds themselves can) or
``IntegrityError``; any other exception, or a crash, is a bug. Inputs are tried as
they are and, to get past the key lookup into decryption, with the key id of a real
blob spliced in.

Run::

    pip install atheris
    python fuzz/unseal_fuzz.py -max_total_time=600 fuzz/corpus

(``fuzz/corpus`` is created if missing and gets the seed blobs.) Pass any other
libFuzzer flags after the script name, e.g. ``-runs=1000000`` or ``-jobs=2``.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

atheris: Any
try:  # the harness itself is importable without atheris, so that tests can run it
    atheris = importlib.import_module("atheris")
    _instrumented: Any = atheris.instrument_imports()
except ImportError:
    atheris = None
    _instrumented = contextlib.nullcontext()

with _instrumented:
    import purposeguard as pg
    from purposeguard.audit import MemorySink
    from purposeguard.crypto import KeyRing, seal, unseal

GUARD = pg.Guard(clock=pg.FrozenClock(datetime(2026, 1, 1, tzinfo=UTC)), audit=MemorySink())
RING = KeyRing(bytes(32))


def _seeds() -> list[bytes]:
    with pg.using(GUARD):
        return [
            seal(
                pg.FaceTemplate.wrap(
                    np.ones(n, dtype=dtype),
                    subject=f"s{n}",
                    purposes="face.verification",
                    ttl=timedelta(days=1),
                ),
                RING,
            )
            for n, dtype in ((1, np.float16), (4, np.float32), (16, np.float64))
        ]


SEEDS = _seeds()
KEY_IDS = [s[6:22] for s in SEEDS]


def one_input(data: bytes) -> None:
    GUARD.audit.events.clear()  # type: ignore[attr-defined]
    candidates = [data]
    if len(data) > 22:
        candidates.append(data[:6] + KEY_IDS[data[0] % len(KEY_IDS)] + data[22:])
    with pg.using(GUARD):
        for blob in candidates:
            try:
                unseal(blob, RING)
            except pg.IntegrityError:
                continue
            if blob not in SEEDS:
                raise AssertionError("an input that is not a seed unsealed")


def main() -> None:
    if atheris is None:
        sys.exit("pip install atheris to run this fuzzer")
    corpus = [a for a in sys.argv[1:] if not a.startswith("-")]
    for directory in corpus:
        os.makedirs(directory, exist_ok=True)
        for i, seed in enumerate(SEEDS):
            with open(os.path.join(directory, f"seed-{i}"), "wb") as f:
                f.write(seed)
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
