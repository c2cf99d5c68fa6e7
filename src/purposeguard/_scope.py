"""Declaring purpose: scopes, decorators, collection points, transforms, comparison."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Coroutine, Iterable
from contextvars import Token
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Final, Literal, ParamSpec, TypeVar, cast, overload

import numpy as np
import numpy.typing as npt

from ._context import ACTIVE, ScopeState, VerifiedGrant
from ._errors import GrantError, InvalidTemplateError, PolicyError, PurposeViolationError
from ._guard import current_guard
from ._labels import Label
from ._purposes import Operation, Purpose, PurposeLike, purpose_set
from ._template import FaceTemplate, as_vector

__all__ = [
    "PurposeScope",
    "collects",
    "current_purpose",
    "current_scope",
    "distance",
    "purpose",
    "similarity",
    "transform",
    "uses",
]

P = ParamSpec("P")
R = TypeVar("R")
_MAX_NESTING: Final = 4


def current_purpose() -> Purpose | None:
    """The purpose in force in this context, or `None`.

    It lives in a `contextvars.ContextVar`: asyncio tasks inherit the purpose of the
    code that created them; a new `threading.Thread` starts with none.
    """
    state = ACTIVE.get()
    return state.purpose if state is not None else None


def current_scope() -> ScopeState | None:
    """The whole active scope (purpose, principal, verified grant), or `None`."""
    return ACTIVE.get()


class PurposeScope:
    """A purpose declaration: a context manager (`with`/`async with`) and a decorator.

    Create it with [`purpose`][purposeguard.purpose]. Entering checks, at the current guard, that
    the purpose is known, that it is within the enclosing scope's purpose (purposes only
    narrow down the stack) and, where grants are in use, that a verified grant covers
    it. One scope object may be entered again after it exits; to use one purpose in
    concurrent tasks, enter it in each task or decorate the task's function.
    """

    __slots__ = ("_grant", "_principal", "_purpose", "_state", "_tokens")

    def __init__(
        self, name: PurposeLike, *, grant: str | None = None, principal: str | None = None
    ) -> None:
        self._purpose = Purpose(name)
        if grant is not None and not isinstance(grant, str):
            raise PolicyError(f"grant must be a token string, got {type(grant).__name__}")
        if principal is not None and (not isinstance(principal, str) or not principal):
            raise PolicyError("principal must be a non-empty string")
        self._grant = grant
        self._principal = principal
        self._tokens: list[Token[ScopeState | None]] = []
        # The last grant-less state this scope put in force (immutable, so reusable).
        self._state: ScopeState | None = None

    @property
    def purpose(self) -> Purpose:
        """The declared purpose."""
        return self._purpose

    def _enter(self) -> Token[ScopeState | None]:
        guard = current_guard()
        p = self._purpose
        if p not in guard.taxonomy._specs:
            guard.taxonomy.require((p,))
        outer = ACTIVE.get()
        principal = self._principal
        if principal is None and outer is not None:
            principal = outer.principal
        if outer is not None and not p.is_within(outer.purpose):
            guard.deny_scope(
                p,
                f"purpose {p.name!r} is not within the enclosing purpose "
                f"{outer.purpose.name!r}: purposes only narrow down the stack",
                PurposeViolationError,
                principal=principal,
            )
        grant: VerifiedGrant | None = None
        if self._grant is not None:
            grant = self._verify(p, principal)
            principal = principal or grant.principal
        elif outer is not None and outer.grant is not None and outer.grant.covers(p):
            grant = outer.grant
        if guard.require_grants and grant is None:
            guard.deny_scope(
                p,
                f"purpose {p.name!r} needs a verified grant and none was given",
                GrantError,
                principal=principal,
            )
        if grant is None:
            state = self._state
            if state is None or state.principal != principal:
                state = self._state = ScopeState(purpose=p, principal=principal)
            return ACTIVE.set(state)
        return ACTIVE.set(ScopeState(purpose=p, principal=principal, grant=grant))

    def _verify(self, p: Purpose, principal: str | None) -> VerifiedGrant:
        guard = current_guard()
        verifier = guard.grant_verifier
        if verifier is None:
            raise PolicyError("a grant was given but the guard has no grant_verifier")
        assert self._grant is not None
        try:
            grant = verifier.verify(self._grant, purpose=p, principal=principal, now=guard.now())
        except GrantError as e:
            reason = str(e)
        except Exception as e:  # a verifier that breaks must not let the scope open
            reason = f"the grant could not be verified ({type(e).__name__})"
        else:
            if isinstance(grant, VerifiedGrant) and grant.covers(p):
                return grant
            reason = f"the grant does not cover {p.name!r}"
        guard.deny_scope(p, reason, GrantError, principal=principal)
        raise AssertionError("unreachable: grant denials always raise")  # pragma: no cover

    def __enter__(self) -> Purpose:
        self._tokens.append(self._enter())
        return self._purpose

    def __exit__(
        self,
        et: type[BaseException] | None,
        ev: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        ACTIVE.reset(self._tokens.pop())

    async def __aenter__(self) -> Purpose:
        return self.__enter__()

    async def __aexit__(
        self,
        et: type[BaseException] | None,
        ev: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(et, ev, tb)

    @overload
    def __call__(
        self, fn: Callable[P, Coroutine[Any, Any, R]]
    ) -> Callable[P, Coroutine[Any, Any, R]]: ...
    @overload
    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]: ...
    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        return _scoped(self, fn, admit=False)

    def __repr__(self) -> str:
        return f"purpose({self._purpose.name!r})"


def purpose(
    name: PurposeLike, *, grant: str | None = None, principal: str | None = None
) -> PurposeScope:
    """Declare the purpose the enclosed code works for.

    Use as `with purpose("face.verification.login"):`, `async with`, or as a
    decorator of sync and async functions. `grant` is a signed purpose grant
    (required when the guard has `require_grants=True`); `principal` names who acts.

    Raises:
        PolicyError: the name is malformed (at once) or unknown (on entry).
        PurposeViolationError: on entry, the purpose is not within the enclosing one.
        GrantError: on entry, the grant is missing, invalid or does not cover it.
    """
    return PurposeScope(name, grant=grant, principal=principal)


def _scoped(scope: PurposeScope, fn: Callable[P, Any], *, admit: bool) -> Callable[P, Any]:
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def run_async(*args: P.args, **kwargs: P.kwargs) -> Any:
            token = scope._enter()
            try:
                if admit:
                    _admit(args, kwargs)
                return await fn(*args, **kwargs)
            finally:
                ACTIVE.reset(token)

        return run_async

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> Any:
        token = scope._enter()
        try:
            if admit:
                _admit(args, kwargs)
            return fn(*args, **kwargs)
        finally:
            ACTIVE.reset(token)

    return run


def _find_templates(
    value: object, out: list[FaceTemplate], depth: int = 0, *, sets: bool = True
) -> None:
    if isinstance(value, FaceTemplate):
        out.append(value)
    elif depth < _MAX_NESTING:
        if isinstance(value, list | tuple) or (sets and isinstance(value, set | frozenset)):
            for v in value:
                _find_templates(v, out, depth + 1, sets=sets)
        elif isinstance(value, dict):
            for v in value.values():
                _find_templates(v, out, depth + 1, sets=sets)


def _admit(args: tuple[object, ...], kwargs: dict[str, object]) -> None:
    found: list[FaceTemplate] = []
    for a in args:
        _find_templates(a, found)
    for v in kwargs.values():
        _find_templates(v, found)
    if found:
        current_guard().authorize(None, found)


def uses(
    name: PurposeLike, *, principal: str | None = None, grant: str | None = None
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Run the decorated function (sync or async) inside `purpose(name)`.

    Before the body runs, every [`FaceTemplate`][purposeguard.FaceTemplate] among the arguments
    (also inside lists, tuples, sets, frozensets and dict values, up to four levels
    deep) is checked against its label for this purpose (conformance, expiry,
    consent), in one audited event with no operation; a denial happens before the body
    runs. Operations inside the body are checked again when they happen. *principal*
    and *grant* are passed to the scope, as for [`purpose`][purposeguard.purpose].
    """
    scope = PurposeScope(name, grant=grant, principal=principal)

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        return cast("Callable[P, R]", _scoped(scope, fn, admit=True))

    return decorate


def _release(value: object, depth: int = 0) -> object:
    # Replace templates by read-only copies of their values (TRANSFORM already granted).
    if isinstance(value, FaceTemplate):
        out = value._values().copy()
        out.flags.writeable = False
        return out
    if depth < _MAX_NESTING:
        if isinstance(value, list | tuple):
            return type(value)(_release(v, depth + 1) for v in value)
        if isinstance(value, dict):
            return {k: _release(v, depth + 1) for k, v in value.items()}
    return value


def _label_result(value: object, label: Label, name: str, depth: int = 0) -> object:
    if isinstance(value, np.ndarray):
        return FaceTemplate._new(as_vector(value, f"the result of transform {name!r}"), label)
    if depth < _MAX_NESTING:
        if isinstance(value, list | tuple):
            return type(value)(_label_result(v, label, name, depth + 1) for v in value)
        if isinstance(value, dict):
            return {k: _label_result(v, label, name, depth + 1) for k, v in value.items()}
    raise InvalidTemplateError(
        f"transform {name!r} returned {type(value).__name__}; a transform of templates must "
        "return 1-D arrays (or lists, tuples or dicts of them), which become labelled templates"
    )


@overload
def transform(fn: Callable[P, R], /) -> Callable[..., Any]: ...
@overload
def transform(
    fn: None = None, /, *, name: str | None = None
) -> Callable[[Callable[P, R]], Callable[..., Any]]: ...
@overload
def transform(name: str, /) -> Callable[[Callable[P, R]], Callable[..., Any]]: ...
def transform(fn: Any = None, /, *, name: str | None = None) -> Any:
    """Mark a function over numpy arrays as a transformation of face data.

    Called with templates (as arguments, or inside lists, tuples or dict values; sets
    are passed through unchanged, since arrays cannot be set members), it is
    a TRANSFORM under the active purpose: the function gets read-only copies of the
    values, and every array it returns becomes a new template whose label combines the
    inputs' labels (narrowest common purposes, union of prohibitions, earliest expiry)
    with `transform:<name>` appended to the lineage. Called with plain arrays only,
    it is a plain function.

    Use as `@transform`, `@transform()`, `@transform("normalise")` or
    `@transform(name="normalise")`; the name defaults to the function's qualified
    name. A return value that is not a 1-D array (alone, or inside lists, tuples or
    dicts) raises `InvalidTemplateError`; inputs whose labels cannot be combined
    (different subjects or consents, no common purpose) raise `PolicyError`.
    """
    if isinstance(fn, str):
        name, fn = fn, None

    def decorate(f: Callable[P, R]) -> Callable[P, Any]:
        tname = name or f.__qualname__

        @functools.wraps(f)
        def run(*args: P.args, **kwargs: P.kwargs) -> Any:
            found: list[FaceTemplate] = []
            for a in args:
                _find_templates(a, found, sets=False)
            for v in kwargs.values():
                _find_templates(v, found, sets=False)
            if not found:
                return f(*args, **kwargs)
            # Combine first: labels that cannot be combined must not log a granted use.
            label = Label.combine(*(t.label for t in found), step=f"transform:{tname}")
            current_guard().authorize(Operation.TRANSFORM, found)
            new_args = cast(Any, tuple(_release(a) for a in args))
            new_kwargs = cast(Any, {k: _release(v) for k, v in kwargs.items()})
            return _label_result(f(*new_args, **new_kwargs), label, tname)

        return run

    return decorate if fn is None else decorate(fn)


def collects(
    purposes: PurposeLike | Iterable[PurposeLike],
    *,
    subject: str | Callable[..., str],
    ttl: timedelta | None = None,
    expires_at: datetime | None = None,
    consent: str | Callable[..., str | None] | None = None,
    prohibited: PurposeLike | Iterable[PurposeLike] = (),
    jurisdictions: str | Iterable[str] = (),
    context: object | None = None,
) -> Callable[[Callable[P, Any]], Callable[P, Any]]:
    """Mark an embedding function as a collection point: its result is wrapped at once.

    A 1-D array result becomes one [`FaceTemplate`][purposeguard.FaceTemplate]; a 2-D array, list
    or tuple of 1-D arrays becomes a list of templates (one per face); `None` stays `None`.
    *subject* and *consent* may be strings or callables that receive the function's
    arguments. Every template is a COLLECT, checked and audited as in
    [`FaceTemplate.wrap`][purposeguard.FaceTemplate.wrap]. Sync and async functions are supported.

    Raises:
        InvalidTemplateError: not exactly one of *ttl* and *expires_at* (when the
            decorator is applied).
        PolicyError: no purposes (when the decorator is applied).
    """
    allowed = purpose_set(purposes, "purposes")
    if not allowed:
        raise PolicyError("purposes is empty: a collection point needs at least one purpose")
    if (ttl is None) == (expires_at is None):
        raise InvalidTemplateError("give exactly one of expires_at and ttl")

    def wrap_one(v: object, subj: str, cons: str | None) -> FaceTemplate:
        return FaceTemplate.wrap(
            v,
            subject=subj,
            purposes=allowed,
            ttl=ttl,
            expires_at=expires_at,
            consent=cons,
            prohibited=prohibited,
            jurisdictions=jurisdictions,
            context=context,
        )

    def label_all(result: object, args: tuple[Any, ...], kwargs: dict[str, Any]) -> object:
        if result is None:
            return None
        subj = subject(*args, **kwargs) if callable(subject) else subject
        cons = consent(*args, **kwargs) if callable(consent) else consent
        if isinstance(result, np.ndarray) and result.ndim == 2:
            return [wrap_one(row, subj, cons) for row in result]
        if isinstance(result, list | tuple):
            return [wrap_one(v, subj, cons) for v in result]
        return wrap_one(result, subj, cons)

    def decorate(fn: Callable[P, Any]) -> Callable[P, Any]:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def run_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                return label_all(await fn(*args, **kwargs), args, kwargs)

            return run_async

        @functools.wraps(fn)
        def run(*args: P.args, **kwargs: P.kwargs) -> Any:
            return label_all(fn(*args, **kwargs), args, kwargs)

        return run

    return decorate


def _pair(a: object, b: object) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    va = a._values() if isinstance(a, FaceTemplate) else as_vector(a, "a")
    vb = b._values() if isinstance(b, FaceTemplate) else as_vector(b, "b")
    if va.shape != vb.shape:
        raise InvalidTemplateError(
            f"dimension mismatch: {va.shape[0]} against {vb.shape[0]} entries"
        )
    templates = [x for x in (a, b) if isinstance(x, FaceTemplate)]
    if templates:
        current_guard().authorize(Operation.COMPARE, templates)
    return va, vb


def _cosine(va: npt.NDArray[Any], vb: npt.NDArray[Any]) -> float:
    na = float(np.linalg.norm(va))
    nb = float(np.linalg.norm(vb))
    if na == 0.0 or nb == 0.0:
        raise InvalidTemplateError("cosine is undefined for a zero vector")
    return float(np.dot(va, vb)) / (na * nb)


def similarity(
    a: FaceTemplate | npt.ArrayLike,
    b: FaceTemplate | npt.ArrayLike,
    *,
    metric: Literal["cosine", "dot"] = "cosine",
) -> float:
    """Compare two templates (a COMPARE under the active purpose); higher is closer.

    Either side may be a plain array (a live probe); every template side is checked
    and audited. `metric` is `"cosine"` (default) or `"dot"`.

    Raises:
        InvalidTemplateError: dimensions differ, a zero vector for cosine, bad array.
        PolicyError: unknown metric.
        AccessDeniedError: (a subclass) the comparison is not permitted.
    """
    if metric not in ("cosine", "dot"):
        raise PolicyError(f"unknown similarity metric {metric!r} (use 'cosine' or 'dot')")
    va, vb = _pair(a, b)
    if metric == "dot":
        return float(np.dot(va.astype(np.float64), vb.astype(np.float64)))
    return _cosine(va.astype(np.float64), vb.astype(np.float64))


def distance(
    a: FaceTemplate | npt.ArrayLike,
    b: FaceTemplate | npt.ArrayLike,
    *,
    metric: Literal["euclidean", "cosine"] = "euclidean",
) -> float:
    """Distance between two templates (a COMPARE under the active purpose); lower is
    closer. `metric` is `"euclidean"` (default) or `"cosine"` (1 - cosine).

    Raises as [`similarity`][purposeguard.similarity] does.
    """
    if metric not in ("euclidean", "cosine"):
        raise PolicyError(f"unknown distance metric {metric!r} (use 'euclidean' or 'cosine')")
    va, vb = _pair(a, b)
    fa, fb = va.astype(np.float64), vb.astype(np.float64)
    if metric == "cosine":
        return 1.0 - _cosine(fa, fb)
    return float(np.linalg.norm(fa - fb))
