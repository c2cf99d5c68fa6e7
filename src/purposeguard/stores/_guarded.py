"""GuardedStore: an embedding database that obeys the labels of what it holds."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from purposeguard._errors import (
    AccessDeniedError,
    InvalidTemplateError,
    PolicyError,
    TemplateNotFoundError,
)
from purposeguard._guard import Guard, current_guard
from purposeguard._labels import Label
from purposeguard._purposes import Operation, Purpose, PurposeLike
from purposeguard._taxonomy import Taxonomy
from purposeguard._template import FaceTemplate

from ._memory import MemoryBackend
from ._protocol import AdoptableBackend, VectorBackend
from ._records import Record, SearchFilter, to_us

__all__ = ["GuardedStore", "Match"]

_F32 = np.dtype(np.float32)


@attrs.frozen
class Match:
    """One search result of [`GuardedStore.search`][purposeguard.stores.GuardedStore.search].

    Immutable, and holds no values: results come best first.

    Attributes:
        template_id: the matching template's id.
        subject: its data subject.
        score: the cosine similarity of the probe and the stored vector, in [-1, 1].
    """

    template_id: str
    subject: str
    score: float


class GuardedStore:
    """Wraps a [`VectorBackend`][purposeguard.stores.VectorBackend] so every use obeys the stored
    templates' labels.

    - `enrol`/`enrol_many` are STOREs, checked against each template's label (and
      the active purpose, inside a scope); they return once the backend has made the
      batch durable; a batch is atomic.
    - `search(probe, k)` is a SEARCH under the active purpose: the probe must permit
      it, and the gallery is filtered inside the engine, before ranking, to templates
      whose labels permit the purpose and have not expired. Results are checked again
      against the full guard (consent, policy rules) and the search refills if any fails.
    - `get(id)` returns a template only if its label permits the active purpose and
      it has not expired; otherwise it is reported exactly like a missing id.
    - `erase_subject`, `withdraw_consent` and `purge_expired` delete from the
      engine and its index and return how many templates they removed.

    Thread-safe as far as its backend is (every shipped backend is). Usable as a
    context manager, which closes the backend on exit. `len(store)` is how many
    labelled templates the backend holds, expired ones included until purged.

    Args:
        backend: the engine adapter.
        guard: the guard to use; by default the guard in force at each call
            ([`current_guard`][purposeguard.current_guard]).

    Raises:
        PolicyError: *backend* does not implement `VectorBackend`, or *guard* is not a
            `Guard`.
    """

    def __init__(self, backend: VectorBackend, *, guard: Guard | None = None) -> None:
        if not isinstance(backend, VectorBackend):
            raise PolicyError(
                f"backend must implement purposeguard.stores.VectorBackend "
                f"(got {type(backend).__name__})"
            )
        if guard is not None and not isinstance(guard, Guard):
            raise PolicyError(f"guard must be a Guard, got {type(guard).__name__}")
        self._backend = backend
        self._guard = guard
        self._permits: dict[tuple[int, frozenset[Purpose], frozenset[Purpose]], frozenset[str]]
        self._permits = {}
        self._lock = threading.Lock()

    @property
    def backend(self) -> VectorBackend:
        """The wrapped backend (its methods bypass the guard: keep it private)."""
        return self._backend

    @property
    def guard(self) -> Guard:
        """The guard this store uses now."""
        return self._guard if self._guard is not None else current_guard()

    # -- enrolment ---------------------------------------------------------------------

    def enrol(self, template: FaceTemplate) -> str:
        """Store *template* (a STORE, audited); return its id once durable.

        The same as `enrol_many([template])[0]`.
        """
        return self.enrol_many([template])[0]

    def enrol_many(self, templates: Iterable[FaceTemplate]) -> list[str]:
        """Store *templates* as one atomic batch (one audit event); return their ids.

        - Each storing is a STORE, checked against the template's own label: outside a
          purpose scope, some purpose the label allows must allow STORE in the taxonomy
          (and the policy's rules must pass); inside a scope the active purpose must
          also permit it.
        - All or nothing: if any template is refused, repeated, already stored or of
          the wrong dimension, nothing is stored.
        - The first template ever enrolled fixes the store's dimension.
        - One audit event for the batch, naming every template id and subject.
        - Returns only once the backend has made the batch durable (SQLite:
          committed). An empty iterable returns `[]`.

        Raises:
            InvalidTemplateError: not templates, repeated ids, or a dimension mismatch
                (nothing is stored).
            AccessDeniedError: (a subclass) a template may not be stored (nothing is).
        """
        batch = list(templates)
        for t in batch:
            if not isinstance(t, FaceTemplate):
                raise InvalidTemplateError(
                    f"only FaceTemplates can be enrolled, got {type(t).__name__}"
                )
        if not batch:
            return []
        dim = self._backend.dim
        dims = {t.dim for t in batch}
        if len(dims) > 1 or (dim is not None and dims != {dim}):
            want = dim if dim is not None else min(dims)
            raise InvalidTemplateError(
                f"dimension mismatch: the store holds {want}-d templates, the batch has "
                f"{', '.join(str(d) for d in sorted(dims))}-d"
            )
        guard = self.guard
        guard.authorize(Operation.STORE, batch, own_purpose=True)
        ids, vectors, labels, permits = self._columns(batch, guard.taxonomy)
        backend = self._backend
        if type(backend) is MemoryBackend:
            # The same records, without making an object of each first.
            backend._add_columns(ids, vectors, labels, permits)
        else:
            backend.add(
                [
                    Record(template_id=i, vector=v, label=lab, permits=p)
                    for i, v, lab, p in zip(ids, vectors, labels, permits, strict=True)
                ]
            )
        return ids

    def _record(self, t: FaceTemplate, taxonomy: Taxonomy) -> Record:
        values = t._values()
        return Record(
            template_id=t.id,
            vector=values if values.dtype == _F32 else values.astype(np.float32),
            label=t.label,
            permits=self._permits_of(t.label, taxonomy),
        )

    def _columns(
        self, batch: Sequence[FaceTemplate], taxonomy: Taxonomy
    ) -> tuple[list[str], list[npt.NDArray[np.float32]], list[Label], list[frozenset[str]]]:
        # The fields of the batch's records, as columns.
        ids = [t.id for t in batch]
        labels = [t.label for t in batch]
        vectors = [t._values() for t in batch]
        f32 = _F32
        if not all(v.dtype is f32 for v in vectors):
            vectors = [v if v.dtype == f32 else v.astype(np.float32) for v in vectors]
        # Templates often share label objects: look each one's permits up once.
        seen: dict[int, frozenset[str]] = {}
        permits = []
        for label in labels:
            p = seen.get(id(label))
            if p is None:
                p = seen[id(label)] = self._permits_of(label, taxonomy)
            permits.append(p)
        return ids, vectors, labels, permits

    def _permits_of(self, label: Label, taxonomy: Taxonomy) -> frozenset[str]:
        key = (id(taxonomy), label.allowed, label.prohibited)
        permits = self._permits.get(key)
        if permits is None:
            permits = frozenset(p.name for p in taxonomy if label.permits(p))
            with self._lock:
                if len(self._permits) > 4096:
                    self._permits.clear()
                self._permits[key] = permits
        return permits

    def unlabelled(self, limit: int = 100) -> list[str]:
        """Up to *limit* ids of entries that an adopted collection holds without a label.

        Such entries are invisible to every other method (fail closed) until
        [`adopt`][purposeguard.stores.GuardedStore.adopt] labels them.

        Raises:
            PolicyError: the backend does not implement `AdoptableBackend` (of the
                shipped backends, only `QdrantBackend` does).
        """
        return self._adoptable().unlabelled_ids(limit)

    def adopt(
        self,
        template_id: str,
        *,
        subject: str,
        purposes: PurposeLike | Iterable[PurposeLike],
        expires_at: datetime | None = None,
        ttl: timedelta | None = None,
        prohibited: PurposeLike | Iterable[PurposeLike] = (),
        consent: str | None = None,
        jurisdictions: str | Iterable[str] = (),
        context: object | None = None,
    ) -> FaceTemplate:
        """Label an entry that an existing collection holds without a label.

        The entry keeps its id and vector. Adoption is a COLLECT and a STORE, each
        checked against the new label (and the active purpose, inside a scope) and
        audited, exactly as wrapping and enrolling a new template would be. The
        arguments are those of [`FaceTemplate.wrap`][purposeguard.FaceTemplate.wrap].

        Exactly one of *expires_at* and *ttl*. Nothing is labelled if anything is
        refused.

        Raises:
            PolicyError: the backend cannot hold unlabelled entries, or as `wrap`
                raises for bad arguments.
            TemplateNotFoundError: no unlabelled entry has that id (it is missing or
                already labelled).
            InvalidTemplateError: as `wrap` raises for bad arguments.
            AccessDeniedError: (a subclass) the collection or the storing is refused.
        """
        backend = self._adoptable()
        guard = self.guard
        values = backend.read_unlabelled(template_id) if isinstance(template_id, str) else None
        if values is None:
            raise TemplateNotFoundError(f"template {template_id!s:.64} not found")
        vec, label = FaceTemplate._prepare(
            guard,
            values,
            subject=subject,
            purposes=purposes,
            expires_at=expires_at,
            ttl=ttl,
            prohibited=prohibited,
            consent=consent,
            jurisdictions=jurisdictions,
            collected_at=None,
            context=context,
        )
        template = FaceTemplate._new(vec, label, template_id)
        guard.authorize(Operation.COLLECT, (template,), context=context, own_purpose=True)
        guard.authorize(Operation.STORE, (template,), own_purpose=True)
        backend.attach_label(self._record(template, guard.taxonomy))
        return template

    def _adoptable(self) -> AdoptableBackend:
        if not isinstance(self._backend, AdoptableBackend):
            raise PolicyError(
                f"the {self._backend.name} backend holds no unlabelled entries to adopt"
            )
        return self._backend

    # -- search and fetch --------------------------------------------------------------

    def search(self, probe: FaceTemplate, k: int = 10) -> list[Match]:
        """The *k* best matches for *probe* among templates that permit the active
        purpose for SEARCH and have not expired, best first.

        - A SEARCH under the active purpose: there must be one, the taxonomy must
          allow SEARCH for it (1:1 verification purposes do not), and the probe's own
          label must permit it. In enforce mode a denial raises before the backend is
          asked anything.
        - The filter (purpose permitted, not expired) is passed to the backend as a
          [`SearchFilter`][purposeguard.stores.SearchFilter] and applied inside the
          engine, before ranking. Exact backends return exactly the brute-force top
          *k* among the permitted templates, however few they are (fewer than *k* only
          if fewer may be seen); approximate backends never return a template outside
          the filter.
        - Every hit is checked again against the full guard with its stored label
          (consent withdrawn in the guard's consent registry, the policy's rules);
          hits that fail are dropped and the backend is asked for more (4x, 16x, ...)
          until *k* pass or the backend runs out.
        - One audit event, written before the results are returned: `template_ids`
          is the probe's id followed by the result ids in rank order, `subjects` the
          probe's subject and the results' subjects; `reason` starts with
          `search k=<k> returned <n>`. A denied search names only the probe.
        - Audit mode: a purpose whose taxonomy entry does not allow SEARCH is recorded
          as `would_deny` and returns `[]`; a probe whose label does not permit the
          purpose is recorded as `would_deny` and the search runs.
        - An empty store returns `[]` (the search is still checked and audited).

        Raises:
            InvalidTemplateError: *probe* is not a template, is a zero vector, has
                another dimension than the store, or *k* is not a positive `int`.
            AccessDeniedError: (a subclass) the probe does not permit the search, or
                the active purpose does not allow SEARCH (1:1 verification purposes).
        """
        if not isinstance(probe, FaceTemplate):
            raise InvalidTemplateError(
                f"the probe must be a FaceTemplate, got {type(probe).__name__}"
            )
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise InvalidTemplateError("k must be a positive integer")
        dim = self._backend.dim
        if dim is not None and probe.dim != dim:
            raise InvalidTemplateError(
                f"dimension mismatch: the store holds {dim}-d templates, the probe is "
                f"{probe.dim}-d"
            )
        guard = self.guard
        pending = guard.begin(Operation.SEARCH, (probe,))
        p = pending.purpose
        if not pending.proceeds or p is None or dim is None:
            pending.commit()  # raises in enforce mode; audits an empty search otherwise
            return []
        if Operation.SEARCH not in guard.taxonomy.spec(p).operations:
            pending.commit()
            return []
        query = probe._values().astype(np.float32, copy=False)
        now = pending.now
        flt = SearchFilter(purpose=p.name, now_us=to_us(now))
        grant = pending.state.grant if pending.state is not None else None
        # Every hit is checked again against its stored label with the full guard: a
        # backend whose permits were edited, or a consent withdrawn in the registry,
        # must not leak a template. It costs microseconds per hit.
        want = k
        while True:
            hits = self._backend.search(query, want, flt)
            found = [
                Match(h.template_id, h.label.subject, h.score)
                for h in hits
                if guard._decide(h.label, h.template_id, p, Operation.SEARCH, now, None, grant)
            ]
            if len(found) >= k or len(hits) < want:
                break
            want *= 4
        found = found[:k]
        pending.commit(
            extra_ids=[m.template_id for m in found],
            extra_subjects=[m.subject for m in found],
            note=f"search k={k} returned {len(found)}",
        )
        return found

    def _vectors_of(self, matches: Sequence[Match]) -> list[tuple[Match, npt.NDArray[Any]]]:
        """The stored values of matches that [`search`][purposeguard.stores.GuardedStore.search]
        has just returned.

        For integrations that re-rank a search's shortlist with the model's own metric:
        the search's audit event already names these templates, so reading their values
        here is part of that search and is not audited again. Never call it with ids
        that did not come from an audited search. Templates erased in between are
        skipped.
        """
        out: list[tuple[Match, npt.NDArray[Any]]] = []
        for m in matches:
            rec = self._backend.fetch(m.template_id)
            if rec is not None:
                out.append((m, rec.vector))
        return out

    def get(self, template_id: str) -> FaceTemplate:
        """The template with *template_id*, if the active purpose may see it.

        The template comes back with its stored label and values if the label permits
        the active purpose, it has not expired, and its consent has not been withdrawn.
        Otherwise (and also when the id is unknown or malformed, or no purpose is
        active) the error is `template <id> not found`, identical in every case: a
        caller cannot use `get` to learn whether someone is enrolled (no enrolment
        oracle). The audit log tells the cases apart: a refused fetch is a `denied`
        event naming the template, its subject and the reason; a fetch of an unknown
        id is a `denied` event with the note `get of an unknown template id`. The
        event's `operation` is `None`; the returned template's `reveal()` is then
        checked and audited as a REVEAL.

        Raises:
            TemplateNotFoundError: missing, expired, or not visible under the purpose
                (a `KeyError`).
        """
        missing = TemplateNotFoundError(f"template {template_id!s:.64} not found")
        if not isinstance(template_id, str):
            raise missing
        guard = self.guard
        rec = self._backend.fetch(template_id)
        if rec is None:
            guard.record_denial(
                None, "get of an unknown template id", template_ids=[template_id[:64]]
            )
            raise missing
        template = FaceTemplate._new(rec.vector, rec.label, rec.template_id)
        try:
            guard.authorize(None, (template,))
        except AccessDeniedError:
            raise missing from None
        return template

    # -- erasure -----------------------------------------------------------------------

    def erase_subject(self, subject: str) -> int:
        """Delete every template of *subject* from the engine and its index; return how
        many.

        A DELETE: never blocked by purpose, audited by one event written after the
        deletion, naming the subject and the count (`erase_subject removed <n>`).
        Entries of an adopted collection that were never labelled are not touched
        (the store does not know whose they are).

        Raises:
            InvalidTemplateError: *subject* is empty or not a string.
            AuditError: the sink failed; the erasure has happened.
        """
        if not isinstance(subject, str) or not subject:
            raise InvalidTemplateError("subject must be a non-empty string")
        # Erasure is never refused, so the event is written after it, with the count;
        # if the sink fails the erasure has still happened and AuditError says so.
        pending = self.guard.begin(Operation.DELETE, ())
        removed = self._backend.delete_matching(subject=subject)
        pending.commit(extra_subjects=[subject], note=f"erase_subject removed {removed}")
        return removed

    def withdraw_consent(self, consent_id: str) -> int:
        """Delete every template whose label rests on *consent_id*; return how many.

        If the guard has a consent registry with a `withdraw` method, the consent is
        marked withdrawn there first. A DELETE, audited after the deletion
        (`withdraw_consent <id> removed <n>`).
        """
        if not isinstance(consent_id, str) or not consent_id:
            raise InvalidTemplateError("consent_id must be a non-empty string")
        guard = self.guard
        pending = guard.begin(Operation.DELETE, ())
        withdraw = getattr(guard.consents, "withdraw", None)
        if callable(withdraw):
            withdraw(consent_id)
        removed = self._backend.delete_matching(consent=consent_id)
        pending.commit(note=f"withdraw_consent {consent_id} removed {removed}")
        return removed

    def purge_expired(self) -> int:
        """Delete every template expired at the guard's clock time; return how many.

        Expired means `expires_at <= now`. Expired templates are already invisible to
        `search` and `get`; purging removes them. A DELETE, audited after the
        deletion (`purge_expired removed <n>`).
        """
        guard = self.guard
        now = guard.now()
        pending = guard.begin(Operation.DELETE, ())
        removed = self._backend.delete_matching(expired_at_us=to_us(now))
        pending.commit(note=f"purge_expired removed {removed}")
        return removed

    # -- inspection --------------------------------------------------------------------

    def __len__(self) -> int:
        return self._backend.count()

    def stats(self) -> dict[str, Any]:
        """Counts for reports: `{"backend": name, "templates": n, "subjects": n, "dim":
        d or None}`.

        With a policy in force that has filing alerts, also `"alerts"`: the policy's
        alerts on these counts (FR-07: filing at 100,000 distinct subjects).
        """
        out: dict[str, Any] = {
            "backend": self._backend.name,
            "templates": self._backend.count(),
            "subjects": self._backend.subjects(),
            "dim": self._backend.dim,
        }
        # A policy's alerts on these counts (FR-07 filing at 100,000 subjects, CN-13).
        alerts = getattr(self.guard.policy, "filing_alerts", None)
        if callable(alerts):
            out["alerts"] = list(alerts(out))
        return out

    def close(self) -> None:
        """Close the backend."""
        self._backend.close()

    def __enter__(self) -> GuardedStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<GuardedStore over {self._backend.name}: {self._backend.count()} templates>"


def labels_of(records: Sequence[Record]) -> list[Label]:
    """The labels of *records* (helper for backends and tests)."""
    return [r.label for r in records]
