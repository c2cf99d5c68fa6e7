"""MilvusBackend against Milvus Lite (pymilvus + milvus-lite: a real Milvus gRPC server
on 127.0.0.1, in-process, over a local ``.db`` folder).

Each test opens its own ``.db`` (a server start costs ~0.3 s), so every test gets a
fresh collection and a reopen really reads the files again: closing the last backend
on a file stops its server. Beyond the shared contract: exactness at <= 1% permitted
checked directly at the backend, filter expressions that hostile subjects, consent
ids and purpose names cannot widen (checked against Milvus Lite's own parser and
against the engine), erasure that stays erased in a reopened store and in another
process, rollback of a batch that fails half-way, and the server code path (a plain
``http://`` URI, here the Lite server's own address).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings, strategies as st

import purposeguard as pg
from purposeguard._taxonomy import Taxonomy
from purposeguard.stores import GuardedStore, Record, SearchFilter, VectorBackend
from purposeguard.stores._records import permitted_purposes, to_us

from .contract import DIM, T0, BackendContract, cosine

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

from milvus_lite.search.filter import parse_expr
from milvus_lite.search.filter.ast import And, ArrayContainsOp, CmpOp, InOp, IntLit, StringLit
from milvus_lite.server_manager import server_manager_instance
from pymilvus import DataType, MilvusClient

from purposeguard.stores import _milvus
from purposeguard.stores._milvus import MilvusBackend, literal, search_expression

ID_PURPOSE = "face.identification"
TAX = Taxonomy.default()
NOW = to_us(T0)

# Strings that would widen an expression if they were pasted into it unescaped.
HOSTILE = [
    '" or 1==1 or "',
    '" or pg_subject != "',
    '\\" or 1==1 or \\"',
    "' or 1==1 or '",
    '") or (1==1',
    '"] or pg_consent not in ["',
    "a\\",
    "\\",
    '"',
    "x\nor 1==1",
    "x\r\n\t\x00\x0b",
    "é😀\u2028",
]


class TestMilvusBackend(BackendContract):
    """The shared contract on a Milvus Lite file; reopening stops and restarts its
    server, so the reopened store is read back from disk."""

    def make_backend(self, tmp_path: Path) -> VectorBackend:
        return MilvusBackend(tmp_path / "milvus.db")

    def reopen(self, backend: VectorBackend, tmp_path: Path) -> VectorBackend | None:
        backend.close()
        assert not _serving(tmp_path / "milvus.db")
        return MilvusBackend(tmp_path / "milvus.db")


# -- helpers -------------------------------------------------------------------------------


def record(
    vector: npt.NDArray[Any],
    *,
    subject: str = "s",
    purposes: Any = ID_PURPOSE,
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
        permits=permitted_purposes(label, TAX),
    )


def ident(now_us: int = NOW, withdrawn: frozenset[str] = frozenset()) -> SearchFilter:
    return SearchFilter(purpose=ID_PURPOSE, now_us=now_us, withdrawn_consents=withdrawn)


def probe(vec: npt.NDArray[Any]) -> pg.FaceTemplate:
    return pg.FaceTemplate.wrap(vec, subject="probe", purposes=ID_PURPOSE, ttl=timedelta(hours=1))


def same(a: Record | None, b: Record) -> bool:
    return (
        a is not None
        and a.template_id == b.template_id
        and a.label == b.label
        and a.permits == b.permits
        and np.array_equal(a.vector, b.vector)
    )


def _serving(path: Path) -> bool:
    return os.path.abspath(path) in server_manager_instance._servers


def _rows(rng: np.random.Generator, n: int) -> npt.NDArray[np.float32]:
    return rng.standard_normal((n, DIM)).astype(np.float32)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "m.db"


@pytest.fixture
def backend(db: Path) -> Iterator[MilvusBackend]:
    b = MilvusBackend(db)
    yield b
    b.close()


@pytest.fixture
def guard() -> Iterator[pg.Guard]:
    g = pg.Guard(clock=pg.FrozenClock(T0))
    with pg.using(g):
        yield g


# -- exactness -----------------------------------------------------------------------------


@pytest.mark.parametrize("share", [0.01, 0.005])
def test_exact_top_k_when_few_are_permitted(backend: MilvusBackend, share: float) -> None:
    rng = np.random.default_rng(7)
    n = 3000
    x = _rows(rng, n)
    permitted = rng.random(n) < share
    permitted[:3] = True
    recs = [
        record(
            x[i],
            subject=f"s-{i % 31}",
            purposes=ID_PURPOSE if permitted[i] else "face.verification",
            consent=f"c-{i % 3}",
        )
        for i in range(n)
    ]
    backend.add(recs)
    assert backend.exact
    for _ in range(4):
        q = rng.standard_normal(DIM).astype(np.float32)
        scores = cosine(x, q)
        for k in (1, 10, int(permitted.sum()) + 5):
            hits = backend.search(q, k, ident())
            order = [i for i in np.argsort(-scores) if permitted[i]][:k]
            assert [h.template_id for h in hits] == [recs[i].template_id for i in order]
            assert np.allclose([h.score for h in hits], scores[order], atol=1e-5)
            assert all(h.label == recs[i].label for h, i in zip(hits, order, strict=True))
        # withdrawn consents are filtered inside the engine too
        hits = backend.search(q, 10, ident(withdrawn=frozenset({"c-1"})))
        order = [i for i in np.argsort(-scores) if permitted[i] and i % 3 != 1][:10]
        assert [h.template_id for h in hits] == [recs[i].template_id for i in order]


def test_expiry_and_purpose_are_filtered_in_the_engine(backend: MilvusBackend) -> None:
    rng = np.random.default_rng(3)
    x = _rows(rng, 20)
    recs = [record(v) for v in x]
    backend.add(recs)
    expires = recs[0].expires_us
    assert len(backend.search(x[0], 50, ident(now_us=expires - 1))) == 20
    assert backend.search(x[0], 5, ident(now_us=expires)) == []
    assert backend.search(x[0], 5, SearchFilter(purpose="face.analytics", now_us=0)) == []
    # without consent: a withdrawn "" never hides anything
    assert len(backend.search(x[0], 50, ident(withdrawn=frozenset({""})))) == 20


def test_fetch_returns_the_original_values(backend: MilvusBackend) -> None:
    # Scores are cosine; the enrolled (not normalised) values come back bit for bit.
    x = (np.arange(DIM * 2, dtype=np.float32).reshape(2, DIM) + 1) * np.float32(3.7)
    x[1, 0] = np.float32(1e-39)  # a subnormal survives too
    recs = [record(v, consent="c") for v in x]
    backend.add(recs)
    hits = backend.search(x[0] * 2, 2, ident())
    assert hits[0].template_id == recs[0].template_id
    assert hits[0].score == pytest.approx(1.0, abs=1e-6)
    assert hits[1].score == pytest.approx(float(cosine(x[1:], x[0])[0]), abs=1e-6)
    for r in recs:
        back = backend.fetch(r.template_id)
        assert back is not None
        assert back.vector.dtype == np.float32
        assert np.array_equal(back.vector, r.vector)
        assert back.label == r.label
        assert back.permits == r.permits
    assert backend.fetch("f" * 32) is None
    assert backend.fetch("not an id") is None
    assert backend.fetch('" or 1==1 or "') is None


# -- atomicity -----------------------------------------------------------------------------


def test_add_is_atomic(backend: MilvusBackend) -> None:
    rng = np.random.default_rng(5)
    recs = [record(v) for v in _rows(rng, 6)]
    backend.add(recs[:3])
    with pytest.raises(pg.InvalidTemplateError, match="already stored"):
        backend.add(recs[3:] + recs[:1])
    with pytest.raises(pg.InvalidTemplateError, match="twice"):
        backend.add([recs[4], recs[4]])
    short = record(np.ones(DIM - 1))
    with pytest.raises(pg.InvalidTemplateError, match="dimension") as e:
        backend.add([recs[5], short])
    assert "1.0" not in str(e.value)
    with pytest.raises(pg.InvalidTemplateError, match="hex"):
        backend.add([recs[5], attrs.evolve(recs[4], template_id="A" * 32)])
    with pytest.raises(pg.InvalidTemplateError, match="hex"):
        backend.add([attrs.evolve(recs[4], template_id='" or 1==1 or "')])
    assert backend.count() == 3
    assert (
        backend.client.query(backend.collection, filter="", output_fields=["count(*)"])[0][
            "count(*)"
        ]
        == 3
    )
    backend.add(recs[3:])
    assert backend.count() == 6
    # Milvus would overwrite (Lite) or duplicate (server) a primary key: never reached.
    assert same(backend.fetch(recs[0].template_id), recs[0])


def test_a_batch_that_fails_half_way_is_rolled_back(db: Path) -> None:
    backend = MilvusBackend(db, batch_size=4)
    rng = np.random.default_rng(9)
    kept = [record(v) for v in _rows(rng, 3)]
    backend.add(kept)
    batch = [record(v) for v in _rows(rng, 10)]
    real_insert = backend.client.insert
    calls = []

    def failing_insert(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:  # the second chunk: the first one is already written
            raise ConnectionError("the connection dropped")
        return real_insert(*args, **kwargs)

    backend.client.insert = failing_insert
    try:
        with pytest.raises(ConnectionError):
            backend.add(batch)
    finally:
        backend.client.insert = real_insert
    assert len(calls) == 2
    assert backend.count() == 3
    assert all(backend.fetch(r.template_id) is None for r in batch)
    assert all(same(backend.fetch(r.template_id), r) for r in kept)
    backend.add(batch)  # nothing of it was left behind to collide with
    assert backend.count() == 13
    backend.close()


def test_a_first_batch_that_fails_leaves_no_collection(db: Path) -> None:
    backend = MilvusBackend(db, batch_size=2)
    real_insert = backend.client.insert
    calls = []

    def failing_insert(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise ConnectionError("the connection dropped")
        return real_insert(*args, **kwargs)

    backend.client.insert = failing_insert
    with pytest.raises(ConnectionError):
        backend.add([record(np.ones(DIM)) for _ in range(5)])
    backend.client.insert = real_insert
    assert repr(backend).endswith("dim=None>")
    assert not backend.client.has_collection(backend.collection)
    backend.add([record(np.ones(DIM + 3))])  # the failed batch fixed no dimension
    assert backend.dim == DIM + 3
    assert backend.count() == 1
    backend.close()


def test_labels_that_do_not_fit_are_refused(backend: MilvusBackend) -> None:
    with pytest.raises(pg.InvalidTemplateError, match="12287"):
        backend.add([record(np.ones(12288))])
    big = record(np.ones(DIM), subject="x" * 70_000)
    with pytest.raises(pg.InvalidTemplateError, match="does not fit"):
        backend.add([record(np.ones(DIM)), big])
    assert backend.count() == 0
    # Labels refuse text Milvus could not carry; erasing such a subject finds nothing.
    assert backend.delete_matching(subject="bad \ud800 surrogate") == 0
    assert backend.delete_matching(consent="bad \udfff") == 0


def test_paging_over_many_rows(backend: MilvusBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    # Small pages make every loop turn: id checks in chunks, the subject scan split
    # over id prefixes, deletions over several pages.
    monkeypatch.setattr(_milvus, "_PAGE", 7)
    rng = np.random.default_rng(12)
    recs = [
        record(v, subject=f"s-{i % 9}", consent=f"c-{i % 2}", expires=timedelta(days=1 + i % 3))
        for i, v in enumerate(_rows(rng, 120))
    ]
    backend.add(recs[:60])
    with pytest.raises(pg.InvalidTemplateError, match="already stored"):
        backend.add(recs[60:] + recs[50:51])
    backend.add(recs[60:])
    assert backend.subjects() == 9
    assert backend.delete_ids([r.template_id for r in recs[:20]] + ["0" * 32]) == 20
    assert backend.delete_matching(subject="s-1") == sum(1 for i in range(20, 120) if i % 9 == 1)
    left = [i for i in range(20, 120) if i % 9 != 1]
    assert backend.delete_matching(consent="c-0") == sum(1 for i in left if i % 2 == 0)
    left = [i for i in left if i % 2]
    cut = to_us(T0 + timedelta(days=2))
    assert backend.delete_matching(expired_at_us=cut) == sum(1 for i in left if i % 3 < 2)
    left = [i for i in left if i % 3 == 2]
    assert backend.count() == len(left)
    assert backend.subjects() == len({i % 9 for i in left})


# -- filter expressions: escaping, checked by Milvus Lite's own parser -----------------------

_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)


@settings(max_examples=300, deadline=None)
@given(_TEXT)
def test_a_literal_parses_back_to_its_value(value: str) -> None:
    tree = parse_expr(f"pg_subject == {literal(value)}")
    assert isinstance(tree, CmpOp)
    assert tree.op == "=="
    assert isinstance(tree.right, StringLit)
    assert tree.right.value == value


@settings(max_examples=200, deadline=None)
@given(_TEXT, st.lists(_TEXT, max_size=4), st.integers(-(2**62), 2**62))
def test_a_search_expression_keeps_its_shape(purpose: str, withdrawn: list[str], now: int) -> None:
    flt = SearchFilter(purpose=purpose, now_us=now, withdrawn_consents=frozenset(withdrawn))
    tree = parse_expr(search_expression(flt))
    assert isinstance(tree, And)
    live = sorted(c for c in set(withdrawn) if c)
    assert len(tree.operands) == (3 if live else 2)
    contains, expiry = tree.operands[:2]
    assert isinstance(contains, ArrayContainsOp)
    assert isinstance(contains.values, StringLit)
    assert contains.values.value == purpose
    assert isinstance(expiry, CmpOp)
    assert isinstance(expiry.right, IntLit)
    assert (expiry.op, expiry.right.value) == (">", now)
    if live:
        not_in = tree.operands[2]
        assert isinstance(not_in, InOp)
        assert not_in.negate
        assert [e.value for e in not_in.values.elements if isinstance(e, StringLit)] == live


# -- filter expressions: hostile values against the engine -----------------------------------


def test_a_hostile_subject_cannot_widen_an_erasure(backend: MilvusBackend) -> None:
    rng = np.random.default_rng(21)
    victims = [record(v, subject="alice") for v in _rows(rng, 5)]
    hostile = [
        record(v, subject=s) for v, s in zip(_rows(rng, len(HOSTILE)), HOSTILE, strict=True)
    ]
    backend.add(victims + hostile)
    total = len(victims) + len(hostile)
    # Subjects nobody has, which would match everything if pasted raw.
    for s in ['" or pg_id != "', '\\" or pg_id != \\"', '" || 1==1 || "', "alice\\"]:
        assert backend.delete_matching(subject=s) == 0
    assert backend.count() == total
    for i, s in enumerate(HOSTILE):
        assert backend.delete_matching(subject=s) == 1, repr(s)
        assert backend.count() == total - i - 1
        assert backend.fetch(hostile[i].template_id) is None
    assert backend.subjects() == 1
    assert all(same(backend.fetch(r.template_id), r) for r in victims)


def test_many_random_subjects_erase_exactly_themselves(backend: MilvusBackend) -> None:
    rng = np.random.default_rng(22)
    alphabet = [*"\"\\'\n\r\t\x00 orand=!()[]|&", "é", "😀", "\u2028", "in", "not"]
    subjects = sorted(
        {"".join(rng.choice(alphabet, size=int(rng.integers(1, 12)))) for _ in range(100)} - {""}
    )
    subjects = [s for s in subjects if s.strip()]  # a label's subject is not blank
    recs = [record(v, subject=s) for v, s in zip(_rows(rng, len(subjects)), subjects, strict=True)]
    backend.add(recs)
    assert backend.subjects() == len(subjects)
    for i, s in enumerate(subjects):
        assert backend.delete_matching(subject=s) == 1, repr(s)
        assert backend.count() == len(subjects) - i - 1


def test_a_hostile_consent_cannot_widen_a_withdrawal_or_a_search(
    backend: MilvusBackend,
) -> None:
    rng = np.random.default_rng(23)
    plain = [record(v, consent="c-ok") for v in _rows(rng, 4)]
    none = [record(v) for v in _rows(rng, 3)]
    hostile = [
        record(v, consent=c) for v, c in zip(_rows(rng, len(HOSTILE)), HOSTILE, strict=True)
    ]
    backend.add(plain + none + hostile)
    everyone = {r.template_id for r in plain + none + hostile}
    q = plain[0].vector
    # Withdrawing a hostile consent hides exactly its templates from a search...
    for i, c in enumerate(HOSTILE):
        got = {h.template_id for h in backend.search(q, 100, ident(withdrawn=frozenset({c})))}
        assert got == everyone - {hostile[i].template_id}, repr(c)
    got = {h.template_id for h in backend.search(q, 100, ident(withdrawn=frozenset(HOSTILE)))}
    assert got == {r.template_id for r in plain + none}
    # ...and a hostile purpose name matches nothing.
    for p in [f'{ID_PURPOSE}") or (1==1', f'{ID_PURPOSE}" or "1"=="1', '" or 1==1 or "']:
        assert backend.search(q, 100, SearchFilter(purpose=p, now_us=NOW)) == []
    # Withdrawing removes exactly the templates resting on that consent.
    assert backend.delete_matching(consent='" or pg_consent != "') == 0
    assert backend.delete_matching(consent="") == 0
    for i, c in enumerate(HOSTILE):
        assert backend.delete_matching(consent=c) == 1, repr(c)
        assert backend.fetch(hostile[i].template_id) is None
    assert backend.count() == len(plain) + len(none)


# -- erasure on disk -------------------------------------------------------------------------


def test_erasure_is_gone_after_reopening(db: Path) -> None:
    clock = pg.FrozenClock(T0)
    with pg.using(pg.Guard(clock=clock)):
        store = GuardedStore(MilvusBackend(db))
        rng = np.random.default_rng(31)
        x = _rows(rng, 60)
        ts = [
            pg.FaceTemplate.wrap(
                x[i],
                subject=f"s-{i % 4}",
                purposes=ID_PURPOSE,
                ttl=timedelta(days=1 + i % 2),
                consent=f"c-{i % 3}",
            )
            for i in range(60)
        ]
        ids = store.enrol_many(ts)
        assert store.erase_subject("s-0") == 15
        assert store.withdraw_consent("c-1") == sum(1 for i in range(60) if i % 3 == 1 and i % 4)
        clock.advance(timedelta(days=1))
        expired = sum(1 for i in range(60) if i % 2 == 0 and i % 4 and i % 3 != 1)
        left = len(store)
        assert store.purge_expired() == expired
        gone = {
            tid
            for i, tid in enumerate(ids)
            if i % 4 == 0 or i % 3 == 1 or (i % 2 == 0 and i % 4 and i % 3 != 1)
        }
        assert len(store) == left - expired == 60 - len(gone)
        store.close()
        assert not _serving(db)  # the server is stopped: the next open reads the files

        again = MilvusBackend(db)
        assert again.count() == 60 - len(gone)
        raw = again.client.query(
            again.collection,
            filter=f"pg_id in [{', '.join(literal(t) for t in sorted(gone))}]",
            output_fields=["pg_id"],
        )
        assert list(raw) == []
        for tid in gone:
            assert again.fetch(tid) is None
        with pg.purpose(ID_PURPOSE):
            got = GuardedStore(again).search(probe(x[0]), 60)
        assert len(got) == 60 - len(gone)
        assert not {m.template_id for m in got} & gone
        again.close()

    # Another process opening the file from disk sees the same; while it holds the
    # file, this process cannot open it.
    script = textwrap.dedent(
        f"""
        import sys
        from purposeguard.stores import MilvusBackend
        b = MilvusBackend({str(db)!r})
        gone = {sorted(gone)!r}
        print(b.count(), sum(b.fetch(t) is not None for t in gone), flush=True)
        sys.stdin.readline()
        b.close()
        """
    )
    with subprocess.Popen(  # noqa: S603
        [sys.executable, "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as child:
        try:
            assert child.stdout is not None
            assert child.stdin is not None
            assert child.stdout.readline().split() == [str(60 - len(gone)), "0"]
            with pytest.raises(pg.PolicyError, match="another process"):
                MilvusBackend(db)
            child.stdin.write("\n")
            child.stdin.flush()
            assert child.wait(timeout=60) == 0
        finally:
            if child.poll() is None:
                child.kill()
    assert not _serving(db)
    after = MilvusBackend(db)  # released again
    assert after.count() == 60 - len(gone)
    after.close()


# -- end to end ----------------------------------------------------------------------------


def test_end_to_end_through_a_guarded_store(db: Path, guard: pg.Guard) -> None:
    store = GuardedStore(MilvusBackend(db))
    rng = np.random.default_rng(41)
    x = _rows(rng, 30)
    names = ["ann", '" or 1==1 or "', "b\\"]
    ts = [
        pg.FaceTemplate.wrap(
            x[i],
            subject=names[i % 3],
            purposes=ID_PURPOSE if i % 5 else "face.verification",
            ttl=timedelta(days=3),
            consent=names[(i + 1) % 3],
        )
        for i in range(30)
    ]
    ids = store.enrol_many(ts)
    assert store.stats()["templates"] == 30
    assert store.stats()["subjects"] == 3
    assert store.stats()["dim"] == DIM
    with pg.purpose(ID_PURPOSE):
        got = store.search(probe(x[1]), 5)
        assert got[0].template_id == ids[1]
        assert got[0].subject == names[1]
        assert not {m.template_id for m in got} & set(ids[::5])
        assert np.array_equal(store.get(ids[1]).reveal(), x[1])
        with pytest.raises(pg.TemplateNotFoundError):
            store.get(ids[0])  # verification only
    with pg.purpose("face.verification.login"):
        assert store.get(ids[0]).label == ts[0].label
    assert store.erase_subject(names[1]) == 10
    assert store.withdraw_consent(names[1]) == 10  # consent of subjects[i % 3 == 0]
    assert len(store) == 10
    assert {store.backend.fetch(t) is not None for t in ids[2::3]} == {True}
    store.close()


# -- the server code path --------------------------------------------------------------------


def test_a_server_uri(tmp_path: Path, guard: pg.Guard) -> None:
    # Milvus Lite's own gRPC address stands in for a standalone server.
    lite = MilvusClient(str(tmp_path / "server.db"))
    uri = lite._config.uri
    assert uri.startswith("http://127.0.0.1:")
    backend = MilvusBackend(uri, collection="faces", batch_size=7)
    assert "server" in repr(backend)
    store = GuardedStore(backend)
    rng = np.random.default_rng(51)
    x = _rows(rng, 25)
    ids = store.enrol_many(
        [
            pg.FaceTemplate.wrap(
                v, subject=f"s{i % 2}", purposes=ID_PURPOSE, ttl=timedelta(days=1)
            )
            for i, v in enumerate(x)
        ]
    )
    with pg.purpose(ID_PURPOSE):
        assert [m.template_id for m in store.search(probe(x[3]), 1)] == [ids[3]]
    assert store.erase_subject("s0") == 13
    assert backend.delete_ids([ids[1], ids[0], "zz"]) == 1
    assert len(store) == 11
    store.close()
    # the client's own connection (and the server) are untouched
    assert lite.query("faces", filter="", output_fields=["count(*)"])[0]["count(*)"] == 11
    given_client = MilvusBackend(client=lite, collection="faces")
    assert given_client.count() == 11
    given_client.close()
    assert lite.has_collection("faces")
    lite.close()
    server_manager_instance.release_server(str(tmp_path / "server.db"))


# -- existing collections and tampering ------------------------------------------------------


def test_a_foreign_collection_is_refused(db: Path) -> None:
    c = MilvusClient(str(db))
    c.create_collection("plain", dimension=DIM)
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    for name, kind, extra in [
        ("pg_id", DataType.VARCHAR, {"is_primary": True, "max_length": 32}),
        ("pg_vector", DataType.FLOAT_VECTOR, {"dim": DIM}),
        ("pg_subject", DataType.VARCHAR, {"max_length": 64}),
        ("pg_consent", DataType.VARCHAR, {"max_length": 64}),
        ("pg_expires_us", DataType.INT64, {}),
        ("pg_label", DataType.VARCHAR, {"max_length": 64}),
        ("pg_values", DataType.VARCHAR, {"max_length": 512}),
    ]:
        schema.add_field(name, kind, **extra)
    schema.add_field(
        "pg_permits", DataType.ARRAY, element_type=DataType.VARCHAR, max_capacity=8, max_length=64
    )
    index = c.prepare_index_params()
    index.add_index(field_name="pg_vector", index_type="FLAT", metric_type="IP")
    c.create_collection("dot", schema=schema, index_params=index)
    c.close()
    server_manager_instance.release_server(str(db))
    with pytest.raises(pg.PolicyError, match="not created by MilvusBackend"):
        MilvusBackend(db, collection="plain")
    with pytest.raises(pg.PolicyError, match="COSINE"):
        MilvusBackend(db, collection="dot")
    assert not _serving(db)  # a refused open releases the file
    with pytest.raises(pg.PolicyError, match="collection"):
        MilvusBackend(db, collection='x" or 1==1')
    with pytest.raises(pg.PolicyError, match=r"\.db"):
        MilvusBackend(db.with_suffix(".sqlite"))
    with pytest.raises(pg.PolicyError, match="exactly one"):
        MilvusBackend()


def test_small_fields_of_an_existing_collection_are_respected(db: Path) -> None:
    c = MilvusClient(str(db))
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("pg_id", DataType.VARCHAR, is_primary=True, max_length=32)
    schema.add_field("pg_vector", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("pg_subject", DataType.VARCHAR, max_length=8)
    schema.add_field("pg_consent", DataType.VARCHAR, max_length=64)
    schema.add_field("pg_expires_us", DataType.INT64)
    schema.add_field(
        "pg_permits", DataType.ARRAY, element_type=DataType.VARCHAR, max_capacity=64, max_length=64
    )
    schema.add_field("pg_label", DataType.VARCHAR, max_length=4096)
    schema.add_field("pg_values", DataType.VARCHAR, max_length=4096)
    index = c.prepare_index_params()
    index.add_index(field_name="pg_vector", index_type="FLAT", metric_type="COSINE")
    c.create_collection("small", schema=schema, index_params=index)
    c.close()
    server_manager_instance.release_server(str(db))
    backend = MilvusBackend(db, collection="small")
    assert backend.dim == DIM
    with pytest.raises(pg.InvalidTemplateError, match="pg_subject holds at most 8"):
        backend.add([record(np.ones(DIM), subject="a-long-subject")])
    backend.add([record(np.ones(DIM), subject="short")])
    assert backend.count() == 1
    backend.close()


def test_a_tampered_entity_fails_closed(backend: MilvusBackend) -> None:
    rng = np.random.default_rng(61)
    x = _rows(rng, 3)
    recs = [record(v) for v in x]
    backend.add(recs)
    forged = os.urandom(16).hex()
    backend.client.insert(
        backend.collection,
        [
            {
                "pg_id": forged,
                "pg_vector": x[0].tolist(),
                "pg_subject": "s",
                "pg_consent": "",
                "pg_expires_us": 2**62,
                "pg_permits": [ID_PURPOSE],
                "pg_label": "{}",
                "pg_values": "",
            }
        ],
    )
    with pytest.raises(pg.IntegrityError):
        backend.search(x[0], 3, ident())
    with pytest.raises(pg.IntegrityError):
        backend.fetch(forged)
    # An entity whose permits were widened is caught by the re-check of the filter.
    backend.client.delete(backend.collection, filter=f"pg_id == {literal(forged)}")
    wider = record(x[1], purposes="face.verification")
    row: dict[str, Any] = {**wider.payload(), "pg_permits": [ID_PURPOSE]}
    row["pg_vector"] = x[1].tolist()
    row["pg_values"] = ""
    backend.client.insert(backend.collection, [row])
    assert backend.count() == 4
    got = backend.search(x[1], 4, ident())  # the label disagrees with pg_permits...
    assert wider.template_id in {h.template_id for h in got}
    # ...but the store's re-check of every hit against its label drops it.
    g = pg.Guard(clock=pg.FrozenClock(T0))
    with pg.using(g), pg.purpose(ID_PURPOSE):
        store = GuardedStore(backend, guard=g)
        found = {m.template_id for m in store.search(probe(x[1]), 4)}
    assert wider.template_id not in found
    assert found == {r.template_id for r in recs}


def test_close_releases_and_closed_refuses(db: Path) -> None:
    a = MilvusBackend(db)
    b = MilvusBackend(db, collection="other")
    a.add([record(np.ones(DIM))])
    a.close()
    assert _serving(db)  # b still uses the file
    assert b.count() == 0
    b.close()
    assert not _serving(db)
    a.close()  # twice is fine
    with pytest.raises(pg.PolicyError, match="closed"):
        a.count()


def test_the_module_imports_without_the_client() -> None:
    code = (
        "import sys; import purposeguard.stores._milvus, purposeguard.stores; "
        "assert 'pymilvus' not in sys.modules and 'milvus_lite' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)  # noqa: S603
