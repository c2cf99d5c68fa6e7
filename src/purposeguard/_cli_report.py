"""`purposeguard report`: the record of processing of a store, as Markdown or HTML.

`register(subparsers)` adds it to the `purposeguard` command line. Exit status: 0
the report was written, 1 it was written but the audit log failed verification (the
report says so at the top), 2 usage error (a missing or bad store, policy, registry,
log or key file).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
from pathlib import Path

from ._cli_audit import read_key_file, read_public_key_file
from ._errors import PurposeGuardError
from .policy import Policy
from .reports import build_report

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `report` to *subparsers*."""
    p = subparsers.add_parser(
        "report",
        help="write the record of processing of a store (Markdown or HTML)",
        description=(
            "Write the record of processing (GDPR Art. 30, with a PIPL Art. 55-56 impact "
            "assessment skeleton) of an SQLite store: purposes, legal bases, consents by "
            "form, retention, counts of templates and subjects, denials by rule per day, "
            "erasures and undeclared duties. The audit log is verified first. Counts "
            "only: no template values, no subject ids. Exit status: 0 written, 1 written "
            "but the audit log FAILED verification, 2 usage error."
        ),
    )
    p.add_argument("--store", required=True, metavar="PATH", help="the SQLite store file")
    p.add_argument("--policy", metavar="FILE", help="the store's policy file (TOML)")
    p.add_argument(
        "--preset",
        action="extend",
        nargs="+",
        metavar="NAME",
        help="presets to compose (repeatable; with --policy, composed with it)",
    )
    p.add_argument("--audit-log", metavar="LOG", help="the JsonlSink log's first file")
    p.add_argument("--key-file", metavar="K", help="the audit log's key (raw or hex)")
    p.add_argument("--checkpoint", metavar="FILE", help="the log's checkpoint file")
    p.add_argument(
        "--public-key-file", metavar="FILE", help="the trusted Ed25519 key of the checkpoints"
    )
    p.add_argument("--consents", metavar="PATH", help="an SQLite consent registry file")
    p.add_argument(
        "--format", choices=("md", "html"), default=None,
        help="output format (default: from -o's suffix, else md)",
    )  # fmt: skip
    p.add_argument("-o", "--output", metavar="OUT", help="write here instead of stdout")
    p.set_defaults(func=_cmd_report)


def _error(message: str) -> int:
    print(f"purposeguard report: error: {message}", file=sys.stderr)
    return 2


def _cmd_report(args: argparse.Namespace) -> int:
    if (args.audit_log is None) != (args.key_file is None):
        return _error("--audit-log and --key-file go together: the log is verified first")
    if args.checkpoint is not None and args.audit_log is None:
        return _error("--checkpoint needs --audit-log")
    if (args.checkpoint is None) != (args.public_key_file is None):
        return _error("--checkpoint and --public-key-file go together")
    fmt = args.format
    if fmt is None:
        out = args.output or ""
        fmt = "html" if out.endswith((".html", ".htm")) else "md"
    try:
        policy = Policy.from_toml(args.policy) if args.policy is not None else None
        if args.preset:
            presets = Policy.preset(*args.preset)
            policy = presets if policy is None else policy | presets
        key = read_key_file(args.key_file) if args.key_file is not None else None
        public = (
            read_public_key_file(args.public_key_file)
            if args.public_key_file is not None
            else None
        )
        report = build_report(
            store=args.store,
            policy=policy,
            audit_log=args.audit_log,
            key=key,
            consents=args.consents,
            checkpoint=args.checkpoint,
            public_key=public,
        )
    except PurposeGuardError as e:
        return _error(str(e))
    except OSError as e:
        return _error(f"{e.strerror or e}: {e.filename}")
    except sqlite3.Error as e:
        return _error(f"SQLite: {e}")
    text = report.to_html() if fmt == "html" else report.to_markdown()
    if args.output is None:
        sys.stdout.write(text)
    else:
        try:
            _write(Path(args.output), text)
        except OSError as e:
            return _error(f"{e.strerror or e}: {e.filename}")
    if report.tampered:
        assert report.audit is not None
        print(
            f"purposeguard report: WARNING: the audit log FAILED VERIFICATION: "
            f"{report.audit.reason}",
            file=sys.stderr,
        )
        return 1
    return 0


def _write(path: Path, text: str) -> None:
    # Written whole or not at all: a report cut short must not pass for a full one.
    fd, tmp = tempfile.mkstemp(dir=path.parent or ".", prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
