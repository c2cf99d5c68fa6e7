"""Disclosing templates to a recipient: an EXPORT with its Disclosure context."""

from __future__ import annotations

from collections.abc import Iterable

from purposeguard._decision import Decision
from purposeguard._guard import current_guard
from purposeguard._purposes import Operation
from purposeguard._template import FaceTemplate

from ._records import Disclosure, DisclosureReason

__all__ = ["disclose"]


def disclose(
    templates: FaceTemplate | Iterable[FaceTemplate],
    *,
    recipient: str,
    reason: DisclosureReason | str = DisclosureReason.CONSENT,
    cross_border: bool = False,
    mechanism: str | None = None,
    sale: bool = False,
) -> Decision:
    """Check and audit the disclosure of *templates* to *recipient* (an EXPORT under
    the active purpose, with a [`Disclosure`][purposeguard.policy.Disclosure] context for the rules
    CN-10, CN-11, FR-03, IL-03, IL-04 and WA-01).

    This decides and records; moving the data (e.g. `purposeguard.crypto.seal`) is
    the caller's next step, and only if this returns.

    Raises:
        AccessDeniedError: (a subclass) in enforce mode, when a rule denies.
        PolicyError: a malformed disclosure.
    """
    batch = [templates] if isinstance(templates, FaceTemplate) else list(templates)
    context = Disclosure(
        recipient=recipient,
        reason=reason,
        cross_border=cross_border,
        mechanism=mechanism,
        sale=sale,
    )
    return current_guard().authorize(Operation.EXPORT, batch, context=context)
