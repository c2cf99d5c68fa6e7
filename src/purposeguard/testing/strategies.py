"""Hypothesis strategies for purposeguard's types.

Templates drawn here are built directly with their labels: no COLLECT event is audited
and no collection rule is checked, so they can be fed to any guard under test. Labels
expire after *now* (default: the clock of the guard in force when the example is
drawn) unless `expired=True`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from purposeguard._guard import current_guard
from purposeguard._labels import Label
from purposeguard._purposes import Operation, Purpose
from purposeguard._taxonomy import Taxonomy, _Node
from purposeguard._template import FaceTemplate, as_vector

__all__ = [
    "labels",
    "operations",
    "purpose_names",
    "purposes",
    "subjects",
    "taxonomies",
    "templates",
    "vectors",
]

_PART = st.sampled_from(["face", "a", "b", "c", "x1", "y_2", "z"])


def purpose_names(max_depth: int = 4) -> st.SearchStrategy[str]:
    """Valid purpose names over a small alphabet, so that draws nest and overlap."""
    return st.lists(_PART, min_size=1, max_size=max_depth).map(".".join)


def purposes(taxonomy: Taxonomy | None = None) -> st.SearchStrategy[Purpose]:
    """Purposes: drawn from *taxonomy* if given, otherwise freely generated."""
    if taxonomy is not None:
        return st.sampled_from(sorted(taxonomy))
    return purpose_names().map(Purpose)


def operations() -> st.SearchStrategy[Operation]:
    """Any operation."""
    return st.sampled_from(list(Operation))


_LOWER = "abcdefghijklmnopqrstuvwxyz"


def subjects() -> st.SearchStrategy[str]:
    """Subject ids."""
    # Built from parts rather than from_regex, which costs milliseconds per draw.
    return st.builds("{}-{}".format, st.text(_LOWER, min_size=1, max_size=3), st.integers(0, 9999))


@st.composite
def taxonomies(draw: st.DrawFn, max_purposes: int = 12) -> Taxonomy:
    """Random taxonomies: trees whose declared operation sets only narrow downward."""
    names = draw(st.sets(purpose_names(), min_size=1, max_size=max_purposes))
    paths: set[Purpose] = set()
    for n in names:
        p = Purpose(n)
        paths.add(p)
        paths.update(p.ancestors())
    ceilings: dict[Purpose, frozenset[Operation] | None] = {}
    nodes: dict[Purpose, _Node] = {}
    for p in sorted(paths, key=lambda q: (q.depth, q.name)):
        ceiling = ceilings.get(p.parent) if p.parent is not None else None
        pool = sorted(ceiling if ceiling is not None else frozenset(Operation))
        declare = draw(st.booleans())
        ops = frozenset(draw(st.sets(st.sampled_from(pool)))) if declare and pool else None
        if declare and not pool:
            ops = frozenset()
        ceilings[p] = ops if ops is not None else ceiling
        nodes[p] = _Node(operations=ops, sensitive=draw(st.booleans()))
    return Taxonomy(nodes)


def _now(now: datetime | None) -> datetime:
    return now if now is not None else current_guard().now()


@st.composite
def labels(
    draw: st.DrawFn,
    taxonomy: Taxonomy | None = None,
    *,
    now: datetime | None = None,
    subject: str | None = None,
    expired: bool = False,
    max_purposes: int = 3,
) -> Label:
    """Labels whose purposes come from *taxonomy* (if given); unexpired at *now* unless
    `expired=True`."""
    at = _now(now)
    pool = purposes(taxonomy)
    allowed = draw(st.sets(pool, min_size=1, max_size=max_purposes))
    prohibited = draw(st.sets(pool, max_size=max_purposes))
    delta = timedelta(seconds=draw(st.integers(1, 10 * 365 * 86400)))
    expires = at - delta + timedelta(seconds=1) if expired else at + delta
    # Collected before both now and the expiry: never in the future.
    collected = min(expires, at) - timedelta(days=draw(st.integers(1, 3650)))
    return Label(
        allowed=allowed,
        prohibited=prohibited,
        subject=subject if subject is not None else draw(subjects()),
        expires_at=expires.astimezone(UTC),
        collected_at=collected,
        consent=draw(st.none() | st.builds("c-{}".format, st.integers(0, 9999))),
        jurisdictions=draw(st.sets(st.sampled_from(["pipl", "gdpr", "bipa"]), max_size=2)),
    )


def vectors(
    dim: int | None = None, dtype: Any = np.float32
) -> st.SearchStrategy[npt.NDArray[Any]]:
    """Finite, non-zero 1-D embedding vectors (dimension *dim*, or 2 to 64)."""
    shape = st.just(dim) if dim is not None else st.integers(2, 64)
    elements = st.floats(-1.0, 1.0, allow_nan=False, allow_infinity=False, width=32)
    # Hypothesis fills long arrays mostly with one value, often 0.0; an all-zero draw
    # is mapped to a unit vector rather than filtered out (filtering rejected ~14% of
    # draws at 128 dimensions).
    return shape.flatmap(lambda n: hnp.arrays(dtype, n, elements=elements).map(_nonzero))


def _nonzero(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
    if np.any(a):
        return a
    out = a.copy()
    out[0] = 1
    return out


@st.composite
def templates(
    draw: st.DrawFn,
    taxonomy: Taxonomy | None = None,
    *,
    dim: int | None = 8,
    now: datetime | None = None,
    subject: str | None = None,
    expired: bool = False,
    label: st.SearchStrategy[Label] | None = None,
) -> FaceTemplate:
    """Templates with labels from [`labels`][purposeguard.testing.strategies.labels] and values
    from [`vectors`][purposeguard.testing.strategies.vectors]."""
    lab = draw(
        label if label is not None else labels(taxonomy, now=now, subject=subject, expired=expired)
    )
    values = as_vector(draw(vectors(dim)))
    return FaceTemplate._new(values, lab)


def sample_purposes(taxonomy: Taxonomy) -> Sequence[Purpose]:
    """The purposes of *taxonomy*, sorted (a helper for `st.sampled_from`)."""
    return sorted(taxonomy)


# -- purposeguard.policy records (imported when first used) -------------------------------

__all__ += ["collection_contexts", "consents"]


def consents(
    *,
    subject: str | None = None,
    taxonomy: Taxonomy | None = None,
    given_before: datetime | None = None,
) -> st.SearchStrategy[Any]:
    """Consent records (`purposeguard.policy.Consent`) of any form; see
    `purposeguard.testing._policy_strategies.consents`."""
    from purposeguard.testing import _policy_strategies

    return _policy_strategies.consents(
        subject=subject, taxonomy=taxonomy, given_before=given_before
    )


def collection_contexts() -> st.SearchStrategy[Any]:
    """Collection contexts (`purposeguard.policy.CollectionContext`) over every place
    and source."""
    from purposeguard.testing import _policy_strategies

    return _policy_strategies.collection_contexts()
