"""Rolling out a new analytics purpose: audit mode first, read what it would deny, fix, enforce.

The story. The office wants to count the visitors who come in through the front
entrance each day ("footfall"). That is a new purpose, so it is added to the taxonomy:
``face.analytics.footfall``, which inherits what analytics may do (collect, transform,
store; never compare, search or reveal) and keeps templates for at most an hour.

The first draft of the counter counts the faces at the entrance and leaves out the
staff by recognising them against the door's opt-in gallery. Before it is switched on,
it runs in *audit mode* over real entrance traffic: nothing is blocked, but every
access that enforcement would refuse is recorded as ``would_deny``. The would-deny
report names the code, the templates and subjects it touched, and why: the door
enrolments do not permit analytics, and analytics may not search at all.

The fix: the counter uses only templates it collects itself, for footfall, kept for
15 minutes, and takes the number of staff from the door's badge log (a number, not a
face). A second audit run shows zero would-deny; then enforcement is switched on: the
draft is blocked at its first touch of the door gallery, the fix runs.

Run it (Python 3.11+; the faces come from scikit-image, no camera or download)::

    pip install 'purposeguard[examples]' && pip install --no-deps face-recognition
    # from a checkout of the repository: pip install -e '.[examples]' instead
    python examples/audit_mode_rollout.py            # logs in a temporary folder
    python examples/audit_mode_rollout.py --dir out  # keeps the three audit logs

It prints the story, checks every outcome it prints (an ``AssertionError`` means the
model or the sample data behaved differently) and exits 0. Each run writes a
tamper-evident ``JsonlSink`` log that is verified before it is reported on; with
``--dir`` the logs and their key (``audit.key``; in a real deployment the key stays
with the auditor) are kept there.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import sys
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import purposeguard as pg

# The sample faces (examples/faces.py): Python puts a script's folder on sys.path.
from faces import (
    DISTINCT_PEOPLE,
    Image,
    astronaut_portrait,
    astronaut_second_capture,
    lfw_face,
)
from purposeguard.audit import AuditEvent, JsonlSink, MemorySink, MultiSink, Outcome
from purposeguard.integrations.face_recognition import FaceEncoder, identify
from purposeguard.reports import NO_RULE, build_report
from purposeguard.stores import GuardedStore, MemoryBackend

FOOTFALL = "face.analytics.footfall"
DOOR = "face.identification.closed_set_optin"
KEY_FILE = "audit.key"

# The taxonomy in force from now on: the default one, plus the new purpose.
TAXONOMY = pg.Taxonomy.default().extend(
    FOOTFALL,
    max_retention=timedelta(hours=1),
    description="Counting the people who come in, without identity.",
)

# The door's enrolment desk (in service long before footfall was thought of).
DOOR_ENROLMENT = FaceEncoder(DOOR, ttl=timedelta(days=365))
# The entrance camera of the footfall counter: transient templates, for footfall only.
ENTRANCE = FaceEncoder(FOOTFALL, ttl=timedelta(minutes=15))

Box = tuple[int, int, int, int] | None


@dataclass(frozen=True)
class Frame:
    """One capture at the entrance. ``staff`` is the truth the badge log knows."""

    image: Image
    box: Box
    staff: bool


def faces_in(frame: Frame, n: int, camera: FaceEncoder = ENTRANCE) -> list[pg.FaceTemplate]:
    """The entrance camera: one footfall template per face in *frame*."""
    boxes = None if frame.box is None else [frame.box]
    return camera.encode(frame.image, subject=f"passer-by-{n}", face_locations=boxes)


# -- the first draft ------------------------------------------------------------------


@pg.uses(FOOTFALL)
def count_visitors_v1(frames: Sequence[Frame], door: GuardedStore, staff_ids: list[str]) -> int:
    """First draft: faces at the entrance, minus the staff recognised by the door."""
    staff = []
    for template_id in staff_ids:
        staff.append(door.get(template_id))
    visitors = 0
    for n, frame in enumerate(frames):
        for face in faces_in(frame, n):
            if not identify(staff, face):
                visitors += 1
    return visitors


# -- the fix --------------------------------------------------------------------------


@pg.uses(FOOTFALL)
def count_visitors_v2(frames: Sequence[Frame], staff_badge_ins: int) -> int:
    """The fix: count this quarter hour's footfall templates; staff from the badge log."""
    with GuardedStore(MemoryBackend()) as tally:
        for n, frame in enumerate(frames):
            tally.enrol_many(faces_in(frame, n))
        faces = len(tally)
    return faces - staff_badge_ins


# -- the rollout ----------------------------------------------------------------------


@dataclass
class Run:
    """One run of the counter: its events (also in a verified JsonlSink log)."""

    events: list[AuditEvent]
    log: Path
    warned: int = 0


@contextmanager
def audited(folder: Path, name: str, key: bytes, mode: pg.Mode) -> Iterator[Run]:
    """Run the enclosed code under a fresh guard with the new taxonomy and *mode*,
    logging to ``<name>.jsonl`` in *folder*; count the PurposeWarnings of audit mode."""
    log = folder / f"{name}.jsonl"
    memory = MemorySink()
    run = Run(events=memory.events, log=log)
    with JsonlSink(log, key=key) as sink:
        guard = pg.Guard(taxonomy=TAXONOMY, mode=mode, audit=MultiSink(sink, memory))
        with pg.using(guard), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", pg.PurposeWarning)
            yield run
        run.warned = sum(issubclass(w.category, pg.PurposeWarning) for w in caught)


_TEMPLATE_PREFIX = re.compile(r"\Atemplate [0-9a-f]{32}: ")


def would_deny_report(run: Run, door_ids: set[str]) -> None:
    """Print the would-deny events by code site and operation: how often, which
    templates and subjects, and the distinct reasons."""
    groups: dict[tuple[str, str], list[AuditEvent]] = {}
    for e in run.events:
        if e.outcome is Outcome.WOULD_DENY:
            operation = "fetch" if e.operation is None else e.operation.value
            groups.setdefault((e.site, operation), []).append(e)
    for (site, operation), events in groups.items():
        ids = {t for e in events for t in e.template_ids}
        people = sorted({s for e in events for s in e.subjects if not s.startswith("passer-by")})
        captures = len(ids - door_ids)
        reasons = sorted(
            {_TEMPLATE_PREFIX.sub("", r) for e in events for r in e.reason.split("; ")}
        )
        print(f"   {site}: {len(events)} x {operation}")
        touched = f"{len(ids & door_ids)} door enrolments ({', '.join(people)})"
        if captures:
            touched += f" and {captures} entrance captures"
        print(f"      touched {touched}")
        for reason in reasons:
            print(f"      - {reason}")


def rules_in(run: Run, door: GuardedStore, key: bytes) -> dict[str, int]:
    """The denials per rule id in the run's log, from the verified record of processing."""
    report = build_report(store=door, audit_log=run.log, key=key)
    assert report.audit is not None
    assert not report.tampered, "the log failed verification"
    assert report.audit.events == len(run.events)
    return dict(report.audit.denials_by_rule)


def traffic() -> list[Frame]:
    """This morning at the entrance: two members of staff and three visitors."""
    frames = [Frame(astronaut_second_capture(), None, staff=True)]
    image, box = lfw_face(DISTINCT_PEOPLE[0], mirrored=True)
    frames.append(Frame(image, box, staff=True))
    for index in DISTINCT_PEOPLE[2:5]:
        image, box = lfw_face(index)
        frames.append(Frame(image, box, staff=False))
    return frames


def enrol_staff(door: GuardedStore) -> list[str]:
    """The door's gallery: three employees who opted in to being recognised at the door."""
    people: list[tuple[str, Image, Box]] = [("emp-0001", astronaut_portrait(), None)]
    for n, index in enumerate(DISTINCT_PEOPLE[:2], start=2):
        image, box = lfw_face(index)
        people.append((f"emp-000{n}", image, box))
    with pg.using(pg.Guard(audit=MemorySink())):  # the door's own log, not part of this
        return [
            door.enrol(
                DOOR_ENROLMENT.encode_one(image, subject=s, consent=f"c-{s}", face_location=box)
            )
            for s, image, box in people
        ]


@contextmanager
def workspace(keep: str | None) -> Iterator[Path]:
    """The folder for the logs: *keep*, or a temporary one removed afterwards."""
    if keep is not None:
        folder = Path(keep)
        folder.mkdir(parents=True, exist_ok=True)
        yield folder
    else:
        with tempfile.TemporaryDirectory(prefix="purposeguard-rollout-") as tmp:
            yield Path(tmp)


LOGS = ("1-draft-audit", "2-fix-audit", "3-draft-enforce", "4-fix-enforce")


def main(argv: list[str] | None = None) -> int:
    """Run the story; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--dir", help="keep the audit logs and their key here")
    args = parser.parse_args(argv)
    if args.dir is not None:
        names = [KEY_FILE, *(f"{n}.jsonl" for n in LOGS)]
        taken = [n for n in names if (Path(args.dir) / n).exists()]
        if taken:
            print(f"error: {args.dir} already holds {', '.join(taken)}", file=sys.stderr)
            return 2
    with workspace(args.dir) as folder:
        key = secrets.token_bytes(32)  # the auditor's key
        if args.dir is not None:
            fd = os.open(folder / KEY_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="ascii") as f:
                f.write(key.hex() + "\n")
        with GuardedStore(MemoryBackend()) as door:
            rollout(folder, key, door)
        if args.dir is not None:
            print(f"Kept in {folder}: {', '.join(f'{n}.jsonl' for n in LOGS)}, {KEY_FILE}")
    return 0


def rollout(folder: Path, key: bytes, door: GuardedStore) -> None:
    """The four runs: draft and fix in audit mode, then both enforced."""
    spec = TAXONOMY.spec(FOOTFALL)
    assert spec.max_retention is not None
    minutes = spec.max_retention / timedelta(minutes=1)
    print(f"1. A new purpose, {FOOTFALL}: {spec.description}")
    print("   like all analytics it allows collect, store and transform, not compare,")
    print(f"   search or reveal; its templates may be kept for at most {minutes:g} minutes")
    assert spec.operations == {pg.Operation.COLLECT, pg.Operation.STORE, pg.Operation.TRANSFORM}
    staff_ids = enrol_staff(door)
    frames = traffic()
    keep_a_day = FaceEncoder(FOOTFALL, ttl=timedelta(days=1))
    with pg.using(pg.Guard(taxonomy=TAXONOMY, mode=pg.Mode.AUDIT, audit=MemorySink())):
        try:
            faces_in(frames[1], 0, keep_a_day)
        except pg.PolicyError as err:
            print("   a footfall template kept for a day is refused, even in audit mode:")
            print(f"   {str(err).split(';')[0]}")
        else:
            raise AssertionError("the retention cap was not applied")
    badge_ins = sum(f.staff for f in frames)
    door_ids = set(staff_ids)

    print(
        f"2. The draft counter runs in audit mode over the entrance traffic ({len(frames)} faces)."
    )
    with audited(folder, LOGS[0], key, pg.Mode.AUDIT) as draft:
        visitors = count_visitors_v1(frames, door, staff_ids)
    would = [e for e in draft.events if e.outcome is Outcome.WOULD_DENY]
    print(f"   it ran as before and counted {visitors} visitors; but {len(would)} of its accesses")
    print("   would be refused under enforcement: audit mode let them through, with")
    print(f"   {draft.warned} PurposeWarnings and {len(would)} would_deny events in the log")
    assert visitors == len(frames) - badge_ins
    assert len(would) == len(staff_ids) + len(frames) == draft.warned

    print("3. The would-deny report of the draft:")
    would_deny_report(draft, door_ids)
    rules = rules_in(draft, door, key)
    by_rule = ", ".join(f"{rule} x {n}" for rule, n in rules.items())
    print(f"   by rule id, in the verified log's record of processing: {by_rule}")
    print("   (no policy rule is involved: the labels and the taxonomy refuse these)")
    assert rules == {NO_RULE: len(would)}
    touched = {t for e in would for t in e.template_ids}
    assert door_ids <= touched

    print("4. The fix: footfall templates only (15 minutes), staff from the badge log.")
    with audited(folder, LOGS[1], key, pg.Mode.AUDIT) as fix:
        visitors = count_visitors_v2(frames, badge_ins)
    would = [e for e in fix.events if e.outcome is not Outcome.GRANTED]
    print(f"   audit mode again: {visitors} visitors, {len(would)} would_deny")
    assert visitors == len(frames) - badge_ins
    assert not would
    assert fix.warned == 0
    assert rules_in(fix, door, key) == {}
    assert not door_ids & {t for e in fix.events for t in e.template_ids}

    print("5. Enforcement is switched on.")
    with audited(folder, LOGS[2], key, pg.Mode.ENFORCE) as enforced:
        try:
            count_visitors_v1(frames, door, staff_ids)
        except pg.TemplateNotFoundError as err:
            print(f"   the draft is blocked at its first fetch: {type(err).__name__}")
            print("   (to footfall code the door's enrolments do not exist; the log says why)")
        else:
            raise AssertionError("the draft ran under enforcement")
    denied = enforced.events[-1]
    print(f"   audit #{denied.seq}: {denied.outcome.value} fetch of {', '.join(denied.subjects)}")
    print(f"      at {denied.site}: {denied.reason}")
    assert denied.outcome is Outcome.DENIED
    assert denied.site.endswith(":count_visitors_v1")
    with audited(folder, LOGS[3], key, pg.Mode.ENFORCE) as enforced:
        visitors = count_visitors_v2(frames, badge_ins)
    refused = [e for e in enforced.events if e.outcome is not Outcome.GRANTED]
    print(f"   the fix counts {visitors} visitors, {len(refused)} refused")
    assert visitors == len(frames) - badge_ins
    assert not refused


if __name__ == "__main__":
    raise SystemExit(main())
