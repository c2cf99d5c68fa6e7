"""A Griffe extension for the docs: the `__init__` signature of attrs classes.

Griffe reads the source without running it, so it does not see the `__init__` that
`@attrs.frozen` and `@attrs.define` generate, and mkdocstrings would show such a class
with no signature. This extension writes that signature from the class's annotated
fields, following attrs' rules: `init=False` fields are left out, a leading underscore
is dropped from the parameter name (unless the field has an `alias`), `kw_only` (on
the decorator or the field) makes parameters keyword-only, and `default=`, `factory=`
and `attrs.Factory(...)` give the default shown.
"""

from __future__ import annotations

from typing import Any

import griffe

_DECORATORS = {
    "attrs.define",
    "attrs.frozen",
    "attrs.mutable",
    "attr.s",
    "attr.attrs",
    "attr.define",
    "attr.frozen",
}
_FIELDS = {"attrs.field", "attr.ib", "attr.attrib", "attr.field"}


def _call_path(expr: object) -> str | None:
    if isinstance(expr, griffe.ExprCall):
        expr = expr.function
    path = getattr(expr, "canonical_path", None)
    return path if isinstance(path, str) else None


def _keywords(expr: object) -> dict[str, Any]:
    """The keyword arguments of a call expression, by name."""
    if not isinstance(expr, griffe.ExprCall):
        return {}
    out = {}
    for argument in expr.arguments:
        name = getattr(argument, "name", None)
        if name is not None:
            out[name] = argument.value
    return out


def _attrs_decorator(cls: griffe.Class) -> griffe.Decorator | None:
    for decorator in cls.decorators:
        if _call_path(decorator.value) in _DECORATORS:
            return decorator
    return None


def _default(field: dict[str, Any], value: object) -> str | griffe.Expr | None:
    if "default" in field:
        default = field["default"]
        if _call_path(default) in {"attrs.Factory", "attr.Factory"}:
            return "<factory>"
        return default  # type: ignore[no-any-return]
    if "factory" in field:
        factory = field["factory"]
        if isinstance(factory, griffe.ExprName | griffe.ExprAttribute):
            return griffe.ExprCall(function=factory, arguments=[])
        return "<factory>"
    if field:
        return None  # attrs.field(...) without a default: required
    return value  # type: ignore[return-value]


def _parameters(cls: griffe.Class, kw_only: bool) -> list[griffe.Parameter]:
    params = []
    for member in cls.members.values():
        if member.is_alias or not member.is_attribute or member.annotation is None:
            continue
        if "class-attribute" in member.labels and "instance-attribute" not in member.labels:
            continue  # a ClassVar
        if "property" in member.labels:
            continue
        field = _keywords(member.value) if _call_path(member.value) in _FIELDS else {}
        if str(field.get("init", "True")) == "False":
            continue
        alias = field.get("alias")
        name = str(alias).strip("'\"") if alias is not None else member.name.lstrip("_")
        keyword = kw_only or str(field.get("kw_only", "False")) == "True"
        params.append(
            griffe.Parameter(
                name,
                annotation=member.annotation,
                kind=(
                    griffe.ParameterKind.keyword_only
                    if keyword
                    else griffe.ParameterKind.positional_or_keyword
                ),
                default=_default(field, member.value),
                docstring=member.docstring,
            )
        )
    positional = [p for p in params if p.kind is not griffe.ParameterKind.keyword_only]
    keyword_only = [p for p in params if p.kind is griffe.ParameterKind.keyword_only]
    return positional + keyword_only


class AttrsInit(griffe.Extension):
    """Give every attrs class without an explicit `__init__` its generated signature."""

    def on_class_members(self, *, cls: griffe.Class, **kwargs: Any) -> None:
        decorator = _attrs_decorator(cls)
        if decorator is None or "__init__" in cls.members:
            return
        options = _keywords(decorator.value)
        if str(options.get("init", "True")) == "False":
            return
        kw_only = str(options.get("kw_only", "False")) == "True"
        self_param = griffe.Parameter(
            "self", kind=griffe.ParameterKind.positional_or_keyword, default=None
        )
        init = griffe.Function(
            "__init__",
            lineno=cls.lineno,
            endlineno=cls.lineno,
            parent=cls,
            parameters=griffe.Parameters(self_param, *_parameters(cls, kw_only)),
            returns="None",
        )
        cls.set_member("__init__", init)
