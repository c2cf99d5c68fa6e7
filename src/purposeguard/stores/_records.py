"""What a backend stores: a template compiled into plain columns, and the search filter."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import attrs
import numpy as np
import numpy.typing as npt

from purposeguard._labels import Label
from purposeguard._taxonomy import Taxonomy

__all__ = ["Hit", "Record", "SearchFilter", "from_us", "permitted_purposes", "to_us"]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

# The flat field names of Record.payload(), shared by the payload and metadata engines.
PAYLOAD_ID: Final = "pg_id"
PAYLOAD_SUBJECT: Final = "pg_subject"
PAYLOAD_CONSENT: Final = "pg_consent"
PAYLOAD_EXPIRES: Final = "pg_expires_us"
PAYLOAD_PERMITS: Final = "pg_permits"
PAYLOAD_LABEL: Final = "pg_label"
# What a search reads back from such an engine: the label fields, never stored values.
PAYLOAD_HIT_FIELDS: Final = (
    PAYLOAD_ID,
    PAYLOAD_SUBJECT,
    PAYLOAD_CONSENT,
    PAYLOAD_EXPIRES,
    PAYLOAD_PERMITS,
    PAYLOAD_LABEL,
)
_US: Final = timedelta(microseconds=1)


def to_us(at: datetime) -> int:
    """Microseconds since the Unix epoch (UTC) of an aware datetime."""
    return (at - _EPOCH) // _US


def from_us(us: int) -> datetime:
    """The aware UTC datetime of *us* microseconds since the Unix epoch."""
    return _EPOCH + timedelta(microseconds=int(us))


def permitted_purposes(label: Label, taxonomy: Taxonomy) -> frozenset[str]:
    """The names of the taxonomy's purposes that *label* permits (conformance only)."""
    return frozenset(p.name for p in taxonomy if label.permits(p))


@attrs.frozen(kw_only=True, eq=False)
class Record:
    """One template as a backend stores it. Compared by identity (it holds an array).

    Attributes:
        template_id: the template's id (32 lowercase hex digits).
        vector: the values as a read-only float32 array.
        label: the template's label (backends store `label.to_bytes()` or columns
            from which they rebuild an equal label).
        permits: the names of the taxonomy purposes the label permits; a search for
            purpose *p* may return the record only if *p* is among them.
    """

    template_id: str
    vector: npt.NDArray[np.float32]
    label: Label
    permits: frozenset[str]

    @property
    def subject(self) -> str:
        """The label's subject."""
        return self.label.subject

    @property
    def consent(self) -> str | None:
        """The label's consent id."""
        return self.label.consent

    @property
    def expires_us(self) -> int:
        """The label's expiry in microseconds since the epoch."""
        return to_us(self.label.expires_at)

    def payload(self) -> dict[str, Any]:
        """The label as flat, engine-friendly fields (for payload/metadata engines)."""
        return {
            PAYLOAD_ID: self.template_id,
            PAYLOAD_SUBJECT: self.subject,
            PAYLOAD_CONSENT: self.consent or "",
            PAYLOAD_EXPIRES: self.expires_us,
            PAYLOAD_PERMITS: sorted(self.permits),
            PAYLOAD_LABEL: self.label.to_bytes().decode("utf-8"),
        }


@attrs.frozen
class Hit:
    """One result of a backend search: the id, the cosine score and the stored label."""

    template_id: str
    score: float
    label: Label


@attrs.frozen(kw_only=True)
class SearchFilter:
    """Which stored records a search may consider: filtered before ranking.

    A record matches iff `purpose` is in its `permits`, its expiry is after
    `now_us` (expired means `now >= expires_at`), and its consent id is not in
    `withdrawn_consents`.
    """

    purpose: str
    now_us: int
    withdrawn_consents: frozenset[str] = frozenset()

    def matches(self, record: Record) -> bool:
        """Whether *record* passes the filter (the reference semantics)."""
        return (
            self.purpose in record.permits
            and record.expires_us > self.now_us
            and (record.consent is None or record.consent not in self.withdrawn_consents)
        )


def unit(vector: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    """*vector* as float32 scaled to unit length (a zero vector stays zero)."""
    v = np.asarray(vector, dtype=np.float32)
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


def ids_of(records: Collection[Record]) -> list[str]:
    """The template ids of *records*."""
    return [r.template_id for r in records]
