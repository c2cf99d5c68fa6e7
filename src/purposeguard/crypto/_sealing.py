"""seal / unseal: a template and its label in one authenticated, key-committed blob."""

from __future__ import annotations

import struct
import threading
from collections.abc import Iterable, Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from purposeguard._context import ACTIVE
from purposeguard._decision import Decision
from purposeguard._errors import (
    ExpiredTemplateError,
    IntegrityError,
    InvalidTemplateError,
    PolicyError,
)
from purposeguard._events import AuditEvent, Outcome
from purposeguard._guard import Guard, caller_site, current_guard
from purposeguard._labels import Label
from purposeguard._purposes import Operation
from purposeguard._template import FaceTemplate

from . import _hazmat
from ._keyring import KeyRing

__all__ = ["open_sealed", "reseal", "seal", "seal_many", "seal_values", "unseal", "unseal_many"]

INTEGRITY_MESSAGE: Final = (
    "the sealed template failed its integrity check (wrong key ring, shredded key, or "
    "altered, truncated or relabelled data)"
)
_MAX_CACHED_LABELS: Final = 4096
_labels: dict[bytes, Label] = {}  # canonical bytes -> decoded label
_labels_lock = threading.Lock()


def _keyring(keyring: object) -> KeyRing:
    if not isinstance(keyring, KeyRing):
        raise PolicyError(f"keyring must be a KeyRing, got {type(keyring).__name__}")
    return keyring


def _tid_bytes(tid: str) -> bytes:
    if len(tid) != 32 or tid != tid.lower():
        raise InvalidTemplateError(f"template id {tid[:40]!r} is not 32 lowercase hex digits")
    try:
        return bytes.fromhex(tid)
    except ValueError:
        raise InvalidTemplateError(
            f"template id {tid[:40]!r} is not 32 lowercase hex digits"
        ) from None


def _sealable(values: npt.NDArray[np.floating[Any]], tid: str) -> None:
    dt = values.dtype
    if dt.kind != "f" or dt.itemsize not in (2, 4, 8):
        raise InvalidTemplateError(
            f"template {tid} holds {dt.name} values; only float16, float32 and float64 "
            "templates can be sealed"
        )


def _label_of(data: bytes) -> Label:
    # Decoding a label costs more than the decryption; labels recur, so cache by bytes.
    # Only authenticated bytes get here, and a Label is immutable.
    label = _labels.get(data)
    if label is None:
        label = Label.from_bytes(data)
        with _labels_lock:
            if len(_labels) >= _MAX_CACHED_LABELS:
                _labels.clear()
            _labels[data] = label
    return label


def seal_values(
    keyring: KeyRing,
    items: Sequence[tuple[str, Label, npt.NDArray[np.floating[Any]]]],
    *,
    _salts: Sequence[bytes] | None = None,
) -> list[bytes]:
    """Seal `(template id, label, values)` triples without any guard check.

    For purposeguard's own callers (`seal`, `reseal`, the sealed store), which
    authorise first or never release the values.
    """
    return _seal_checked(keyring, [(_tid_bytes(tid), lb, v) for tid, lb, v in items], _salts)


def _seal_checked(
    keyring: KeyRing,
    items: Sequence[tuple[bytes, Label, npt.NDArray[np.floating[Any]]]],
    salts: Sequence[bytes] | None,
) -> list[bytes]:
    # items: (template id as bytes, label, values), the ids already checked.
    if salts is not None and len(salts) != len(items):
        raise ValueError("one salt per template")
    keys = keyring._current_keys([label.subject for _, label, _ in items])
    return _hazmat.seal_batch(
        [(keys[label.subject], tid, label.to_bytes(), values) for tid, label, values in items],
        salts,
    )


def open_sealed(
    blob: object, keyring: KeyRing
) -> tuple[str, Label, npt.NDArray[np.floating[Any]]]:
    """Authenticate and decrypt *blob*: `(template id, label, values)`; no guard check.

    Raises:
        IntegrityError: any failure, always with the same message.
        InvalidTemplateError: *blob* is not bytes-like.
    """
    if type(blob) is not bytes:
        if not isinstance(blob, bytes | bytearray | memoryview):
            raise InvalidTemplateError(f"a sealed template is bytes, got {type(blob).__name__}")
        blob = bytes(blob)
    try:
        opened = _hazmat.Opened(blob)
        found = keyring._key_by_id(opened.key_id)
        if found is None:
            raise _hazmat.UnsealError
        subject, key = found
        # Checks the key commitment before it decrypts: the order matters.
        values = opened.decrypt(key)
        # Authenticated from here on: the label may now drive behaviour.
        label = _label_of(opened.label_bytes)
        if label.subject != subject:
            raise _hazmat.UnsealError
        # A read-only view of decrypted bytes that nothing else references.
        if not values.dtype.isnative:
            values = values.astype(values.dtype.newbyteorder("="))
            values.flags.writeable = False
        # Authentic is not the same as well-formed: the bytes were written by whoever
        # holds the data key (another implementation of the format, another version),
        # so values that could not have come from a FaceTemplate are refused too.
        if not np.isfinite(values).all():
            raise _hazmat.UnsealError
        return opened.template_id.hex(), label, values
    except (_hazmat.UnsealError, ValueError, TypeError, struct.error):
        # PolicyError and InvalidTemplateError are ValueErrors: one opaque error for all.
        raise IntegrityError(INTEGRITY_MESSAGE) from None


def seal(template: FaceTemplate, keyring: KeyRing, *, _salt: bytes | None = None) -> bytes:
    """Seal *template* (its values, id and label) into bytes that only *keyring* opens.

    An EXPORT, authorised and audited like every use: inside a purpose scope the
    active purpose must permit EXPORT; outside one, some purpose of the template's own
    label must. The label travels in clear inside the blob and is authenticated; the
    values are encrypted with AES-256-GCM under a key derived from the subject's data
    key (created in *keyring* on first use). The format is specified in
    `docs/reference/sealed-format.md`.

    Raises:
        AccessDeniedError: (a subclass) the export is not permitted.
        InvalidTemplateError: not a template, or values of a dtype the format lacks.
        PolicyError: *keyring* is not a [`KeyRing`][purposeguard.crypto.KeyRing].
    """
    return seal_many([template], keyring, _salts=None if _salt is None else [_salt])[0]


def seal_many(
    templates: Iterable[FaceTemplate],
    keyring: KeyRing,
    *,
    _salts: Sequence[bytes] | None = None,
) -> list[bytes]:
    """Seal several templates: one EXPORT audit event for the batch, one key-store
    write for the subjects seen for the first time. All or nothing: if any template
    may not be exported, nothing is sealed. Raises as
    [`seal`][purposeguard.crypto.seal] does.
    """
    ring = _keyring(keyring)
    batch = list(templates)
    items: list[tuple[bytes, Label, npt.NDArray[np.floating[Any]]]] = []
    for t in batch:
        if not isinstance(t, FaceTemplate):
            raise InvalidTemplateError(f"seal() takes FaceTemplates, got {type(t).__name__}")
        tid = t.id
        tid_bytes = _tid_bytes(tid)
        values = t._values()
        if values.dtype not in _hazmat.AS_IS:
            _sealable(values, tid)
        items.append((tid_bytes, t.label, values))
    if not batch:
        return []
    # Checked before it is authorised (a bad input is no access), sealed after.
    current_guard().authorize(Operation.EXPORT, batch, own_purpose=True)
    return _seal_checked(ring, items, _salts)


def unseal(blob: bytes, keyring: KeyRing) -> FaceTemplate:
    """Open a sealed template: the same id, label and values as when it was sealed.

    A COLLECT, authorised and audited like [`FaceTemplate.wrap`][purposeguard.FaceTemplate.wrap]
    (no purpose scope needed). The blob is authenticated before anything in it is believed; an
    authentic but expired label raises [`ExpiredTemplateError`][purposeguard.ExpiredTemplateError]
    in every guard mode (an expired template unseals to nothing), and the refusal is audited.

    Raises:
        IntegrityError: wrong key ring, shredded key, any changed, missing or added
            byte, a label or template id that is not the sealed one. Always the same
            message: failures are no oracle.
        ExpiredTemplateError: the authentic label has expired at the guard's clock.
        AccessDeniedError: (another subclass) the collection is not permitted.
        InvalidTemplateError: *blob* is not bytes-like.
    """
    return unseal_many([blob], _keyring(keyring))[0]


def unseal_many(blobs: Iterable[bytes], keyring: KeyRing) -> list[FaceTemplate]:
    """Open several sealed templates; one COLLECT audit event. All or nothing.

    Raises as [`unseal`][purposeguard.crypto.unseal] does, for the first failure.
    """
    ring = _keyring(keyring)
    opened = [open_sealed(b, ring) for b in blobs]
    if not opened:
        return []
    templates = [FaceTemplate._new(v, label, tid) for tid, label, v in opened]
    guard = current_guard()
    now = guard.clock.now()
    for t in templates:
        if t.label.is_expired(now):
            _refuse_expired(guard, t, now)
    guard.authorize(Operation.COLLECT, templates, own_purpose=True)
    return templates


def _refuse_expired(guard: Guard, template: FaceTemplate, now: Any) -> None:
    # Expired data unseals to nothing, whatever the guard's mode: record a denial.
    state = ACTIVE.get()
    reason = f"the label expired at {template.expires_at.isoformat()}"
    decision = Decision(
        allowed=False,
        purpose=state.purpose if state is not None else None,
        operation=Operation.COLLECT,
        template_id=template.id,
        reasons=(reason,),
        error=ExpiredTemplateError,
        label=template.label,
    )
    site, _ = caller_site()
    guard._emit(
        AuditEvent(
            seq=next(guard._seq),
            at=now,
            operation=Operation.COLLECT,
            outcome=Outcome.DENIED,
            purpose=decision.purpose,
            template_ids=(template.id,),
            subjects=(template.subject,),
            principal=state.principal if state is not None else None,
            grant_id=state.grant.grant_id if state is not None and state.grant else None,
            reason=f"unseal: {reason}",
            site=site,
        ),
        Operation.COLLECT,
    )
    raise ExpiredTemplateError(
        f"sealed template {template.id} expired at {template.expires_at.isoformat()}; "
        "it cannot be unsealed",
        decision,
    )


def reseal(blobs: Iterable[bytes], keyring: KeyRing) -> list[bytes]:
    """Re-seal *blobs* under each subject's current data key (after
    [`KeyRing.rotate_data_key`][purposeguard.crypto.KeyRing.rotate_data_key]); same ids, labels and
    values, new salts.

    The values never leave this function, so this is not an EXPORT or a COLLECT and
    is not audited; expiry is not checked (an expired blob stays expired). All or
    nothing.

    Raises:
        IntegrityError: a blob does not open under *keyring*.
    """
    ring = _keyring(keyring)
    opened = [open_sealed(b, ring) for b in blobs]
    return seal_values(ring, opened)
