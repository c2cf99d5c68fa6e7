"""Guarded stores: embedding databases that obey the labels of what they hold.

:class:`GuardedStore` wraps a :class:`VectorBackend`. Backends in the core (no extra
needed): :class:`MemoryBackend` and :class:`SQLiteBackend` (the embedded default).
Behind extras: ``FaissBackend`` (``purposeguard[faiss]``), ``QdrantBackend``
(``[qdrant]``), ``PgVectorBackend`` (``[pgvector]``), ``MilvusBackend`` (``[milvus]``).
"""

from __future__ import annotations

from ._guarded import GuardedStore, Match
from ._memory import MemoryBackend
from ._protocol import VectorBackend
from ._records import Record, SearchFilter

__all__ = [
    "GuardedStore",
    "Match",
    "MemoryBackend",
    "Record",
    "SearchFilter",
    "VectorBackend",
]

for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("purposeguard.stores._"):
        _obj.__module__ = __name__
del _name, _obj
