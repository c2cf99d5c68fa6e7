"""`purposeguard keys`: manage a key ring (a KEK file and a `FileKeyStore`).

Subcommands: `generate` (a new KEK file, mode 0600), `list` (the KEK's fingerprint
and the subjects that have keys), `shred SUBJECT` (destroy a subject's data keys:
every sealed template of it becomes unreadable) and `rotate-kek` (re-wrap every data
key under a new KEK written to a new file).

Exit status: 0 done, 1 the key store failed its integrity check (wrong KEK, or altered),
2 usage error (bad arguments, a missing, unreadable or group-readable key file).
Key files hold 32 raw bytes or 64 hex digits. No key is ever printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable

from ._errors import IntegrityError, PolicyError
from .crypto import FileKeyStore, KeyRing
from .crypto._keyring import read_key_file, write_secret_file

__all__ = ["register"]


def _ring(args: argparse.Namespace) -> KeyRing:
    return KeyRing(read_key_file(args.kek_file), FileKeyStore(args.store))


def _cmd_generate(args: argparse.Namespace) -> int:
    kek = os.urandom(32)
    write_secret_file(args.kek_file, kek.hex().encode("ascii") + b"\n")
    ring = KeyRing(kek, FileKeyStore(args.store)) if args.store else KeyRing(kek)
    print(f"wrote a new KEK to {args.kek_file} (fingerprint {ring.kek_id})")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    ring = _ring(args)
    subjects = ring.subjects()
    if args.json:
        print(json.dumps({"kek_id": ring.kek_id, "subjects": subjects}, indent=2))
    else:
        print(f"KEK {ring.kek_id}: {len(subjects)} subjects with data keys")
        for s in subjects:
            print(f"  {s}")
    return 0


def _cmd_shred(args: argparse.Namespace) -> int:
    n = _ring(args).shred(args.subject)
    print(f"shredded {n} data key(s) of {args.subject!r}")
    if n:
        print("rotate the KEK too, so that backups of the key store cannot unwrap them")
    return 0


def _cmd_rotate_kek(args: argparse.Namespace) -> int:
    ring = _ring(args)
    old = ring.kek_id
    new = os.urandom(32)
    write_secret_file(args.new_kek_file, new.hex().encode("ascii") + b"\n")
    ring.rotate_kek(new)
    print(f"re-wrapped every data key: KEK {old} -> {ring.kek_id}")
    print(f"now use {args.new_kek_file} and destroy {args.kek_file}")
    return 0


def _guarded(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except IntegrityError as e:
            print(f"purposeguard keys: integrity failure: {e}", file=sys.stderr)
            return 1
        except PolicyError as e:
            print(f"purposeguard keys: error: {e}", file=sys.stderr)
            return 2
        except OSError as e:
            print(f"purposeguard keys: error: {e.strerror or e}: {e.filename}", file=sys.stderr)
            return 2

    return run


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `keys generate|list|shred|rotate-kek` to the command's subparsers."""
    keys = subparsers.add_parser("keys", help="manage a key ring: KEK file and key store")
    sub = keys.add_subparsers(dest="keys_command", metavar="KEYS_COMMAND", required=True)

    def common(p: argparse.ArgumentParser, *, store_required: bool = True) -> None:
        p.add_argument("--kek-file", required=True, help="the KEK: 32 raw bytes or 64 hex")
        p.add_argument(
            "--store", required=store_required, help="the key store file (FileKeyStore)"
        )

    g = sub.add_parser("generate", help="write a new random KEK to a new file (mode 0600)")
    common(g, store_required=False)
    g.set_defaults(func=_guarded(_cmd_generate))
    ls = sub.add_parser("list", help="the KEK's fingerprint and the subjects with keys")
    common(ls)
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.set_defaults(func=_guarded(_cmd_list))
    sh = sub.add_parser("shred", help="destroy every data key of SUBJECT")
    sh.add_argument("subject", metavar="SUBJECT")
    common(sh)
    sh.set_defaults(func=_guarded(_cmd_shred))
    r = sub.add_parser("rotate-kek", help="re-wrap every data key under a new KEK")
    common(r)
    r.add_argument("--new-kek-file", required=True, help="where to write the new KEK")
    r.set_defaults(func=_guarded(_cmd_rotate_kek))
