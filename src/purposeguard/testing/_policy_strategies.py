"""Hypothesis strategies for purposeguard.policy's records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import strategies as st

from purposeguard._taxonomy import Taxonomy
from purposeguard.policy import (
    CollectionContext,
    Consent,
    ConsentForm,
    Place,
    Source,
)

__all__ = ["collection_contexts", "consents"]

_T0 = datetime(2026, 1, 1, tzinfo=UTC)


def consents(
    *,
    subject: str | None = None,
    taxonomy: Taxonomy | None = None,
    given_before: datetime | None = None,
) -> st.SearchStrategy[Consent]:
    """Consent records of any form, covering one to three purposes of *taxonomy* (default:
    the face taxonomy), given up to a year before *given_before* (default 2026-01-01),
    with or without a term, a notice, a guardian."""
    tax = taxonomy if taxonomy is not None else Taxonomy.default()
    before = given_before if given_before is not None else _T0
    return st.builds(
        Consent,
        id=st.text("abcdef0123456789", min_size=4, max_size=12).map(lambda s: f"c-{s}"),
        subject=st.just(subject) if subject is not None else st.sampled_from(["u1", "u2"]),
        purposes=st.lists(st.sampled_from(sorted(tax)), min_size=1, max_size=3, unique=True),
        form=st.sampled_from(list(ConsentForm)),
        given_at=st.integers(0, 365 * 24).map(lambda h: before - timedelta(hours=h)),
        term=st.none() | st.integers(1, 3650).map(lambda d: timedelta(days=d)),
        notice=st.none() | st.just("notice-v1"),
        guardian=st.none() | st.just("guardian-1"),
    )


def collection_contexts() -> st.SearchStrategy[CollectionContext]:
    """Collection contexts over every place and source, with or without a zone and age."""
    return st.builds(
        CollectionContext,
        place=st.sampled_from(list(Place)),
        source=st.sampled_from(list(Source)),
        zone=st.none() | st.sampled_from(["lobby", "workplace", "toilet", "shop_floor"]),
        subject_age=st.none() | st.integers(0, 90),
        signage=st.booleans(),
    )
