"""`purposeguard store`: inspect and maintain an SQLite store file made by purposeguard.

Every command opens an existing file only (a missing path is a usage error, and no
file is created), goes through [`GuardedStore`][purposeguard.stores.GuardedStore], so each
access is checked and audited by the guard in force (by default: enforce mode, the
system clock, audit events to the stdlib logger `purposeguard.audit`; `-v` prints
them on stderr), and never prints template values.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from purposeguard._guard import current_guard, using
from purposeguard._purposes import Purpose
from purposeguard._scope import purpose
from purposeguard._taxonomy import Taxonomy
from purposeguard.stores import GuardedStore, SQLiteBackend

from . import CommandError
from .progress import Progress

__all__ = ["add_parser", "audit_to_stderr", "open_store"]

_AUDIT_LOGGER = "purposeguard.audit"


def _positive_int(text: str) -> int:
    # argparse type: a positive integer.
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def open_store(path: str) -> GuardedStore:
    """Open the existing purposeguard SQLite store at *path*, under a progress indicator.

    Raises:
        CommandError: (exit 2) the path does not exist or is not a regular file;
            nothing is created.
        PolicyError: the file is an SQLite database of another kind (left untouched).
        IntegrityError: the file is damaged or is not a database.
    """
    p = Path(path)
    if not p.exists():
        raise CommandError(f"no such store file: {path} (the store commands never create one)")
    if not p.is_file():
        raise CommandError(f"not a store file: {path}")
    if p.stat().st_size == 0 and not Path(f"{p}-wal").exists():
        # SQLite would take an empty file for a new database and make it a store.
        raise CommandError(f"{path} is empty: not a purposeguard store")
    with Progress(f"opening {p.name}"):
        return GuardedStore(SQLiteBackend(p))


@contextmanager
def audit_to_stderr(verbose: bool) -> Iterator[None]:
    """Route the `purposeguard.audit` logger's records for the duration of a command.

    With *verbose*, every audit event is printed on stderr (`audit: ...`). Without,
    nothing changes where logging is configured; where it is not, a null handler keeps
    Python's last-resort handler from printing denials a second time, after the
    command's own message. The logger is restored afterwards.
    """
    logger = logging.getLogger(_AUDIT_LOGGER)
    handler: logging.Handler
    old_level = logger.level
    if verbose:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("audit: %(message)s"))
        logger.setLevel(logging.INFO)
    elif not logger.hasHandlers():
        handler = logging.NullHandler()
    else:
        yield
        return
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def _emit(args: argparse.Namespace, payload: dict[str, Any], text: list[str]) -> None:
    if args.json:
        print(json.dumps(payload, indent=2))
    else:
        print("\n".join(text))


def _cmd_stats(args: argparse.Namespace) -> int:
    with audit_to_stderr(args.verbose), open_store(args.path) as store:
        stats = store.stats()
    payload = {"path": args.path, **stats}
    dim = stats["dim"]
    _emit(
        args,
        payload,
        [
            f"store      {args.path}",
            f"backend    {stats['backend']}",
            f"templates  {stats['templates']:,}",
            f"subjects   {stats['subjects']:,}",
            f"dim        {'-' if dim is None else dim}",
        ],
    )
    return 0


def _cmd_purge(args: argparse.Namespace) -> int:
    with audit_to_stderr(args.verbose), open_store(args.path) as store:
        with Progress("purging expired templates"):
            removed = store.purge_expired()
        remaining = len(store)
        now = store.guard.now()
    payload = {
        "path": args.path,
        "removed": removed,
        "remaining": remaining,
        "at": now.isoformat(),
    }
    _emit(
        args,
        payload,
        [
            f"purged {removed:,} template{'s' * (removed != 1)} expired at "
            f"{now.isoformat(timespec='seconds')}; {remaining:,} remain"
        ],
    )
    return 0


def _cmd_erase(args: argparse.Namespace) -> int:
    with audit_to_stderr(args.verbose), open_store(args.path) as store:
        with Progress("erasing"):
            removed = store.erase_subject(args.subject)
        remaining = len(store)
    payload = {
        "path": args.path,
        "subject": args.subject,
        "removed": removed,
        "remaining": remaining,
    }
    _emit(
        args,
        payload,
        [
            f"erased {removed:,} template{'s' * (removed != 1)} of subject "
            f"{args.subject!r}; {remaining:,} remain"
        ],
    )
    return 0


def _cmd_search(args: argparse.Namespace) -> int:
    p = Purpose(args.purpose)  # a malformed name is a PolicyError (exit 2) before any I/O
    guard = current_guard()
    if args.taxonomy is not None:
        guard = guard.evolve(taxonomy=Taxonomy.from_toml(args.taxonomy))
    guard.taxonomy.require((p,))
    with (
        using(guard),
        audit_to_stderr(args.verbose),
        open_store(args.path) as store,
        purpose(p),
    ):
        probe = store.get(args.probe_id)  # not visible under the purpose: exit 1
        matches = store.search(probe, args.k)  # a purpose without SEARCH: exit 1
    rows = [
        {
            "rank": rank,
            "template_id": m.template_id,
            "subject": m.subject,
            "score": m.score,
            "is_probe": m.template_id == probe.id,
        }
        for rank, m in enumerate(matches, 1)
    ]
    payload = {
        "path": args.path,
        "purpose": p.name,
        "probe_id": probe.id,
        "k": args.k,
        "matches": rows,
    }
    text = [
        f"{len(rows)} match{'es' * (len(rows) != 1)} for probe {probe.id} under "
        f"{p.name} (k={args.k})"
    ]
    if rows:
        text.append(f"{'rank':>4}  {'template id':<32}  {'score':>7}  subject")
        text += [
            f"{r['rank']:>4}  {r['template_id']:<32}  {r['score']:>7.4f}  {r['subject']}"
            + ("  (the probe)" if r["is_probe"] else "")
            for r in rows
        ]
    _emit(args, payload, text)
    return 0


def _help(parser: argparse.ArgumentParser) -> Any:
    def show(args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return 2

    return show


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `store` and its subcommands to the top-level subparsers *sub*."""
    store = sub.add_parser(
        "store",
        help="inspect and maintain an SQLite store file",
        description=(
            "Operate on an SQLite store file created by purposeguard. Exit status: "
            "0 success, 1 denied or not found, 2 usage error or bad input (a missing "
            "file is never created)."
        ),
    )
    store.set_defaults(func=_help(store))
    cmds = store.add_subparsers(dest="store_command", metavar="STORE_COMMAND")

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("path", metavar="PATH", help="the store file (must exist)")
    common.add_argument("--json", action="store_true", help="print JSON")
    common.add_argument(
        "-v", "--verbose", action="store_true", help="print the audit events on stderr"
    )

    stats = cmds.add_parser(
        "stats",
        parents=[common],
        help="count templates and subjects",
        description="Count the templates and subjects in the store; show the dimension.",
    )
    stats.set_defaults(func=_cmd_stats)

    purge = cmds.add_parser(
        "purge",
        parents=[common],
        help="delete every expired template",
        description=(
            "Delete every template whose label has expired at the system clock's time; "
            "print how many were removed."
        ),
    )
    purge.set_defaults(func=_cmd_purge)

    erase = cmds.add_parser(
        "erase-subject",
        parents=[common],
        help="delete every template of one data subject",
        description=(
            "Delete every template of SUBJECT (erasure is never blocked by purpose) and "
            "print how many were removed; 0 is not an error."
        ),
    )
    erase.add_argument("subject", metavar="SUBJECT", help="the data subject's identifier")
    erase.set_defaults(func=_cmd_erase)

    search = cmds.add_parser(
        "search",
        parents=[common],
        help="1:N search with a stored template as the probe",
        description=(
            "Fetch the template PROBE_ID under PURPOSE and search the store with it under "
            "the same purpose: only templates whose labels permit PURPOSE for search, and "
            "have not expired, are ranked. Exit status 1 if the probe is not visible under "
            "PURPOSE (reported as not found) or PURPOSE does not allow search."
        ),
    )
    search.add_argument("--purpose", required=True, help="the purpose of the search")
    search.add_argument(
        "--probe-id", required=True, help="the id of the stored template to search with"
    )
    search.add_argument(
        "-k", type=_positive_int, default=10, help="how many matches to return (default 10)"
    )
    search.add_argument("--taxonomy", help="a TOML taxonomy layered over the default")
    search.set_defaults(func=_cmd_search)
