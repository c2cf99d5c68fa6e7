"""MemoryBackend: the contract, plus what is particular to the columnar layout."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np

import purposeguard as pg
from purposeguard.stores import GuardedStore, MemoryBackend, VectorBackend

from .contract import DIM, BackendContract


class TestMemoryBackend(BackendContract):
    def make_backend(self, tmp_path: Path) -> VectorBackend:
        return MemoryBackend(capacity=16)


def test_columns_cost_under_64_bytes_per_template() -> None:
    assert MemoryBackend().nbytes_per_template() < 64


def test_erasure_zeroes_the_vacated_rows(guard: pg.Guard) -> None:
    backend = MemoryBackend(capacity=16)
    store = GuardedStore(backend)
    ts = [
        pg.FaceTemplate.wrap(
            np.full(DIM, i + 1.0),
            subject=f"s{i % 2}",
            purposes="face.identification",
            ttl=timedelta(days=1),
        )
        for i in range(10)
    ]
    store.enrol_many(ts)
    assert store.erase_subject("s0") == 5
    assert not backend._X[5:].any()
    assert sorted(backend.ids()) == sorted(t.id for t in ts[1::2])
