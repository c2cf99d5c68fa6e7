"""The `purposeguard policy` commands: `lint` a policy file, `explain` a decision.

`register(subparsers)` adds them to the `purposeguard` command line.
"""

from __future__ import annotations

import argparse
import json
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ._clock import FrozenClock
from ._errors import PolicyError, PurposeWarning
from ._events import MemorySink
from ._guard import Guard
from ._labels import Label
from ._purposes import Operation, Purpose
from .policy import RULES, Consent, ConsentRegistry, Enforcement, Policy

__all__ = ["register"]

_LABEL_KEYS = frozenset(
    {"allowed", "prohibited", "subject", "expires_at", "collected_at", "consent",
     "jurisdictions", "lineage", "v"}
)  # fmt: skip
_CONSENT_KEYS = frozenset(
    {"id", "subject", "purposes", "form", "given_at", "term_days", "notice", "guardian",
     "recipients", "transfer", "basis", "ground"}
)  # fmt: skip


class _InputError(Exception):
    pass


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `policy lint` and `policy explain` to *subparsers*."""
    top = subparsers.add_parser(
        "policy",
        help="check a policy file, or explain a decision rule by rule",
        description="Check a policy file, or explain a decision rule by rule.",
    )
    cmds = top.add_subparsers(dest="policy_command", metavar="COMMAND")
    top.set_defaults(func=lambda args: _usage(top))

    lint = cmds.add_parser(
        "lint",
        help="load a policy file and list undeclared duties and settings",
        description=(
            "Load a policy file (refused with the line if it is wrong) and list the "
            "duties and settings it leaves undeclared, each with its rule id. Exit "
            "status: 0 clean, 1 issues found, 2 the file is refused."
        ),
    )
    lint.add_argument("file", type=Path, help="the policy file (TOML)")
    lint.set_defaults(func=_cmd_lint)

    explain = cmds.add_parser(
        "explain",
        help="say why a use would be allowed or denied, rule by rule",
        description=(
            "Decide one use of a labelled template under a policy and list every rule "
            "in force with its verdict. Exit status: 0 allowed, 1 denied, 2 bad input."
        ),
    )
    source = explain.add_mutually_exclusive_group(required=True)
    source.add_argument("--policy", type=Path, help="a policy file (TOML)")
    source.add_argument("--preset", nargs="+", metavar="NAME", help="preset names to compose")
    explain.add_argument("--purpose", required=True, help="the purpose of the use")
    explain.add_argument(
        "--operation",
        default="compare",
        choices=[o.value for o in Operation if o is not Operation.DELETE],
        help="the operation (default: compare)",
    )
    explain.add_argument("--label", required=True, help="the label as JSON, or @FILE holding it")
    explain.add_argument("--consent", help="the consent record the label names, as JSON or @FILE")
    explain.add_argument("--at", help="the time of the use, ISO 8601 (default: now)")
    explain.set_defaults(func=_cmd_explain)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _cmd_lint(args: argparse.Namespace) -> int:
    try:
        policy = Policy.from_toml(args.file)
    except PolicyError as e:
        print(f"error: {e}")
        return 2
    issues = policy.lint()
    print(f"{args.file}: {policy!r}")
    for rid, why in sorted(policy.waivers.items()):
        print(f"  waived {rid}: {why}")
    for issue in issues:
        print(f"  {issue}")
    if not issues:
        print("  no issues")
    return 1 if issues else 0


def _json(value: str, what: str) -> dict[str, Any]:
    text = value
    if value.startswith("@"):
        try:
            text = Path(value[1:]).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise _InputError(f"{what}: cannot read {value[1:]} ({type(e).__name__})") from None
    try:
        data = json.loads(text)
    except ValueError as e:
        raise _InputError(f"{what}: not JSON ({e})") from None
    if not isinstance(data, dict):
        raise _InputError(f"{what}: expected a JSON object")
    return data


def _time(value: object, what: str) -> datetime:
    if not isinstance(value, str):
        raise _InputError(f"{what} must be an ISO 8601 string")
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _InputError(f"{what}: not an ISO 8601 time: {value!r}") from None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _label(data: dict[str, Any]) -> Label:
    extra = set(data) - _LABEL_KEYS
    if extra:
        raise _InputError(f"label: unknown key(s) {', '.join(sorted(extra))}")
    for key in ("allowed", "subject", "expires_at"):
        if key not in data:
            raise _InputError(f"label: {key} is required")
    collected = data.get("collected_at")
    return Label(
        allowed=data["allowed"],
        prohibited=data.get("prohibited", ()),
        subject=data["subject"],
        expires_at=_time(data["expires_at"], "label expires_at"),
        collected_at=None if collected is None else _time(collected, "label collected_at"),
        consent=data.get("consent"),
        jurisdictions=data.get("jurisdictions", ()),
        lineage=data.get("lineage", ()),
    )


def _consent(data: dict[str, Any]) -> Consent:
    extra = set(data) - _CONSENT_KEYS
    if extra:
        raise _InputError(f"consent: unknown key(s) {', '.join(sorted(extra))}")
    fields = dict(data)
    days = fields.pop("term_days", None)
    if days is not None:
        if isinstance(days, bool) or not isinstance(days, int | float) or days <= 0:
            raise _InputError("consent: term_days must be a positive number")
        fields["term"] = timedelta(days=days)
    if "given_at" not in fields:
        raise _InputError("consent: given_at is required")
    fields["given_at"] = _time(fields["given_at"], "consent given_at")
    try:
        return Consent(**fields)
    except TypeError as e:
        raise _InputError(f"consent: {e}") from None


def _cmd_explain(args: argparse.Namespace) -> int:
    try:
        policy = (
            Policy.from_toml(args.policy)
            if args.policy is not None
            else Policy.preset(*args.preset)
        )
        label = _label(_json(args.label, "label"))
        registry = ConsentRegistry()
        if args.consent is not None:
            registry.add(_consent(_json(args.consent, "consent")))
        at = datetime.now(UTC) if args.at is None else _time(args.at, "--at")
        purpose = Purpose(args.purpose)
        operation = Operation(args.operation)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", PurposeWarning)
            guard = Guard(
                policy=policy, consents=registry, clock=FrozenClock(at), audit=MemorySink()
            )
        decision = guard.check(label, purpose, operation)
    except (PolicyError, _InputError) as e:
        print(f"error: {e}")
        return 2
    print(f"{operation.value} for {purpose.name!r} at {at.isoformat()} under {policy!r}:")
    print(f"  {'ALLOWED' if decision.allowed else 'DENIED'}")
    core = [r for r in decision.reasons if not _names_rule(r)]
    for reason in core:
        print(f"  label/guard: {reason}")
    print("rules:")
    findings: dict[str, list[str]] = {}
    for reason in decision.reasons:
        rid = _names_rule(reason)
        if rid is not None:
            findings.setdefault(rid, []).append(reason[len(rid) + 2 :])
    duties = " ".join(str(w.message) for w in caught)
    for rid in sorted(policy.rules | set(findings)):
        rule = RULES.get(rid)
        if rid in findings:
            for why in findings[rid]:
                print(f"  {rid:<15} DENIES    {why}")
        elif rule is None:
            print(f"  {rid:<15} ok")
        elif rule.enforcement is Enforcement.DUTY:
            state = "UNDECLARED" if rid in duties else "declared"
            print(f"  {rid:<15} duty      {state}: {rule.enforced_by}")
        elif rule.enforcement is Enforcement.RECORDED:
            print(f"  {rid:<15} recorded  {rule.enforced_by}")
        else:
            print(f"  {rid:<15} ok        {rule.summary}")
    for rid, why in sorted(policy.waivers.items()):
        print(f"  {rid:<15} waived    {why}")
    return 0 if decision.allowed else 1


def _names_rule(reason: str) -> str | None:
    head, sep, _ = reason.partition(": ")
    if sep and (head in RULES or head.startswith("LOCAL-")):
        return head
    return None
