"""Test helpers for code that uses purposeguard: Hypothesis strategies, audit capture.

Needs the `testing` extra (`pip install purposeguard[testing]`) for Hypothesis.

- [`purposeguard.testing.strategies`][purposeguard.testing.strategies]: `purposes`, `labels`,
  `templates`, `taxonomies`, `vectors`, `operations`. Installing purposeguard registers them
  with Hypothesis, so `st.from_type(FaceTemplate)` works.
- [`StoreMachine`][purposeguard.testing.StoreMachine]: a Hypothesis state machine that checks a
  guarded store over your backend against a brute-force oracle.
- [`capture_audit`][purposeguard.testing.capture_audit]: collect the audit events a block of code
  produces.
- [`FrozenClock`][purposeguard.FrozenClock]: a clock that moves only when told to.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from purposeguard._clock import FrozenClock
from purposeguard._events import AuditEvent, MemorySink, MultiSink
from purposeguard._guard import Guard, current_guard, using

if TYPE_CHECKING:
    from purposeguard.testing import strategies
    from purposeguard.testing._store_machine import StoreMachine

__all__ = ["FrozenClock", "StoreMachine", "capture_audit", "strategies"]


@contextmanager
def capture_audit(guard: Guard | None = None) -> Iterator[list[AuditEvent]]:
    """Collect the audit events emitted inside the block, in order.

    The guard in force (or *guard*) keeps working as configured, its sink included;
    a copy that also records into a list is put in force for the block, and the list
    is yielded:

    ```python
    with capture_audit() as events:
        template.reveal()
    assert events[-1].outcome == "granted"
    ```
    """
    base = guard if guard is not None else current_guard()
    memory = MemorySink()
    # evolve() shares the sequence: the guard's own sink keeps increasing numbers.
    recording = base.evolve(audit=MultiSink(base.audit, memory))
    with using(recording):
        yield memory.events


def __getattr__(name: str) -> object:
    # Import the strategies lazily so that the core works without Hypothesis.
    if name == "strategies":
        import importlib

        return importlib.import_module("purposeguard.testing.strategies")
    if name == "StoreMachine":
        from purposeguard.testing._store_machine import StoreMachine

        return StoreMachine
    raise AttributeError(name)
