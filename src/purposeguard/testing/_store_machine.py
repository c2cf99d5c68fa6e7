"""StoreMachine: a Hypothesis state machine that checks a guarded store against an oracle."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    precondition,
    rule,
)

from purposeguard._clock import FrozenClock
from purposeguard._errors import AccessDeniedError, TemplateNotFoundError
from purposeguard._events import MemorySink
from purposeguard._guard import Guard, using
from purposeguard._labels import Label
from purposeguard._purposes import Operation
from purposeguard._scope import purpose
from purposeguard._taxonomy import Taxonomy
from purposeguard._template import FaceTemplate, as_vector
from purposeguard.stores import GuardedStore, VectorBackend

__all__ = ["StoreMachine"]

_T0 = datetime(2026, 1, 1, tzinfo=UTC)
_ALLOWED = (
    "face.verification",
    "face.verification.login",
    "face.identification",
    "face.identification.closed_set_optin",
    "face.public_security",
    "face.analytics",
    "face.liveness",
)
_PROHIBITED = (
    "face.identification.realtime_remote",
    "face.verification.payment",
    "face.identification.closed_set_optin",
)
_SEARCH_UNDER = (
    "face.identification",
    "face.identification.closed_set_optin",
    "face.identification.realtime_remote",
    "face.public_security",
    "face.verification.login",
)
_SUBJECTS = ("s-1", "s-2", "s-3", "s-4")
_CONSENTS = (None, "c-1", "c-2")


def _within(p: str, q: str) -> bool:
    return p == q or p.startswith(q + ".")


def _permits(label: Label, p: str) -> bool:
    # The conformance rule written out afresh (an oracle must not reuse the code under test).
    allowed = [a.name for a in label.allowed]
    prohibited = [q.name for q in label.prohibited]
    return any(_within(p, a) for a in allowed) and not any(
        _within(p, q) or _within(q, p) for q in prohibited
    )


class StoreMachine(RuleBasedStateMachine):
    """Drives a [`GuardedStore`][purposeguard.stores.GuardedStore] through random enrolments,
    searches, fetches, erasures, consent withdrawals, clock moves, purges and reopens,
    and checks every answer against a brute-force oracle written independently of the
    library's own conformance code.

    Subclass it, implement [`make_backend`][purposeguard.testing.StoreMachine.make_backend] (and
    [`reopen_backend`][purposeguard.testing.StoreMachine.reopen_backend] for a persistent backend),
    and run it with Hypothesis:

    ```python
    class MyStoreMachine(StoreMachine):
        def make_backend(self):
            return MyBackend(...)

    TestMyStore = MyStoreMachine.TestCase
    ```

    Templates are 8-dimensional. Exact backends must return the oracle's top-k scores;
    set `exact = False` on an approximate backend to check only that every result is
    permitted and scored right.

    Steps: enrol (batches of 1-5 templates with random labels, expiring in 1-72
    hours), search (under five purposes, one of them 1:1, *k* from 1 to 6), get (under
    a random purpose), erase a subject, withdraw a consent, advance the clock (0-48
    hours), purge, reopen. After every step, `len(store)` and `stats()["subjects"]`
    must equal the oracle's. Needs the `testing` extra (Hypothesis).
    """

    exact: ClassVar[bool] = True
    """Whether the backend is exact. Set `False` for an approximate one: results are then
    checked for being permitted, unexpired, correctly scored and ordered, but not for
    completeness."""
    tolerance: ClassVar[float] = 1e-4
    """How far a score may be from the oracle's cosine (for engines that store reduced
    precision)."""

    templates = Bundle("templates")

    def make_backend(self) -> VectorBackend:
        """Return a new, empty backend. Subclasses must implement this."""
        raise NotImplementedError("subclass StoreMachine and implement make_backend()")

    def reopen_backend(self, old: VectorBackend) -> VectorBackend | None:
        """Close *old* and return the same store opened afresh, or `None` if the
        backend is not persistent (the reopen rule is then skipped)."""
        return None

    def teardown(self) -> None:
        """Close the store; extend it to drop server collections or temporary folders."""
        store = getattr(self, "store", None)
        if store is not None:
            store.close()

    # -- state ------------------------------------------------------------------------------

    @initialize()
    def start(self) -> None:
        self.clock = FrozenClock(_T0)
        self.sink = MemorySink()
        self.guard = Guard(clock=self.clock, audit=self.sink, taxonomy=Taxonomy.default())
        self.backend = self.make_backend()
        self.store = GuardedStore(self.backend, guard=self.guard)
        self.oracle: dict[str, tuple[npt.NDArray[np.float32], Label]] = {}
        self.persistent = True

    def _unexpired(self, label: Label) -> bool:
        return self.clock.now() < label.expires_at

    def _may_store(self, label: Label) -> bool:
        tax = self.guard.taxonomy
        return self._unexpired(label) and any(
            Operation.STORE in tax.spec(p).operations and _permits(label, p.name) for p in tax
        )

    # -- rules --------------------------------------------------------------------------------

    @rule(
        target=templates,
        vectors=st.lists(
            st.lists(st.integers(-8, 8), min_size=8, max_size=8).filter(any),
            min_size=1,
            max_size=5,
        ),
        allowed=st.sets(st.sampled_from(_ALLOWED), min_size=1, max_size=2),
        prohibited=st.sets(st.sampled_from(_PROHIBITED), max_size=1),
        subject=st.sampled_from(_SUBJECTS),
        consent=st.sampled_from(_CONSENTS),
        hours=st.integers(1, 72),
    )
    def enrol(
        self,
        vectors: list[list[int]],
        allowed: set[str],
        prohibited: set[str],
        subject: str,
        consent: str | None,
        hours: int,
    ) -> Any:
        now = self.clock.now()
        label = Label(
            allowed=allowed,
            prohibited=prohibited,
            subject=subject,
            expires_at=now + timedelta(hours=hours),
            collected_at=now,
            consent=consent,
        )
        batch = [FaceTemplate._new(as_vector(np.array(v, np.float32) / 8), label) for v in vectors]
        if self._may_store(label):
            with using(self.guard):
                ids = self.store.enrol_many(batch)
            assert ids == [t.id for t in batch]
            for t in batch:
                self.oracle[t.id] = (t._values().astype(np.float32), label)
        else:
            try:
                self.store.enrol_many(batch)
            except AccessDeniedError:
                pass
            else:
                raise AssertionError("a template that may not be stored was enrolled")
        return batch[0].id

    @rule(
        under=st.sampled_from(_SEARCH_UNDER),
        probe=st.lists(st.integers(-8, 8), min_size=8, max_size=8).filter(any),
        k=st.integers(1, 6),
    )
    def search(self, under: str, probe: list[int], k: int) -> None:
        now = self.clock.now()
        probe_label = Label(allowed=[under], subject="probe", expires_at=now + timedelta(hours=1))
        q = as_vector(np.array(probe, np.float32) / 8)
        probe_t = FaceTemplate._new(q, probe_label)
        may_search = Operation.SEARCH in self.guard.taxonomy.spec(under).operations
        with using(self.guard), purpose(under):
            if not may_search:
                try:
                    self.store.search(probe_t, k)
                except AccessDeniedError:
                    return
                raise AssertionError(f"{under} does not allow SEARCH but a search ran")
            got = self.store.search(probe_t, k)
        eligible = {
            tid: float(np.dot(v, q) / (np.linalg.norm(v) * np.linalg.norm(q)))
            for tid, (v, lab) in self.oracle.items()
            if _permits(lab, under) and now < lab.expires_at
        }
        for m in got:
            assert m.template_id in eligible, "a search returned a template it may not see"
            assert abs(m.score - eligible[m.template_id]) <= self.tolerance
            assert m.subject == self.oracle[m.template_id][1].subject
        scores = [m.score for m in got]
        assert scores == sorted(scores, reverse=True), "results are not best first"
        assert len({m.template_id for m in got}) == len(got)
        if self.exact:
            best = sorted(eligible.values(), reverse=True)[:k]
            assert len(got) == len(best)
            assert np.allclose(scores, best, atol=self.tolerance)

    @rule(tid=templates, under=st.sampled_from(_ALLOWED + _SEARCH_UNDER))
    def get(self, tid: str, under: str) -> None:
        entry = self.oracle.get(tid)
        visible = entry is not None and _permits(entry[1], under) and self._unexpired(entry[1])
        missing: str | None = None
        with using(self.guard), purpose(under):
            try:
                t = self.store.get(tid)
            except TemplateNotFoundError as e:
                missing = str(e)
        if missing is not None:
            assert not visible, f"a visible template was reported missing: {missing}"
            assert missing == f"template {tid} not found", "not found must not say why"
            return
        assert visible, "get() returned a template it may not see"
        assert entry is not None
        assert t.id == tid
        assert t.label == entry[1]
        assert np.array_equal(t._values(), entry[0])

    @rule(subject=st.sampled_from(_SUBJECTS))
    def erase_subject(self, subject: str) -> None:
        expected = [t for t, (_, lab) in self.oracle.items() if lab.subject == subject]
        assert self.store.erase_subject(subject) == len(expected)
        for t in expected:
            del self.oracle[t]

    @rule(consent=st.sampled_from([c for c in _CONSENTS if c is not None]))
    def withdraw(self, consent: str) -> None:
        expected = [t for t, (_, lab) in self.oracle.items() if lab.consent == consent]
        assert self.store.withdraw_consent(consent) == len(expected)
        for t in expected:
            del self.oracle[t]

    @rule(hours=st.integers(0, 48))
    def advance(self, hours: int) -> None:
        self.clock.advance(timedelta(hours=hours))

    @rule()
    def purge(self) -> None:
        now = self.clock.now()
        expected = [t for t, (_, lab) in self.oracle.items() if lab.expires_at <= now]
        assert self.store.purge_expired() == len(expected)
        for t in expected:
            del self.oracle[t]

    @precondition(lambda self: self.persistent)
    @rule()
    def reopen(self) -> None:
        fresh = self.reopen_backend(self.backend)
        if fresh is None:
            self.persistent = False
            return
        self.backend = fresh
        self.store = GuardedStore(fresh, guard=self.guard)

    @rule(tid=consumes(templates))
    def forget_handle(self, tid: str) -> None:
        # Lets the bundle shrink so that fetches of erased ids stay interesting.
        pass

    @invariant()
    def counts_agree(self) -> None:
        if hasattr(self, "store"):
            assert len(self.store) == len(self.oracle)
            subjects = {lab.subject for _, lab in self.oracle.values()}
            assert self.store.stats()["subjects"] == len(subjects)
