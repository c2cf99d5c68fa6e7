"""QdrantBackend: templates as Qdrant points, labels as payload, filters inside the engine.

Needs the `qdrant` extra (`pip install 'purposeguard[qdrant]'`). The client is
imported only when a backend is constructed, so this module imports without it.
"""

from __future__ import annotations

import base64
import binascii
import threading
import uuid
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

from purposeguard._errors import (
    IntegrityError,
    InvalidTemplateError,
    PolicyError,
    TemplateNotFoundError,
)
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
    from qdrant_client import QdrantClient
    from qdrant_client.http import models as qm

__all__ = ["QdrantBackend"]

# Payload keys: Record.payload()'s, plus the original vector.
_VEC: Final = "pg_vec"
_HIT_FIELDS: Final = list(PAYLOAD_HIT_FIELDS)
_INSTALL: Final = "pip install 'purposeguard[qdrant]'"


def _client_module() -> Any:
    try:
        import qdrant_client
    except ImportError as e:  # pragma: no cover - exercised only without the extra
        raise ImportError(f"QdrantBackend needs the qdrant-client package: {_INSTALL}") from e
    return qdrant_client


class QdrantBackend:
    """Templates stored as points of a Qdrant collection; labels in the payload.

    Each template is one point whose id is the template id read as a UUID
    (`uuid.UUID(hex=template_id)`), whose vector is the template (cosine distance),
    and whose payload holds the label as flat fields
    ([`Record.payload`][purposeguard.stores.Record.payload]: subject, consent, expiry in
    microseconds, the permitted purposes, the canonical label bytes) plus `pg_vec`, the original
    float32 values in base64.

    Why `pg_vec`: a cosine collection normalises vectors when they are written, so
    the engine cannot give back the values that were enrolled. Keeping the original
    bytes in the payload (`4 * dim * 4/3` bytes, not indexed, never read by a
    search) is the cheapest way to return them exactly; a second named vector would
    cost an index and could not be added to a collection that already exists.

    **Filtering.** A search sends `pg_permits == purpose AND pg_expires_us > now AND
    pg_consent NOT IN withdrawn` as a Qdrant payload filter, which the engine applies
    before ranking. Points without purposeguard's payload (an existing collection
    being adopted) fail that filter, so they are invisible to searches; `fetch`
    returns `None` for them; `count`, `subjects` and the deletions ignore them.
    Qdrant's own `retrieve()` by id ignores filters: `fetch` uses it and hands the
    label to the [`GuardedStore`][purposeguard.stores.GuardedStore], which checks it.

    **Exactness.** By default (`exact=True`) a server search runs with
    `SearchParams(exact=True)`: a full scan of the matching points, exactly the
    brute-force top-*k*. Local mode (`location=":memory:"` or `path=`) is always
    exact. `exact=False` uses the collection's HNSW index with the same filter
    inside the traversal (Qdrant's filterable HNSW; when the payload index estimates
    the filtered set below `full_scan_threshold` the planner scans it exactly).
    Its recall depends on `hnsw_ef` and on the filter's selectivity: raise
    `hnsw_ef` (e.g. 128-512) and set `acorn=True` (Qdrant >= 1.16) when few
    templates permit a purpose, and measure recall on your data with
    `purposeguard.testing.StoreMachine` (`exact = False`). A search never
    returns a point that fails the filter in either mode.

    **Production.** Point it at a server or cluster with `url=` (and `api_key=`),
    or pass a configured `client=QdrantClient(...)` (gRPC, TLS, timeouts). On a
    server the backend creates payload indexes on the `pg_*` fields it filters on
    (keyword: id, subject, consent, permits; integer: expiry) unless
    `create_indexes=False`. Local mode (`QdrantClient(":memory:")` or `path=`)
    runs in-process without a server and suits tests and small galleries (Qdrant
    recommends a server beyond ~20,000 points).

    **Adopting an existing collection.** Open it by name: its vector must be cosine
    (pass `vector_name=` for a named vector). Its points stay invisible until
    labelled: list them with [`unlabelled_ids`][purposeguard.stores.QdrantBackend.unlabelled_ids]
    and label each with [`attach_label`][purposeguard.stores.QdrantBackend.attach_label], which
    keeps the stored vector. Points with integer ids must be re-enrolled under a 32-hex template id
    instead.

    `add` validates the whole batch (dimension, repeated or already stored ids)
    before writing; it writes with `wait=True` in chunks of `batch_size` points and
    deletes what it wrote if a later chunk fails. Deletions remove the points from the
    engine and its indexes. Thread-safe (one lock per backend).

    Args:
        collection: the collection name; created on the first `add` if missing.
        location: `":memory:"` for an in-process collection (the default when no
            other target is given) or a server location string.
        path: a folder for a persistent in-process collection (local mode).
        url: a Qdrant server or cluster URL, e.g. `"https://qdrant.example:6333"`.
        api_key: the server's API key.
        client: an existing `QdrantClient`; the backend does not close it.
        exact: exact (full-scan) searches on a server; `False` uses HNSW.
        hnsw_ef: the HNSW beam width when `exact=False`.
        acorn: enable ACORN filtered traversal when `exact=False`.
        vector_name: the named vector to use, if the collection has named vectors.
        create_indexes: create payload indexes on a server.
        batch_size: points per upsert request.
        **client_options: passed to `QdrantClient` (`prefer_grpc`, `timeout`...).

    Raises:
        ImportError: `qdrant-client` is not installed.
        PolicyError: conflicting targets, or an existing collection that is not
            cosine, has multivectors or stores vectors below float32.
    """

    def __init__(
        self,
        collection: str = "purposeguard",
        *,
        location: str | None = None,
        path: str | Path | None = None,
        url: str | None = None,
        api_key: str | None = None,
        client: QdrantClient | None = None,
        exact: bool = True,
        hnsw_ef: int | None = None,
        acorn: bool = False,
        vector_name: str | None = None,
        create_indexes: bool = True,
        batch_size: int = 256,
        **client_options: Any,
    ) -> None:
        if not isinstance(collection, str) or not collection:
            raise PolicyError("collection must be a non-empty string")
        targets = sum(x is not None for x in (location, path, url, client))
        if targets > 1:
            raise PolicyError("give at most one of location=, path=, url= or client=")
        if batch_size < 1:
            raise PolicyError("batch_size must be positive")
        qc = _client_module()
        from qdrant_client.http import models
        from qdrant_client.local.qdrant_local import QdrantLocal

        self._m: Any = models
        self._owns = client is None
        if client is None:
            if path is not None:
                client = qc.QdrantClient(path=str(path), **client_options)
            elif url is not None:
                client = qc.QdrantClient(url=url, api_key=api_key, **client_options)
            else:
                client = qc.QdrantClient(location=location or ":memory:", **client_options)
        assert client is not None
        self._client: QdrantClient = client
        self._local = isinstance(getattr(client, "_client", None), QdrantLocal)
        self._collection = collection
        self._exact = bool(exact)
        self._hnsw_ef = hnsw_ef
        self._acorn = bool(acorn)
        self._vector_name = vector_name
        self._create_indexes = bool(create_indexes)
        self._batch = int(batch_size)
        self._lock = threading.RLock()
        self._closed = False
        self._dim: int | None = None
        self._exists = False
        self._labelled = models.Filter(
            must_not=[models.IsEmptyCondition(is_empty=models.PayloadField(key=_ID))]
        )
        self._unlabelled = models.Filter(
            must=[models.IsEmptyCondition(is_empty=models.PayloadField(key=_ID))]
        )
        try:
            self._open()
        except BaseException:
            if self._owns:
                client.close()  # release a local folder's lock
            raise

    # -- the protocol ------------------------------------------------------------------

    @property
    def name(self) -> str:
        """`"qdrant"`."""
        return "qdrant"

    @property
    def dim(self) -> int | None:
        """The collection's vector size; `None` until the collection exists."""
        return self._dim

    @property
    def client(self) -> QdrantClient:
        """The underlying client (it bypasses the labels: keep it private)."""
        return self._client

    @property
    def collection(self) -> str:
        """The collection name."""
        return self._collection

    def add(self, records: Sequence[Record]) -> None:
        """Store *records* atomically: validated first, then upserted with `wait=True`.

        Raises:
            InvalidTemplateError: a dimension mismatch, an id repeated in the batch or
                already stored (labelled or not); nothing is written.
        """
        if not records:
            return
        with self._lock:
            self._check_open()
            dim = self._dim if self._dim is not None else _dim_of(records[0])
            pids: list[str] = []
            for r in records:
                if r.vector.ndim != 1 or r.vector.shape[0] != dim:
                    raise InvalidTemplateError(
                        f"dimension mismatch: the store holds {dim}-d vectors, "
                        f"template {r.template_id} has {_dim_of(r)}"
                    )
                pids.append(_point_id(r.template_id))
            if len(set(pids)) != len(pids):
                raise InvalidTemplateError("the batch holds the same template id twice")
            if self._exists:
                for lo in range(0, len(pids), self._batch):
                    found = self._client.retrieve(
                        self._collection,
                        ids=pids[lo : lo + self._batch],
                        with_payload=False,
                        with_vectors=False,
                    )
                    if found:
                        raise InvalidTemplateError(
                            "a template with that id is already stored"
                            f" ({_template_id(found[0].id)})"
                        )
            else:
                self._create(dim)
            points = [self._point(pid, r) for pid, r in zip(pids, records, strict=True)]
            written: list[str] = []
            try:
                for lo in range(0, len(points), self._batch):
                    chunk = points[lo : lo + self._batch]
                    self._client.upsert(self._collection, points=chunk, wait=True)
                    written += pids[lo : lo + len(chunk)]
            except BaseException:
                if written:
                    self._delete_points(written)
                raise

    def search(self, query: npt.NDArray[np.float32], k: int, flt: SearchFilter) -> list[Hit]:
        """The best *k* points matching *flt* by cosine similarity, best first.

        The filter is a Qdrant payload filter applied by the engine before ranking.

        Raises:
            InvalidTemplateError: the probe is a zero vector or has the wrong size.
            IntegrityError: the engine returned a point whose payload is malformed or
                does not match the filter (a tampered collection).
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
            res = self._client.query_points(
                self._collection,
                query=q.tolist(),
                using=self._vector_name,
                query_filter=self._search_filter(flt),
                search_params=self._search_params(),
                limit=int(k),
                with_payload=_HIT_FIELDS,
                with_vectors=False,
            )
            hits: list[Hit] = []
            for p in res.points:
                payload = p.payload or {}
                decoded = _decode(p.id, payload)
                if decoded is None:
                    raise IntegrityError(
                        f"qdrant point {p.id} passed the filter without a purposeguard label"
                    )
                tid, label, permits = decoded
                if not (
                    flt.purpose in permits
                    and int(payload[_EXPIRES]) > flt.now_us
                    and (label.consent is None or label.consent not in flt.withdrawn_consents)
                ):
                    raise IntegrityError(f"qdrant returned template {tid} against the filter")
                hits.append(Hit(tid, float(p.score), label))
            return hits

    def fetch(self, template_id: str) -> Record | None:
        """The record with that id whatever its label, or `None` if missing or
        unlabelled (an adopted point without purposeguard's payload).

        Raises:
            IntegrityError: the point's purposeguard payload is malformed.
        """
        try:
            pid = _point_id(template_id)
        except InvalidTemplateError:
            return None
        with self._lock:
            self._check_open()
            if not self._exists:
                return None
            found = self._client.retrieve(
                self._collection, ids=[pid], with_payload=True, with_vectors=False
            )
        if not found:
            return None
        payload = found[0].payload or {}
        decoded = _decode(found[0].id, payload)
        if decoded is None:
            return None
        tid, label, permits = decoded
        vec = _decode_vector(tid, payload.get(_VEC), self._dim)
        return Record(template_id=tid, vector=vec, label=label, permits=permits)

    def delete_ids(self, template_ids: Collection[str]) -> int:
        """Remove these labelled points; return how many existed. Unlabelled points
        and malformed ids are ignored."""
        pids = []
        for t in template_ids:
            try:
                pids.append(_point_id(t))
            except InvalidTemplateError:
                continue
        pids = list(dict.fromkeys(pids))
        if not pids:
            return 0
        with self._lock:
            self._check_open()
            if not self._exists:
                return 0
            doomed: list[str] = []
            for lo in range(0, len(pids), self._batch):
                found = self._client.retrieve(
                    self._collection,
                    ids=pids[lo : lo + self._batch],
                    with_payload=[_ID],
                    with_vectors=False,
                )
                doomed += [str(p.id) for p in found if (p.payload or {}).get(_ID)]
            if doomed:
                self._delete_points(doomed)
            return len(doomed)

    def delete_matching(
        self,
        *,
        subject: str | None = None,
        consent: str | None = None,
        expired_at_us: int | None = None,
    ) -> int:
        """Remove every labelled point of *subject*, or resting on *consent*, or
        expired at *expired_at_us*; exactly one must be given. Returns the count."""
        if sum(x is not None for x in (subject, consent, expired_at_us)) != 1:
            raise PolicyError("delete_matching() takes exactly one criterion")
        m = self._m
        if subject is not None:
            cond = m.FieldCondition(key=_SUBJECT, match=m.MatchValue(value=subject))
        elif consent is not None:
            if not consent:
                return 0  # "" stands for "no consent" in the payload: never a criterion
            cond = m.FieldCondition(key=_CONSENT, match=m.MatchValue(value=consent))
        else:
            assert expired_at_us is not None
            cond = m.FieldCondition(key=_EXPIRES, range=m.Range(lte=int(expired_at_us)))
        flt = m.Filter(
            must=[cond],
            must_not=[m.IsEmptyCondition(is_empty=m.PayloadField(key=_ID))],
        )
        with self._lock:
            self._check_open()
            if not self._exists:
                return 0
            removed = 0
            previous: set[str] = set()
            while True:
                page, _ = self._client.scroll(
                    self._collection,
                    scroll_filter=flt,
                    limit=self._batch * 4,
                    with_payload=False,
                    with_vectors=False,
                )
                ids = [str(p.id) for p in page]
                if not ids:
                    return removed
                if previous.intersection(ids):
                    raise IntegrityError("qdrant did not delete the points it was asked to")
                self._delete_points(ids)
                removed += len(ids)
                previous = set(ids)

    def count(self) -> int:
        """How many labelled points are stored (unlabelled ones are not counted)."""
        with self._lock:
            self._check_open()
            if not self._exists:
                return 0
            res = self._client.count(self._collection, count_filter=self._labelled, exact=True)
            return int(res.count)

    def subjects(self) -> int:
        """How many distinct subjects the labelled points belong to (a facet count;
        a server needs Qdrant >= 1.12 and the keyword index on `pg_subject`)."""
        with self._lock:
            n = self.count()
            if n == 0:
                return 0
            res = self._client.facet(
                self._collection,
                key=_SUBJECT,
                facet_filter=self._labelled,
                limit=n,
                exact=True,
            )
            return len(res.hits)

    def close(self) -> None:
        """Release the client if the backend created it; the backend is unusable
        afterwards. A client passed in with `client=` is left open."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._owns:
                self._client.close()

    def __len__(self) -> int:
        return self.count()

    def __repr__(self) -> str:
        where = "local" if self._local else "server"
        return f"<QdrantBackend {self._collection!r} ({where}) dim={self._dim}>"

    # -- adopting an existing collection -----------------------------------------------

    def unlabelled_ids(self, limit: int = 100) -> list[str]:
        """Up to *limit* ids of points that carry no purposeguard label.

        UUID ids are returned as 32 hex digits (usable as template ids with
        [`attach_label`][purposeguard.stores.QdrantBackend.attach_label]); integer ids as decimal
        strings (such points cannot be labelled in place: re-enrol their vectors under new template
        ids and delete them with the Qdrant client).
        """
        if limit < 1:
            return []
        with self._lock:
            self._check_open()
            if not self._exists:
                return []
            page, _ = self._client.scroll(
                self._collection,
                scroll_filter=self._unlabelled,
                limit=int(limit),
                with_payload=False,
                with_vectors=False,
            )
            return [_template_id(p.id) for p in page]

    def read_unlabelled(self, template_id: str) -> npt.NDArray[np.float32] | None:
        """The stored vector of an unlabelled point, or `None` if there is no such
        point or it already carries a label (for
        [`GuardedStore.adopt`][purposeguard.stores.GuardedStore.adopt])."""
        try:
            pid = _point_id(template_id)
        except InvalidTemplateError:
            return None
        with self._lock:
            self._check_open()
            if not self._exists:
                return None
            found = self._client.retrieve(
                self._collection,
                ids=[pid],
                with_payload=[_ID, _LABEL],
                with_vectors=[self._vector_name] if self._vector_name else True,
            )
            if not found:
                return None
            payload = found[0].payload or {}
            if _ID in payload or _LABEL in payload:
                return None
            stored = self._stored_vector(found[0].vector)
            if stored is None:
                return None
            out = np.array(stored, np.float32)
            out.flags.writeable = False
            return out

    def attach_label(self, record: Record) -> None:
        """Label an existing, unlabelled point: the way to adopt a collection.

        The point with id `record.template_id` keeps its stored vector and its other
        payload; the label fields and `record.vector` (kept as the original values)
        are added. `record.vector` must have the collection's dimension and point in
        the same direction as the stored vector (a cosine collection keeps vectors
        normalised; build the record from the values you read back). Typically:

        ```python
        tax = guard.taxonomy
        for tid in backend.unlabelled_ids(1000):
            [pt] = backend.client.retrieve(
                backend.collection, [str(uuid.UUID(hex=tid))], with_vectors=True
            )
            label = Label(allowed=..., subject=..., expires_at=..., consent=...)
            backend.attach_label(Record(
                template_id=tid,
                vector=np.asarray(pt.vector, np.float32),
                label=label,
                permits=frozenset(p.name for p in tax if label.permits(p)),
            ))
        ```

        This writes the label directly, without the guard's STORE check or an audit
        event: run it as an administrative migration.

        Raises:
            TemplateNotFoundError: no point has that id.
            InvalidTemplateError: the point already carries a label, or the dimension
                or direction of `record.vector` differs from the stored vector.
        """
        pid = _point_id(record.template_id)
        with self._lock:
            self._check_open()
            found = (
                self._client.retrieve(
                    self._collection,
                    ids=[pid],
                    with_payload=[_ID, _LABEL],
                    with_vectors=[self._vector_name] if self._vector_name else True,
                )
                if self._exists
                else []
            )
            if not found:
                raise TemplateNotFoundError(f"template {record.template_id} not found")
            point = found[0]
            payload = point.payload or {}
            if _ID in payload or _LABEL in payload:
                raise InvalidTemplateError(
                    f"template {record.template_id} already carries a label"
                )
            stored = self._stored_vector(point.vector)
            if stored is None or record.vector.ndim != 1 or stored.shape != record.vector.shape:
                raise InvalidTemplateError(
                    f"dimension mismatch: point {record.template_id} holds "
                    f"{'no' if stored is None else stored.shape[0]} values, "
                    f"the record {_dim_of(record)}"
                )
            if _cosine(stored, record.vector) < 1.0 - 1e-5:
                raise InvalidTemplateError(
                    f"the record's vector is not the one stored at {record.template_id}"
                )
            self._client.set_payload(
                self._collection,
                payload=self._payload(record),
                points=self._m.PointIdsList(points=[pid]),
                wait=True,
            )

    # -- internals ------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise PolicyError("the Qdrant backend is closed")

    def _open(self) -> None:
        if not self._client.collection_exists(self._collection):
            return
        info = self._client.get_collection(self._collection)
        vectors = info.config.params.vectors
        if isinstance(vectors, dict):
            if self._vector_name is None or self._vector_name not in vectors:
                raise PolicyError(
                    f"collection {self._collection!r} has named vectors "
                    f"{sorted(vectors)}: pass vector_name="
                )
            params = vectors[self._vector_name]
        elif vectors is None:
            raise PolicyError(f"collection {self._collection!r} has no dense vector")
        else:
            if self._vector_name is not None:
                raise PolicyError(
                    f"collection {self._collection!r} has one unnamed vector: omit vector_name="
                )
            params = vectors
        m = self._m
        if params.distance != m.Distance.COSINE:
            raise PolicyError(
                f"collection {self._collection!r} uses {params.distance} distance; "
                "purposeguard needs cosine"
            )
        if params.multivector_config is not None:
            raise PolicyError(f"collection {self._collection!r} stores multivectors")
        if params.datatype not in (None, m.Datatype.FLOAT32):
            raise PolicyError(
                f"collection {self._collection!r} stores {params.datatype} vectors; "
                "purposeguard needs float32"
            )
        self._dim = int(params.size)
        self._exists = True
        self._ensure_indexes(set((info.payload_schema or {}).keys()))

    def _create(self, dim: int) -> None:
        m = self._m
        params = m.VectorParams(size=dim, distance=m.Distance.COSINE)
        config = {self._vector_name: params} if self._vector_name else params
        try:
            self._client.create_collection(self._collection, vectors_config=config)
        except Exception:
            # Another process may have created it meanwhile: adopt it if it fits.
            if not self._client.collection_exists(self._collection):
                raise
            self._open()
            if self._dim != dim:
                raise InvalidTemplateError(
                    f"dimension mismatch: the store holds {self._dim}-d vectors, "
                    f"the batch has {dim}-d"
                ) from None
            return
        self._dim = dim
        self._exists = True
        self._ensure_indexes(set())

    def _ensure_indexes(self, present: set[str]) -> None:
        # Local mode ignores payload indexes (and warns about them): servers only.
        if self._local or not self._create_indexes:
            return
        m = self._m
        wanted = {
            _ID: m.PayloadSchemaType.KEYWORD,
            _SUBJECT: m.PayloadSchemaType.KEYWORD,
            _CONSENT: m.PayloadSchemaType.KEYWORD,
            _PERMITS: m.PayloadSchemaType.KEYWORD,
            _EXPIRES: m.PayloadSchemaType.INTEGER,
        }
        for field, schema in wanted.items():
            if field not in present:
                self._client.create_payload_index(
                    self._collection, field_name=field, field_schema=schema, wait=True
                )

    def _search_params(self) -> qm.SearchParams | None:
        if self._local:
            return None  # local mode is brute force; it warns about any search_params
        m = self._m
        if self._exact:
            return m.SearchParams(  # type: ignore[no-any-return]
                exact=True, quantization=m.QuantizationSearchParams(ignore=True)
            )
        return m.SearchParams(  # type: ignore[no-any-return]
            exact=False,
            hnsw_ef=self._hnsw_ef,
            acorn=m.AcornSearchParams(enable=True) if self._acorn else None,
        )

    def _search_filter(self, flt: SearchFilter) -> qm.Filter:
        m = self._m
        must_not = []
        withdrawn = sorted(c for c in flt.withdrawn_consents if c)
        if withdrawn:
            must_not.append(m.FieldCondition(key=_CONSENT, match=m.MatchAny(any=withdrawn)))
        return m.Filter(  # type: ignore[no-any-return]
            must=[
                m.FieldCondition(key=_PERMITS, match=m.MatchValue(value=flt.purpose)),
                m.FieldCondition(key=_EXPIRES, range=m.Range(gt=int(flt.now_us))),
            ],
            must_not=must_not or None,
        )

    def _payload(self, r: Record) -> dict[str, Any]:
        payload = r.payload()
        payload[_VEC] = base64.b64encode(
            np.ascontiguousarray(r.vector, dtype="<f4").tobytes()
        ).decode("ascii")
        return payload

    def _point(self, pid: str, r: Record) -> qm.PointStruct:
        values = np.asarray(r.vector, np.float32).tolist()
        vector: Any = {self._vector_name: values} if self._vector_name else values
        return self._m.PointStruct(  # type: ignore[no-any-return]
            id=pid, vector=vector, payload=self._payload(r)
        )

    def _delete_points(self, pids: list[str]) -> None:
        for lo in range(0, len(pids), self._batch * 4):
            self._client.delete(
                self._collection,
                points_selector=self._m.PointIdsList(points=pids[lo : lo + self._batch * 4]),
                wait=True,
            )

    def _stored_vector(self, vector: Any) -> npt.NDArray[np.float32] | None:
        if isinstance(vector, dict):
            vector = vector.get(self._vector_name or "")
        if not isinstance(vector, list) or not vector or not isinstance(vector[0], float | int):
            return None
        return np.asarray(vector, np.float32)


def _dim_of(r: Record) -> int:
    return int(r.vector.shape[0]) if r.vector.ndim == 1 else int(r.vector.size)


def _point_id(template_id: str) -> str:
    """The Qdrant point id (a UUID string) of a 32-hex template id."""
    try:
        raw = bytes.fromhex(template_id)
    except (ValueError, TypeError):
        raise InvalidTemplateError("a template id is 32 hex digits") from None
    if len(raw) != 16 or len(template_id) != 32:
        raise InvalidTemplateError("a template id is 32 hex digits")
    return str(uuid.UUID(bytes=raw))


def _template_id(point_id: object) -> str:
    """The template id (32 hex) of a UUID point id; an integer id as a decimal string."""
    if isinstance(point_id, int):
        return str(point_id)
    try:
        return uuid.UUID(str(point_id)).hex
    except ValueError:
        return str(point_id)


def _decode(point_id: object, payload: dict[str, Any]) -> tuple[str, Label, frozenset[str]] | None:
    """The template id, label and permits of a point; `None` if it has no label.

    A point whose label fields are present but inconsistent is an IntegrityError.
    """
    tid = payload.get(_ID)
    if tid is None or tid == "":
        return None
    where = _template_id(point_id)
    try:
        if not isinstance(tid, str) or _point_id(tid) != str(uuid.UUID(str(point_id))):
            raise ValueError
        label = Label.from_bytes(str(payload[_LABEL]).encode("utf-8"))
        permits = payload[_PERMITS]
        if not isinstance(permits, list) or not all(isinstance(p, str) for p in permits):
            raise ValueError
        if (
            payload[_SUBJECT] != label.subject
            or payload[_CONSENT] != (label.consent or "")
            or int(payload[_EXPIRES]) != to_us(label.expires_at)
        ):
            raise ValueError
    except (KeyError, ValueError, TypeError, PolicyError, InvalidTemplateError):
        raise IntegrityError(f"qdrant point {where} carries a malformed label") from None
    return tid, label, frozenset(permits)


def _decode_vector(tid: str, raw: object, dim: int | None) -> npt.NDArray[np.float32]:
    try:
        if not isinstance(raw, str):
            raise ValueError
        data = base64.b64decode(raw, validate=True)
    except (ValueError, binascii.Error):
        raise IntegrityError(f"qdrant point {tid} lacks its stored values") from None
    if len(data) % 4 or (dim is not None and len(data) != 4 * dim):
        raise IntegrityError(f"qdrant point {tid} stores values of the wrong size")
    vec = np.frombuffer(data, "<f4").astype(np.float32)
    vec.flags.writeable = False
    return vec


def _cosine(a: npt.NDArray[np.float32], b: npt.NDArray[Any]) -> float:
    a64 = a.astype(np.float64)
    b64 = np.asarray(b, np.float64)
    na, nb = float(np.linalg.norm(a64)), float(np.linalg.norm(b64))
    if na == 0 or nb == 0:
        return 1.0 if na == nb else 0.0
    return float(a64 @ b64) / (na * nb)
