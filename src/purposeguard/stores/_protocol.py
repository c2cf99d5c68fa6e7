"""The protocol every vector backend implements."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from ._records import Hit, Record, SearchFilter

__all__ = ["AdoptableBackend", "VectorBackend"]


@runtime_checkable
class VectorBackend(Protocol):
    """An embedding database as [`GuardedStore`][purposeguard.stores.GuardedStore] drives it.

    The guarded store calls these methods only after the guard has permitted the
    operation; a backend's duty is to store labels with vectors and to apply the
    [`SearchFilter`][purposeguard.stores.SearchFilter] *inside* the engine, before ranking. Every
    method must raise on failure rather than return a partial or permissive answer.

    Guarantees a backend must give:

    - `add` is atomic and durable on return: all records or none.
    - `search` returns at most *k* [`Hit`][purposeguard.stores.Hit] objects (id, cosine score,
      label), best first, and only records that match the filter. Exact backends return exactly
      the best *k* matching records; approximate ones document their recall.
    - `fetch` returns the record whatever its label (the store checks it), or
      `None`.
    - `delete_ids` / `delete_matching` remove vectors from the engine and its
      index (not a flag) and return how many were removed.
    """

    @property
    def name(self) -> str:
        """A short name for reports (`"memory"`, `"sqlite"`, ...)."""
        ...

    @property
    def dim(self) -> int | None:
        """The vector dimension, fixed by the first record; `None` while empty."""
        ...

    def add(self, records: Sequence[Record]) -> None:
        """Store *records* atomically; an existing id is an error."""
        ...

    def search(self, query: npt.NDArray[np.float32], k: int, flt: SearchFilter) -> list[Hit]:
        """The best *k* records matching *flt* by cosine similarity to *query*,
        best first, each with its stored label."""
        ...

    def fetch(self, template_id: str) -> Record | None:
        """The record with that id, or `None`."""
        ...

    def delete_ids(self, template_ids: Collection[str]) -> int:
        """Remove these records; return how many existed."""
        ...

    def delete_matching(
        self,
        *,
        subject: str | None = None,
        consent: str | None = None,
        expired_at_us: int | None = None,
    ) -> int:
        """Remove every record of *subject*, or resting on *consent*, or expired at
        *expired_at_us* (`expires_us <= expired_at_us`); exactly one must be given."""
        ...

    def count(self) -> int:
        """How many records are stored."""
        ...

    def subjects(self) -> int:
        """How many distinct subjects are stored."""
        ...

    def close(self) -> None:
        """Release resources; the backend is unusable afterwards."""
        ...


@runtime_checkable
class AdoptableBackend(VectorBackend, Protocol):
    """A backend over an existing collection that may hold entries without labels.

    Unlabelled entries must be invisible to `search`, `fetch`, `count` and the
    deletions (fail closed) until [`GuardedStore.adopt`][purposeguard.stores.GuardedStore.adopt]
    labels them.
    """

    def unlabelled_ids(self, limit: int = 100) -> list[str]:
        """Up to *limit* ids of entries that carry no label."""
        ...

    def read_unlabelled(self, template_id: str) -> npt.NDArray[np.float32] | None:
        """The stored vector of an unlabelled entry, or `None` (missing or labelled)."""
        ...

    def attach_label(self, record: Record) -> None:
        """Attach *record*'s label to the existing unlabelled entry of the same id."""
        ...
