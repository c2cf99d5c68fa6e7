"""Cryptographic enforcement: sealed templates, key rings and shredding, unlinkable
per-purpose projections.

- [`seal`][purposeguard.crypto.seal] / [`unseal`][purposeguard.crypto.unseal]: a template, its id
  and its label in one authenticated, key-committed AES-256-GCM blob (format:
  `docs/reference/sealed-format.md`). Any altered, truncated, relabelled or swapped
  blob, a wrong key ring and a shredded key all give one opaque
  [`IntegrityError`][purposeguard.IntegrityError]; an expired label gives
  [`ExpiredTemplateError`][purposeguard.ExpiredTemplateError]. Sealing is an EXPORT, unsealing a
  COLLECT, both audited. [`seal_many`][purposeguard.crypto.seal_many],
  [`unseal_many`][purposeguard.crypto.unseal_many] and [`reseal`][purposeguard.crypto.reseal] work
  on batches.
- [`KeyRing`][purposeguard.crypto.KeyRing]: a key-encryption key wrapping one data key per subject,
  kept in a [`KeyStore`][purposeguard.typing.KeyStore]
  ([`MemoryKeyStore`][purposeguard.crypto.MemoryKeyStore],
  [`FileKeyStore`][purposeguard.crypto.FileKeyStore]); rotation of both kinds of key;
  [`KeyRing.shred`][purposeguard.crypto.KeyRing.shred] for erasure by destroying the key.
- [`PurposeProjection`][purposeguard.crypto.PurposeProjection]: a keyed orthogonal map per purpose,
  so that indexes kept for different purposes cannot be linked (it is *not* irreversible).

Raw primitives and key handling live in the private `purposeguard.crypto._hazmat`;
application code never needs them.
"""

from purposeguard.typing import KeyStore

from ._keyring import FileKeyStore, KeyRing, MemoryKeyStore
from ._projection import PurposeProjection
from ._sealing import reseal, seal, seal_many, unseal, unseal_many

__all__ = [
    "FileKeyStore",
    "KeyRing",
    "KeyStore",
    "MemoryKeyStore",
    "PurposeProjection",
    "reseal",
    "seal",
    "seal_many",
    "unseal",
    "unseal_many",
]

for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("purposeguard.crypto._"):
        _obj.__module__ = __name__
del _name, _obj
