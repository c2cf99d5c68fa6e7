"""Consent registries: the consent records, withdrawals, interactions and authorisations
that the rules read, in memory or in SQLite."""

from __future__ import annotations

import json
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from os import PathLike
from typing import Any, Final

from purposeguard._clock import ensure_aware
from purposeguard._errors import PolicyError
from purposeguard._purposes import Purpose, PurposeLike

from ._records import Authorisation, Consent

__all__ = ["ConsentRegistry", "SQLiteConsentRegistry"]

_FLUSH_EVERY: Final = 256  # buffered interactions written at once (SQLite)


def _now(at: datetime | None) -> datetime:
    return datetime.now(UTC) if at is None else ensure_aware(at, "at")


def _ts(at: datetime) -> str:
    # One fixed width, so that SQLite's text comparison orders instants correctly.
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def _id(value: object, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise PolicyError(f"{what} must be a non-empty string")
    return value


class ConsentRegistry:
    """The consent records of a deployment, kept in memory.

    Implements [`purposeguard.typing.ConsentLookup`][purposeguard.typing.ConsentLookup]: give it to
    `Guard(consents=...)`; a policy reads the records through the guard. An unknown
    id counts as withdrawn (fail closed). A consent id is registered once: adding a
    different record under a known id, or re-adding a withdrawn id, is refused.
    Withdrawal takes effect at once for every later decision.

    Besides consents it keeps what the rules need about subjects: the last
    interaction (BIPA, Colorado), requests to limit use (CCPA) and the
    authorisations of real-time remote identification (AI Act). Every method is
    thread-safe. When a record that a cached decision may rest on changes (a
    withdrawal, a limit, an authorisation revoked), the guards built with this
    registry forget their cached decisions.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._consents: dict[str, Consent] = {}
        self._withdrawn: dict[str, datetime] = {}
        self._interactions: dict[str, datetime] = {}
        self._limits: dict[str, datetime] = {}
        self._authorisations: dict[str, Authorisation] = {}
        self._revoked: dict[str, datetime] = {}
        self._listeners: list[weakref.WeakMethod[Callable[[], None]]] = []
        self._generation = 0

    # -- consents ----------------------------------------------------------------------

    def add(self, consent: Consent) -> None:
        """Register *consent*. Adding the same record again is a no-op.

        Raises:
            PolicyError: not a [`Consent`][purposeguard.policy.Consent], or its id is taken by a
                different record or was withdrawn.
        """
        if not isinstance(consent, Consent):
            raise PolicyError(f"add() takes a Consent, got {type(consent).__name__}")
        self._refresh()
        with self._lock:
            if consent.id in self._withdrawn:
                raise PolicyError(
                    f"consent {consent.id!r} was withdrawn; a new consent needs a new id"
                )
            old = self._consents.get(consent.id)
            if old is not None:
                if old == consent:
                    return
                raise PolicyError(
                    f"consent {consent.id!r} is already registered with different terms; "
                    "a consent record is never changed: register a new one"
                )
            self._store_consent(consent)
            self._consents[consent.id] = consent

    def get(self, consent_id: str) -> Consent | None:
        """The record with *consent_id* (withdrawn or not), or `None`."""
        self._refresh()
        return self._consents.get(consent_id)

    def withdraw(self, consent_id: str, *, at: datetime | None = None) -> bool:
        """Withdraw *consent_id*: every later decision on data resting on it is denied.

        An unknown id is recorded as withdrawn too (so it can never be registered
        later). Returns whether a registered, active consent was withdrawn. Erasing
        the templates is the store's job: `GuardedStore.withdraw_consent` does both.
        """
        cid = _id(consent_id, "consent_id")
        when = _now(at)
        with self._lock:
            if cid in self._withdrawn:
                return False
            self._store_withdrawal(cid, when)
            self._withdrawn[cid] = when
            known = cid in self._consents
        self._changed()
        return known

    def is_withdrawn(self, consent_id: str) -> bool:
        """Whether *consent_id* is withdrawn or unknown (fail closed)."""
        self._refresh()
        return consent_id in self._withdrawn or consent_id not in self._consents

    def withdrawn_at(self, consent_id: str) -> datetime | None:
        """When *consent_id* was withdrawn, or `None` if it was not."""
        self._refresh()
        return self._withdrawn.get(consent_id)

    def by_subject(self, subject: str) -> list[Consent]:
        """The consents of *subject*, oldest first."""
        self._refresh()
        with self._lock:
            found = [c for c in self._consents.values() if c.subject == subject]
        return sorted(found, key=lambda c: (c.given_at, c.id))

    def __iter__(self) -> Iterator[Consent]:
        self._refresh()
        with self._lock:
            return iter(sorted(self._consents.values(), key=lambda c: (c.given_at, c.id)))

    def __len__(self) -> int:
        self._refresh()
        return len(self._consents)

    def __contains__(self, consent_id: object) -> bool:
        self._refresh()
        return consent_id in self._consents

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__}: {len(self._consents)} consents, "
            f"{len(self._withdrawn)} withdrawn>"
        )

    # -- subjects ----------------------------------------------------------------------

    def record_interaction(self, subject: str, at: datetime) -> None:
        """Note that *subject* interacted at *at* (kept if later than the last one).

        The policy calls this after a granted collection or 1:1 comparison of the
        subject's template (see `Policy.after_access`).
        """
        when = ensure_aware(at, "at")
        with self._lock:
            last = self._interactions.get(subject)
            if last is None or when > last:
                self._interactions[subject] = when
                self._store_interaction(subject, when)

    def last_interaction(self, subject: str) -> datetime | None:
        """The last recorded interaction of *subject*, if any."""
        self._refresh()
        return self._interactions.get(subject)

    def request_limit(self, subject: str, *, at: datetime | None = None) -> None:
        """Record that *subject* exercised the right to limit the use of their
        sensitive data (CCPA 1798.121): from now on only the uses needed for the
        service they asked for (1:1 verification) are permitted under CA-01."""
        subj = _id(subject, "subject")
        when = _now(at)
        with self._lock:
            if subj in self._limits:
                return
            self._store_limit(subj, when)
            self._limits[subj] = when
        self._changed()

    def limit_requested(self, subject: str) -> bool:
        """Whether *subject* asked to limit the use of their sensitive data."""
        self._refresh()
        return subject in self._limits

    # -- authorisations ----------------------------------------------------------------

    def add_authorisation(self, authorisation: Authorisation) -> None:
        """Register an authorisation of real-time remote identification (AI-02).

        Raises:
            PolicyError: not an [`Authorisation`][purposeguard.policy.Authorisation], or its id is
                taken or revoked.
        """
        if not isinstance(authorisation, Authorisation):
            raise PolicyError(
                f"add_authorisation() takes an Authorisation, got {type(authorisation).__name__}"
            )
        with self._lock:
            if authorisation.id in self._authorisations or authorisation.id in self._revoked:
                raise PolicyError(f"authorisation {authorisation.id!r} is already registered")
            self._store_authorisation(authorisation)
            self._authorisations[authorisation.id] = authorisation
        self._changed()

    def revoke_authorisation(self, authorisation_id: str, *, at: datetime | None = None) -> bool:
        """Revoke (or record the refusal of) an authorisation: uses stop at once.

        Under the AI Act, data gathered under a refused authorisation must be deleted;
        that is the operator's job (`GuardedStore.erase_subject` and friends).
        Returns whether a registered, active authorisation was revoked.
        """
        aid = _id(authorisation_id, "authorisation_id")
        when = _now(at)
        with self._lock:
            if aid in self._revoked:
                return False
            self._store_revocation(aid, when)
            self._revoked[aid] = when
            known = aid in self._authorisations
        self._changed()
        return known

    def authorisation_for(self, purpose: PurposeLike, now: datetime) -> Authorisation | None:
        """An active, unrevoked authorisation covering *purpose* at *now*, if any."""
        self._refresh()
        p = purpose if isinstance(purpose, Purpose) else Purpose(purpose)
        with self._lock:
            for a in self._authorisations.values():
                if a.id not in self._revoked and a.covers(p, now):
                    return a
        return None

    # -- change notification -----------------------------------------------------------

    @property
    def generation(self) -> int:
        """A counter bumped whenever a record that decisions rest on changes."""
        return self._generation

    def on_change(self, callback: Callable[[], None]) -> None:
        """Call the bound method *callback* whenever
        [`generation`][purposeguard.policy.ConsentRegistry.generation] changes.

        Held weakly: a guard that registers its cache-clearing method does not live
        longer because of it.
        """
        with self._lock:
            self._listeners = [w for w in self._listeners if w() is not None]
            self._listeners.append(weakref.WeakMethod(callback))

    def _changed(self) -> None:
        with self._lock:
            self._generation += 1
            listeners = [w() for w in self._listeners]
        for cb in listeners:
            if cb is not None:
                cb()

    # -- persistence hooks (no-ops in memory) ------------------------------------------

    def _refresh(self) -> None:
        pass

    def _store_consent(self, consent: Consent) -> None:
        pass

    def _store_withdrawal(self, consent_id: str, at: datetime) -> None:
        pass

    def _store_interaction(self, subject: str, at: datetime) -> None:
        pass

    def _store_limit(self, subject: str, at: datetime) -> None:
        pass

    def _store_authorisation(self, authorisation: Authorisation) -> None:
        pass

    def _store_revocation(self, authorisation_id: str, at: datetime) -> None:
        pass

    def flush(self) -> None:
        """Make buffered records durable (a no-op in memory)."""

    def close(self) -> None:
        """Flush and release resources (a no-op in memory)."""


_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS consents (id TEXT PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS withdrawals (id TEXT PRIMARY KEY, at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS interactions (subject TEXT PRIMARY KEY, at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS limits (subject TEXT PRIMARY KEY, at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS authorisations (id TEXT PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS revocations (id TEXT PRIMARY KEY, at TEXT NOT NULL);
"""


def _consent_to_json(c: Consent) -> str:
    return json.dumps(
        {
            "id": c.id,
            "subject": c.subject,
            "purposes": sorted(p.name for p in c.purposes),
            "form": c.form.value,
            "given_at": c.given_at.isoformat(),
            "term_s": None if c.term is None else c.term.total_seconds(),
            "notice": c.notice,
            "guardian": c.guardian,
            "recipients": sorted(c.recipients),
            "transfer": c.transfer,
            "basis": c.basis.value,
            "ground": c.ground,
        },
        sort_keys=True,
    )


def _consent_from_json(text: str) -> Consent:
    d: dict[str, Any] = json.loads(text)
    term = d.pop("term_s")
    return Consent(
        term=None if term is None else timedelta(seconds=term),
        given_at=datetime.fromisoformat(d.pop("given_at")),
        **d,
    )


def _auth_to_json(a: Authorisation) -> str:
    return json.dumps(
        {
            "id": a.id,
            "purposes": sorted(p.name for p in a.purposes),
            "authority": a.authority,
            "granted_at": a.granted_at.isoformat(),
            "expires_at": a.expires_at.isoformat(),
            "urgent": a.urgent,
        },
        sort_keys=True,
    )


def _auth_from_json(text: str) -> Authorisation:
    d: dict[str, Any] = json.loads(text)
    return Authorisation(
        granted_at=datetime.fromisoformat(d.pop("granted_at")),
        expires_at=datetime.fromisoformat(d.pop("expires_at")),
        **d,
    )


class SQLiteConsentRegistry(ConsentRegistry):
    """A [`ConsentRegistry`][purposeguard.policy.ConsentRegistry] kept in an SQLite file, shared by
    processes.

    Consents, withdrawals, limits and authorisations are committed before the call
    returns. Interactions are buffered and written every 256 records and on
    [`flush`][purposeguard.policy.SQLiteConsentRegistry.flush] and
    [`close`][purposeguard.policy.SQLiteConsentRegistry.close]: losing some in a crash only makes
    BIPA's and Colorado's retention windows shorter (the safe direction). Every read first checks
    SQLite's `data_version` and reloads what other connections changed, so a withdrawal made by
    another process blocks uses here at the next decision.

    Args:
        path: the database file (created if missing).

    Raises:
        PolicyError: the file holds records that do not parse.
    """

    def __init__(self, path: str | PathLike[str]) -> None:
        super().__init__()
        self._path = str(path)
        self._db = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._pending: dict[str, datetime] = {}
        self._version = -1
        self._refresh()

    @property
    def generation(self) -> int:
        """A counter bumped whenever a record that decisions rest on changes (here or,
        through the shared file, in another process)."""
        self._refresh()
        return self._generation

    def _refresh(self) -> None:
        with self._lock:
            version = self._db.execute("PRAGMA data_version").fetchone()[0]
            if version == self._version:
                return
            self._version = version
            try:
                self._load()
            except (ValueError, TypeError, KeyError) as e:
                raise PolicyError(
                    f"{self._path}: a consent registry record does not parse ({type(e).__name__})"
                ) from None

    def _load(self) -> None:
        db = self._db
        before = (len(self._withdrawn), len(self._limits), len(self._revoked))
        for cid, text in db.execute("SELECT id, record FROM consents"):
            if cid not in self._consents:
                self._consents[cid] = _consent_from_json(text)
        for cid, at in db.execute("SELECT id, at FROM withdrawals"):
            self._withdrawn.setdefault(cid, datetime.fromisoformat(at))
        for subj, at in db.execute("SELECT subject, at FROM interactions"):
            when = datetime.fromisoformat(at)
            last = self._interactions.get(subj)
            if last is None or when > last:
                self._interactions[subj] = when
        for subj, at in db.execute("SELECT subject, at FROM limits"):
            self._limits.setdefault(subj, datetime.fromisoformat(at))
        for aid, text in db.execute("SELECT id, record FROM authorisations"):
            if aid not in self._authorisations:
                self._authorisations[aid] = _auth_from_json(text)
        for aid, at in db.execute("SELECT id, at FROM revocations"):
            self._revoked.setdefault(aid, datetime.fromisoformat(at))
        if (len(self._withdrawn), len(self._limits), len(self._revoked)) != before:
            self._generation += 1
            for w in self._listeners:
                cb = w()
                if cb is not None:
                    cb()

    def _write(self, sql: str, args: tuple[object, ...]) -> None:
        with self._lock:
            self._db.execute(sql, args)
            # Our own write changes nothing we have not applied already.
            self._version = self._db.execute("PRAGMA data_version").fetchone()[0]

    def _store_consent(self, consent: Consent) -> None:
        self._write(
            "INSERT OR IGNORE INTO consents (id, record) VALUES (?, ?)",
            (consent.id, _consent_to_json(consent)),
        )

    def _store_withdrawal(self, consent_id: str, at: datetime) -> None:
        self._write(
            "INSERT OR IGNORE INTO withdrawals (id, at) VALUES (?, ?)", (consent_id, _ts(at))
        )

    def _store_interaction(self, subject: str, at: datetime) -> None:
        self._pending[subject] = at
        if len(self._pending) >= _FLUSH_EVERY:
            self.flush()

    def _store_limit(self, subject: str, at: datetime) -> None:
        self._write("INSERT OR IGNORE INTO limits (subject, at) VALUES (?, ?)", (subject, _ts(at)))

    def _store_authorisation(self, authorisation: Authorisation) -> None:
        self._write(
            "INSERT INTO authorisations (id, record) VALUES (?, ?)",
            (authorisation.id, _auth_to_json(authorisation)),
        )

    def _store_revocation(self, authorisation_id: str, at: datetime) -> None:
        self._write(
            "INSERT OR IGNORE INTO revocations (id, at) VALUES (?, ?)",
            (authorisation_id, _ts(at)),
        )

    def flush(self) -> None:
        """Write buffered interactions."""
        with self._lock:
            pending, self._pending = self._pending, {}
            if not pending:
                return
            self._db.execute("BEGIN")
            try:
                for subject, at in pending.items():
                    self._db.execute(
                        "INSERT INTO interactions (subject, at) VALUES (?, ?) "
                        "ON CONFLICT(subject) DO UPDATE SET at = excluded.at "
                        "WHERE excluded.at > interactions.at",
                        (subject, _ts(at)),
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._version = self._db.execute("PRAGMA data_version").fetchone()[0]

    def close(self) -> None:
        """Flush and close the database."""
        with self._lock:
            self.flush()
            self._db.close()

    def __enter__(self) -> SQLiteConsentRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
