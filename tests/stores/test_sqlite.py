"""SQLiteBackend: the contract, plus durability, erasure on disk, sharing and corruption."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt
import pytest

import purposeguard as pg
from purposeguard._taxonomy import Taxonomy
from purposeguard.stores import GuardedStore, SearchFilter, SQLiteBackend, VectorBackend
from purposeguard.stores._records import Record, permitted_purposes, to_us

from .contract import DIM, BackendContract, cosine

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TAXONOMY = Taxonomy.default()


class TestSQLiteBackend(BackendContract):
    def make_backend(self, tmp_path: Path) -> VectorBackend:
        return SQLiteBackend(tmp_path / "store.db")

    def reopen(self, backend: VectorBackend, tmp_path: Path) -> VectorBackend | None:
        backend.close()
        return SQLiteBackend(tmp_path / "store.db")


# -- helpers ----------------------------------------------------------------------------


def record(
    vector: npt.NDArray[Any],
    *,
    subject: str = "s",
    purposes: Any = "face.identification",
    consent: str | None = None,
    expires: timedelta = timedelta(days=1),
    tid: str | None = None,
) -> Record:
    label = pg.Label(
        allowed=purposes,
        subject=subject,
        expires_at=T0 + expires,
        collected_at=T0,
        consent=consent,
        jurisdictions=["gdpr"],
    )
    return Record(
        template_id=tid if tid is not None else os.urandom(16).hex(),
        vector=np.asarray(vector, np.float32),
        label=label,
        permits=permitted_purposes(label, TAXONOMY),
    )


def ident(now: datetime = T0) -> SearchFilter:
    return SearchFilter(purpose="face.identification", now_us=to_us(now))


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "store.db"


@pytest.fixture
def backend(db: Path) -> Iterator[SQLiteBackend]:
    b = SQLiteBackend(db)
    yield b
    b.close()


# -- the file ---------------------------------------------------------------------------


def test_exported_from_the_core_without_an_extra() -> None:
    import purposeguard.stores as stores
    from purposeguard.stores import _sqlite

    assert stores.SQLiteBackend is _sqlite.SQLiteBackend
    assert "SQLiteBackend" in stores.__all__
    assert isinstance(stores.SQLiteBackend, type)


def test_pragmas_and_schema(backend: SQLiteBackend, db: Path) -> None:
    conn = backend._conn
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA secure_delete").fetchone()[0] == 1
    raw = sqlite3.connect(db)
    try:
        cols = {r[1]: (r[2], r[3], r[5]) for r in raw.execute("PRAGMA table_info(pg_templates)")}
        assert cols["id"] == ("TEXT", 1, 1)
        assert cols["label"] == ("BLOB", 1, 0)
        assert cols["vector"] == ("BLOB", 1, 0)
        assert cols["expires_us"][0] == "INTEGER"
        indexed = {
            r[0]
            for r in raw.execute(
                "SELECT name FROM sqlite_master WHERE type='index' AND tbl_name='pg_templates'"
            )
        }
        assert {
            "pg_templates_subject",
            "pg_templates_consent",
            "pg_templates_expires",
        } <= indexed
        meta = dict(raw.execute("SELECT key, value FROM pg_meta").fetchall())
        assert meta["schema"] == "1"
        assert meta["dim"] is None
    finally:
        raw.close()
    backend.add([record(np.ones(DIM))])
    raw = sqlite3.connect(db)
    try:
        meta = dict(raw.execute("SELECT key, value FROM pg_meta").fetchall())
        assert meta["dim"] == str(DIM)
    finally:
        raw.close()


def test_persistence_across_reopen(db: Path) -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((300, DIM)).astype(np.float32)
    recs = [
        record(
            x[i],
            subject=f"s{i % 13}",
            consent=None if i % 4 == 0 else f"c{i % 3}",
            purposes=["face.identification", "face.verification"]
            if i % 2
            else "face.verification",
            expires=timedelta(days=1 + i % 9),
        )
        for i in range(300)
    ]
    first = SQLiteBackend(db)
    first.add(recs[:100])
    for r in recs[100:]:
        first.add([r])
    first.close()

    again = SQLiteBackend(db)
    try:
        assert again.dim == DIM
        assert again.count() == 300
        assert again.subjects() == 13
        for r in recs:
            back = again.fetch(r.template_id)
            assert back is not None
            assert back.label == r.label
            assert back.label.to_bytes() == r.label.to_bytes()
            assert back.permits == r.permits
            assert back.vector.dtype == np.float32
            assert np.array_equal(back.vector, r.vector)
        # Search over the reloaded cache is the exact filtered top-k with stored labels.
        q = rng.standard_normal(DIM).astype(np.float32)
        hits = again.search(q, 7, ident())
        scores = cosine(x, q)
        ok = [i for i in np.argsort(-scores) if "face.identification" in recs[i].permits][:7]
        assert [h.template_id for h in hits] == [recs[i].template_id for i in ok]
        by_id = {r.template_id: r for r in recs}
        for h in hits:
            assert h.label == by_id[h.template_id].label
    finally:
        again.close()


def test_vectors_are_stored_as_float32_and_fetched_unnormalised(backend: SQLiteBackend) -> None:
    v = np.array([3.0, -4.0, 1e-3] + [0.5] * (DIM - 3), dtype=np.float64)
    r = record(v)
    backend.add([r])
    back = backend.fetch(r.template_id)
    assert back is not None
    assert np.array_equal(back.vector, v.astype(np.float32))


def test_search_is_exact_when_few_match(backend: SQLiteBackend) -> None:
    rng = np.random.default_rng(5)
    n = 5000
    x = rng.standard_normal((n, DIM)).astype(np.float32)
    allowed = rng.random(n) < 0.005
    allowed[:3] = True
    recs = [
        record(x[i], purposes="face.identification" if allowed[i] else "face.verification")
        for i in range(n)
    ]
    backend.add(recs)
    for _ in range(5):
        q = rng.standard_normal(DIM).astype(np.float32)
        hits = backend.search(q, 10, ident())
        scores = cosine(x, q)
        want = [i for i in np.argsort(-scores) if allowed[i]][:10]
        assert [h.template_id for h in hits] == [recs[i].template_id for i in want]
        assert np.allclose([h.score for h in hits], scores[want], atol=1e-5)


def test_withdrawn_consents_are_filtered(backend: SQLiteBackend) -> None:
    a = record(np.ones(DIM), consent="c-a")
    b = record(np.ones(DIM), consent="c-b")
    backend.add([a, b])
    flt = SearchFilter(
        purpose="face.identification", now_us=to_us(T0), withdrawn_consents=frozenset({"c-a"})
    )
    assert [h.template_id for h in backend.search(np.ones(DIM, np.float32), 5, flt)] == [
        b.template_id
    ]


# -- atomic, validated writes ---------------------------------------------------------


def test_bad_batches_write_nothing(backend: SQLiteBackend, db: Path) -> None:
    good = record(np.ones(DIM))
    backend.add([good])
    cases = [
        [record(np.ones(DIM)), record(np.ones(DIM + 1))],
        [record(np.ones(DIM)), good],
        [record(np.ones(DIM), tid="a" * 32), record(np.ones(DIM), tid="a" * 32)],
        [record(np.ones(DIM), tid="A" * 32)],
        [record(np.ones(DIM), tid="xyz")],
        [record(np.full(DIM, np.inf))],
    ]
    overflow = record(np.ones(DIM))
    cases.append([attrs.evolve(overflow, vector=np.full(DIM, 1e39))])  # not a float32
    for batch in cases:
        with pytest.raises(pg.InvalidTemplateError) as e:
            backend.add(batch)
        assert "inf" not in str(e.value)
    assert backend.count() == 1
    backend.close()
    again = SQLiteBackend(db)
    assert again.count() == 1
    assert again.fetch(good.template_id) is not None
    again.close()


def test_dimension_is_fixed_by_the_file(db: Path) -> None:
    a = SQLiteBackend(db)
    b = SQLiteBackend(db)
    try:
        assert a.dim is None
        a.add([record(np.ones(DIM))])
        assert b.dim == DIM
        with pytest.raises(pg.InvalidTemplateError, match="dimension"):
            b.add([record(np.ones(DIM * 2))])
        # Erasing everything does not unfix it.
        a.delete_matching(subject="s")
        assert b.count() == 0
        assert b.dim == DIM
        with pytest.raises(pg.InvalidTemplateError):
            a.add([record(np.ones(DIM + 1))])
    finally:
        a.close()
        b.close()


# -- erasure ----------------------------------------------------------------------------


def _fragments(v: npt.NDArray[np.float32]) -> list[bytes]:
    """16-byte pieces of a vector's stored bytes, from its start, middle and end."""
    raw = v.astype("<f4").tobytes()
    return [raw[o : o + 16] for o in range(0, len(raw) - 15, 16)]


def _files(db: Path) -> bytes:
    out = b""
    for suffix in ("", "-wal", "-journal"):
        p = Path(str(db) + suffix)
        if p.exists():
            out += p.read_bytes()
    return out


def test_erasure_leaves_no_bytes_in_the_file_or_the_log(guard: pg.Guard, db: Path) -> None:
    backend = SQLiteBackend(db)
    store = GuardedStore(backend)
    rng = np.random.default_rng(11)
    x = rng.standard_normal((600, 128)).astype(np.float32)
    ts = [
        pg.FaceTemplate.wrap(
            x[i],
            subject="victim" if i % 50 == 7 else f"s{i % 40}",
            purposes="face.identification",
            ttl=timedelta(days=30),
            consent=f"c{i % 6}",
        )
        for i in range(600)
    ]
    # Enrol in batches and one at a time, so the rows are spread over rebalanced pages.
    store.enrol_many(ts[:300])
    for t in ts[300:]:
        store.enrol(t)
    victims = [i for i in range(600) if i % 50 == 7]
    blob = _files(db)
    assert all(any(f in blob for f in _fragments(x[i])) for i in victims)  # the probe works

    assert store.erase_subject("victim") == len(victims)
    blob = _files(db)
    assert Path(str(db) + "-wal").stat().st_size == 0  # checkpointed and truncated
    for i in victims:
        for f in _fragments(x[i]):
            assert f not in blob, f"bytes of erased template {i} remain on disk"
    # Consent withdrawal too.
    withdrawn = [i for i in range(600) if i % 6 == 2 and i % 50 != 7]
    assert store.withdraw_consent("c2") == len(withdrawn)
    blob = _files(db)
    for i in withdrawn:
        assert not any(f in blob for f in _fragments(x[i]))
    survivors = [i for i in range(600) if i % 50 != 7 and i % 6 != 2]
    assert all(any(f in blob for f in _fragments(x[i])) for i in survivors[:20])
    store.close()

    again = SQLiteBackend(db)
    try:
        assert again.count() == len(survivors)
        for i in victims + withdrawn:
            assert again.fetch(ts[i].id) is None
        hits = again.search(x[victims[0]], 600, ident())
        assert {h.template_id for h in hits} == {ts[i].id for i in survivors}
    finally:
        again.close()


def test_purge_expired_survives_reopen(db: Path) -> None:
    b = SQLiteBackend(db)
    short = [record(np.full(DIM, i + 1.0), expires=timedelta(hours=1)) for i in range(5)]
    long = [record(np.full(DIM, -i - 1.0), expires=timedelta(days=9)) for i in range(3)]
    b.add(short + long)
    assert b.delete_matching(expired_at_us=to_us(T0 + timedelta(hours=1))) == 5
    assert b.delete_ids([short[0].template_id, long[0].template_id, "nope"]) == 1
    b.close()
    again = SQLiteBackend(db)
    assert sorted(again._cache.ids()) == sorted(r.template_id for r in long[1:])
    assert again.count() == 2
    again.close()


def pending(b: SQLiteBackend) -> bool:
    return b._checkpoint_due


def test_a_reader_holding_the_log_delays_the_checkpoint_not_the_erasure(db: Path) -> None:
    b = SQLiteBackend(db)
    r = record(np.full(DIM, 0.25))
    b.add([r])
    reader = sqlite3.connect(db)
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT COUNT(*) FROM pg_templates").fetchone()  # holds a snapshot
        b.add([record(np.full(DIM, 0.5))])  # a frame the reader's snapshot predates
        assert b.delete_ids([r.template_id]) == 1
        assert b.fetch(r.template_id) is None
        assert pending(b)
        reader.execute("COMMIT")
    finally:
        reader.close()
    assert b.checkpoint()
    assert not pending(b)
    assert Path(str(db) + "-wal").stat().st_size == 0
    b.close()


# -- several connections -------------------------------------------------------------------


def test_a_second_connection_sees_the_first_ones_writes(db: Path) -> None:
    a = SQLiteBackend(db)
    b = SQLiteBackend(db)
    try:
        rng = np.random.default_rng(2)
        x = rng.standard_normal((50, DIM)).astype(np.float32)
        recs = [record(x[i], subject=f"s{i % 5}") for i in range(50)]
        a.add(recs[:30])
        assert b.count() == 30
        assert b.dim == DIM
        hits = b.search(x[3], 1, ident())
        assert hits[0].template_id == recs[3].template_id
        b.add(recs[30:])
        assert a.count() == 50
        assert a.search(x[40], 1, ident())[0].template_id == recs[40].template_id
        # Deletions by the other connection reach the cache too (incremental sync).
        assert b.delete_matching(subject="s0") == 10
        assert a.count() == 40
        assert a.subjects() == 4
        assert all(h.label.subject != "s0" for h in a.search(x[0], 50, ident()))
        back = a.fetch(recs[1].template_id)
        assert back is not None
        assert back.label == recs[1].label
        with pytest.raises(pg.InvalidTemplateError):
            a.add([recs[1]])  # stored by the other connection
        assert a.fetch(recs[0].template_id) is None
    finally:
        a.close()
        b.close()


def test_the_cache_follows_another_process(db: Path) -> None:
    a = SQLiteBackend(db)
    a.add([record(np.ones(DIM), subject="mine")])
    code = textwrap.dedent(
        f"""
        import os
        from datetime import UTC, datetime, timedelta
        import numpy as np
        import purposeguard as pg
        from purposeguard._taxonomy import Taxonomy
        from purposeguard.stores import SQLiteBackend
        from purposeguard.stores._records import Record, permitted_purposes
        b = SQLiteBackend({str(db)!r})
        lab = pg.Label(allowed="face.identification", subject="theirs",
                       expires_at=datetime(2027, 1, 1, tzinfo=UTC))
        b.add([Record(template_id=os.urandom(16).hex(), vector=np.full({DIM}, -1.0, np.float32),
                      label=lab, permits=permitted_purposes(lab, Taxonomy.default()))])
        assert b.delete_matching(subject="mine") == 1
        b.close()
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)  # noqa: S603 - our code
    try:
        hits = a.search(np.ones(DIM, np.float32), 5, ident())
        assert [h.label.subject for h in hits] == ["theirs"]
        assert a.count() == 1
    finally:
        a.close()


# -- SIGKILL in the middle of a stream of enrolments --------------------------------------

_ENROLLER = """
import sys
from datetime import UTC, datetime, timedelta
import numpy as np
import purposeguard as pg
from purposeguard.stores import GuardedStore, SQLiteBackend

guard = pg.Guard(clock=pg.FrozenClock(datetime(2026, 1, 1, tzinfo=UTC)))
rng = np.random.default_rng(int(sys.argv[2]))
with pg.using(guard):
    store = GuardedStore(SQLiteBackend(sys.argv[1]))
    batch = int(sys.argv[3])
    i = 0
    while True:
        ts = [
            pg.FaceTemplate.wrap(
                rng.standard_normal(256), subject=f"s{(i + j) % 17}",
                purposes="face.identification", ttl=timedelta(days=1 + i % 5),
                consent=f"c{i % 3}",
            )
            for j in range(batch)
        ]
        ids = [store.enrol(ts[0])] if batch == 1 else store.enrol_many(ts)
        for tid in ids:
            print(tid)
        sys.stdout.flush()
        i += batch
"""


@pytest.mark.parametrize(("seed", "batch"), [(0, 1), (1, 1), (2, 1), (3, 40)])
def test_sigkill_mid_stream_loses_no_committed_template(
    tmp_path: Path, seed: int, batch: int
) -> None:
    db = tmp_path / "killed.db"
    proc = subprocess.Popen(  # noqa: S603 - runs our own script with this interpreter
        [sys.executable, "-c", _ENROLLER, str(db), str(seed), str(batch)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    printed: list[str] = []
    try:
        target = 40 + 25 * seed if batch == 1 else 10 * batch
        while len(printed) < target:
            line = proc.stdout.readline()
            if not line:
                break  # died: reported below
            printed.append(line.strip())
        time.sleep(0.001 * seed)  # land the kill at different points of the next enrol
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        rest, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, f"the enroller died: {err}"
    # A line cut off by the kill was never a completed print; whole lines were.
    printed += [x for x in rest.splitlines() if len(x) == 32]

    raw = sqlite3.connect(db)
    try:
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = raw.execute("SELECT id, label, vector FROM pg_templates").fetchall()
    finally:
        raw.close()
    stored = {r[0]: r for r in rows}
    assert set(printed) <= set(stored)
    # At most the batch committed but not yet printed; batches are all or nothing.
    assert len(stored) - len(printed) <= batch
    assert len(stored) % batch == 0
    for _tid, label, vector in rows:
        assert label is not None
        assert vector is not None
        pg.Label.from_bytes(label)
        assert len(vector) == 256 * 4

    again = SQLiteBackend(db)
    try:
        assert again.count() == len(stored)
        for tid in printed:
            back = again.fetch(tid)
            assert back is not None
            assert back.label.subject.startswith("s")
            assert back.vector.shape == (256,)
    finally:
        again.close()


# -- threads ------------------------------------------------------------------------------


def test_threads_enrol_erase_and_search_through_a_guarded_store(guard: pg.Guard, db: Path) -> None:
    store = GuardedStore(SQLiteBackend(db), guard=guard)
    other = SQLiteBackend(db)  # a second connection writing at the same time
    errors: list[BaseException] = []
    enrolled: list[str] = []
    lock = threading.Lock()

    def enrol(seed: int) -> None:
        try:
            with pg.using(guard):
                rng = np.random.default_rng(seed)
                for j in range(15):
                    ts = [
                        pg.FaceTemplate.wrap(
                            rng.standard_normal(DIM),
                            subject=f"t{seed}-{j % 3}",
                            purposes="face.identification",
                            ttl=timedelta(days=1),
                        )
                        for _ in range(1 + j % 4)
                    ]
                    ids = store.enrol_many(ts) if j % 2 else [store.enrol(t) for t in ts]
                    with lock:
                        enrolled.extend(ids)
        except BaseException as e:
            errors.append(e)

    def search(seed: int) -> None:
        try:
            with pg.using(guard), pg.purpose("face.identification"):
                rng = np.random.default_rng(seed)
                probe = pg.FaceTemplate.wrap(
                    rng.standard_normal(DIM),
                    subject="probe",
                    purposes="face.identification",
                    ttl=timedelta(hours=1),
                )
                for _ in range(40):
                    got = store.search(probe, 5)
                    scores = [m.score for m in got]
                    assert scores == sorted(scores, reverse=True)
                    assert all(not m.subject.startswith("x") for m in got)
        except BaseException as e:
            errors.append(e)

    def churn() -> None:
        try:
            for j in range(20):
                r = record(np.full(DIM, j + 1.0), subject="x", purposes="face.verification")
                other.add([r])
                other.delete_matching(subject="x")
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=enrol, args=(i,)) for i in range(3)]
    threads += [threading.Thread(target=search, args=(10 + i,)) for i in range(3)]
    threads.append(threading.Thread(target=churn))
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert len(store) == len(enrolled) == 3 * sum(1 + j % 4 for j in range(15))
    store.close()
    other.close()
    again = SQLiteBackend(db)
    assert sorted(again._cache.ids()) == sorted(enrolled)
    again.close()


# -- damaged and foreign files --------------------------------------------------------------


def test_not_a_database_is_an_integrity_error_naming_the_path(tmp_path: Path) -> None:
    p = tmp_path / "garbage.db"
    p.write_bytes(os.urandom(8192))
    with pytest.raises(pg.IntegrityError, match=r"garbage\.db"):
        SQLiteBackend(p)


def test_a_foreign_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    p = tmp_path / "app.db"
    conn = sqlite3.connect(p)
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO users (name) VALUES ('ada')")
    conn.commit()
    conn.close()
    before = p.read_bytes()
    with pytest.raises(pg.PolicyError, match=r"app\.db"):
        SQLiteBackend(p)
    assert p.read_bytes() == before
    assert not Path(str(p) + "-wal").exists()
    conn = sqlite3.connect(p)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    conn.close()


def test_another_schema_version_is_refused(db: Path) -> None:
    SQLiteBackend(db).close()
    conn = sqlite3.connect(db)
    conn.execute("UPDATE pg_meta SET value = '99' WHERE key = 'schema'")
    conn.commit()
    conn.close()
    with pytest.raises(pg.PolicyError, match="schema version"):
        SQLiteBackend(db)


def test_a_tampered_row_is_an_integrity_error(db: Path) -> None:
    b = SQLiteBackend(db)
    good = record(np.ones(DIM))
    bad = record(np.ones(DIM))
    b.add([good, bad])
    b.close()
    conn = sqlite3.connect(db)
    conn.execute("UPDATE pg_templates SET label = ? WHERE id = ?", (b"{nope", bad.template_id))
    conn.commit()
    conn.close()
    with pytest.raises(pg.IntegrityError, match=f"store.db.*{bad.template_id}"):
        SQLiteBackend(db)
    conn = sqlite3.connect(db)
    conn.execute(
        "UPDATE pg_templates SET label = ?, vector = ? WHERE id = ?",
        (bad.label.to_bytes(), b"\0" * 7, bad.template_id),
    )
    conn.commit()
    conn.close()
    with pytest.raises(pg.IntegrityError, match="float32"):
        SQLiteBackend(db)


def test_damaged_pages_are_an_integrity_error(db: Path) -> None:
    b = SQLiteBackend(db)
    rng = np.random.default_rng(0)
    b.add([record(rng.standard_normal(256)) for _ in range(200)])
    b.close()
    data = bytearray(db.read_bytes())
    page = 4096
    for off in range(2 * page, len(data), page):  # smash every b-tree page header
        data[off : off + 8] = b"\xff" * 8
    db.write_bytes(bytes(data))
    with pytest.raises(pg.IntegrityError, match=r"store\.db"):
        SQLiteBackend(db)


def test_a_directory_or_missing_parent_is_a_policy_error(tmp_path: Path) -> None:
    with pytest.raises(pg.PolicyError, match="directory"):
        SQLiteBackend(tmp_path)
    with pytest.raises(pg.PolicyError, match="missing"):
        SQLiteBackend(tmp_path / "missing" / "x.db")


def test_close_is_final_and_idempotent(db: Path) -> None:
    b = SQLiteBackend(db)
    b.add([record(np.ones(DIM))])
    b.close()
    b.close()
    for call in (
        b.count,
        lambda: b.search(np.ones(DIM, np.float32), 1, ident()),
        lambda: b.add([record(np.ones(DIM))]),
        lambda: b.delete_matching(subject="s"),
    ):
        with pytest.raises(pg.PolicyError, match="closed"):
            call()
    assert "closed" in repr(b)
    with SQLiteBackend(db) as again:
        assert again.count() == 1


def test_memory_database_for_tests() -> None:
    with SQLiteBackend(":memory:") as b:
        r = record(np.ones(DIM))
        b.add([r])
        assert [h.template_id for h in b.search(np.ones(DIM, np.float32), 3, ident())] == [
            r.template_id
        ]
        assert b.delete_ids([r.template_id]) == 1
        assert b.count() == 0


def test_opening_a_new_file_from_several_threads_at_once(tmp_path: Path) -> None:
    for round_ in range(5):
        path = tmp_path / f"race{round_}.db"
        opened: list[SQLiteBackend] = []
        errors: list[BaseException] = []

        def open_it(
            p: Path = path, out: list[SQLiteBackend] = opened, err: list[BaseException] = errors
        ) -> None:
            try:
                out.append(SQLiteBackend(p))
            except BaseException as e:
                err.append(e)

        threads = [threading.Thread(target=open_it) for _ in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert errors == []
        opened[0].add([record(np.ones(DIM))])
        assert all(b.count() == 1 for b in opened)
        for b in opened:
            b.close()
