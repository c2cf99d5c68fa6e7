"""Device unlock: 1:1 face verification on a shared tablet, and why it cannot become 1:N.

The story. A family tablet unlocks with the face of whoever owns a profile. Each
profile's owner enrols once, with consent, for ``face.verification.device_unlock``
only, for a year. Unlocking compares a live capture with *one* profile's template
(1:1 verification): the owner gets in, a stranger does not.

Then two pieces of code try to reuse those enrolments to find out *who* is holding the
tablet (1:N identification) without asking:

- a "skip the profile picker" shortcut that calls ``verify`` with every profile's
  template at once: across several subjects that is a SEARCH, which a verification
  purpose does not allow;
- a vendor's telemetry hook that declares an identification purpose and calls
  ``identify``: the enrolments' labels do not permit it.

Both are refused before any distance is computed, and each refusal is one audit event
naming the code that tried, the purpose, the templates and the reason.

Run it (Python 3.11+; the faces come from scikit-image, no camera or download)::

    pip install 'purposeguard[examples]' && pip install --no-deps face-recognition
    # from a checkout of the repository: pip install -e '.[examples]' instead
    python examples/device_unlock.py

It prints the story, checks every outcome it prints (an ``AssertionError`` means the
model or the sample data behaved differently) and exits 0. The audit log is kept in
memory; nothing is written to disk.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import timedelta

import purposeguard as pg

# The sample faces (examples/faces.py): Python puts a script's folder on sys.path.
from faces import (
    DISTINCT_PEOPLE,
    astronaut_frame,
    astronaut_portrait,
    astronaut_second_capture,
    lfw_face,
)
from purposeguard.audit import AuditEvent, MemorySink, Outcome
from purposeguard.integrations.face_recognition import (
    FaceCountError,
    FaceEncoder,
    face_distance,
    identify,
    verify,
)

UNLOCK = "face.verification.device_unlock"
TELEMETRY = "face.identification.closed_set_optin"

# The enrolment screen: templates for unlocking only, kept for a year.
ENROLMENT = FaceEncoder(UNLOCK, ttl=timedelta(days=365))
# The lock screen: a live capture, kept for a minute.
LOCK_SCREEN = FaceEncoder(UNLOCK, ttl=timedelta(minutes=1))


def show_event(event: AuditEvent) -> None:
    """Print an audit event: ids and reasons, never values."""
    operation = event.operation.value if event.operation is not None else "use"
    print(
        f"   audit #{event.seq}: {event.outcome.value} {operation} "
        f"for {event.purpose.name if event.purpose else None} at {event.site}"
    )
    print(f"      {len(event.template_ids)} templates, of {', '.join(event.subjects)}")
    # A refusal over several templates gives one reason per template, joined by "; ".
    reasons = event.reason.split("; ")
    more = f" (and {len(reasons) - 1} more, one per template)" if len(reasons) > 1 else ""
    print(f"      reason: {reasons[0]}{more}")


def unlock(enrolled: pg.FaceTemplate, probe: pg.FaceTemplate) -> bool:
    """The lock screen's check: the live capture against one profile's template."""
    with pg.purpose(UNLOCK):
        distance = float(face_distance(enrolled, probe)[0])
        ok = verify(enrolled, probe)
    print(f"   distance {distance:.2f} -> {'unlocked' if ok else 'stays locked'}")
    return ok


def skip_profile_picker(profiles: dict[str, pg.FaceTemplate], probe: pg.FaceTemplate) -> bool:
    """A shortcut: unlock if the face matches any profile, instead of asking whose it is."""
    with pg.purpose(UNLOCK):
        return verify(list(profiles.values()), probe)  # several subjects: a SEARCH


def vendor_telemetry(profiles: Sequence[pg.FaceTemplate], probe: pg.FaceTemplate) -> str:
    """A vendor's hook, called after each unlock: which household member was it?"""
    with pg.purpose(TELEMETRY):
        matches = identify(profiles, probe)
    return matches[0].subject if matches else "unknown"


def main(argv: list[str] | None = None) -> int:
    """Run the story; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.parse_args(argv)

    log = MemorySink()
    with pg.using(pg.Guard(audit=log)):
        print("1. The owner of profile-1 enrols on the tablet.")
        try:
            ENROLMENT.encode_one(astronaut_frame(), subject="profile-1", consent="consent-p1")
        except FaceCountError as err:
            two_faces = err
        else:
            raise AssertionError("a frame with two faces was enrolled")
        print(f"   the whole photo is refused: {two_faces}")
        print("   (the detector also takes the mission patch on her suit for a face;")
        print("   enrolling a second face by accident would collect it without consent)")
        assert two_faces.found == 2
        assert not log.events, "nothing may be collected from a refused frame"
        owner = ENROLMENT.encode_one(
            astronaut_portrait(), subject="profile-1", consent="consent-p1"
        )
        print(f"   a crop with one face is enrolled: {owner}")
        print(f"   subject {owner.subject}, consent {owner.label.consent}")

        print("2. The owner unlocks the tablet (a second capture).")
        probe = LOCK_SCREEN.encode_one(astronaut_second_capture(), subject="profile-1")
        assert unlock(owner, probe)

        print("3. A stranger picks it up and tries profile-1.")
        image, box = lfw_face(DISTINCT_PEOPLE[0])
        stranger = LOCK_SCREEN.encode_one(image, subject="profile-1", face_location=box)
        assert not unlock(owner, stranger)

        print("4. Two more people add profiles, with their own consent.")
        profiles = {"profile-1": owner}
        for n, index in enumerate(DISTINCT_PEOPLE[1:3], start=2):
            image, box = lfw_face(index)
            profiles[f"profile-{n}"] = ENROLMENT.encode_one(
                image, subject=f"profile-{n}", consent=f"consent-p{n}", face_location=box
            )
        print(f"   {len(profiles)} profiles: {', '.join(profiles)}")

        print("5. profile-2 picks their profile on the lock screen and looks at the camera.")
        image, box = lfw_face(DISTINCT_PEOPLE[1], mirrored=True)
        probe2 = LOCK_SCREEN.encode_one(image, subject="profile-2", face_location=box)
        assert unlock(profiles["profile-2"], probe2)

        print("6. A shortcut skips the picker: verify() against every profile at once.")
        try:
            skip_profile_picker(profiles, probe2)
        except pg.PurposeViolationError as err:
            decision = err.decision
        else:
            raise AssertionError("verification over several subjects was let through")
        assert decision is not None
        print(f"   refused: {decision.reasons[0]}")
        assert decision.operation is pg.Operation.SEARCH
        denied = log.events[-1]
        show_event(denied)
        assert denied.outcome is Outcome.DENIED
        assert denied.operation is pg.Operation.SEARCH
        assert denied.site == f"{__name__}:skip_profile_picker"
        assert set(denied.subjects) == set(profiles)

        print("7. The vendor's telemetry hook declares identification and calls identify().")
        try:
            vendor_telemetry(list(profiles.values()), probe2)
        except pg.PurposeViolationError as err:
            decision = err.decision
        else:
            raise AssertionError("identification over verification enrolments was let through")
        assert decision is not None
        print(f"   refused: {decision.reasons[0]}")
        print(f"   (and by the other {len(decision.reasons) - 1} templates: profiles and capture)")
        assert len(decision.reasons) == len(profiles) + 1
        denied = log.events[-1]
        show_event(denied)
        assert denied.outcome is Outcome.DENIED
        assert denied.operation is pg.Operation.SEARCH
        assert denied.purpose == pg.Purpose(TELEMETRY)
        assert denied.site == f"{__name__}:vendor_telemetry"

    refused = [e for e in log.events if e.outcome is Outcome.DENIED]
    print(
        f"The audit log holds {len(log.events)} events: {len(refused)} refused, "
        "both searches; every enrolment, capture and unlock was granted."
    )
    assert len(refused) == 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
