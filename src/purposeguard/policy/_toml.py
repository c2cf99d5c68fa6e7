"""Reading a deployment's policy file (TOML), with errors that point at the line."""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from datetime import timedelta
from os import PathLike
from typing import TYPE_CHECKING, Any, Final

from purposeguard._errors import PolicyError
from purposeguard._purposes import Purpose
from purposeguard._taxonomy import Taxonomy

from ._rules import PRESETS, RULES

if TYPE_CHECKING:
    from ._policy import Policy

__all__ = ["load", "parse"]

_TOP: Final = frozenset(
    {"presets", "rules", "storage", "processing", "waivers", "duties", "purposes"}
)
_DUTIES: Final = frozenset({"impact_assessment", "notice", "necessity", "filing", "alternatives"})
_PURPOSE_KEYS: Final = frozenset({"banned", "consent_form", "max_retention_days"})


class _BadEntryError(Exception):
    # A problem in the file, and the text to look for to find its line.
    def __init__(self, message: str, needle: str | None, after: str | None = None) -> None:
        super().__init__(message)
        self.needle = needle
        self.after = after


def _line_of(text: str, needle: str | None, after: str | None = None) -> int | None:
    # The first line naming *needle* (as a whole word), after the table header naming
    # *after* if given.
    if not needle:
        return None
    exact = re.compile(rf"(?<![\w.-]){re.escape(needle)}(?![\w.-])")
    start = 0
    lines = text.splitlines()
    if after is not None:
        header = re.compile(rf"^\s*\[.*(?<![\w.-]){re.escape(after)}(?![\w.-])")
        for i, line in enumerate(lines):
            if header.search(line):
                start = i
                break
    for i, line in enumerate(lines[start:], start + 1):
        if exact.search(line):
            return i
    return None


def load(path: str | PathLike[str]) -> Policy:
    """Load the policy file at *path* (see
    [`Policy.from_toml`][purposeguard.policy.Policy.from_toml])."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise PolicyError(f"{path}: cannot read the policy file ({e.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise PolicyError(f"{path}: not UTF-8 text ({e.reason})") from None
    return parse(text, str(path))


def parse(text: str, name: str = "<policy>") -> Policy:
    """Parse policy TOML *text*; *name* prefixes error messages."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise PolicyError(f"{name}: {e}") from None
    try:
        return _build(data)
    except _BadEntryError as e:
        line = _line_of(text, e.needle, e.after)
        where = f"{name}:{line}" if line is not None else name
        raise PolicyError(f"{where}: {e}") from None
    except PolicyError as e:
        line = _line_of(text, _quoted(str(e)))
        where = f"{name}:{line}" if line is not None else name
        raise PolicyError(f"{where}: {e}") from None


def _quoted(message: str) -> str | None:
    m = re.search(r"'([^']+)'", message)
    if m:
        return m.group(1)
    m = re.search(r"\b([A-Z]{2}-\d{2})\b", message)
    return m.group(1) if m else None


def _strings(value: object, key: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _BadEntryError(f"{key} must be a list of strings", key)
    return list(value)


def _purpose(name: object, key: str, taxonomy: Taxonomy) -> Purpose:
    if not isinstance(name, str):
        raise _BadEntryError(f"{key}: purposes are strings", key)
    try:
        p = Purpose(name)
    except PolicyError:
        raise _BadEntryError(f"{key}: malformed purpose {name!r}", name) from None
    if p not in taxonomy:
        raise _BadEntryError(f"{key}: unknown purpose {name!r}", name)
    return p


def _rule(rid: str, key: str) -> str:
    if rid not in RULES:
        raise _BadEntryError(f"{key}: unknown rule id {rid!r}", rid)
    return rid


def _build(data: Mapping[str, Any]) -> Policy:
    from ._policy import Policy

    taxonomy = Taxonomy.default()
    for key in data:
        if key not in _TOP:
            raise _BadEntryError(f"unknown key {key!r} (known: {', '.join(sorted(_TOP))})", key)
    presets = _strings(data.get("presets", []), "presets")
    if not presets:
        raise _BadEntryError(
            'presets: name at least one preset (e.g. presets = ["pipl"])', "presets"
        )
    for name in presets:
        if name not in PRESETS:
            raise _BadEntryError(
                f"unknown preset {name!r} (known: {', '.join(sorted(PRESETS))})", name
            )
    in_force = set().union(*(PRESETS[n] for n in presets))
    extra = [_rule(r, "rules") for r in _strings(data.get("rules", []), "rules")]
    for r in extra:
        if r in in_force:
            raise _BadEntryError(f"rules: {r} is already in force through the presets", r)
    in_force |= set(extra)
    waivers_raw = data.get("waivers", {})
    if not isinstance(waivers_raw, Mapping):
        raise _BadEntryError("[waivers] must map rule ids to reasons", "waivers")
    waivers: dict[str, str] = {}
    for rid, why in waivers_raw.items():
        _rule(rid, "waivers")
        if rid in extra:
            raise _BadEntryError(f"waivers: {rid} is both added under rules and waived", rid)
        if rid not in in_force:
            raise _BadEntryError(f"waivers: {rid} is not in force, so it cannot be waived", rid)
        if not isinstance(why, str) or not why.strip():
            raise _BadEntryError(f"waivers: {rid} needs the reason it does not apply", rid)
        waivers[rid] = why
    settings: dict[str, Any] = {}
    if "storage" in data:
        settings["storage"] = data["storage"]
        if not isinstance(data["storage"], str):
            raise _BadEntryError("storage must be a string", "storage")
    if "processing" in data:
        settings["processing"] = [
            _purpose(n, "processing", taxonomy) for n in _strings(data["processing"], "processing")
        ]
    duties = data.get("duties", {})
    if not isinstance(duties, Mapping):
        raise _BadEntryError("[duties] must be a table", "duties")
    for key, value in duties.items():
        if key not in _DUTIES:
            raise _BadEntryError(
                f"duties: unknown key {key!r} (known: {', '.join(sorted(_DUTIES))})", key
            )
        if key == "alternatives":
            if not isinstance(value, Mapping):
                raise _BadEntryError(
                    "duties.alternatives must map purposes to methods", "alternatives"
                )
            settings["alternatives"] = {
                _purpose(p, "duties.alternatives", taxonomy): m for p, m in value.items()
            }
        else:
            if not isinstance(value, str) or not value.strip():
                raise _BadEntryError(f"duties: {key} must be a non-empty string", key)
            settings[key] = value
    banned: list[Purpose] = []
    forms: dict[Purpose, str] = {}
    caps: dict[Purpose, timedelta] = {}
    purposes = data.get("purposes", {})
    if not isinstance(purposes, Mapping):
        raise _BadEntryError("[purposes] must be a table of purpose names", "purposes")
    for name, entry in purposes.items():
        p = _purpose(name, "purposes", taxonomy)
        if not isinstance(entry, Mapping):
            raise _BadEntryError(f"purposes: {name!r} must be a table", name)
        for key in entry:
            if key not in _PURPOSE_KEYS:
                raise _BadEntryError(
                    f"purposes.{name}: unknown key {key!r} "
                    f"(known: {', '.join(sorted(_PURPOSE_KEYS))})",
                    key,
                    name,
                )
        ban = entry.get("banned", False)
        if not isinstance(ban, bool):
            raise _BadEntryError(f"purposes.{name}: banned must be true or false", "banned", name)
        if ban:
            if len(entry) > 1:
                raise _BadEntryError(
                    f"purposes: {name!r} is banned and also given settings "
                    "(contradictory settings)",
                    name,
                )
            banned.append(p)
        if "consent_form" in entry:
            forms[p] = entry["consent_form"]
        if "max_retention_days" in entry:
            days = entry["max_retention_days"]
            if (
                isinstance(days, bool)
                or not isinstance(days, int | float)
                or not math.isfinite(days)
                or days <= 0
            ):
                raise _BadEntryError(
                    f"purposes.{name}: max_retention_days must be a positive number",
                    "max_retention_days",
                    name,
                )
            try:
                caps[p] = timedelta(days=days)
            except OverflowError:
                raise _BadEntryError(
                    f"purposes.{name}: max_retention_days is too large", "max_retention_days", name
                ) from None
    rules = frozenset(in_force) - set(waivers)
    return Policy(
        presets=tuple(dict.fromkeys(presets)),
        rules=rules,
        waivers=waivers,
        banned=banned,
        consent_forms=forms,
        max_retention=caps,
        **settings,
    )
