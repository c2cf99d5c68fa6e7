"""Known-answer vectors of the sealed-template format (version 1, algorithm 1).

``python -m tests.crypto_vectors`` rewrites ``tests/vectors/sealed-v1-*.json`` from
the cases below. Only do that for a deliberate format change (a new version): the
test suite checks that the implementation still produces exactly these bytes.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from purposeguard._labels import Label
from purposeguard.crypto import _hazmat

VECTORS = Path(__file__).parent / "vectors"

CASES: list[dict[str, Any]] = [
    {
        "name": "float32-basic",
        "description": "an 8-d float32 template, one allowed purpose, consent and jurisdiction",
        "data_key": bytes(range(32)).hex(),
        "key_id": bytes(range(0x10, 0x20)).hex(),
        "template_id": "00112233445566778899aabbccddeeff",
        "salt": bytes(range(0x40, 0x60)).hex(),
        "dtype": "<f4",
        "vector": [0.5, -1.25, 3.0, 0.0, -0.0078125, 1024.0, 2.5, -3.75],
        "label": {
            "allowed": ["face.verification.login"],
            "prohibited": [],
            "subject": "subject-001",
            "expires_at": "2030-01-01T00:00:00+00:00",
            "collected_at": "2026-01-01T00:00:00+00:00",
            "consent": "consent-1",
            "jurisdictions": ["gdpr"],
            "lineage": [],
        },
    },
    {
        "name": "float64-prohibited-unicode",
        "description": "a 4-d float64 template; prohibited purpose; non-ASCII subject",
        "data_key": (b"\xa5" * 32).hex(),
        "key_id": (b"\x5a" * 16).hex(),
        "template_id": "ffeeddccbbaa99887766554433221100",
        "salt": (b"\x00" * 32).hex(),
        "dtype": "<f8",
        "vector": [0.1, -0.2, 0.30000000000000004, 1e-300],
        "label": {
            "allowed": ["face.identification"],
            "prohibited": ["face.identification.realtime_remote"],
            "subject": "s\u00f8ren-\u674e",
            "expires_at": "2027-06-30T12:34:56.789000+00:00",
            "collected_at": None,
            "consent": None,
            "jurisdictions": ["gdpr", "pipl"],
            "lineage": ["transform:normalise"],
        },
    },
    {
        "name": "float16-one-entry",
        "description": "the smallest template: one float16 entry",
        "data_key": bytes(range(255, 223, -1)).hex(),
        "key_id": bytes(range(16)).hex(),
        "template_id": "0123456789abcdef0123456789abcdef",
        "salt": bytes(range(0xA0, 0xC0)).hex(),
        "dtype": "<f2",
        "vector": [-2.0],
        "label": {
            "allowed": ["face.verification.device_unlock"],
            "prohibited": [],
            "subject": "x",
            "expires_at": "2026-01-01T00:00:01+00:00",
            "collected_at": None,
            "consent": None,
            "jurisdictions": [],
            "lineage": [],
        },
    },
]


def label_of(case: dict[str, Any]) -> Label:
    raw = case["label"]
    return Label(
        allowed=raw["allowed"],
        prohibited=raw["prohibited"],
        subject=raw["subject"],
        expires_at=datetime.fromisoformat(raw["expires_at"]),
        collected_at=None
        if raw["collected_at"] is None
        else datetime.fromisoformat(raw["collected_at"]),
        consent=raw["consent"],
        jurisdictions=raw["jurisdictions"],
        lineage=raw["lineage"],
    )


def build(case: dict[str, Any]) -> dict[str, Any]:
    """The case with every derived value and the expected blob, all hex."""
    key = bytes.fromhex(case["data_key"])
    kid = bytes.fromhex(case["key_id"])
    tid = bytes.fromhex(case["template_id"])
    salt = bytes.fromhex(case["salt"])
    label_bytes = label_of(case).to_bytes()
    values = np.array(case["vector"], dtype=case["dtype"])
    aes_key, nonce, commitment = _hazmat.derive_record_keys(key, salt, kid, tid)
    blob = _hazmat.seal_record(
        kdf=_hazmat.RecordKdf(key), key_id=kid, template_id=tid, label_bytes=label_bytes,
        values=values, salt=salt,
    )  # fmt: skip
    return {
        **case,
        "label_bytes": label_bytes.hex(),
        "plaintext": (
            bytes((_hazmat.ALGORITHM_DTYPE_CODES[case["dtype"]],)) + values.tobytes()
        ).hex(),
        "aes_key": aes_key.hex(),
        "nonce": nonce.hex(),
        "commitment": commitment.hex(),
        "blob": blob.hex(),
    }


def main() -> None:
    VECTORS.mkdir(exist_ok=True)
    for case in CASES:
        out = VECTORS / f"sealed-v1-{case['name']}.json"
        out.write_text(json.dumps(build(case), indent=2, ensure_ascii=False) + "\n", "utf-8")
        print(out)


if __name__ == "__main__":
    main()
