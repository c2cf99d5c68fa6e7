"""MilvusBackend: templates as Milvus entities, labels as scalar fields, filter expressions.

Needs the `milvus` extra (`pip install 'purposeguard[milvus]'`: pymilvus, plus
milvus-lite for local `.db` files). The client is imported only when a backend is
constructed, so this module imports without it.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import threading
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

from purposeguard._errors import IntegrityError, InvalidTemplateError, PolicyError
from purposeguard._labels import Label

from ._records import (
    PAYLOAD_CONSENT as _CONSENT,
    PAYLOAD_EXPIRES as _EXPIRES,
    PAYLOAD_HIT_FIELDS,
    PAYLOAD_ID as _ID,
    PAYLOAD_LABEL as _LABEL,
    PAYLOAD_PERMITS as _PERMITS,
    PAYLOAD_SUBJECT as _SUBJECT,
    Hit,
    Record,
    SearchFilter,
    to_us,
)

if TYPE_CHECKING:
    from pymilvus import MilvusClient

__all__ = ["MilvusBackend"]

_INSTALL: Final = "pip install 'purposeguard[milvus]'"

# The collection's fields: Record.payload()'s, plus the vector and its values.
_VECTOR: Final = "pg_vector"
_VALUES: Final = "pg_values"
_HIT_FIELDS: Final = list(PAYLOAD_HIT_FIELDS)

_ID_RE: Final = re.compile(r"[0-9a-f]{32}")
# Milvus limits: VARCHAR max_length (bytes), ARRAY max_capacity, topK, and the
# query result window (offset + limit).
_MAX_VARCHAR: Final = 65535
_MAX_CAPACITY: Final = 4096
_MAX_TOPK: Final = 16384
_PAGE: Final = 4096
# The largest dimension whose base64 values fit one VARCHAR field.
_MAX_DIM: Final = (_MAX_VARCHAR // 4) * 3 // 4  # 12,287: 4 * ceil(4 * 12287 / 3) <= 65535

# Milvus Lite servers started by MilvusBackend, by absolute path: how many open
# backends use each. The last one to close stops the server and frees the file.
_LITE_LOCK: Final = threading.Lock()
_LITE_USERS: dict[str, int] = {}


def _pymilvus() -> Any:
    try:
        import pymilvus
    except ImportError as e:  # pragma: no cover - exercised only without the extra
        raise ImportError(f"MilvusBackend needs the pymilvus package: {_INSTALL}") from e
    return pymilvus


def _lite_manager() -> Any:
    try:
        from milvus_lite.server_manager import server_manager_instance
    except ImportError as e:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            f"MilvusBackend needs the milvus-lite package for a local .db file: {_INSTALL}"
        ) from e
    return server_manager_instance


def literal(value: str) -> str:
    """*value* as a double-quoted Milvus expression string literal.

    Backslash, double quote, CR and LF are escaped (`\\\\`, `\\"`, `\\r`,
    `\\n`) and so is TAB (`\\t`): the escapes that both Milvus's expression
    grammar and Milvus Lite's parser accept. Every other character is written as
    itself, which both accept inside a literal. Nothing the value holds can end the
    literal early, so a subject or consent id cannot inject an expression.

    Raises:
        PolicyError: *value* is not a string or cannot be encoded as UTF-8 (a lone
            surrogate), so the server could not receive it.
    """
    if not isinstance(value, str):
        raise PolicyError("a Milvus filter literal must be a string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise PolicyError("a Milvus filter literal must be valid Unicode text") from None
    return '"' + value.translate(_ESCAPES) + '"'


_ESCAPES: Final = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"})


def search_expression(flt: SearchFilter) -> str:
    """The Milvus boolean expression of *flt*: purpose permitted, unexpired, consent
    not withdrawn (records without consent, stored as `""`, always pass the last)."""
    parts = [
        f"array_contains({_PERMITS}, {literal(flt.purpose)})",
        f"{_EXPIRES} > {int(flt.now_us)}",
    ]
    withdrawn = sorted(c for c in flt.withdrawn_consents if c)
    if withdrawn:
        parts.append(f"{_CONSENT} not in [{', '.join(literal(c) for c in withdrawn)}]")
    return " and ".join(parts)


def _ids_expression(ids: Iterable[str]) -> str:
    return f"{_ID} in [{', '.join(literal(t) for t in ids)}]"


class MilvusBackend:
    """Templates stored as entities of a Milvus collection; labels as scalar fields.

    **Where it runs.** `MilvusBackend("faces.db")` opens a local Milvus Lite file
    (in-process, for tests, demos and small galleries; one process at a time may open
    a `.db`). For production point it at a Milvus standalone or distributed
    cluster, or Zilliz Cloud, by URI:

    ```python
    MilvusBackend("http://milvus.internal:19530", token="user:password")
    MilvusBackend("https://in01-xxx.zillizcloud.com", token=API_KEY, db_name="faces")
    ```

    or pass a configured `client=MilvusClient(...)` (TLS certificates, timeouts);
    the backend does not close a client it was given. Other keyword arguments go to
    `MilvusClient`.

    **Schema.** The collection (`collection=`, created on the first `add`) has a
    VARCHAR(32) primary key `pg_id` (the template id), the FLOAT_VECTOR
    `pg_vector` indexed with the COSINE metric, and the label as fields:
    `pg_subject`, `pg_consent` (`""` when none) and `pg_label` (the canonical
    label JSON) as VARCHAR, `pg_expires_us` as INT64 and `pg_permits` (the
    purposes the label permits) as ARRAY<VARCHAR>. `pg_values` keeps the enrolled
    float32 values (base64): [`fetch`][purposeguard.stores.MilvusBackend.fetch] returns them bit
    for bit whatever index the vector field has (indexes that quantise, or that keep only
    normalised vectors, cannot give back the enrolled values). This caps the dimension at
    12,287. Searches never read it.

    **Filtering.** A search sends `array_contains(pg_permits, "<purpose>") and
    pg_expires_us > <now> and pg_consent not in [<withdrawn>]` as the search's
    boolean expression, which Milvus applies before ranking. Expressions are built
    here: every string goes through `literal` (escaped, never interpolated
    raw), numbers through `int`; pymilvus's `filter_params` templating is not
    used (Milvus Lite failed to parse it). Every hit is checked against the filter
    again, and a hit that fails it raises [`IntegrityError`][purposeguard.IntegrityError].
    Deletions query the matching ids first, check each row's field in Python, then delete by
    primary key, so a misparsed expression can never widen an erasure.

    **Exactness.** `index_type="FLAT"` (the default) searches exhaustively: exactly
    the brute-force top-*k* among matching templates, on a server and in Milvus
    Lite. `"HNSW"`, `"IVF_FLAT"` or `"AUTOINDEX"` are approximate (pass build
    `index_params` such as `{"M": 16, "efConstruction": 200}` and
    `search_params` such as `{"ef": 256}`); measure their recall at your
    filter's selectivity with `purposeguard.testing.StoreMachine`. A search asks
    for at most 16,384 results (Milvus's topK limit). Every read uses the Strong
    consistency level, so a search right after a write or a deletion sees it.

    **Durability.** `add` validates the whole batch first (dimension, ids repeated
    in the batch or already stored: Milvus itself would silently keep a duplicate
    primary key, or overwrite it in Milvus Lite), inserts it in chunks of
    `batch_size` rows and deletes the whole batch again if a chunk fails (in a
    Milvus Lite file, drops the collection that batch created). With
    `flush=True` every write is followed by `flush()`. It defaults to True for
    Milvus Lite, whose write-ahead log is not fsynced, and to False for a server,
    which persists an insert in its own log before acknowledging it and rate-limits
    `flush()`.

    **Erasure.** Deletions remove the entities through Milvus: tombstones in its
    delete log hide them at once from every search, query and reopened collection.
    Then (`compact=True`) a compaction is requested, which rewrites the segments
    without them; a server runs it in the background (pass `compact=False` where
    the service refuses manual compaction). Milvus Lite 3.2 accepts the request
    without acting on it: it rewrites its data files by itself when four of them
    accumulate (within a few flushed writes), so until then the erased rows stay in
    its files, unreadable through Milvus.

    **Existing collections.** A collection opened by name must have the schema above
    and a COSINE index on `pg_vector`, otherwise [`PolicyError`][purposeguard.PolicyError].
    Thread-safe (one lock per backend).

    Args:
        uri: a local Milvus Lite file ending in `.db` (its folder must exist), or a
            server URI (`http://host:19530`, `https://...`, `unix:/path`).
        collection: the collection name.
        token: the server's token (`"user:password"` or an API key).
        db_name: the Milvus database, if not the default.
        client: an existing `MilvusClient` instead of `uri`.
        index_type: the vector index for a new collection (`"FLAT"`: exact).
        index_params: build parameters of that index.
        search_params: search parameters (`{"ef": ...}`, `{"nprobe": ...}`).
        flush: flush after every write; `None`: only for Milvus Lite.
        compact: request a compaction after deletions that removed something.
        batch_size: rows per insert request.
        timeout: seconds for each request (`None`: the client's default).
        **client_options: passed to `MilvusClient`.

    Raises:
        ImportError: pymilvus (or milvus-lite for a `.db` file) is not installed.
        PolicyError: no target or conflicting targets, a bad option, a `.db` file
            that cannot be opened (another process holds it), or an existing
            collection without purposeguard's schema or a COSINE index.
    """

    def __init__(
        self,
        uri: str | Path | None = None,
        *,
        collection: str = "purposeguard",
        token: str | None = None,
        db_name: str | None = None,
        client: MilvusClient | None = None,
        index_type: str = "FLAT",
        index_params: dict[str, Any] | None = None,
        search_params: dict[str, Any] | None = None,
        flush: bool | None = None,
        compact: bool = True,
        batch_size: int = 1000,
        timeout: float | None = None,
        **client_options: Any,
    ) -> None:
        if not isinstance(collection, str) or not re.fullmatch(
            r"[A-Za-z_][A-Za-z0-9_]*", collection
        ):
            raise PolicyError(
                "collection must be a Milvus name: a letter or underscore, then letters, "
                "digits or underscores"
            )
        if (uri is None) == (client is None):
            raise PolicyError("give exactly one of uri= or client=")
        if batch_size < 1:
            raise PolicyError("batch_size must be positive")
        if not isinstance(index_type, str) or not index_type:
            raise PolicyError("index_type must be a non-empty string")
        pm = _pymilvus()
        self._pm: Any = pm
        self._collection = collection
        self._index_type = index_type.upper()
        self._index_params = dict(index_params or {})
        self._search_params = dict(search_params or {})
        self._compact = bool(compact)
        self._batch = int(batch_size)
        self._timeout = timeout
        self._lock = threading.RLock()
        self._closed = False
        self._dim: int | None = None
        self._exists = False
        self._limits: dict[str, int] = {}
        self._lite_path: str | None = None
        self._owns = client is None
        self._lite = False
        if client is None:
            assert uri is not None
            target = os.fspath(uri)
            if isinstance(uri, Path) or not re.match(r"^([a-z][a-z0-9+.-]*://|unix:)", target):
                if not target.endswith(".db"):
                    raise PolicyError("a local Milvus Lite file name must end with .db")
                client = self._open_lite(target, token, db_name, client_options)
            else:
                client = pm.MilvusClient(
                    uri=target, token=token or "", db_name=db_name or "", **client_options
                )
        else:
            self._lite = _is_lite_client(client)
        assert client is not None
        self._client: MilvusClient = client
        self._flush = self._lite if flush is None else bool(flush)
        try:
            self._open()
        except BaseException:
            self._release()
            raise

    # -- the protocol ------------------------------------------------------------------

    @property
    def name(self) -> str:
        """`"milvus"`."""
        return "milvus"

    @property
    def dim(self) -> int | None:
        """The collection's vector dimension; `None` until the collection exists."""
        return self._dim

    @property
    def exact(self) -> bool:
        """Whether searches are exhaustive (a FLAT index): exactly the filtered top-k."""
        return self._index_type == "FLAT"

    @property
    def client(self) -> MilvusClient:
        """The underlying client (it bypasses the labels: keep it private)."""
        return self._client

    @property
    def collection(self) -> str:
        """The collection name."""
        return self._collection

    def add(self, records: Sequence[Record]) -> None:
        """Store *records* atomically: validated first, inserted, then flushed when
        `flush` is on.

        Raises:
            InvalidTemplateError: a dimension mismatch, an id that is not 32 lowercase
                hex digits, repeated in the batch or already stored, or a label too
                large for the collection's fields; nothing is written.
        """
        if not records:
            return
        with self._lock:
            self._check_open()
            dim = self._dim if self._dim is not None else _dim_of(records[0])
            if self._dim is None and not 0 < dim <= _MAX_DIM:
                raise InvalidTemplateError(
                    f"MilvusBackend stores 1 to {_MAX_DIM} values per template, not {dim}"
                )
            rows: list[dict[str, Any]] = []
            ids: list[str] = []
            for r in records:
                if r.vector.ndim != 1 or r.vector.shape[0] != dim:
                    raise InvalidTemplateError(
                        f"dimension mismatch: the store holds {dim}-d vectors, "
                        f"template {r.template_id!s:.40} has {_dim_of(r)}"
                    )
                if not isinstance(r.template_id, str) or not _ID_RE.fullmatch(r.template_id):
                    raise InvalidTemplateError("a template id is 32 lowercase hex digits")
                rows.append(self._row(r))
                ids.append(r.template_id)
            if len(set(ids)) != len(ids):
                raise InvalidTemplateError("the batch holds the same template id twice")
            fresh = False
            if not self._exists:
                fresh = self._create(dim)
                if not fresh:  # another process created it meanwhile: its limits apply
                    rows = [self._row(r) for r in records]
            if not fresh:
                for lo in range(0, len(ids), _PAGE):
                    found = self._query(_ids_expression(ids[lo : lo + _PAGE]), [_ID], 1)
                    if found:
                        raise InvalidTemplateError(
                            f"a template with that id is already stored ({found[0][_ID]!s:.40})"
                        )
            try:
                for lo in range(0, len(rows), self._batch):
                    self._client.insert(
                        self._collection, rows[lo : lo + self._batch], timeout=self._timeout
                    )
                if self._flush:
                    self._client.flush(self._collection, timeout=self._timeout)
            except BaseException as e:
                if not self._roll_back(ids, fresh):
                    e.add_note(
                        "purposeguard could not roll the batch back: some of its templates "
                        "may be stored; delete them with delete_ids()"
                    )
                raise

    def search(self, query: npt.NDArray[np.float32], k: int, flt: SearchFilter) -> list[Hit]:
        """The best *k* entities matching *flt* by cosine similarity, best first
        (at most 16,384).

        The filter is the search's boolean expression, applied by Milvus before
        ranking.

        Raises:
            InvalidTemplateError: the probe is a zero vector or has the wrong size.
            IntegrityError: Milvus returned an entity whose label is malformed or does
                not match the filter (a tampered collection).
        """
        with self._lock:
            self._check_open()
            if not self._exists or self._dim is None or k <= 0:
                return []
            q = np.asarray(query, np.float32)
            if q.shape != (self._dim,):
                raise InvalidTemplateError(
                    f"dimension mismatch: the store holds {self._dim}-d vectors, "
                    f"the probe has {q.size} values"
                )
            if not float(np.linalg.norm(q)) > 0:
                raise InvalidTemplateError("the probe is a zero vector")
            params: dict[str, Any] = {"metric_type": "COSINE"}
            if self._search_params:
                params["params"] = dict(self._search_params)
            res = self._client.search(
                self._collection,
                data=[q.tolist()],
                filter=search_expression(flt),
                limit=min(int(k), _MAX_TOPK),
                output_fields=list(_HIT_FIELDS),
                search_params=params,
                anns_field=_VECTOR,
                timeout=self._timeout,
                consistency_level="Strong",
            )
            hits: list[Hit] = []
            for h in res[0] if res else []:
                entity = dict(h["entity"])
                entity.setdefault(_ID, h.get(_ID, h.get("id")))
                tid, label, permits, expires = _decode(entity)
                if not (
                    flt.purpose in permits
                    and expires > flt.now_us
                    and (label.consent is None or label.consent not in flt.withdrawn_consents)
                ):
                    raise IntegrityError(f"milvus returned template {tid} against the filter")
                hits.append(Hit(tid, float(h["distance"]), label))
            hits.sort(key=lambda hit: -hit.score)
            return hits

    def fetch(self, template_id: str) -> Record | None:
        """The record with that id whatever its label, with the enrolled values, or
        `None`.

        Raises:
            IntegrityError: the entity's label or stored values are malformed, or two
                entities share the id.
        """
        if not isinstance(template_id, str) or not _ID_RE.fullmatch(template_id):
            return None
        with self._lock:
            self._check_open()
            if not self._exists:
                return None
            found = self._query(_ids_expression([template_id]), [*_HIT_FIELDS, _VALUES], 2)
        if not found:
            return None
        if len(found) > 1:
            raise IntegrityError(f"milvus holds template {template_id} twice")
        tid, label, permits, _ = _decode(found[0])
        if tid != template_id:
            raise IntegrityError(f"milvus answered template {tid} for {template_id}")
        vec = _decode_values(tid, found[0].get(_VALUES), self._dim)
        return Record(template_id=tid, vector=vec, label=label, permits=permits)

    def delete_ids(self, template_ids: Collection[str]) -> int:
        """Remove these entities; return how many existed. Malformed ids are ignored."""
        ids = list(
            dict.fromkeys(t for t in template_ids if isinstance(t, str) and _ID_RE.fullmatch(t))
        )
        if not ids:
            return 0
        with self._lock:
            self._check_open()
            if not self._exists:
                return 0
            doomed: list[str] = []
            for lo in range(0, len(ids), _PAGE):
                chunk = ids[lo : lo + _PAGE]
                found = self._query(_ids_expression(chunk), [_ID], len(chunk))
                wanted = set(chunk)
                for row in found:
                    if row.get(_ID) not in wanted:
                        raise IntegrityError("milvus answered an id query with other ids")
                doomed += [str(row[_ID]) for row in found]
            doomed = list(dict.fromkeys(doomed))
            if doomed:
                self._delete_ids(doomed)
                self._after_delete()
            return len(doomed)

    def delete_matching(
        self,
        *,
        subject: str | None = None,
        consent: str | None = None,
        expired_at_us: int | None = None,
    ) -> int:
        """Remove every entity of *subject*, or resting on *consent*, or expired at
        *expired_at_us* (`pg_expires_us <= expired_at_us`); exactly one must be
        given. Returns the count.

        The matching ids are queried with an escaped expression, each row's field is
        checked in Python, and only those ids are deleted.

        Raises:
            PolicyError: not exactly one criterion.
            IntegrityError: Milvus answered with a row that does not match (nothing
                from that answer is deleted), or did not delete what it was asked to.
        """
        if sum(x is not None for x in (subject, consent, expired_at_us)) != 1:
            raise PolicyError("delete_matching() takes exactly one criterion")
        if not all(_utf8(x) for x in (subject, consent) if x is not None):
            return 0  # Milvus cannot hold text that is not valid Unicode: nothing matches
        if subject is not None:
            field, expr = _SUBJECT, f"{_SUBJECT} == {literal(subject)}"

            def ok(v: object) -> bool:
                return v == subject
        elif consent is not None:
            if not consent:
                return 0  # "" stands for "no consent" in the collection: never a criterion
            field, expr = _CONSENT, f"{_CONSENT} == {literal(consent)}"

            def ok(v: object) -> bool:
                return v == consent
        else:
            assert expired_at_us is not None
            limit = int(expired_at_us)
            field, expr = _EXPIRES, f"{_EXPIRES} <= {limit}"

            def ok(v: object) -> bool:
                return isinstance(v, int) and not isinstance(v, bool) and v <= limit

        with self._lock:
            self._check_open()
            if not self._exists:
                return 0
            removed = 0
            previous: set[str] = set()
            while True:
                rows = self._query(expr, [_ID, field], _PAGE)
                ids = [str(row.get(_ID)) for row in rows]
                if not ids:
                    break
                if not all(_ID_RE.fullmatch(t) for t in ids) or not all(
                    ok(row.get(field)) for row in rows
                ):
                    raise IntegrityError(
                        f"milvus answered a deletion query on {field} with rows that do "
                        "not match it; nothing was deleted"
                    )
                if previous.intersection(ids):
                    raise IntegrityError("milvus did not delete the entities it was asked to")
                ids = list(dict.fromkeys(ids))
                self._delete_ids(ids)
                removed += len(ids)
                previous = set(ids)
            if removed:
                self._after_delete()
            return removed

    def count(self) -> int:
        """How many entities the collection holds."""
        with self._lock:
            self._check_open()
            if not self._exists:
                return 0
            res = self._client.query(
                self._collection,
                filter="",
                output_fields=["count(*)"],
                timeout=self._timeout,
                consistency_level="Strong",
            )
            return int(res[0]["count(*)"])

    def subjects(self) -> int:
        """How many distinct subjects the entities belong to.

        Milvus has no distinct count: this reads every `pg_subject`, in queries
        of at most 4,096 rows over ranges of the id space (`pg_id like "3f%"`),
        which need neither a query iterator (Milvus Lite lacks the timestamp call
        pymilvus's iterator makes) nor a result order.
        """
        with self._lock:
            self._check_open()
            if not self._exists:
                return 0
            seen: set[str] = set()
            prefixes = [""]
            while prefixes:
                prefix = prefixes.pop()
                expr = f"{_ID} like {literal(prefix + '%')}" if prefix else ""
                rows = self._query(expr, [_ID, _SUBJECT], _PAGE)
                if len(rows) >= _PAGE and len(prefix) < 32:
                    prefixes += [prefix + h for h in "0123456789abcdef"]
                    continue
                seen.update(str(row[_SUBJECT]) for row in rows)
            return len(seen)

    def close(self) -> None:
        """Close the client if the backend created it (and stop the Milvus Lite server
        it started, once no other MilvusBackend uses that file); the backend is
        unusable afterwards. A client passed in with `client=` is left open."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._release()

    def __len__(self) -> int:
        return self.count()

    def __repr__(self) -> str:
        where = "lite" if self._lite else "server"
        return f"<MilvusBackend {self._collection!r} ({where}) dim={self._dim}>"

    # -- internals ------------------------------------------------------------------------

    def _open_lite(
        self, path: str, token: str | None, db_name: str | None, options: dict[str, Any]
    ) -> Any:
        manager = _lite_manager()
        where = os.path.abspath(path)
        if not os.path.isdir(os.path.dirname(where)):
            raise PolicyError(f"the folder of the Milvus Lite file {path!r} does not exist")
        with _LITE_LOCK:
            running = where in getattr(manager, "_servers", {})
            ours = where in _LITE_USERS or not running
            if ours:
                _LITE_USERS[where] = _LITE_USERS.get(where, 0) + 1
                self._lite_path = where
            try:
                client = self._pm.MilvusClient(
                    uri=where, token=token or "", db_name=db_name or "", **options
                )
            except Exception as e:
                self._release_lite_locked()
                raise PolicyError(
                    f"cannot open the Milvus Lite file {path!r} (another process may hold "
                    f"it): {type(e).__name__}"
                ) from e
        self._lite = True
        return client

    def _release(self) -> None:
        if self._owns:
            try:
                self._client.close()
            finally:
                with _LITE_LOCK:
                    self._release_lite_locked()

    def _release_lite_locked(self) -> None:
        where = self._lite_path
        if where is None:
            return
        self._lite_path = None
        left = _LITE_USERS.get(where, 1) - 1
        if left > 0:
            _LITE_USERS[where] = left
            return
        _LITE_USERS.pop(where, None)
        _lite_manager().release_server(where)

    def _check_open(self) -> None:
        if self._closed:
            raise PolicyError("the Milvus backend is closed")

    def _open(self) -> None:
        c = self._client
        if not c.has_collection(self._collection, timeout=self._timeout):
            return
        desc = c.describe_collection(self._collection, timeout=self._timeout)
        fields = {f["name"]: f for f in desc.get("fields", [])}
        dt = self._pm.DataType
        wanted = {
            _ID: dt.VARCHAR,
            _VECTOR: dt.FLOAT_VECTOR,
            _SUBJECT: dt.VARCHAR,
            _CONSENT: dt.VARCHAR,
            _EXPIRES: dt.INT64,
            _PERMITS: dt.ARRAY,
            _LABEL: dt.VARCHAR,
            _VALUES: dt.VARCHAR,
        }
        name = self._collection
        for field, kind in wanted.items():
            f = fields.get(field)
            if f is None or f.get("type") != kind:
                raise PolicyError(
                    f"collection {name!r} lacks purposeguard's field {field} ({kind.name}): "
                    "it was not created by MilvusBackend"
                )
        if not fields[_ID].get("is_primary"):
            raise PolicyError(f"collection {name!r}: {_ID} is not the primary key")
        if fields[_PERMITS].get("element_type") != dt.VARCHAR:
            raise PolicyError(f"collection {name!r}: {_PERMITS} is not an array of VARCHAR")
        params = {f: dict(fields[f].get("params") or {}) for f in wanted}
        try:
            dim = int(params[_VECTOR]["dim"])
        except (KeyError, TypeError, ValueError):
            raise PolicyError(f"collection {name!r}: {_VECTOR} has no dimension") from None
        for field in (_SUBJECT, _CONSENT, _LABEL, _VALUES):
            self._limits[field] = int(params[field].get("max_length", _MAX_VARCHAR))
        self._limits[_PERMITS] = int(params[_PERMITS].get("max_capacity", _MAX_CAPACITY))
        self._limits["permit"] = int(params[_PERMITS].get("max_length", _MAX_VARCHAR))
        indexes = c.list_indexes(self._collection, field_name=_VECTOR, timeout=self._timeout)
        if not indexes:
            raise PolicyError(f"collection {name!r} has no index on {_VECTOR}")
        info = c.describe_index(self._collection, indexes[0], timeout=self._timeout)
        if str(info.get("metric_type", "")).upper() != "COSINE":
            raise PolicyError(
                f"collection {name!r} indexes {_VECTOR} with the "
                f"{info.get('metric_type')} metric; purposeguard needs COSINE"
            )
        self._index_type = str(info.get("index_type", self._index_type)).upper()
        state = c.get_load_state(self._collection, timeout=self._timeout)
        if "NotLoad" in str(state.get("state", "")):
            c.load_collection(self._collection, timeout=self._timeout)
        self._dim = dim
        self._exists = True

    def _create(self, dim: int) -> bool:
        """Create the collection; `False` if another process created it first."""
        pm = self._pm
        c = self._client
        dt = pm.DataType
        schema = pm.MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field(_ID, dt.VARCHAR, is_primary=True, max_length=32)
        schema.add_field(_VECTOR, dt.FLOAT_VECTOR, dim=dim)
        schema.add_field(_SUBJECT, dt.VARCHAR, max_length=_MAX_VARCHAR)
        schema.add_field(_CONSENT, dt.VARCHAR, max_length=_MAX_VARCHAR)
        schema.add_field(_EXPIRES, dt.INT64)
        schema.add_field(
            _PERMITS,
            dt.ARRAY,
            element_type=dt.VARCHAR,
            max_capacity=_MAX_CAPACITY,
            max_length=_MAX_VARCHAR,
        )
        schema.add_field(_LABEL, dt.VARCHAR, max_length=_MAX_VARCHAR)
        schema.add_field(_VALUES, dt.VARCHAR, max_length=_MAX_VARCHAR)
        index = c.prepare_index_params()
        index.add_index(
            field_name=_VECTOR,
            index_name=_VECTOR,
            index_type=self._index_type,
            metric_type="COSINE",
            params=dict(self._index_params),
        )
        try:
            c.create_collection(
                self._collection,
                schema=schema,
                consistency_level="Strong",
                timeout=self._timeout,
            )
        except Exception:
            # Another process may have created it meanwhile: adopt it if it fits.
            if not c.has_collection(self._collection, timeout=self._timeout):
                raise
            self._open()
            if self._dim != dim:
                raise InvalidTemplateError(
                    f"dimension mismatch: the store holds {self._dim}-d vectors, "
                    f"the batch has {dim}-d"
                ) from None
            return False
        # The index is created without waiting on its build state (pymilvus polls it
        # with a timestamp call Milvus Lite lacks, which costs 0.5 s there); loading
        # the collection waits for what it needs.
        c.create_index(self._collection, index, timeout=self._timeout, sync=False)
        c.load_collection(self._collection, timeout=self._timeout)
        self._limits = {
            _SUBJECT: _MAX_VARCHAR,
            _CONSENT: _MAX_VARCHAR,
            _LABEL: _MAX_VARCHAR,
            _VALUES: _MAX_VARCHAR,
            _PERMITS: _MAX_CAPACITY,
            "permit": _MAX_VARCHAR,
        }
        self._dim = dim
        self._exists = True
        return True

    def _row(self, r: Record) -> dict[str, Any]:
        try:
            row = r.payload()
            texts = [row[_SUBJECT], row[_CONSENT], row[_LABEL], *row[_PERMITS]]
            sizes = [len(t.encode("utf-8")) for t in texts]
        except UnicodeEncodeError:
            raise InvalidTemplateError(
                f"template {r.template_id!s:.40}: the label holds text that is not valid Unicode"
            ) from None
        limits = self._limits or {}
        checks = [
            (_SUBJECT, sizes[0]),
            (_CONSENT, sizes[1]),
            (_LABEL, sizes[2]),
            (_PERMITS, len(row[_PERMITS])),
            *(("permit", n) for n in sizes[3:]),
        ]
        for field, n in checks:
            cap = limits.get(field, _MAX_CAPACITY if field == _PERMITS else _MAX_VARCHAR)
            if n > cap:
                raise InvalidTemplateError(
                    f"template {r.template_id!s:.40}: its label does not fit the "
                    f"collection ({field} holds at most {cap})"
                )
        values = np.ascontiguousarray(r.vector, dtype="<f4")
        row[_VECTOR] = values.astype(np.float32).tolist()
        row[_VALUES] = base64.b64encode(values.tobytes()).decode("ascii")
        return row

    def _query(self, expr: str, fields: list[str], limit: int) -> list[dict[str, Any]]:
        res = self._client.query(
            self._collection,
            filter=expr,
            output_fields=fields,
            limit=int(limit),
            timeout=self._timeout,
            consistency_level="Strong",
        )
        return [dict(row) for row in res]

    def _roll_back(self, ids: Sequence[str], fresh: bool) -> bool:
        """Undo a failed insert: a chunk may have been written in part, so remove the
        whole batch (none of its ids existed before). A collection this batch created
        in a Milvus Lite file (which no other process can open) is dropped instead, so
        a failed first batch fixes no dimension. Returns whether that worked."""
        try:
            if fresh and self._lite:
                self._client.drop_collection(self._collection, timeout=self._timeout)
                self._exists = False
                self._dim = None
                self._limits = {}
                return True
            self._delete_ids(ids)
            if self._flush:
                self._client.flush(self._collection, timeout=self._timeout)
        except Exception:
            return False
        return True

    def _delete_ids(self, ids: Sequence[str]) -> None:
        for lo in range(0, len(ids), _PAGE):
            self._client.delete(
                self._collection,
                filter=_ids_expression(ids[lo : lo + _PAGE]),
                timeout=self._timeout,
            )

    def _after_delete(self) -> None:
        if self._flush:
            self._client.flush(self._collection, timeout=self._timeout)
        if self._compact:
            self._client.compact(self._collection, timeout=self._timeout)


def _is_lite_client(client: Any) -> bool:
    try:
        manager = _lite_manager()
    except ImportError:
        return False
    servers = getattr(manager, "_servers", {})
    ports = {str(entry[2]) for entry in servers.values() if len(entry) > 2}
    uri = str(getattr(getattr(client, "_config", None), "uri", "") or "")
    address = re.search(r"127\.0\.0\.1:(\d+)", uri)
    return bool(address and address.group(1) in ports)


def _utf8(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _dim_of(r: Record) -> int:
    return int(r.vector.shape[0]) if r.vector.ndim == 1 else int(r.vector.size)


def _decode(entity: dict[str, Any]) -> tuple[str, Label, frozenset[str], int]:
    """The template id, label, permits and expiry of an entity, checked against each
    other; anything inconsistent is an IntegrityError."""
    tid = entity.get(_ID)
    where = f"{tid!s:.40}"
    try:
        if not isinstance(tid, str) or not _ID_RE.fullmatch(tid):
            raise ValueError
        label = Label.from_bytes(str(entity[_LABEL]).encode("utf-8"))
        permits = entity[_PERMITS]
        if not isinstance(permits, list) or not all(isinstance(p, str) for p in permits):
            raise ValueError
        expires = entity[_EXPIRES]
        if not isinstance(expires, int) or isinstance(expires, bool):
            raise ValueError
        if (
            entity[_SUBJECT] != label.subject
            or entity[_CONSENT] != (label.consent or "")
            or expires != to_us(label.expires_at)
        ):
            raise ValueError
    except (
        KeyError,
        ValueError,
        TypeError,
        UnicodeEncodeError,
        PolicyError,
        InvalidTemplateError,
    ):
        raise IntegrityError(f"milvus entity {where} carries a malformed label") from None
    return tid, label, frozenset(permits), expires


def _decode_values(tid: str, raw: object, dim: int | None) -> npt.NDArray[np.float32]:
    try:
        if not isinstance(raw, str):
            raise ValueError
        data = base64.b64decode(raw, validate=True)
    except (ValueError, binascii.Error):
        raise IntegrityError(f"milvus entity {tid} lacks its stored values") from None
    if len(data) % 4 or (dim is not None and len(data) != 4 * dim):
        raise IntegrityError(f"milvus entity {tid} stores values of the wrong size")
    vec = np.frombuffer(data, "<f4").astype(np.float32)
    vec.flags.writeable = False
    return vec
