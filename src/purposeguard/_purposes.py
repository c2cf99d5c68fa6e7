"""Purposes (dotted paths in a hierarchy) and the operations done on face data."""

from __future__ import annotations

import enum
import re
import threading
from collections.abc import Iterable
from typing import ClassVar, Final, TypeAlias

from ._errors import PolicyError

__all__ = ["Operation", "Purpose", "PurposeLike", "purpose_set"]

_NAME: Final = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)*")
_MAX_LEN: Final = 255
_CACHE_LIMIT: Final = 65_536


class Purpose:
    """A purpose of processing, a dotted lowercase path such as `face.verification.login`.

    `Purpose(name)` takes the dotted name (at most 255 characters); `Purpose(p)` of a
    `Purpose` returns it unchanged. Purposes form a tree: `face.verification.login` is
    *within* `face.verification` and within itself. Instances are interned and
    immutable; they compare with `==`, hash, order by name, and pickle and copy as
    themselves. A `str` is accepted wherever a purpose is taken.

    Raises:
        PolicyError: the name does not match `[a-z][a-z0-9_]*(\\.[a-z][a-z0-9_]*)*`.
    """

    __slots__ = ("__weakref__", "_hash", "_name", "_parent")

    _interned: ClassVar[dict[str, Purpose]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    _name: str
    _hash: int
    _parent: Purpose | None

    def __new__(cls, name: str | Purpose) -> Purpose:
        if isinstance(name, Purpose):
            return name
        found = cls._interned.get(name) if isinstance(name, str) else None
        if found is not None:
            return found
        if not isinstance(name, str):
            raise PolicyError(f"a purpose must be a str or Purpose, got {type(name).__name__}")
        if type(name) is not str:
            # A str subclass (e.g. a StrEnum member) is stored as the plain str it holds.
            name = str.__str__(name)
            found = cls._interned.get(name)
            if found is not None:
                return found
        if len(name) > _MAX_LEN or _NAME.fullmatch(name) is None:
            shown = name if len(name) <= 80 else name[:77] + "..."
            raise PolicyError(
                f"invalid purpose {shown!r}: expected dotted lowercase names such as "
                "'face.verification.login' (letters, digits and _ , each part starting "
                "with a letter)"
            )
        self = object.__new__(cls)
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_hash", hash(("purposeguard.Purpose", name)))
        head, dot, _ = name.rpartition(".")
        object.__setattr__(self, "_parent", Purpose(head) if dot else None)
        with cls._lock:
            if len(cls._interned) < _CACHE_LIMIT:
                self = cls._interned.setdefault(name, self)
        return self

    @property
    def name(self) -> str:
        """The dotted name."""
        return self._name

    @property
    def parent(self) -> Purpose | None:
        """The enclosing purpose, or `None` for a root such as `face`."""
        return self._parent

    @property
    def depth(self) -> int:
        """How many parts the name has (`face` is 1)."""
        return self._name.count(".") + 1

    def ancestors(self) -> tuple[Purpose, ...]:
        """The proper ancestors, nearest first (`face.a.b` gives `face.a`, `face`)."""
        out: list[Purpose] = []
        node = self._parent
        while node is not None:
            out.append(node)
            node = node._parent
        return tuple(out)

    def is_within(self, other: str | Purpose) -> bool:
        """True if this purpose equals *other* or is a descendant of it."""
        o = other if isinstance(other, Purpose) else Purpose(other)
        if o is self:
            return True
        n, on = self._name, o._name
        return len(n) > len(on) and n.startswith(on) and n[len(on)] == "."

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Purpose):
            return self._name == other._name
        return NotImplemented

    def __hash__(self) -> int:
        return self._hash

    def __lt__(self, other: Purpose) -> bool:
        if not isinstance(other, Purpose):
            return NotImplemented
        return self._name < other._name

    def __le__(self, other: Purpose) -> bool:
        if not isinstance(other, Purpose):
            return NotImplemented
        return self._name <= other._name

    def __gt__(self, other: Purpose) -> bool:
        if not isinstance(other, Purpose):
            return NotImplemented
        return self._name > other._name

    def __ge__(self, other: Purpose) -> bool:
        if not isinstance(other, Purpose):
            return NotImplemented
        return self._name >= other._name

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Purpose is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Purpose is immutable")

    def __reduce__(self) -> tuple[object, ...]:
        return (Purpose, (self._name,))

    def __copy__(self) -> Purpose:
        return self

    def __deepcopy__(self, memo: object) -> Purpose:
        return self

    def __str__(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"Purpose({self._name!r})"


PurposeLike: TypeAlias = str | Purpose
"""A purpose given as its name or as a [`Purpose`][purposeguard.Purpose]."""


def purpose_set(value: PurposeLike | Iterable[PurposeLike], what: str) -> frozenset[Purpose]:
    """Normalise one purpose or an iterable of them into a frozenset of Purpose."""
    if isinstance(value, str | Purpose):
        return frozenset((Purpose(value),))
    try:
        items = list(value)
    except TypeError:
        raise PolicyError(
            f"{what} must be a purpose or an iterable of purposes, got {type(value).__name__}"
        ) from None
    return frozenset(Purpose(v) for v in items)


class Operation(enum.StrEnum):
    """What is done with face data. Each use of a template is one operation.

    `DELETE` is never blocked by purpose: erasure must always work.
    """

    COLLECT = "collect"
    """Capturing a face and wrapping its template (`FaceTemplate.wrap`)."""
    REVEAL = "reveal"
    """Reading the template's values (`FaceTemplate.reveal`)."""
    COMPARE = "compare"
    """1:1 comparison of two templates (`similarity`)."""
    SEARCH = "search"
    """1:N search of a gallery with a probe."""
    TRANSFORM = "transform"
    """Computing derived data from templates (`@transform`)."""
    STORE = "store"
    """Enrolling a template into a store."""
    EXPORT = "export"
    """Moving a template out of the process (sealing, exporting)."""
    DELETE = "delete"
    """Erasure; always permitted."""
