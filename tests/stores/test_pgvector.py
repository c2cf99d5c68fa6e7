"""PgVectorBackend against a real PostgreSQL 18 + pgvector (the ``pg_uri`` fixture).

The contract runs twice: exact (no vector index) and approximate (HNSW with iterative
scans). Engine-specific tests: exactness against brute force at 1% permitted, HNSW
recall at 1% permitted with the index plan forced, erasure checked in the heap pages,
label and value round trips, atomic batches, and the end-to-end path through
GuardedStore.
"""

from __future__ import annotations

import hashlib
import importlib
import secrets
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt
import psycopg
import pytest

import purposeguard as pg
from purposeguard.stores import GuardedStore, Record, SearchFilter, VectorBackend
from purposeguard.stores._pgvector import PgVectorBackend
from purposeguard.stores._records import permitted_purposes, to_us

from .contract import BackendContract, cosine

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SEARCH_UNDER = "face.identification.closed_set_optin"
TAXONOMY = pg.Taxonomy.default()


def table_for(path: Path | str) -> str:
    """A table name unique to a test's temporary directory (stable across reopen)."""
    return "t_" + hashlib.sha1(str(path).encode()).hexdigest()[:24]  # noqa: S324


def fresh_table() -> str:
    return "t_" + secrets.token_hex(12)


# -- the contract ------------------------------------------------------------------------


class _PgContract(BackendContract):
    uri: str
    opened: list[PgVectorBackend]
    options: ClassVar[dict[str, Any]] = {}

    @pytest.fixture(autouse=True)
    def _server(self, pg_uri: str) -> Iterator[None]:
        self.uri = pg_uri
        self.opened = []
        yield
        # A failing test must not leak a connection (its ResourceWarning would be
        # blamed on whichever later test the garbage collector runs in).
        for b in self.opened:
            b.close()

    def make_backend(self, tmp_path: Path) -> VectorBackend:
        b = PgVectorBackend(self.uri, table=table_for(tmp_path), **self.options)
        self.opened.append(b)
        return b

    def reopen(self, backend: VectorBackend, tmp_path: Path) -> VectorBackend | None:
        backend.close()
        return self.make_backend(tmp_path)


class TestPgVectorExact(_PgContract):
    """The default: exact search, no vector index."""


class TestPgVectorHnsw(_PgContract):
    """The HNSW index with the exact short cut off and the planner made to take the
    index path: the contract on the approximate, post-filtering scan itself."""

    options: ClassVar[dict[str, Any]] = {
        "index": "hnsw",
        "exact_below": 0,
        "connect_kwargs": {"options": "-c enable_seqscan=off -c enable_bitmapscan=off"},
    }
    exact = False
    machine_examples = 8


# -- helpers ------------------------------------------------------------------------------


_PERMITS: dict[tuple[str, ...], frozenset[str]] = {}


def make_record(
    vec: npt.NDArray[Any],
    *,
    allowed: tuple[str, ...] = ("face.identification",),
    subject: str = "s",
    expires_at: datetime = T0 + timedelta(days=30),
    consent: str | None = None,
    **extra: Any,
) -> Record:
    label = pg.Label(
        allowed=allowed, subject=subject, expires_at=expires_at, consent=consent, **extra
    )
    permits = _PERMITS.get(allowed) if not extra else None
    if permits is None:
        permits = permitted_purposes(label, TAXONOMY)
        if not extra:
            _PERMITS[allowed] = permits
    v = np.asarray(vec, dtype=np.float32).copy()
    v.flags.writeable = False
    return Record(template_id=secrets.token_hex(16), vector=v, label=label, permits=permits)


def gallery(
    n: int, dim: int, share: float, seed: int = 0
) -> tuple[npt.NDArray[np.float32], list[Record]]:
    """*n* records; a *share* permit identification, some of which expired or rest on
    a consent the searches treat as withdrawn."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim)).astype(np.float32)
    permitted = rng.random(n) < share
    records = []
    for i in range(n):
        expired = i % 10 == 7
        records.append(
            make_record(
                x[i],
                allowed=("face.identification",) if permitted[i] else ("face.verification",),
                subject=f"s-{i % 101}",
                expires_at=T0 - timedelta(hours=1) if expired else T0 + timedelta(days=30),
                consent=None if i % 3 == 0 else f"c-{i % 4}",
            )
        )
    return x, records


FILTER = SearchFilter(
    purpose=SEARCH_UNDER, now_us=to_us(T0), withdrawn_consents=frozenset({"c-2"})
)


def brute_force(
    x: npt.NDArray[np.float32], records: list[Record], q: npt.NDArray[Any], k: int
) -> tuple[list[str], npt.NDArray[np.float64]]:
    scores = cosine(x, q)
    mask = np.array([FILTER.matches(r) for r in records])
    order = [i for i in np.argsort(-scores, kind="stable") if mask[i]]
    top = order[:k]
    return [records[i].template_id for i in top], scores[top]


def count_rows(uri: str, table: str, where: str = "TRUE", *params: Any) -> int:
    """Counted by a separate connection, not through the backend."""
    with psycopg.connect(uri, autocommit=True) as conn:
        stmt = psycopg.sql.SQL("SELECT count(*) FROM {t} WHERE {where}").format(
            t=psycopg.sql.Identifier(*table.split(".")), where=psycopg.sql.SQL(where)
        )
        row = conn.execute(stmt, params).fetchone()
        assert row is not None
        return int(row[0])


@pytest.fixture
def uri(pg_uri: str) -> str:
    return pg_uri


@pytest.fixture
def backend(uri: str) -> Iterator[PgVectorBackend]:
    b = PgVectorBackend(uri, table=fresh_table())
    yield b
    b.close()


# -- exactness and recall -------------------------------------------------------------------


def test_exact_search_is_the_brute_force_top_k_at_1_percent(backend: PgVectorBackend) -> None:
    x, records = gallery(5000, 64, 0.01, seed=3)
    backend.add(records)
    matching = sum(FILTER.matches(r) for r in records)
    assert 10 < matching < 0.01 * len(records)  # expired and withdrawn rows drop out too
    rng = np.random.default_rng(4)
    for _ in range(20):
        q = rng.standard_normal(64).astype(np.float32)
        hits = backend.search(q, 10, FILTER)
        want, scores = brute_force(x, records, q, 10)
        got = [h.template_id for h in hits]
        assert np.allclose([h.score for h in hits], scores, atol=1e-5)
        assert set(got) == set(want)
        assert got == want or np.min(np.abs(np.diff(scores))) < 1e-5


def test_exact_search_returns_every_match_when_fewer_than_k(backend: PgVectorBackend) -> None:
    x, records = gallery(2000, 16, 0.002, seed=5)
    backend.add(records)
    q = np.ones(16, np.float32)
    want, _ = brute_force(x, records, q, 50)
    assert 0 < len(want) < 50
    assert [h.template_id for h in backend.search(q, 50, FILTER)] == want
    nobody = SearchFilter(purpose="face.public_security", now_us=to_us(T0))
    assert backend.search(q, 10, nobody) == []


def _force_index(uri: str, table: str, **kw: Any) -> PgVectorBackend:
    # No exact short cut, sequential and bitmap scans off: the planner must take the
    # HNSW index path, the one where pgvector filters after the index scan.
    return PgVectorBackend(
        uri,
        table=table,
        index="hnsw",
        exact_below=0,
        connect_kwargs={"options": "-c enable_seqscan=off -c enable_bitmapscan=off"},
        **kw,
    )


def test_hnsw_recall_at_1_percent_with_the_index_plan(uri: str) -> None:
    table = fresh_table()
    x, records = gallery(5000, 64, 0.01, seed=7)
    loader = PgVectorBackend(uri, table=table, index="hnsw")
    loader.add(records)
    loader.close()
    backend = _force_index(uri, table)
    try:
        q = np.random.default_rng(0).standard_normal(64).astype(np.float32)
        with psycopg.connect(
            uri, autocommit=True, options="-c enable_seqscan=off -c enable_bitmapscan=off"
        ) as conn:
            plan = conn.execute(
                psycopg.sql.SQL(
                    "EXPLAIN SELECT id FROM {} WHERE permits @> ARRAY[%s] "
                    "ORDER BY embedding <=> %s::vector LIMIT 40"
                ).format(psycopg.sql.Identifier(table)),
                (SEARCH_UNDER, "[" + ",".join(map(str, q.tolist())) + "]"),
            ).fetchall()
        assert f"{table}_embedding_hnsw" in " ".join(r[0] for r in plan)

        allowed = {r.template_id for r in records if FILTER.matches(r)}
        rng = np.random.default_rng(8)
        recalls = []
        for _ in range(40):
            q = rng.standard_normal(64).astype(np.float32)
            hits = backend.search(q, 10, FILTER)
            want, _ = brute_force(x, records, q, 10)
            got = [h.template_id for h in hits]
            assert set(got) <= allowed, "an approximate search returned a filtered-out row"
            assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
            assert len(got) == 10
            recalls.append(len(set(got) & set(want)) / 10)
        recall = float(np.mean(recalls))
        assert recall >= 0.95, recall
    finally:
        backend.close()

    # With the default exact_below, so few matching rows are ranked exactly: the
    # brute-force answer, even on the index-only planner settings.
    shortcut = PgVectorBackend(
        uri,
        table=table,
        index="hnsw",
        connect_kwargs={"options": "-c enable_seqscan=off -c enable_bitmapscan=off"},
    )
    try:
        for _ in range(10):
            q = rng.standard_normal(64).astype(np.float32)
            want, scores = brute_force(x, records, q, 10)
            hits = shortcut.search(q, 10, FILTER)
            assert {h.template_id for h in hits} == set(want)
            assert np.allclose([h.score for h in hits], scores, atol=1e-5)
    finally:
        shortcut.close()


def test_hnsw_without_overfetch_still_never_returns_fewer_rows(uri: str) -> None:
    # overfetch=1 and a tiny ef_search: the index scan may stop short; the exact
    # fallback fills in, so every matching row is still found when there are few.
    table = fresh_table()
    x, records = gallery(3000, 32, 0.003, seed=9)
    backend = _force_index(uri, table, overfetch=1, ef_search=1)
    try:
        backend.add(records)
        q = np.ones(32, np.float32)
        want, _ = brute_force(x, records, q, 30)
        assert 0 < len(want) < 30
        assert [h.template_id for h in backend.search(q, 30, FILTER)] == want
    finally:
        backend.close()


# -- erasure ------------------------------------------------------------------------------


def _tuples_holding(uri: str, table: str, needle: str) -> tuple[int, int]:
    """(heap tuples whose data holds *needle*, raw pages whose bytes hold it), read
    with pageinspect below the MVCC layer: dead tuples count too."""
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pageinspect")
        t = psycopg.sql.Literal(table)
        pages = psycopg.sql.SQL(
            "generate_series(0, (pg_relation_size({t}) / current_setting('block_size')::int)"
            "::int - 1) AS b"
        ).format(t=t)
        n_tuples = conn.execute(
            psycopg.sql.SQL(
                "SELECT count(*) FROM {pages}, heap_page_items(get_raw_page({t}, b)) "
                "WHERE t_data IS NOT NULL AND position(convert_to(%s, 'UTF8') IN t_data) > 0"
            ).format(pages=pages, t=t),
            (needle,),
        ).fetchone()
        n_pages = conn.execute(
            psycopg.sql.SQL(
                "SELECT count(*) FROM {pages} "
                "WHERE position(convert_to(%s, 'UTF8') IN get_raw_page({t}, b)) > 0"
            ).format(pages=pages, t=t),
            (needle,),
        ).fetchone()
        assert n_tuples is not None
        assert n_pages is not None
        return int(n_tuples[0]), int(n_pages[0])


def test_erasure_deletes_the_rows(uri: str) -> None:
    table = fresh_table()
    backend = PgVectorBackend(uri, table=table, index="hnsw")
    try:
        _, records = gallery(300, 16, 1.0, seed=11)
        backend.add(records)
        gone = [r for r in records if r.subject == "s-3"]
        assert backend.delete_matching(subject="s-3") == len(gone) > 0
        assert count_rows(uri, table, "subject = %s", "s-3") == 0
        assert count_rows(uri, table) == 300 - len(gone)
        # vacuum_on_erase: the dead tuples are pruned from the heap, not just hidden.
        assert _tuples_holding(uri, table, gone[0].template_id)[0] == 0
        assert backend.fetch(gone[0].template_id) is None

        withdrawn = [r for r in records if r.consent == "c-1" and r.subject != "s-3"]
        assert backend.delete_matching(consent="c-1") == len(withdrawn)
        assert count_rows(uri, table, "consent = %s", "c-1") == 0
        expired = [
            r
            for r in records
            if r.label.expires_at <= T0 and r.subject != "s-3" and r.consent != "c-1"
        ]
        assert backend.delete_matching(expired_at_us=to_us(T0)) == len(expired)
        assert count_rows(uri, table, "expires_us <= %s", to_us(T0)) == 0
        some = [r.template_id for r in records[:20] if backend.fetch(r.template_id) is not None]
        assert backend.delete_ids([*some, "0" * 32, "not-an-id"]) == len(some)
        assert count_rows(uri, table, "id = ANY(%s)", some) == 0
        left = 300 - len(gone) - len(withdrawn) - len(expired) - len(some)
        assert backend.count() == count_rows(uri, table) == left
        # VACUUM FULL rewrites the table: no page holds the erased id at all.
        backend.vacuum(full=True)
        assert _tuples_holding(uri, table, gone[0].template_id) == (0, 0)
    finally:
        backend.close()
    again = PgVectorBackend(uri, table=table)
    assert again.fetch(gone[0].template_id) is None
    assert again.count() == left
    again.close()


def test_without_vacuum_the_rows_are_still_gone_from_every_query(uri: str) -> None:
    table = fresh_table()
    backend = PgVectorBackend(uri, table=table, vacuum_on_erase=False)
    try:
        x, records = gallery(100, 8, 1.0, seed=12)
        backend.add(records)
        victim = records[0]
        assert backend.delete_ids([victim.template_id]) == 1
        assert count_rows(uri, table, "id = %s", victim.template_id) == 0
        flt = SearchFilter(purpose=SEARCH_UNDER, now_us=to_us(T0) - 10**10)
        hits = backend.search(x[0], 100, flt)
        assert victim.template_id not in {h.template_id for h in hits}
        backend.vacuum()
        assert _tuples_holding(uri, table, victim.template_id)[0] == 0
    finally:
        backend.close()


# -- round trips -------------------------------------------------------------------------


def test_labels_and_values_round_trip_exactly(backend: PgVectorBackend) -> None:
    odd = np.array(
        [1e-45, -0.0, 3.4028235e38, 1.1754944e-38, 0.1, -7.3, 1 / 3, 65504.0],
        dtype=np.float32,
    )
    rec = make_record(
        odd,
        allowed=("face.identification", "face.verification.login"),
        subject="Zoë-李 'quoted' \\ back",
        consent="c-ü;DROP TABLE x",
        prohibited=("face.identification.realtime_remote",),
        jurisdictions=("gdpr", "pipl"),
        lineage=("restrict", "align"),
        collected_at=T0 - timedelta(microseconds=123457),
        expires_at=T0 + timedelta(days=3, microseconds=7),
    )
    plain = make_record(np.arange(1, 9, dtype=np.float32), consent=None)
    backend.add([rec, plain])
    back = backend.fetch(rec.template_id)
    assert back is not None
    assert back.label == rec.label
    assert back.label.to_bytes() == rec.label.to_bytes()
    assert back.permits == rec.permits
    assert back.vector.dtype == np.float32
    assert back.vector.tobytes() == odd.tobytes()  # bit for bit, -0.0 and subnormals too
    assert not back.vector.flags.writeable
    q = np.arange(1, 9, dtype=np.float32)
    hits = backend.search(q, 5, SearchFilter(purpose=SEARCH_UNDER, now_us=to_us(T0)))
    assert hits[0].template_id == plain.template_id
    assert hits[0].score == pytest.approx(1.0, abs=1e-6)
    assert {h.template_id: h.label for h in hits}[rec.template_id] == rec.label
    assert backend.fetch("0" * 32) is None
    assert backend.fetch("nonsense") is None
    assert backend.subjects() == 2


# -- atomic batches ------------------------------------------------------------------------


def test_a_batch_with_a_duplicate_writes_nothing(uri: str) -> None:
    table = fresh_table()
    backend = PgVectorBackend(uri, table=table)
    try:
        first = [make_record(np.full(8, i + 1.0)) for i in range(5)]
        # The very first batch fails: the table it would create is rolled back too.
        with pytest.raises(pg.InvalidTemplateError):
            backend.add([first[0], first[0]])
        assert backend.dim is None
        assert backend.count() == 0
        backend.add(first)
        fresh = make_record(np.full(8, 9.0))
        with pytest.raises(pg.InvalidTemplateError, match="already stored") as e:
            backend.add([fresh, first[2]])
        assert "9.0" not in str(e.value)
        assert backend.fetch(fresh.template_id) is None
        assert count_rows(uri, table) == 5
        with pytest.raises(pg.InvalidTemplateError, match="twice"):
            backend.add([fresh, fresh])
        with pytest.raises(pg.InvalidTemplateError, match="dimension"):
            backend.add([fresh, make_record(np.ones(9))])
        with pytest.raises(pg.InvalidTemplateError, match="NUL"):
            backend.add([fresh, make_record(np.ones(8), subject="a\x00b")])
        bad_id = Record(
            template_id="x" * 32, vector=fresh.vector, label=fresh.label, permits=fresh.permits
        )
        with pytest.raises(pg.InvalidTemplateError, match="hex"):
            backend.add([fresh, bad_id])
        assert count_rows(uri, table) == 5
        backend.add([fresh])
        assert count_rows(uri, table) == 6
    finally:
        backend.close()


def test_a_duplicate_committed_by_another_session_meanwhile_rolls_back(uri: str) -> None:
    # Another writer (another process in production) inserts the same id and commits
    # only after this batch passed its pre-check: the primary key catches it during the
    # COPY, and the whole batch rolls back.
    table = fresh_table()
    backend = PgVectorBackend(uri, table=table, dim=4)
    try:
        mine = make_record(np.full(4, 2.0))
        shared = make_record(np.ones(4))
        with psycopg.connect(uri) as other:  # not autocommit: the insert stays open
            other.execute(
                psycopg.sql.SQL(
                    "INSERT INTO {} (id, subject, expires_us, permits, label, embedding) "
                    "VALUES (%s, 'x', 0, '{{}}', '\\x00', '[1,1,1,1]')"
                ).format(psycopg.sql.Identifier(table)),
                (shared.template_id,),
            )
            timer = threading.Timer(0.5, other.commit)
            timer.start()
            try:
                with pytest.raises(pg.InvalidTemplateError, match="another session"):
                    backend.add([mine, shared])  # waits on the other's uncommitted key
            finally:
                timer.join()
        assert backend.fetch(mine.template_id) is None
        assert count_rows(uri, table) == 1
        # A later session sees it as stored and the pre-check reports it.
        with pytest.raises(pg.InvalidTemplateError, match="already stored"):
            backend.add([shared])
    finally:
        backend.close()


# -- end to end ----------------------------------------------------------------------------


@pytest.mark.parametrize("index", [None, "hnsw"])
def test_end_to_end_through_guarded_store(
    uri: str, guard: pg.Guard, clock: pg.FrozenClock, index: Literal["hnsw"] | None
) -> None:
    table = fresh_table()
    store = GuardedStore(PgVectorBackend(uri, table=table, index=index))
    rng = np.random.default_rng(21)
    x = rng.standard_normal((600, 32)).astype(np.float32)
    ts = [
        pg.FaceTemplate.wrap(
            x[i],
            subject=f"p-{i % 50}",
            purposes="face.identification" if i % 4 == 0 else "face.verification",
            ttl=timedelta(days=1 + i % 3),
            consent=f"k-{i % 7}",
        )
        for i in range(600)
    ]
    store.enrol_many(ts)
    assert len(store) == 600 == count_rows(uri, table)
    probe = pg.FaceTemplate.wrap(
        x[8], subject="probe", purposes="face.identification", ttl=timedelta(hours=1)
    )
    with pg.purpose(SEARCH_UNDER):
        got = store.search(probe, 5)
        assert got[0].template_id == ts[8].id
        assert got[0].score == pytest.approx(1.0, abs=1e-5)
        assert all(int(m.subject.split("-")[1]) % 2 == 0 for m in got)  # i % 4 == 0 rows
        with pytest.raises(pg.TemplateNotFoundError):
            store.get(ts[1].id)  # verification-only: invisible under identification
        assert store.get(ts[4].id).label == ts[4].label
    with pg.purpose("face.verification.login"), pytest.raises(pg.PurposeViolationError):
        store.search(probe, 5)

    assert store.erase_subject("p-8") == 12
    assert count_rows(uri, table, "subject = %s", "p-8") == 0
    with pg.purpose(SEARCH_UNDER):
        assert ts[8].id not in {m.template_id for m in store.search(probe, 5)}
    assert store.withdraw_consent("k-3") == sum(
        1 for i in range(600) if i % 7 == 3 and i % 50 != 8
    )
    clock.advance(timedelta(days=1))
    purged = store.purge_expired()
    assert purged == sum(1 for i in range(600) if i % 3 == 0 and i % 7 != 3 and i % 50 != 8)
    left = len(store)
    assert left == count_rows(uri, table)
    store.close()

    again = GuardedStore(PgVectorBackend(uri, table=table, index=index))
    assert len(again) == left
    assert again.stats() == {
        "backend": "pgvector",
        "templates": left,
        "subjects": 49,
        "dim": 32,
    }
    again.close()


def test_rows_altered_behind_its_back_fail_closed(backend: PgVectorBackend, uri: str) -> None:
    hidden = make_record(np.ones(8), allowed=("face.verification",))
    visible = make_record(np.full(8, 0.5))
    backend.add([hidden, visible])
    flt = SearchFilter(purpose=SEARCH_UNDER, now_us=to_us(T0))
    assert [h.template_id for h in backend.search(np.ones(8, np.float32), 5, flt)] == [
        visible.template_id
    ]
    t = psycopg.sql.Identifier(backend.table)
    with psycopg.connect(uri, autocommit=True) as conn:
        # Someone widens the permits column of a verification-only template by hand.
        conn.execute(
            psycopg.sql.SQL("UPDATE {} SET permits = permits || %s::text[] WHERE id = %s").format(
                t
            ),
            ([SEARCH_UNDER], hidden.template_id),
        )
        with pytest.raises(pg.IntegrityError, match="disagree"):
            backend.search(np.ones(8, np.float32), 5, flt)
        conn.execute(
            psycopg.sql.SQL("UPDATE {} SET label = %s WHERE id = %s").format(t),
            (b"{not a label", visible.template_id),
        )
    with pytest.raises(pg.IntegrityError, match="malformed label"):
        backend.fetch(visible.template_id)


# -- configuration and errors ----------------------------------------------------------------


def test_opening_checks_the_table(uri: str) -> None:
    table = fresh_table()
    PgVectorBackend(uri, table=table, dim=8).close()
    with pytest.raises(pg.PolicyError, match="8-d"):
        PgVectorBackend(uri, table=table, dim=16)
    reopened = PgVectorBackend(uri, table=table)
    assert reopened.dim == 8
    with pytest.raises(pg.InvalidTemplateError, match="dimension"):
        reopened.add([make_record(np.ones(4))])
    with pytest.raises(pg.InvalidTemplateError, match="dimension"):
        reopened.search(np.ones(4, np.float32), 3, FILTER)
    with pytest.raises(pg.InvalidTemplateError, match="zero"):
        reopened.search(np.zeros(8, np.float32), 3, FILTER)
    reopened.close()
    with pytest.raises(pg.PolicyError, match="closed"):
        reopened.count()

    other = fresh_table()
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute(
            psycopg.sql.SQL("CREATE TABLE {} (id text, embedding vector(3))").format(
                psycopg.sql.Identifier(other)
            )
        )
    with pytest.raises(pg.PolicyError, match="not a purposeguard table"):
        PgVectorBackend(uri, table=other)
    for bad in ("bad name", "a.b.c", "x;drop", ""):
        with pytest.raises(pg.PolicyError):
            PgVectorBackend(uri, table=bad)
    with pytest.raises(pg.PolicyError):
        PgVectorBackend(uri, table=fresh_table(), index="ivf")  # type: ignore[arg-type]
    with pytest.raises(pg.PolicyError, match="hnsw_ef_construction"):
        PgVectorBackend(uri, table=fresh_table(), index="hnsw", hnsw_m=48)
    with pytest.raises(pg.PolicyError, match="2000"):
        PgVectorBackend(uri, table=fresh_table(), index="hnsw", dim=4096)


def test_a_supplied_connection_must_autocommit_and_stays_open(uri: str) -> None:
    with psycopg.connect(uri) as conn, pytest.raises(pg.PolicyError, match="autocommit"):
        PgVectorBackend(connection=conn)
    with psycopg.connect(uri, autocommit=True) as conn:
        with pytest.raises(pg.PolicyError, match="either"):
            PgVectorBackend(uri, connection=conn)
        backend = PgVectorBackend(connection=conn, table=fresh_table(), dim=4)
        backend.add([make_record(np.ones(4))])
        backend.close()
        assert not conn.closed
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_a_schema_qualified_table(uri: str) -> None:
    schema = "s_" + secrets.token_hex(6)
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("CREATE SCHEMA {}").format(psycopg.sql.Identifier(schema)))
    backend = PgVectorBackend(uri, table=f"{schema}.templates")
    try:
        backend.add([make_record(np.ones(4))])
        assert backend.count() == 1
        assert count_rows(uri, f"{schema}.templates") == 1
    finally:
        backend.close()


def test_an_owned_connection_that_breaks_is_reopened(uri: str) -> None:
    backend = PgVectorBackend(uri, table=fresh_table(), dim=4)
    try:
        backend.add([make_record(np.ones(4))])
        pid = backend._conn.info.backend_pid
        with psycopg.connect(uri, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(psycopg.OperationalError):
            backend.count()
        assert backend.count() == 1
    finally:
        backend.close()


def test_the_module_imports_without_psycopg(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    monkeypatch.delitem(sys.modules, "purposeguard.stores._pgvector")
    module = importlib.import_module("purposeguard.stores._pgvector")
    with pytest.raises(ImportError, match=r"pip install 'purposeguard\[pgvector\]'"):
        module.PgVectorBackend("postgresql://nowhere")
