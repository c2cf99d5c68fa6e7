"""`purposeguard audit verify`: check a tamper-evident audit log from the command line.

Exit status: 0 the log verified, 1 it was tampered with (the first bad sequence number
and the reason are printed), 2 usage error (bad arguments, unreadable or bad key file,
missing log).
"""

from __future__ import annotations

import argparse
import binascii
import json
import string
import sys
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from ._errors import PolicyError
from .audit import verify

__all__ = ["read_key_file", "read_public_key_file", "register"]

_HEX = frozenset(string.hexdigits)


def read_key_file(path: str) -> bytes:
    """The key in *path*: its raw bytes, or, if the file is hex text (whitespace
    around it ignored), the bytes that text spells.

    Raises:
        PolicyError: the file is empty.
        OSError: it cannot be read.
    """
    with open(path, "rb") as f:
        data = f.read()
    text = data.strip()
    if not text:
        raise PolicyError(f"the key file {path} is empty")
    try:
        decoded = text.decode("ascii")
    except UnicodeDecodeError:
        return data
    if len(decoded) % 2 == 0 and set(decoded) <= _HEX:
        return binascii.unhexlify(decoded)
    return data


def read_public_key_file(path: str) -> Ed25519PublicKey:
    """An Ed25519 public key from *path*: 32 raw bytes, their hex text, or PEM.

    Raises:
        PolicyError: the file holds no Ed25519 public key.
        OSError: it cannot be read.
    """
    with open(path, "rb") as f:
        data = f.read()
    if data.lstrip().startswith(b"-----BEGIN"):
        try:
            key = load_pem_public_key(data)
        except ValueError:
            raise PolicyError(f"{path} is not a PEM public key") from None
        if not isinstance(key, Ed25519PublicKey):
            raise PolicyError(f"{path} holds a {type(key).__name__}, not an Ed25519 public key")
        return key
    raw = read_key_file(path)
    if len(raw) != 32:
        raise PolicyError(f"{path} does not hold a 32-byte Ed25519 public key")
    return Ed25519PublicKey.from_public_bytes(raw)


def _cmd_verify(args: argparse.Namespace) -> int:
    try:
        key = read_key_file(args.key_file)
        public = (
            read_public_key_file(args.public_key_file)
            if args.public_key_file is not None
            else None
        )
        if args.checkpoint is not None and public is None:
            raise PolicyError("--checkpoint needs --public-key-file (the key you trust)")
        if public is not None and args.checkpoint is None:
            raise PolicyError("--public-key-file is only used with --checkpoint")
        result = verify(
            args.log, key=key, checkpoint=args.checkpoint, public_key=public, log_id=args.log_id
        )
    except PolicyError as e:
        print(f"purposeguard audit verify: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(
            f"purposeguard audit verify: error: {e.strerror or e}: {e.filename}", file=sys.stderr
        )
        return 2
    if args.json:
        out: dict[str, Any] = result.to_dict()
        print(json.dumps(out, indent=2, sort_keys=True))
    elif result.ok:
        print(f"OK: {result.reason}")
    else:
        where = "unknown" if result.first_bad_seq is None else str(result.first_bad_seq)
        print(f"TAMPERED: first bad seq {where}: {result.reason}")
        print(f"({result.entries} entries verified before it)")
    return 0 if result.ok else 1


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `audit verify` to the `purposeguard` command's subparsers."""
    audit = subparsers.add_parser("audit", help="work with tamper-evident audit logs")
    sub = audit.add_subparsers(dest="audit_command", metavar="AUDIT_COMMAND", required=True)
    v = sub.add_parser(
        "verify",
        help="verify a JsonlSink log (chain, MACs, files, signed checkpoints)",
        description=(
            "Exit status: 0 valid, 1 tampered (prints the first bad sequence number and "
            "why), 2 usage error. Key files hold the raw key bytes or their hex text."
        ),
    )
    v.add_argument("log", metavar="LOG", help="the log's first file (rotated files follow it)")
    v.add_argument("--key-file", required=True, help="the auditor's initial key (raw or hex)")
    v.add_argument("--checkpoint", help="the checkpoint file, to detect a cut tail")
    v.add_argument(
        "--public-key-file",
        help="the trusted Ed25519 public key of the checkpoints (raw, hex or PEM)",
    )
    v.add_argument("--log-id", help="the log id the log must have (32 hex digits)")
    v.add_argument("--json", action="store_true", help="print the result as JSON")
    v.set_defaults(func=_cmd_verify)
