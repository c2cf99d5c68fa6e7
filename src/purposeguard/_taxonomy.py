"""The taxonomy: which purposes exist and which operations each allows."""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from datetime import timedelta
from os import PathLike
from typing import Any, Final

import attrs

from ._errors import PolicyError
from ._purposes import Operation, Purpose, PurposeLike

__all__ = ["PurposeSpec", "Taxonomy"]

_O = Operation
_VERIFY: Final = frozenset({_O.COLLECT, _O.REVEAL, _O.COMPARE, _O.TRANSFORM, _O.STORE, _O.EXPORT})
_IDENTIFY: Final = _VERIFY | {_O.SEARCH}


@attrs.frozen
class PurposeSpec:
    """One purpose in a [`Taxonomy`][purposeguard.Taxonomy], with its effective (inherited)
    settings.

    Attributes:
        purpose: the purpose.
        operations: the operations it allows (`DELETE` is always allowed besides).
        declared: the operations declared on this node, or `None` if inherited.
        sensitive: whether data processed for it is sensitive personal data.
        separate_consent: whether it needs a consent given separately for it.
        max_retention: the longest a template collected for it may be kept, if capped.
        description: a human sentence for reports.
    """

    purpose: Purpose
    operations: frozenset[Operation]
    declared: frozenset[Operation] | None
    sensitive: bool
    separate_consent: bool
    max_retention: timedelta | None
    description: str


@attrs.frozen
class _Node:
    operations: frozenset[Operation] | None = None
    sensitive: bool | None = None
    separate_consent: bool | None = None
    max_retention: timedelta | None = None
    description: str = ""


def _ops(value: object, where: str) -> frozenset[Operation]:
    if isinstance(value, str | Operation):
        value = [value]
    if not isinstance(value, Iterable):
        raise PolicyError(f"{where}: operations must be a list of operation names")
    out = set()
    for v in value:
        try:
            out.add(Operation(v))
        except ValueError:
            known = ", ".join(o.value for o in Operation)
            raise PolicyError(f"{where}: unknown operation {v!r} (known: {known})") from None
    return frozenset(out)


class Taxonomy:
    """The known purposes, each with the operations it allows.

    A purpose that declares no operations inherits its parent's; a declared set may
    only narrow what the nearest declaring ancestor allows. A root that declares none
    (such as `face` in the default taxonomy) allows nothing but `DELETE`. Sensitivity
    and separate consent are inherited (once set by an ancestor they stay set), and a
    maximum retention can only shorten down the tree.

    Taxonomies are immutable: [`extend`][purposeguard.Taxonomy.extend] returns a new one. With a
    taxonomy in force, an unknown purpose anywhere is a [`PolicyError`][purposeguard.PolicyError].
    """

    __slots__ = ("_nodes", "_specs")

    def __init__(self, nodes: Mapping[Any, _Node] | None = None) -> None:
        raw: dict[Purpose, _Node] = {Purpose(k): v for k, v in (nodes or {}).items()}
        # Every ancestor of a known purpose is known.
        for p in list(raw):
            for a in p.ancestors():
                raw.setdefault(a, _Node())
        specs: dict[Purpose, PurposeSpec] = {}
        for p in sorted(raw, key=lambda q: (q.depth, q.name)):
            node = raw[p]
            parent = specs.get(p.parent) if p.parent is not None else None
            inherited = parent.operations if parent is not None else frozenset()
            ceiling = _declared_ceiling(p, raw, specs)
            declared = None if node.operations is None else node.operations - {Operation.DELETE}
            if declared is None:
                effective = inherited
            else:
                if ceiling is not None and not declared <= ceiling:
                    extra = ", ".join(sorted(o.value for o in declared - ceiling))
                    raise PolicyError(
                        f"purpose {p.name!r} allows {extra}, which its ancestors do not: "
                        "a child purpose may only narrow the operations it inherits"
                    )
                effective = declared
            retention = node.max_retention
            if retention is not None and not isinstance(retention, timedelta):
                raise PolicyError(f"purpose {p.name!r}: max_retention must be a timedelta")
            if retention is not None and retention <= timedelta(0):
                raise PolicyError(f"purpose {p.name!r}: max_retention must be positive")
            if parent is not None and parent.max_retention is not None:
                retention = (
                    parent.max_retention
                    if retention is None
                    else min(retention, parent.max_retention)
                )
            specs[p] = PurposeSpec(
                purpose=p,
                operations=effective,
                declared=node.operations,
                sensitive=bool(node.sensitive) or (parent is not None and parent.sensitive),
                separate_consent=bool(node.separate_consent)
                or (parent is not None and parent.separate_consent),
                max_retention=retention,
                description=node.description,
            )
        self._nodes = raw
        self._specs = specs

    # -- construction --------------------------------------------------------------

    @classmethod
    def default(cls) -> Taxonomy:
        """The default face taxonomy (see the docs' concepts page for the tree)."""
        return _DEFAULT

    def extend(
        self,
        purpose: PurposeLike,
        *,
        operations: Iterable[Operation | str] | None = None,
        sensitive: bool | None = None,
        separate_consent: bool | None = None,
        max_retention: timedelta | None = None,
        description: str = "",
    ) -> Taxonomy:
        """Return a new taxonomy with *purpose* added (or re-declared).

        Missing ancestors are added and inherit. `operations=None` inherits the
        parent's; a declared set must not broaden what the ancestors allow.
        """
        p = Purpose(purpose)
        nodes = dict(self._nodes)
        old = nodes.get(p, _Node())
        nodes[p] = _Node(
            operations=old.operations if operations is None else _ops(operations, p.name),
            sensitive=old.sensitive if sensitive is None else sensitive,
            separate_consent=old.separate_consent
            if separate_consent is None
            else separate_consent,
            max_retention=old.max_retention if max_retention is None else max_retention,
            description=description or old.description,
        )
        return Taxonomy(nodes)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, base: Taxonomy | None = None) -> Taxonomy:
        """Build from `{"purposes": {name: {operations, sensitive, ...}}}` over *base*.

        Keys per purpose: `operations` (list of names), `sensitive`,
        `separate_consent` (booleans), `max_retention_days` (positive number) and
        `description`. *base* defaults to the empty taxonomy.
        """
        purposes = data.get("purposes", {})
        unknown_top = set(data) - {"purposes"}
        if unknown_top:
            raise PolicyError(f"unknown taxonomy table(s): {', '.join(sorted(unknown_top))}")
        if not isinstance(purposes, Mapping):
            raise PolicyError("[purposes] must be a table of purpose names")
        tax = base if base is not None else Taxonomy()
        allowed = {
            "operations",
            "sensitive",
            "separate_consent",
            "max_retention_days",
            "description",
        }
        for name, entry in purposes.items():
            where = f"purpose {name!r}"
            if not isinstance(entry, Mapping):
                raise PolicyError(f"{where}: expected a table")
            extra = set(entry) - allowed
            if extra:
                raise PolicyError(f"{where}: unknown key(s) {', '.join(sorted(extra))}")
            days = entry.get("max_retention_days")
            retention = None
            if days is not None:
                if (
                    isinstance(days, bool)
                    or not isinstance(days, int | float)
                    or not math.isfinite(days)
                    or days <= 0
                ):
                    raise PolicyError(f"{where}: max_retention_days must be a positive number")
                try:
                    retention = timedelta(days=days)
                except OverflowError:
                    raise PolicyError(f"{where}: max_retention_days is too large") from None
            for flag in ("sensitive", "separate_consent"):
                if flag in entry and not isinstance(entry[flag], bool):
                    raise PolicyError(f"{where}: {flag} must be true or false")
            ops = entry.get("operations")
            tax = tax.extend(
                name,
                operations=None if ops is None else _ops(ops, where),
                sensitive=entry.get("sensitive"),
                separate_consent=entry.get("separate_consent"),
                max_retention=retention,
                description=str(entry.get("description", "")),
            )
        return tax

    @classmethod
    def from_toml(cls, path: str | PathLike[str], *, base: Taxonomy | None = None) -> Taxonomy:
        """Load a taxonomy from a TOML file, on top of *base* (default: the face taxonomy).

        Errors name the file and, where it can be found, the line of the offending entry.
        """
        with open(path, encoding="utf-8") as f:
            try:
                text = f.read()
            except UnicodeDecodeError as e:
                raise PolicyError(f"{path}: not UTF-8 text ({e.reason})") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise PolicyError(f"{path}: {e}") from None
        try:
            return cls.from_mapping(data, base=cls.default() if base is None else base)
        except PolicyError as e:
            raise PolicyError(f"{path}{_line_hint(text, str(e))}: {e}") from None

    # -- queries -------------------------------------------------------------------

    def __contains__(self, purpose: object) -> bool:
        if isinstance(purpose, str):
            try:
                purpose = Purpose(purpose)
            except PolicyError:
                return False
        return purpose in self._specs

    def __iter__(self) -> Iterator[Purpose]:
        return iter(sorted(self._specs))

    def __len__(self) -> int:
        return len(self._specs)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Taxonomy):
            return self._specs == other._specs
        return NotImplemented

    def __hash__(self) -> int:
        return hash(frozenset(self._specs.items()))

    def __repr__(self) -> str:
        return f"<Taxonomy of {len(self._specs)} purposes>"

    def spec(self, purpose: PurposeLike) -> PurposeSpec:
        """The effective settings of *purpose*; `PolicyError` if it is unknown."""
        p = Purpose(purpose)
        spec = self._specs.get(p)
        if spec is None:
            raise PolicyError(f"unknown purpose {p.name!r}: it is not in the taxonomy in force")
        return spec

    def require(self, purposes: Iterable[Purpose]) -> None:
        """Raise `PolicyError` naming the first unknown purpose among *purposes*."""
        specs = self._specs
        for p in purposes:
            if p not in specs:
                raise PolicyError(
                    f"unknown purpose {p.name!r}: it is not in the taxonomy in force"
                )

    def operations(self, purpose: PurposeLike) -> frozenset[Operation]:
        """The operations *purpose* allows (`DELETE` is implied and not listed)."""
        return self.spec(purpose).operations

    def allows(self, purpose: PurposeLike, operation: Operation) -> bool:
        """Whether *purpose* allows *operation*; `DELETE` always is."""
        if operation is Operation.DELETE:
            return True
        return operation in self.spec(purpose).operations

    def children(self, purpose: PurposeLike) -> tuple[Purpose, ...]:
        """The direct children of *purpose*, sorted."""
        p = Purpose(purpose)
        return tuple(sorted(q for q in self._specs if q.parent == p))

    def roots(self) -> tuple[Purpose, ...]:
        """The purposes without a parent, sorted."""
        return tuple(sorted(q for q in self._specs if q.parent is None))

    def to_mapping(self) -> dict[str, Any]:
        """The declared nodes as data that [`from_mapping`][purposeguard.Taxonomy.from_mapping]
        reads back."""
        out: dict[str, Any] = {}
        for p in sorted(self._nodes):
            n = self._nodes[p]
            entry: dict[str, Any] = {}
            if n.operations is not None:
                entry["operations"] = sorted(o.value for o in n.operations)
            if n.sensitive is not None:
                entry["sensitive"] = n.sensitive
            if n.separate_consent is not None:
                entry["separate_consent"] = n.separate_consent
            if n.max_retention is not None:
                entry["max_retention_days"] = n.max_retention / timedelta(days=1)
            if n.description:
                entry["description"] = n.description
            out[p.name] = entry
        return {"purposes": out}


def _declared_ceiling(
    p: Purpose, raw: Mapping[Purpose, _Node], specs: Mapping[Purpose, PurposeSpec]
) -> frozenset[Operation] | None:
    for a in p.ancestors():
        if raw[a].operations is not None:
            return specs[a].operations
    return None


def _line_hint(text: str, message: str) -> str:
    # Point at the line that names the purpose the message is about, when there is one.
    start = message.find("'")
    end = message.find("'", start + 1)
    if start < 0 or end < 0:
        return ""
    name = message[start + 1 : end]
    # The name as a whole key, not as the prefix of a longer purpose's name.
    exact = re.compile(rf"(?<![\w.]){re.escape(name)}(?![\w.])")
    for i, line in enumerate(text.splitlines(), 1):
        if exact.search(line):
            return f":{i}"
    return ""


def _default_nodes() -> dict[PurposeLike, _Node]:
    def n(ops: frozenset[Operation] | None = None, description: str = "") -> _Node:
        return _Node(operations=ops, description=description)

    return {
        "face": _Node(
            operations=None,
            sensitive=True,
            description="Face data; allows nothing by itself beyond erasure.",
        ),
        "face.verification": n(_VERIFY, "1:1 verification: is this the enrolled person?"),
        "face.verification.device_unlock": n(description="Unlocking the subject's own device."),
        "face.verification.login": n(description="Signing in to a service."),
        "face.verification.payment": n(description="Authorising a payment."),
        "face.verification.access_control": n(description="Opening a door or gate."),
        "face.identification": n(_IDENTIFY, "1:N identification: who is this?"),
        "face.identification.closed_set_optin": n(
            description="Identification within a gallery of people who opted in."
        ),
        "face.identification.retrospective_search": n(
            description="Searching recorded footage after the fact."
        ),
        "face.identification.realtime_remote": n(
            description="Live remote identification at a distance."
        ),
        "face.public_security": n(_IDENTIFY, "Public security uses."),
        "face.public_security.public_place_cctv": n(description="Cameras in public places."),
        "face.public_security.law_enforcement": n(description="Police use."),
        "face.public_security.law_enforcement.victim_search": n(
            description="Searching for a specific victim."
        ),
        "face.public_security.law_enforcement.imminent_threat": n(
            description="Preventing an imminent threat to life."
        ),
        "face.public_security.law_enforcement.serious_crime": n(
            description="Locating a suspect of a serious crime."
        ),
        "face.analytics": n(
            frozenset({_O.COLLECT, _O.TRANSFORM, _O.STORE}), "Analytics without identity."
        ),
        "face.analytics.counting": n(description="Counting people."),
        "face.analytics.demographics": n(description="Estimating age or gender bands."),
        "face.analytics.emotion": n(description="Emotion recognition."),
        "face.analytics.sensitive_categorisation": n(
            description="Inferring sensitive traits (banned in the EU)."
        ),
        "face.liveness": n(
            frozenset({_O.COLLECT, _O.TRANSFORM}), "Presentation-attack (liveness) detection."
        ),
        "face.model_development": n(
            frozenset({_O.COLLECT, _O.REVEAL, _O.TRANSFORM, _O.STORE}),
            "Training and evaluating models.",
        ),
        "face.model_development.training": n(description="Training a model."),
        "face.model_development.evaluation": n(description="Evaluating a model."),
        "face.commercial": n(frozenset({_O.COLLECT, _O.STORE}), "Commercial uses."),
        "face.commercial.marketing": n(description="Marketing."),
        "face.commercial.sale": n(description="Selling face data (banned by BIPA)."),
    }


_DEFAULT: Final = Taxonomy(_default_nodes())
