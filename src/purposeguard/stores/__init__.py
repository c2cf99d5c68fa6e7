"""Guarded stores: embedding databases that obey the labels of what they hold.

[`GuardedStore`][purposeguard.stores.GuardedStore] wraps a
[`VectorBackend`][purposeguard.stores.VectorBackend]. Backends in the core (no extra needed):
[`MemoryBackend`][purposeguard.stores.MemoryBackend] and
[`SQLiteBackend`][purposeguard.stores.SQLiteBackend] (the embedded default). Behind extras:
`FaissBackend` (`purposeguard[faiss]`), `QdrantBackend` (`[qdrant]`), `PgVectorBackend`
(`[pgvector]`), `MilvusBackend` (`[milvus]`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._guarded import GuardedStore, Match
from ._memory import MemoryBackend
from ._protocol import AdoptableBackend, VectorBackend
from ._records import Hit, Record, SearchFilter
from ._sqlite import SQLiteBackend

if TYPE_CHECKING:
    from ._faiss import FaissBackend
    from ._milvus import MilvusBackend
    from ._pgvector import PgVectorBackend
    from ._qdrant import QdrantBackend
    from ._sealed import SealedSQLiteBackend

__all__ = [
    "AdoptableBackend",
    "FaissBackend",
    "GuardedStore",
    "Hit",
    "Match",
    "MemoryBackend",
    "MilvusBackend",
    "PgVectorBackend",
    "QdrantBackend",
    "Record",
    "SQLiteBackend",
    "SealedSQLiteBackend",
    "SearchFilter",
    "VectorBackend",
]

_EXTRAS = {
    "FaissBackend": ("purposeguard.stores._faiss", "faiss"),
    "QdrantBackend": ("purposeguard.stores._qdrant", "qdrant"),
    "PgVectorBackend": ("purposeguard.stores._pgvector", "pgvector"),
    "MilvusBackend": ("purposeguard.stores._milvus", "milvus"),
    # Not an extra: imported lazily so that the stores do not load purposeguard.crypto.
    "SealedSQLiteBackend": ("purposeguard.stores._sealed", ""),
}


def __getattr__(name: str) -> object:
    # Backends behind extras import their client only when asked for.
    spec = _EXTRAS.get(name)
    if spec is None:
        raise AttributeError(f"module 'purposeguard.stores' has no attribute {name!r}")
    import importlib

    module = importlib.import_module(spec[0])
    obj = getattr(module, name)
    obj.__module__ = __name__
    return obj


for _name in __all__:
    if _name in _EXTRAS:
        continue
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("purposeguard.stores._"):
        _obj.__module__ = __name__
del _name, _obj
