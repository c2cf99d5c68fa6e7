"""The contract every VectorBackend must meet, as a base class of tests.

A backend's test module subclasses :class:`BackendContract`, implements
``make_backend`` (and ``reopen`` for a persistent backend), and gets every test
below plus a run of :class:`purposeguard.testing.StoreMachine`::

    class TestMyBackend(BackendContract):
        def make_backend(self, tmp_path: Path) -> VectorBackend:
            return MyBackend(...)

Approximate backends set ``exact = False``: their searches are checked for recall
instead of exactness, and never to return a template the purpose may not see.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import HealthCheck, settings

import purposeguard as pg
from purposeguard.audit import MemorySink, Outcome
from purposeguard.stores import GuardedStore, VectorBackend
from purposeguard.testing import StoreMachine

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DIM = 32


def unit_rows(rng: np.random.Generator, n: int, dim: int = DIM) -> npt.NDArray[np.float32]:
    return rng.standard_normal((n, dim)).astype(np.float32)


def cosine(x: npt.NDArray[Any], q: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    x64 = x.astype(np.float64)
    q64 = q.astype(np.float64)
    out: npt.NDArray[np.float64] = (x64 @ q64) / (
        np.linalg.norm(x64, axis=1) * np.linalg.norm(q64)
    )
    return out


class BackendContract:
    """Tests every backend must pass. Subclasses implement :meth:`make_backend`."""

    exact: ClassVar[bool] = True
    recall_floor: ClassVar[float] = 0.95
    machine_examples: ClassVar[int] = 15

    def make_backend(self, tmp_path: Path) -> VectorBackend:
        raise NotImplementedError

    def reopen(self, backend: VectorBackend, tmp_path: Path) -> VectorBackend | None:
        """Close *backend* and reopen the same store; ``None`` if not persistent."""
        return None

    # -- fixtures -------------------------------------------------------------------------

    @pytest.fixture
    def clock(self) -> pg.FrozenClock:
        return pg.FrozenClock(T0)

    @pytest.fixture
    def sink(self) -> MemorySink:
        return MemorySink()

    @pytest.fixture
    def guard(self, clock: pg.FrozenClock, sink: MemorySink) -> Iterator[pg.Guard]:
        g = pg.Guard(clock=clock, audit=sink)
        with pg.using(g):
            yield g

    @pytest.fixture
    def store(self, tmp_path: Path, guard: pg.Guard) -> Iterator[GuardedStore]:
        s = GuardedStore(self.make_backend(tmp_path), guard=guard)
        yield s
        s.close()

    # -- helpers --------------------------------------------------------------------------

    @staticmethod
    def gallery(
        store: GuardedStore, n: int, share: float, seed: int = 0, dim: int = DIM
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_], list[str]]:
        """Enrol *n* templates; a *share* of them permit identification."""
        rng = np.random.default_rng(seed)
        x = unit_rows(rng, n, dim)
        permitted = rng.random(n) < share
        permitted[0] = True
        ts = [
            pg.FaceTemplate.wrap(
                x[i],
                subject=f"s-{i % 97}",
                purposes="face.identification" if permitted[i] else "face.verification",
                ttl=timedelta(days=30),
                consent=f"c-{i % 5}",
            )
            for i in range(n)
        ]
        ids = []
        for lo in range(0, n, 1000):
            ids += store.enrol_many(ts[lo : lo + 1000])
        return x, permitted, ids

    @staticmethod
    def probe(vec: npt.NDArray[Any]) -> pg.FaceTemplate:
        return pg.FaceTemplate.wrap(
            vec, subject="probe", purposes="face.identification", ttl=timedelta(hours=1)
        )

    # -- exactness and filtering -----------------------------------------------------------

    @pytest.mark.parametrize("share", [1.0, 0.25, 0.01])
    def test_search_is_the_filtered_top_k(self, store: GuardedStore, share: float) -> None:
        x, permitted, ids = self.gallery(store, 3000, share)
        rng = np.random.default_rng(1)
        allowed_ids = {ids[i] for i in np.flatnonzero(permitted)}
        recalls = []
        for _ in range(5):
            q = rng.standard_normal(DIM).astype(np.float32)
            with pg.purpose("face.identification.closed_set_optin"):
                got = store.search(self.probe(q), 10)
            scores = cosine(x, q)
            order = [i for i in np.argsort(-scores) if permitted[i]][:10]
            best = [ids[i] for i in order]
            assert {m.template_id for m in got} <= allowed_ids
            assert [m.score for m in got] == sorted((m.score for m in got), reverse=True)
            by_id = dict(zip(ids, scores, strict=True))
            for m in got:
                assert abs(m.score - by_id[m.template_id]) < 1e-4
            if self.exact:
                assert np.allclose([m.score for m in got], scores[order], atol=1e-4)
            else:
                recalls.append(len({m.template_id for m in got} & set(best)) / len(best))
        if recalls:
            assert float(np.mean(recalls)) >= self.recall_floor

    def test_a_purpose_without_search_cannot_search(self, store: GuardedStore) -> None:
        self.gallery(store, 50, 1.0)
        probe = pg.FaceTemplate.wrap(
            np.ones(DIM), subject="p", purposes="face.verification", ttl=timedelta(hours=1)
        )
        with pg.purpose("face.verification.login"), pytest.raises(pg.PurposeViolationError):
            store.search(probe, 5)

    def test_the_probe_must_permit_the_purpose(self, store: GuardedStore) -> None:
        self.gallery(store, 50, 1.0)
        probe = pg.FaceTemplate.wrap(
            np.ones(DIM), subject="p", purposes="face.public_security", ttl=timedelta(hours=1)
        )
        with pg.purpose("face.identification"), pytest.raises(pg.PurposeViolationError):
            store.search(probe, 5)

    def test_expired_templates_are_not_found(
        self, store: GuardedStore, clock: pg.FrozenClock
    ) -> None:
        t = pg.FaceTemplate.wrap(
            np.ones(DIM), subject="a", purposes="face.identification", ttl=timedelta(hours=1)
        )
        store.enrol(t)
        clock.advance(timedelta(hours=1))
        probe = self.probe(np.ones(DIM))
        with pg.purpose("face.identification"):
            assert store.search(probe, 3) == []
            with pytest.raises(pg.TemplateNotFoundError):
                store.get(t.id)

    # -- fetch by id ----------------------------------------------------------------------

    def test_invisible_is_indistinguishable_from_missing(
        self, store: GuardedStore, sink: MemorySink
    ) -> None:
        t = pg.FaceTemplate.wrap(
            np.ones(DIM), subject="a", purposes="face.verification", ttl=timedelta(days=1)
        )
        store.enrol(t)
        ghost = "0" * 32
        with pg.purpose("face.identification"):
            with pytest.raises(pg.TemplateNotFoundError) as hidden:
                store.get(t.id)
            with pytest.raises(pg.TemplateNotFoundError) as missing:
                store.get(ghost)
        assert str(hidden.value).replace(t.id, "X") == str(missing.value).replace(ghost, "X")
        assert type(hidden.value) is type(missing.value)
        assert sink.events[-2].outcome is Outcome.DENIED
        assert t.id in sink.events[-2].template_ids
        with pg.purpose("face.verification.login"):
            back = store.get(t.id)
            assert back == t
            assert back.label == t.label
            assert np.array_equal(back.reveal(), t.reveal().astype(np.float32))

    # -- erasure --------------------------------------------------------------------------

    def test_erasure_counts_and_removes(
        self, store: GuardedStore, clock: pg.FrozenClock, tmp_path: Path
    ) -> None:
        x, _, _ids = self.gallery(store, 200, 1.0)
        n = len(store)
        assert store.erase_subject("s-3") == sum(1 for i in range(200) if i % 97 == 3)
        assert store.withdraw_consent("c-1") == sum(
            1 for i in range(200) if i % 5 == 1 and i % 97 != 3
        )
        left = len(store)
        assert left < n
        clock.advance(timedelta(days=30))
        assert store.purge_expired() == left
        assert len(store) == 0
        with pg.purpose("face.identification"):
            assert store.search(self.probe(x[0]), 5) == []
        reopened = self.reopen(store.backend, tmp_path)
        if reopened is not None:
            assert reopened.count() == 0
            reopened.close()

    def test_reopen_keeps_labels_and_values(self, store: GuardedStore, tmp_path: Path) -> None:
        t = pg.FaceTemplate.wrap(
            np.arange(1, DIM + 1, dtype=np.float32),
            subject="a",
            purposes=["face.identification", "face.verification"],
            prohibited="face.identification.realtime_remote",
            ttl=timedelta(days=1),
            consent="c-7",
            jurisdictions=["gdpr"],
        )
        store.enrol(t)
        reopened = self.reopen(store.backend, tmp_path)
        if reopened is None:
            pytest.skip("not a persistent backend")
        again = GuardedStore(reopened)
        with pg.purpose("face.identification.closed_set_optin"):
            back = again.get(t.id)
        assert back.label == t.label
        with pg.purpose("face.verification"):
            assert np.array_equal(back.reveal(), t.reveal())
        again.close()

    # -- bad input loses nothing ----------------------------------------------------------

    def test_bad_batches_store_nothing(self, store: GuardedStore) -> None:
        self.gallery(store, 20, 1.0)
        before = len(store)
        good = pg.FaceTemplate.wrap(
            np.ones(DIM), subject="a", purposes="face.identification", ttl=timedelta(days=1)
        )
        wrong_dim = pg.FaceTemplate.wrap(
            np.ones(DIM + 1), subject="a", purposes="face.identification", ttl=timedelta(days=1)
        )
        with pytest.raises(pg.InvalidTemplateError) as e:
            store.enrol_many([good, wrong_dim])
        assert "1.0" not in str(e.value)
        assert len(store) == before
        store.enrol(good)
        with pytest.raises(pg.InvalidTemplateError):
            store.enrol(good)
        with pytest.raises(pg.InvalidTemplateError):
            store.enrol_many([good, good])
        assert len(store) == before + 1
        with pytest.raises(pg.InvalidTemplateError):
            store.enrol_many([np.ones(DIM)])  # type: ignore[list-item]
        not_storable = pg.FaceTemplate.wrap(
            np.ones(DIM), subject="a", purposes="face.liveness", ttl=timedelta(days=1)
        )
        with pytest.raises(pg.PurposeViolationError):
            store.enrol_many([not_storable])
        assert len(store) == before + 1

    # -- concurrency ----------------------------------------------------------------------

    def test_concurrent_enrol_and_search(self, store: GuardedStore, guard: pg.Guard) -> None:
        self.gallery(store, 100, 1.0)
        errors: list[BaseException] = []

        def enrol(seed: int) -> None:
            try:
                with pg.using(guard):
                    rng = np.random.default_rng(seed)
                    for _ in range(10):
                        ts = [
                            pg.FaceTemplate.wrap(
                                rng.standard_normal(DIM),
                                subject=f"t{seed}",
                                purposes="face.identification",
                                ttl=timedelta(days=1),
                            )
                            for _ in range(5)
                        ]
                        store.enrol_many(ts)
            except BaseException as e:
                errors.append(e)

        def search(seed: int) -> None:
            try:
                with pg.using(guard), pg.purpose("face.identification"):
                    rng = np.random.default_rng(seed)
                    for _ in range(20):
                        got = store.search(self.probe(rng.standard_normal(DIM)), 5)
                        assert len(got) == 5
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=enrol, args=(i,)) for i in range(3)]
        threads += [threading.Thread(target=search, args=(10 + i,)) for i in range(3)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert errors == []
        assert len(store) == 100 + 3 * 10 * 5

    # -- the state machine ----------------------------------------------------------------

    def test_state_machine(self, tmp_path: Path) -> None:
        contract = self
        counter = iter(range(10**9))

        class Machine(StoreMachine):
            exact = contract.exact

            def make_backend(self) -> VectorBackend:
                path = tmp_path / f"m{next(counter)}"
                path.mkdir()
                self._path = path
                return contract.make_backend(path)

            def reopen_backend(self, old: VectorBackend) -> VectorBackend | None:
                return contract.reopen(old, self._path)

        Machine.TestCase.settings = settings(
            max_examples=self.machine_examples,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        )
        Machine.TestCase().runTest()
