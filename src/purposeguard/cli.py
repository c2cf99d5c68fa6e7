"""The `purposeguard` command.

Commands: `demo` (the main job, end to end, on synthetic templates), `store
stats|purge|erase-subject|search` (an SQLite store file made by purposeguard),
`taxonomy` and `explain`. Every command has `--help`.

Exit codes: 0 success (for `explain`: permitted), 1 the use asked about is denied
or a template is not found (or, for `demo`, the library misbehaved), 2 usage error
or invalid input (a malformed or unknown purpose, a bad or missing file), 130
interrupted.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sqlite3
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from . import _cli_audit, _cli_crypto, _cli_policy, _cli_report
from ._cli import CommandError, demo as _demo, store as _store
from ._errors import AccessDeniedError, PurposeGuardError, TemplateNotFoundError
from ._guard import Guard
from ._labels import Label
from ._purposes import Operation, Purpose
from ._taxonomy import Taxonomy

__all__ = ["main"]


_MAX_DAYS = 100 * 366.0


def _days(text: str) -> float:
    # argparse type: a finite number of days that a datetime can hold from now.
    try:
        days = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(days) or abs(days) > _MAX_DAYS:
        raise argparse.ArgumentTypeError(
            f"must be a finite number of days between -{_MAX_DAYS:g} and {_MAX_DAYS:g}"
        )
    return days


def _load_taxonomy(path: str | None) -> Taxonomy:
    return Taxonomy.default() if path is None else Taxonomy.from_toml(path)


def _cmd_taxonomy(args: argparse.Namespace) -> int:
    tax = _load_taxonomy(args.file)
    if args.json:
        out = {
            p.name: {
                "operations": sorted(o.value for o in tax.spec(p).operations),
                "sensitive": tax.spec(p).sensitive,
                "separate_consent": tax.spec(p).separate_consent,
                "max_retention_days": None
                if tax.spec(p).max_retention is None
                else tax.spec(p).max_retention / timedelta(days=1),  # type: ignore[operator]
                "description": tax.spec(p).description,
            }
            for p in tax
        }
        print(json.dumps(out, indent=2, sort_keys=True))
        return 0

    def show(p: Purpose, indent: int) -> None:
        spec = tax.spec(p)
        ops = " ".join(o.value for o in sorted(spec.operations)) or "(delete only)"
        label = p.name if indent == 0 else "." + p.name.rsplit(".", 1)[-1]
        print(f"{'  ' * indent}{label:<{44 - 2 * indent}} [{ops}]")
        for c in tax.children(p):
            show(c, indent + 1)

    for root in tax.roots():
        show(root, 0)
    return 0


def _cmd_explain(args: argparse.Namespace) -> int:
    tax = _load_taxonomy(args.taxonomy)
    now = datetime.now(UTC)
    label = Label(
        allowed=args.allowed,
        prohibited=args.prohibited or (),
        subject="explain",
        expires_at=now + timedelta(days=args.expires_in_days),
    )
    tax.require(sorted(label.allowed | label.prohibited))
    op = None if args.operation == "use" else Operation(args.operation)
    decision = Guard(taxonomy=tax).check(label, args.purpose, op)
    if args.json:
        payload: dict[str, Any] = {
            "allowed": decision.allowed,
            "purpose": args.purpose,
            "operation": args.operation,
            "reasons": list(decision.reasons),
            "rule_ids": list(decision.rule_ids),
            "explanation": str(decision),
        }
        print(json.dumps(payload, indent=2))
    else:
        print(("PERMITTED: " if decision.allowed else "DENIED: ") + str(decision))
    return 0 if decision.allowed else 1


def _parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="purposeguard",
        description=(
            "Purpose-bound face templates: run the demo, maintain a store, inspect "
            "taxonomies, explain decisions. Start with: purposeguard demo"
        ),
    )
    parser.add_argument("--version", action="version", version=f"purposeguard {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _demo.add_parser(sub)
    _store.add_parser(sub)
    _cli_audit.register(sub)
    _cli_crypto.register(sub)
    _cli_policy.register(sub)
    _cli_report.register(sub)

    tax = sub.add_parser("taxonomy", help="show the purpose taxonomy (default or from a file)")
    tax.add_argument("--file", help="a TOML taxonomy layered over the default face taxonomy")
    tax.add_argument("--json", action="store_true", help="print JSON")
    tax.set_defaults(func=_cmd_taxonomy)

    ex = sub.add_parser(
        "explain",
        help="explain whether a use is permitted for a label",
        description="Exit status: 0 permitted, 1 denied, 2 usage error.",
    )
    ex.add_argument("--purpose", required=True, help="the purpose of the use")
    ex.add_argument(
        "--operation",
        required=True,
        choices=[o.value for o in Operation] + ["use"],
        help="the operation ('use' checks conformance only)",
    )
    ex.add_argument(
        "--allowed", action="append", required=True, help="an allowed purpose (repeatable)"
    )
    ex.add_argument("--prohibited", action="append", help="a prohibited purpose (repeatable)")
    ex.add_argument(
        "--expires-in-days", type=_days, default=365.0, help="label lifetime (default 365)"
    )
    ex.add_argument("--taxonomy", help="a TOML taxonomy layered over the default")
    ex.add_argument("--json", action="store_true", help="print JSON")
    ex.set_defaults(func=_cmd_explain)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except CommandError as e:
        print(f"purposeguard: error: {e}", file=sys.stderr)
        return e.code
    except (AccessDeniedError, TemplateNotFoundError) as e:
        print(f"purposeguard: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("purposeguard: interrupted", file=sys.stderr)
        return 130
    except PurposeGuardError as e:
        print(f"purposeguard: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (``purposeguard taxonomy | head``): not our error.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except OSError as e:
        print(f"purposeguard: error: {e.strerror or e}: {e.filename}", file=sys.stderr)
        return 2
    except sqlite3.Error as e:
        # A store file that is locked by another writer past the timeout, read-only, ...
        print(f"purposeguard: error: SQLite: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
