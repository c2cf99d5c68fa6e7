"""PgVectorBackend: templates in a PostgreSQL table with pgvector; the filter is a WHERE."""

from __future__ import annotations

import logging
import math
import re
import struct
import threading
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final, Literal

import numpy as np
import numpy.typing as npt

from purposeguard._errors import IntegrityError, InvalidTemplateError, PolicyError
from purposeguard._labels import Label

from ._records import Hit, Record, SearchFilter, to_us

if TYPE_CHECKING:
    import psycopg
    from psycopg import sql

__all__ = ["PgVectorBackend"]

_log = logging.getLogger("purposeguard.stores")

_INSTALL: Final = "pip install 'purposeguard[pgvector]'"
_ID_RE: Final = re.compile(r"[0-9a-f]{32}")
_NAME_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,47}")
_COLUMNS: Final = {
    "id": "text",
    "subject": "text",
    "consent": "text",
    "expires_us": "bigint",
    "permits": "text[]",
    "label": "bytea",
}
_VECTOR_TYPE_RE: Final = re.compile(r"vector\((\d+)\)")
# pgvector limits: a vector column holds up to 16,000 dimensions, an HNSW index 2,000.
_MAX_DIM: Final = 16000
_MAX_HNSW_DIM: Final = 2000
# hnsw.ef_search accepts 1..1000.
_MAX_EF: Final = 1000
# Built-in type oids for the binary COPY: text, int8, text[], bytea.
_TEXT: Final = 25
_INT8: Final = 20
_TEXT_ARRAY: Final = 1009
_BYTEA: Final = 17

IndexKind = Literal["hnsw"]


def _client() -> Any:
    try:
        import psycopg
    except ImportError as e:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            f"PgVectorBackend needs psycopg 3 (the 'pgvector' extra): {_INSTALL}"
        ) from e
    return psycopg


class _Vec:
    """A float32 vector on its way to PostgreSQL, sent in pgvector's binary format
    (exact, and never echoed as text in an error message)."""

    __slots__ = ("values",)

    def __init__(self, values: npt.NDArray[np.float32]) -> None:
        self.values = values


def _register_dumper(conn: psycopg.Connection[Any], oid: int) -> None:
    # Only for the private _Vec class: a supplied connection's other adapters are untouched.
    from psycopg.adapt import Dumper
    from psycopg.pq import Format

    class _VectorDumper(Dumper):
        format = Format.BINARY

        def dump(self, obj: Any) -> bytes:
            a: npt.NDArray[np.float32] = obj.values
            # vector_recv: uint16 dimension, uint16 unused, big-endian float4 values.
            return struct.pack(">HH", a.shape[0], 0) + a.astype(">f4").tobytes()

    _VectorDumper.oid = oid
    conn.adapters.register_dumper(_Vec, _VectorDumper)


def _unpack(buf: bytes, dim: int) -> npt.NDArray[np.float32]:
    # vector_send(): uint16 dimension, uint16 unused, then big-endian float4 values.
    if len(buf) != 4 + 4 * dim or int.from_bytes(buf[:2], "big") != dim:
        raise IntegrityError("PostgreSQL returned a vector of an unexpected size")
    out = np.frombuffer(buf, dtype=">f4", offset=4).astype(np.float32)
    out.flags.writeable = False
    return out


class PgVectorBackend:
    """Templates in a PostgreSQL table with the pgvector extension.

    Each template is one row: `id text primary key, subject text, consent text,
    expires_us bigint, permits text[], label bytea, embedding vector(dim)`, with a GIN
    index on `permits` and b-tree indexes on `subject`, `consent` and
    `expires_us` (for erasure). The label is stored as its canonical bytes, so the
    label read back equals the one stored. The search filter is the `WHERE` clause of
    the ranking query (`permits @> ARRAY[purpose] AND expires_us > now AND consent
    not withdrawn`), applied by PostgreSQL before the `ORDER BY ... LIMIT k`.

    Search modes:

    - `index=None` (default): exact. The ranking expression cannot use any vector
      index, so the answer is exactly the brute-force top-*k* among matching rows,
      whatever indexes exist on the table. Cost: the distance to every matching row
      (PostgreSQL uses the GIN index when few rows match, a (parallel) sequential scan
      otherwise).
    - `index="hnsw"`: approximate, for large tables. An HNSW index (`vector_cosine_ops`)
      is created. pgvector applies a `WHERE` clause *after* the index scan, so a
      selective filter loses rows. Hence, per search: if at most `exact_below` rows
      match the filter (a count that stops at the cap), the exact query runs: at that
      selectivity ranking every matching row through the GIN index is both exact and
      faster than a filtered graph walk (measured at 50,000 rows, 64-d, 0.8% matching:
      exact 7.7 ms and recall 1.0; forced index scan 49 ms and recall 0.96). Otherwise
      the index query runs with `hnsw.iterative_scan = relaxed_order` (pgvector >=
      0.8), `hnsw.ef_search` and `hnsw.max_scan_tuples` set locally, fetches
      `overfetch * k` candidates and re-sorts them exactly; if fewer than *k* come
      back, the exact query runs instead, so a search never returns fewer rows than
      exist. The planner may still choose a GIN bitmap scan and a sort (exact) when its
      statistics say few rows match. Measured recall at 1% permitted with the index
      scan forced: 1.0 at 5,000 rows, 0.96 at 50,000 (see the tests). Results are
      always rows that match the filter.

    Vectors travel in pgvector's binary format both ways (`COPY ... (FORMAT BINARY)`
    and binary parameters in, `vector_send` out), so values come back bit for bit;
    scores are cosine similarity, `1 - (embedding <=> q)`. The schema of the
    `vector` extension must be on the `search_path` (it is by default).

    Erasure (`delete_ids` / `delete_matching`) is a `DELETE`: the rows disappear
    from every query at commit. PostgreSQL removes rows *logically*: the old tuple
    stays in the table's pages (and its entry in the indexes) until `VACUUM` prunes
    it. With `vacuum_on_erase=True` (the default) the backend runs `VACUUM` on the
    table after every erasure that removed something, so the index entries go and the
    space is marked free at once. Even then the bytes may linger in free space until
    overwritten, and in WAL segments, replicas and backups; `vacuum(full=True)`
    rewrites the table into new files (it takes an exclusive lock). Where erasure must
    be provable, also seal templates with [`purposeguard.crypto.seal`][purposeguard.crypto.seal]
    and shred the key. On large tables `VACUUM` of an HNSW index is slow: set
    `vacuum_on_erase=False` and rely on autovacuum or a scheduled
    [`vacuum`][purposeguard.stores.PgVectorBackend.vacuum].

    Pointing it at production: pass a libpq connection string or URI for the server,
    e.g. `PgVectorBackend("postgresql://app@db.example.com:5432/faces?sslmode=verify-full",
    index="hnsw")`, or `None` to use the standard `PG*` environment variables
    (`PGHOST`, `PGUSER`, `PGPASSWORD`/`.pgpass`, `PGSSLMODE`...). Extra
    arguments for `psycopg.connect` go in `connect_kwargs`. The role needs
    `CREATE` on the schema the first time (or create the table beforehand with the
    columns above) and the `vector` extension installed (`create_extension=True`
    tries `CREATE EXTENSION IF NOT EXISTS vector`). `table` may be `"schema.name"`.

    Connections and pools: the backend holds one connection and serialises its calls
    with a lock (thread-safe). For concurrency give each worker thread or process its
    own backend, or pass `connection=` a connection you manage (it must be in
    autocommit mode: the backend runs its own transactions; the backend does not close
    it). Behind PgBouncer in transaction mode every backend call is self-contained
    (`SET LOCAL` only); disable psycopg's prepared statements there with
    `connect_kwargs={"prepare_threshold": None}` unless PgBouncer >= 1.21 tracks them.
    An owned connection that breaks is reopened on the next call.

    Args:
        conninfo: libpq connection string or URI; `None` for the `PG*` variables.
        connection: an open psycopg 3 connection in autocommit mode, instead of conninfo.
        table: the table's name (`name` or `schema.name`).
        dim: the vector dimension; by default fixed by the first record added (or read
            from an existing table).
        index: `None` (exact search) or `"hnsw"` (approximate, iterative scans).
        hnsw_m: HNSW `m` (links per node) when the index is created.
        hnsw_ef_construction: HNSW `ef_construction` when the index is created.
        ef_search: `hnsw.ef_search` for searches (raised to `overfetch * k`, at most
            1000).
        overfetch: candidates fetched per result wanted, with the HNSW index.
        max_scan_tuples: `hnsw.max_scan_tuples` for iterative scans (pgvector's
            default 20,000 if `None`); raise it for very selective purposes on
            very large tables.
        exact_below: with the HNSW index, search exactly when at most this many rows
            match the filter (`0`: always use the index).
        vacuum_on_erase: run `VACUUM` on the table after an erasure removed rows.
        create_extension: run `CREATE EXTENSION IF NOT EXISTS vector` when opening.
        connect_kwargs: extra keyword arguments for `psycopg.connect`.

    Raises:
        ImportError: psycopg is not installed (`pip install 'purposeguard[pgvector]'`).
        PolicyError: bad arguments, pgvector missing, or an existing table that is not
            a purposeguard table or has another dimension.
    """

    def __init__(
        self,
        conninfo: str | None = None,
        *,
        connection: psycopg.Connection[Any] | None = None,
        table: str = "purposeguard_templates",
        dim: int | None = None,
        index: IndexKind | None = None,
        hnsw_m: int = 16,
        hnsw_ef_construction: int = 64,
        ef_search: int = 100,
        overfetch: int = 4,
        max_scan_tuples: int | None = None,
        exact_below: int = 10_000,
        vacuum_on_erase: bool = True,
        create_extension: bool = True,
        connect_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        pg = _client()
        from psycopg import sql as _sql

        if connection is not None and conninfo is not None:
            raise PolicyError("pass either conninfo or connection, not both")
        if index not in (None, "hnsw"):
            raise PolicyError(f"index must be None or 'hnsw', got {index!r}")
        if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int)):
            raise PolicyError("dim must be an integer")
        if dim is not None and not 1 <= dim <= _MAX_DIM:
            raise PolicyError(f"dim must be between 1 and {_MAX_DIM} (pgvector's limit)")
        for nm, val, lo in (
            ("hnsw_m", hnsw_m, 2),
            ("hnsw_ef_construction", hnsw_ef_construction, 4),
            ("ef_search", ef_search, 1),
            ("overfetch", overfetch, 1),
            ("exact_below", exact_below, 0),
        ):
            if isinstance(val, bool) or not isinstance(val, int) or val < lo:
                raise PolicyError(f"{nm} must be an integer >= {lo}")
        if hnsw_m > 100 or not 2 * hnsw_m <= hnsw_ef_construction <= 1000:
            raise PolicyError(
                "pgvector needs hnsw_m <= 100 and 2 * hnsw_m <= hnsw_ef_construction <= 1000"
            )
        if max_scan_tuples is not None and (
            isinstance(max_scan_tuples, bool)
            or not isinstance(max_scan_tuples, int)
            or max_scan_tuples < 1
        ):
            raise PolicyError("max_scan_tuples must be a positive integer or None")
        parts = table.split(".") if isinstance(table, str) else []
        if not 1 <= len(parts) <= 2 or not all(_NAME_RE.fullmatch(p) for p in parts):
            raise PolicyError(
                "table must be 'name' or 'schema.name' with names of letters, digits and "
                "underscores (at most 48 characters)"
            )
        self._pg = pg
        self._sql = _sql
        self._table_name = table
        self._t: sql.Identifier = _sql.Identifier(*parts)
        self._base = parts[-1]
        self._index: IndexKind | None = index
        self._hnsw_m = hnsw_m
        self._hnsw_ef_construction = hnsw_ef_construction
        self._ef_search = min(ef_search, _MAX_EF)
        self._overfetch = overfetch
        self._max_scan_tuples = max_scan_tuples
        self._exact_below = exact_below
        self._vacuum_on_erase = bool(vacuum_on_erase)
        self._lock = threading.RLock()
        self._closed = False
        self._dim: int | None = None
        self._iterative = False
        self._vector_oid = 0
        self._conninfo = conninfo or ""
        self._connect_kwargs = dict(connect_kwargs or {})
        self._connect_kwargs.pop("autocommit", None)
        if connection is not None:
            if not isinstance(connection, pg.Connection):
                raise PolicyError("connection must be a psycopg 3 Connection")
            if not connection.autocommit:
                raise PolicyError(
                    "pass a connection opened with autocommit=True: PgVectorBackend "
                    "runs its own transactions"
                )
            self._owns = False
            self._conn: psycopg.Connection[Any] = connection
        else:
            self._owns = True
            self._conn = self._connect()
        try:
            self._open(dim, create_extension)
        except BaseException:
            if self._owns:
                self._conn.close()
            raise

    # -- the protocol ----------------------------------------------------------------------

    @property
    def name(self) -> str:
        """`"pgvector"`."""
        return "pgvector"

    @property
    def dim(self) -> int | None:
        """The vector dimension of the table, or `None` while it does not exist."""
        if self._dim is None and not self._closed:
            with self._lock, self._cursor() as cur:
                self._dim = self._table_dim(cur)
        return self._dim

    @property
    def table(self) -> str:
        """The table's name as given (`name` or `schema.name`)."""
        return self._table_name

    @property
    def index(self) -> IndexKind | None:
        """`None` (exact search) or `"hnsw"`."""
        return self._index

    def add(self, records: Sequence[Record]) -> None:
        """Store *records* in one transaction: all or nothing, committed on return.

        Raises:
            InvalidTemplateError: a malformed id, an id repeated in the batch or already
                stored, a dimension mismatch, or a value PostgreSQL cannot hold (a NUL
                character in a subject or consent id); nothing is written.
        """
        batch = list(records)
        if not batch:
            return
        errors = self._pg.errors
        with self._lock:
            self._check_open()
            dim = self.dim
            want = dim if dim is not None else _shape_dim(batch[0])
            rows = self._rows(batch, want)
            try:
                with self._conn.transaction(), self._conn.cursor() as cur:
                    created = False
                    if dim is None:
                        have, created = self._ensure_table(cur, want, hnsw=False)
                        if have != want:
                            raise InvalidTemplateError(
                                f"dimension mismatch: the table holds {have}-d vectors, "
                                f"the batch has {want}-d"
                            )
                    cur.execute(
                        self._q("SELECT id FROM {t} WHERE id = ANY(%s::text[]) LIMIT 1"),
                        ([r[0] for r in rows],),
                    )
                    found = cur.fetchone()
                    if found is not None:
                        raise InvalidTemplateError(
                            f"template {found[0]} is already stored; nothing was added"
                        )
                    copy_sql = self._q(
                        "COPY {t} (id, subject, consent, expires_us, permits, label, "
                        "embedding) FROM STDIN (FORMAT BINARY)"
                    )
                    with cur.copy(copy_sql) as copy:
                        copy.set_types(
                            [_TEXT, _TEXT, _TEXT, _INT8, _TEXT_ARRAY, _BYTEA, self._vector_oid]
                        )
                        for row in rows:
                            copy.write_row(row)
                    if created and self._index == "hnsw":
                        # Building the graph over the loaded batch beats inserting
                        # row by row into an empty index.
                        cur.execute(self._hnsw_ddl())
            except errors.UniqueViolation:
                # Committed by another session after the pre-check above.
                raise InvalidTemplateError(
                    "a template with that id is already stored (committed by another "
                    "session during this batch); nothing was added"
                ) from None
            except errors.DataError as e:
                # PostgreSQL's message may quote the row: never pass it on.
                raise InvalidTemplateError(
                    f"PostgreSQL rejected the batch (SQLSTATE {e.sqlstate}); nothing was added"
                ) from None
            self._dim = want

    def search(self, query: npt.NDArray[np.float32], k: int, flt: SearchFilter) -> list[Hit]:
        """The best *k* rows matching *flt* by cosine similarity, best first.

        Exact with `index=None`; with `index="hnsw"` approximate (iterative index
        scan, over-fetch, exact re-sort), never returning a row outside the filter.

        Raises:
            InvalidTemplateError: the probe has the wrong dimension, is zero or not finite.
            IntegrityError: a returned row's label is malformed or does not permit the
                search although its columns matched (the table was altered by hand).
        """
        if k <= 0:
            return []
        with self._lock:
            self._check_open()
            dim = self.dim
            if dim is None:
                return []
            q = np.asarray(query, dtype=np.float32)
            if q.shape != (dim,):
                raise InvalidTemplateError(
                    f"dimension mismatch: the table holds {dim}-d vectors, the probe is "
                    f"{q.shape[0] if q.ndim == 1 else q.shape}-d"
                )
            if not np.isfinite(q).all():
                raise InvalidTemplateError("the probe has non-finite values")
            if not q.any():
                raise InvalidTemplateError("the probe is a zero vector")
            params: dict[str, Any] = {
                "q": _Vec(q),
                "p": [flt.purpose],
                "now": int(flt.now_us),
                # A consent id with a NUL cannot be stored, so it matches no row.
                "w": sorted(c for c in flt.withdrawn_consents if "\x00" not in c),
                "k": int(k),
            }
            try:
                if self._index == "hnsw":
                    rows = self._search_hnsw(params, k)
                else:
                    rows = self._search_exact(params)
            except self._pg.errors.DataError as e:
                raise InvalidTemplateError(
                    f"PostgreSQL rejected the probe (SQLSTATE {e.sqlstate})"
                ) from None
            hits = []
            for tid, score, raw in rows:
                label = self._label(tid, raw)
                # Defence in depth: the filter again, on the label itself (the columns
                # the WHERE clause read could have been altered apart from it).
                if not (
                    label.permits(flt.purpose)
                    and to_us(label.expires_at) > flt.now_us
                    and (label.consent is None or label.consent not in flt.withdrawn_consents)
                ):
                    raise IntegrityError(
                        f"table {self._table_name}: the columns of template {tid} disagree "
                        "with its label (altered outside purposeguard?)"
                    )
                hits.append(Hit(str(tid), _score(score), label))
            return hits

    def fetch(self, template_id: str) -> Record | None:
        """The record with that id (whatever its label), or `None`.

        Raises:
            IntegrityError: the row's label or vector is malformed.
        """
        if not isinstance(template_id, str) or not _ID_RE.fullmatch(template_id):
            return None
        with self._lock:
            self._check_open()
            dim = self.dim
            if dim is None:
                return None
            with self._cursor() as cur:
                cur.execute(
                    self._q(
                        "SELECT id, vector_send(embedding), label, permits FROM {t} WHERE id = %s"
                    ),
                    (template_id,),
                )
                row = cur.fetchone()
            if row is None:
                return None
            tid, vec, raw, permits = row
            return Record(
                template_id=str(tid),
                vector=_unpack(bytes(vec), dim),
                label=self._label(tid, raw),
                permits=frozenset(permits),
            )

    def delete_ids(self, template_ids: Collection[str]) -> int:
        """Delete these rows (then `VACUUM` if configured); return how many existed."""
        ids = sorted({t for t in template_ids if isinstance(t, str) and _ID_RE.fullmatch(t)})
        if not ids:
            return 0
        return self._delete("id = ANY(%s::text[])", ids)

    def delete_matching(
        self,
        *,
        subject: str | None = None,
        consent: str | None = None,
        expired_at_us: int | None = None,
    ) -> int:
        """Delete every row of *subject*, or resting on *consent*, or expired at
        *expired_at_us* (`expires_us <= expired_at_us`); return how many."""
        if sum(x is not None for x in (subject, consent, expired_at_us)) != 1:
            raise PolicyError("delete_matching() takes exactly one criterion")
        if subject is not None:
            return 0 if "\x00" in subject else self._delete("subject = %s", subject)
        if consent is not None:
            return 0 if "\x00" in consent else self._delete("consent = %s", consent)
        assert expired_at_us is not None
        return self._delete("expires_us <= %s::bigint", int(expired_at_us))

    def count(self) -> int:
        """How many rows the table holds."""
        return self._scalar("SELECT count(*) FROM {t}")

    def subjects(self) -> int:
        """How many distinct subjects the table holds."""
        return self._scalar("SELECT count(DISTINCT subject) FROM {t}")

    def close(self) -> None:
        """Close the connection if the backend opened it; the backend is unusable after."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._owns:
                self._conn.close()

    # -- maintenance ---------------------------------------------------------------------

    def vacuum(self, *, full: bool = False) -> None:
        """Run `VACUUM` (or `VACUUM FULL`, which rewrites the table into new files
        under an exclusive lock) on the table. Needs ownership of the table."""
        with self._lock:
            self._check_open()
            if self.dim is None:
                return
            stmt = "VACUUM (FULL) {t}" if full else "VACUUM {t}"
            with self._cursor() as cur:
                cur.execute(self._q(stmt))

    def __len__(self) -> int:
        return self.count()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"dim={self._dim}"
        return f"<PgVectorBackend table={self._table_name!r} index={self._index} {state}>"

    # -- internals ------------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[Any]:
        conn: psycopg.Connection[Any] = self._pg.connect(
            self._conninfo, autocommit=True, **self._connect_kwargs
        )
        return conn

    def _check_open(self) -> None:
        if self._closed:
            raise PolicyError("this PgVectorBackend is closed")
        if self._owns and self._conn.closed:
            _log.warning("PgVectorBackend: the connection was lost; reconnecting")
            self._conn = self._connect()
            _register_dumper(self._conn, self._vector_oid)

    @contextmanager
    def _cursor(self) -> Iterator[psycopg.Cursor[Any]]:
        self._check_open()
        with self._conn.cursor() as cur:
            yield cur

    def _q(self, template: str, **extra: sql.Composable) -> sql.Composed:
        return self._sql.SQL(template).format(t=self._t, **extra)

    def _open(self, dim: int | None, create_extension: bool) -> None:
        with self._lock, self._cursor() as cur:
            if create_extension:
                try:
                    cur.execute("CREATE EXTENSION IF NOT EXISTS vector")
                except self._pg.Error as e:
                    raise PolicyError(
                        "could not create the pgvector extension (CREATE EXTENSION vector "
                        f"needs a privileged role or a server with pgvector installed): "
                        f"SQLSTATE {e.sqlstate}"
                    ) from None
            cur.execute(
                "SELECT e.extversion, t.oid FROM pg_extension e JOIN pg_type t "
                "ON t.typnamespace = e.extnamespace AND t.typname = 'vector' "
                "WHERE e.extname = 'vector'"
            )
            row = cur.fetchone()
            if row is None:
                raise PolicyError(
                    "the pgvector extension is not installed in this database "
                    "(CREATE EXTENSION vector)"
                )
            self._iterative = _version(str(row[0])) >= (0, 8, 0)
            self._vector_oid = int(row[1])
            _register_dumper(self._conn, self._vector_oid)
            have = self._table_dim(cur)
            if have is not None and dim is not None and have != dim:
                raise PolicyError(f"table {self._table_name} holds {have}-d vectors, not {dim}-d")
            if have is None and dim is not None:
                with self._conn.transaction():
                    have, _ = self._ensure_table(cur, dim, hnsw=True)
            elif have is not None and self._index == "hnsw":
                self._check_hnsw_dim(have)
                cur.execute(self._hnsw_ddl())
            self._dim = have

    def _table_dim(self, cur: psycopg.Cursor[Any]) -> int | None:
        cur.execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
            "WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped",
            (self._t.as_string(self._conn),),
        )
        cols = {str(n): str(t) for n, t in cur.fetchall()}
        if not cols:
            return None
        emb = _VECTOR_TYPE_RE.fullmatch(cols.pop("embedding", ""))
        if emb is None or any(cols.get(c) != t for c, t in _COLUMNS.items()):
            raise PolicyError(
                f"table {self._table_name} exists but is not a purposeguard table (expected "
                "columns id text, subject text, consent text, expires_us bigint, "
                "permits text[], label bytea, embedding vector(dim))"
            )
        return int(emb.group(1))

    def _label(self, tid: object, raw: object) -> Label:
        try:
            return Label.from_bytes(bytes(raw))  # type: ignore[call-overload]
        except (PolicyError, TypeError):
            raise IntegrityError(
                f"table {self._table_name}: template {tid} has a malformed label"
            ) from None

    def _check_hnsw_dim(self, dim: int) -> None:
        if self._index == "hnsw" and dim > _MAX_HNSW_DIM:
            raise PolicyError(
                f"pgvector's HNSW index takes at most {_MAX_HNSW_DIM} dimensions "
                f"(got {dim}); use index=None"
            )

    def _hnsw_ddl(self) -> sql.Composed:
        return self._q(
            "CREATE INDEX IF NOT EXISTS {ix} ON {t} USING hnsw (embedding vector_cosine_ops) "
            "WITH (m = {m}, ef_construction = {efc})",
            ix=self._sql.Identifier(f"{self._base}_embedding_hnsw"),
            m=self._sql.Literal(self._hnsw_m),
            efc=self._sql.Literal(self._hnsw_ef_construction),
        )

    def _ensure_table(self, cur: psycopg.Cursor[Any], dim: int, *, hnsw: bool) -> tuple[int, bool]:
        """The table's dimension, creating the table (inside the caller's transaction)
        if it does not exist, and whether it was created here. With `hnsw=False` the
        caller creates the HNSW index itself (after loading the first batch)."""
        # The advisory lock serialises creators in other sessions.
        self._check_hnsw_dim(dim)
        if not 1 <= dim <= _MAX_DIM:
            raise InvalidTemplateError(f"pgvector holds vectors of 1 to {_MAX_DIM} dimensions")
        cur.execute(
            "SELECT pg_advisory_xact_lock(hashtext(%s))", ("purposeguard:" + self._table_name,)
        )
        have = self._table_dim(cur)
        if have is not None:
            return have, False
        ident = self._sql.Identifier
        cur.execute(
            self._q(
                "CREATE TABLE {t} (id text PRIMARY KEY, subject text NOT NULL, consent text, "
                "expires_us bigint NOT NULL, permits text[] NOT NULL, label bytea NOT NULL, "
                "embedding vector({dim}) NOT NULL)",
                dim=self._sql.Literal(dim),
            )
        )
        for suffix, method, column in (
            ("permits_gin", "gin", "permits"),
            ("subject", "btree", "subject"),
            ("consent", "btree", "consent"),
            ("expires", "btree", "expires_us"),
        ):
            cur.execute(
                self._q(
                    "CREATE INDEX {ix} ON {t} USING {m} ({c})",
                    ix=ident(f"{self._base}_{suffix}"),
                    m=self._sql.SQL(method),
                    c=ident(column),
                )
            )
        if hnsw and self._index == "hnsw":
            cur.execute(self._hnsw_ddl())
        return dim, True

    def _rows(self, batch: Sequence[Record], dim: int) -> list[tuple[Any, ...]]:
        # Everything is validated before anything is written.
        seen: set[str] = set()
        rows = []
        for r in batch:
            tid = r.template_id
            if not isinstance(tid, str) or not _ID_RE.fullmatch(tid):
                raise InvalidTemplateError("a template id is 32 lowercase hex digits")
            if tid in seen:
                raise InvalidTemplateError(f"the batch holds template {tid} twice")
            seen.add(tid)
            vec = np.asarray(r.vector, dtype=np.float32)
            if vec.shape != (dim,):
                got = vec.shape[0] if vec.ndim == 1 else vec.shape
                raise InvalidTemplateError(
                    f"dimension mismatch: the store holds {dim}-d vectors, template {tid} "
                    f"has {got}"
                )
            if not np.isfinite(vec).all():
                raise InvalidTemplateError(f"template {tid} has non-finite values")
            subject, consent = r.subject, r.consent
            if "\x00" in subject or (consent is not None and "\x00" in consent):
                raise InvalidTemplateError(
                    f"template {tid}: PostgreSQL text cannot hold a NUL character in a "
                    "subject or consent id"
                )
            rows.append(
                (
                    tid,
                    subject,
                    consent,
                    r.expires_us,
                    sorted(r.permits),
                    r.label.to_bytes(),
                    _Vec(vec),
                )
            )
        return rows

    _WHERE: Final = (
        "permits @> %(p)s::text[] AND expires_us > %(now)s::bigint "
        "AND (consent IS NULL OR consent <> ALL(%(w)s::text[]))"
    )

    def _search_exact(self, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        # The ORDER BY expression cannot use a vector index: always exact. A zero stored
        # vector has a NaN distance; it scores 0, as in the reference backend.
        stmt = self._q(
            "SELECT id, COALESCE(1 - NULLIF(embedding <=> %(q)s::vector, 'NaN'), 0) AS score, "
            "label FROM {t} WHERE {where} ORDER BY score DESC, id LIMIT %(k)s",
            where=self._sql.SQL(self._WHERE),
        )
        with self._cursor() as cur:
            cur.execute(stmt, params)
            return cur.fetchall()

    def _search_hnsw(self, params: dict[str, Any], k: int) -> list[tuple[Any, ...]]:
        if self._exact_below:
            # Few matching rows: ranking them all is exact and cheaper than a filtered
            # graph walk, which is where HNSW loses recall. The count stops at the cap.
            with self._cursor() as cur:
                cur.execute(
                    self._q(
                        "SELECT count(*) FROM (SELECT 1 FROM {t} WHERE {where} "
                        "LIMIT %(cap)s) AS m",
                        where=self._sql.SQL(self._WHERE),
                    ),
                    {**params, "cap": self._exact_below + 1},
                )
                row = cur.fetchone()
            if row is not None and int(row[0]) <= self._exact_below:
                return self._search_exact(params)
        fetch = k * self._overfetch
        ef = min(max(self._ef_search, fetch), _MAX_EF)
        stmt = self._q(
            "SELECT id, 1 - (embedding <=> %(q)s::vector) AS score, label FROM {t} "
            "WHERE {where} ORDER BY embedding <=> %(q)s::vector LIMIT %(fetch)s",
            where=self._sql.SQL(self._WHERE),
        )
        with self._cursor() as cur, self._conn.transaction():
            cur.execute("SELECT set_config('hnsw.ef_search', %s, true)", (str(ef),))
            if self._iterative:
                cur.execute("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true)")
                if self._max_scan_tuples is not None:
                    cur.execute(
                        "SELECT set_config('hnsw.max_scan_tuples', %s, true)",
                        (str(self._max_scan_tuples),),
                    )
            cur.execute(stmt, {**params, "fetch": fetch})
            rows = cur.fetchall()
        if len(rows) < k:
            # Fewer than k came back: either fewer rows match, or the index scan gave
            # up early. The exact query settles it (cheap when few rows match).
            return self._search_exact(params)
        rows.sort(key=lambda r: (-_score(r[1]), str(r[0])))
        return rows[:k]

    def _delete(self, where: str, value: Any) -> int:
        with self._lock:
            self._check_open()
            if self.dim is None:
                return 0
            with self._cursor() as cur:
                cur.execute(
                    self._q(
                        "WITH gone AS (DELETE FROM {t} WHERE {where} RETURNING 1) "
                        "SELECT count(*) FROM gone",
                        where=self._sql.SQL(where),
                    ),
                    (value,),
                )
                row = cur.fetchone()
            n = int(row[0]) if row is not None else 0
            if n and self._vacuum_on_erase:
                try:
                    self.vacuum()
                except self._pg.Error as e:
                    # The rows are gone (committed); only the space is not yet reclaimed.
                    _log.warning(
                        "PgVectorBackend: VACUUM of %s failed after erasure (SQLSTATE %s); "
                        "autovacuum will reclaim the space",
                        self._table_name,
                        e.sqlstate,
                    )
            return n

    def _scalar(self, stmt: str) -> int:
        with self._lock:
            self._check_open()
            if self.dim is None:
                return 0
            with self._cursor() as cur:
                cur.execute(self._q(stmt))
                row = cur.fetchone()
            return int(row[0]) if row is not None else 0


def _shape_dim(record: Record) -> int:
    shape = np.shape(record.vector)
    if len(shape) != 1 or shape[0] < 1:
        raise InvalidTemplateError(f"template {record.template_id} is not a 1-D vector")
    return int(shape[0])


def _score(value: Any) -> float:
    s = float(value)
    return 0.0 if math.isnan(s) else s


def _version(text: str) -> tuple[int, ...]:
    out = []
    for part in text.split("."):
        digits = re.match(r"\d+", part)
        out.append(int(digits.group(0)) if digits else 0)
    return tuple(out)
