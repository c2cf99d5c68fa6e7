"""Access control: an opt-in face gallery at the office door, and an erasure request.

The story. The office door recognises employees who opted in: each enrols once, with
consent, for ``face.identification.closed_set_optin`` (1:N identification within a
closed set of people who asked for it), never for searching recorded footage. The
gallery is a guarded SQLite store; the audit log is a tamper-evident ``JsonlSink``.

- The door identifies a returning employee from a new capture.
- A visitor who never enrolled is not matched to anyone.
- A contractor enrolled in the same store for badge-plus-face checks only
  (``face.verification.access_control``, 1:1). The door's search never returns that
  enrolment, not even for the contractor's own face; the badge check still works.
- An employee leaves and asks to be erased. Afterwards the door no longer matches
  them, the reopened store file no longer holds a row of theirs, and the verified
  audit log records the erasure.

Run it (Python 3.11+; the faces come from scikit-image, no camera or download)::

    pip install 'purposeguard[examples]' && pip install --no-deps face-recognition
    # from a checkout of the repository: pip install -e '.[examples]' instead
    python examples/access_control_gallery.py            # in a temporary folder
    python examples/access_control_gallery.py --dir out  # keeps the store and the log

It prints the story, checks every outcome it prints (an ``AssertionError`` means the
model or the sample data behaved differently) and exits 0. With ``--dir`` it keeps
``door-gallery.db``, ``audit.jsonl`` and the log's key ``audit.key`` there (in a real
deployment the key stays with the auditor, never next to the log), so that you can run
``purposeguard store stats`` and ``purposeguard audit verify`` on them.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sqlite3
import sys
import tempfile
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import purposeguard as pg

# The sample faces (examples/faces.py): Python puts a script's folder on sys.path.
from faces import (
    DISTINCT_PEOPLE,
    Image,
    astronaut_portrait,
    astronaut_second_capture,
    lfw_face,
)
from purposeguard.audit import JsonlSink, MemorySink, MultiSink, verify
from purposeguard.integrations.face_recognition import (
    FaceEncoder,
    FaceMatch,
    face_distance,
    identify,
    verify as verify_face,
)
from purposeguard.reports import build_report
from purposeguard.stores import GuardedStore, SQLiteBackend

DOOR = "face.identification.closed_set_optin"
BADGE = "face.verification.access_control"
STORE_FILE = "door-gallery.db"
LOG_FILE = "audit.jsonl"
KEY_FILE = "audit.key"

# Enrolment desk: opt-in identification at the door for a year, never footage search.
OPT_IN = FaceEncoder(
    DOOR, ttl=timedelta(days=365), prohibited="face.identification.retrospective_search"
)
# Enrolment desk, contractors: badge plus face, 1:1 only, for the contract's 90 days.
BADGE_ONLY = FaceEncoder(BADGE, ttl=timedelta(days=90))
# The door camera (walk-through identification) and the badge reader's camera (1:1).
DOOR_CAMERA = FaceEncoder(DOOR, ttl=timedelta(minutes=1))
BADGE_CAMERA = FaceEncoder(BADGE, ttl=timedelta(minutes=1))

Box = tuple[int, int, int, int] | None


def enrol(
    store: GuardedStore,
    encoder: FaceEncoder,
    image: Image,
    box: Box,
    *,
    subject: str,
    consent: str,
) -> str:
    """The enrolment desk: capture one face with consent and store it."""
    template = encoder.encode_one(image, subject=subject, consent=consent, face_location=box)
    return store.enrol(template)


def door(store: GuardedStore, image: Image, box: Box) -> list[FaceMatch]:
    """The door: who, among the employees who opted in, is this?"""
    with pg.purpose(DOOR):
        probe = DOOR_CAMERA.encode_one(image, subject="door-capture", face_location=box)
        return identify(store, probe)


def badge_check(
    store: GuardedStore, template_id: str, image: Image, box: Box
) -> tuple[bool, float]:
    """The badge reader: is the person at the reader the one the badge names?"""
    with pg.purpose(BADGE):
        enrolled = store.get(template_id)  # the badge names the enrolment
        probe = BADGE_CAMERA.encode_one(image, subject=enrolled.subject, face_location=box)
        return verify_face(enrolled, probe), float(face_distance(enrolled, probe)[0])


def erasure_request(store: GuardedStore, subject: str) -> int:
    """The privacy desk: erase every template of *subject* (GDPR Art. 17, PIPL Art. 47)."""
    return store.erase_subject(subject)


def describe(matches: list[FaceMatch]) -> str:
    """The door's answer, in words."""
    if not matches:
        return "no match: the door stays closed"
    best = matches[0]
    return f"{best.subject} (distance {best.distance:.2f}): the door opens"


@contextmanager
def workspace(keep: str | None) -> Iterator[Path]:
    """The folder for the store and the log: *keep*, or a temporary one removed after."""
    if keep is not None:
        folder = Path(keep)
        folder.mkdir(parents=True, exist_ok=True)
        yield folder
    else:
        with tempfile.TemporaryDirectory(prefix="purposeguard-door-") as tmp:
            yield Path(tmp)


def events_of(log: Path) -> list[dict[str, Any]]:
    """The events of a verified JsonlSink log, as dicts (entry lines of kind "event")."""
    events = []
    with log.open("rb") as f:
        for line in f:
            entry = json.loads(line)["entry"]
            if entry["kind"] == "event":
                events.append(entry["event"])
    return events


def main(argv: list[str] | None = None) -> int:
    """Run the story; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--dir", help="keep the store, the audit log and its key here")
    args = parser.parse_args(argv)
    if args.dir is not None:
        taken = [n for n in (STORE_FILE, LOG_FILE, KEY_FILE) if (Path(args.dir) / n).exists()]
        if taken:
            print(f"error: {args.dir} already holds {', '.join(taken)}", file=sys.stderr)
            return 2

    with workspace(args.dir) as folder:
        store_path, log_path = folder / STORE_FILE, folder / LOG_FILE
        key = secrets.token_bytes(32)  # the auditor's key
        if args.dir is not None:
            fd = os.open(folder / KEY_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="ascii") as f:
                f.write(key.hex() + "\n")
        sink = JsonlSink(log_path, key=key)
        watch = MemorySink()  # the same events, for the story to look at as it goes
        try:
            with pg.using(pg.Guard(audit=MultiSink(sink, watch))):
                run(store_path, watch)
        finally:
            sink.close()
        check_log(store_path, log_path, key)
        if args.dir is not None:
            print(f"Kept in {folder}: {STORE_FILE}, {LOG_FILE}, {KEY_FILE}. Try:")
            print(f"   purposeguard store stats {store_path}")
            print(f"   purposeguard audit verify {log_path} --key-file {folder / KEY_FILE}")
    return 0


def run(store_path: Path, watch: MemorySink) -> None:
    """Enrol, identify, check a badge, erase, and reopen the store."""
    emp_image, emp_second = astronaut_portrait(), astronaut_second_capture()
    staff = {f"emp-000{n}": lfw_face(i) for n, i in enumerate(DISTINCT_PEOPLE[:3], start=2)}
    contractor = lfw_face(DISTINCT_PEOPLE[3])
    contractor_second = lfw_face(DISTINCT_PEOPLE[3], mirrored=True)
    visitor = lfw_face(DISTINCT_PEOPLE[4])

    with GuardedStore(SQLiteBackend(store_path)) as store:
        print(f"1. Enrolment into {STORE_FILE}: four employees opt in, with consent.")
        leaver_id = enrol(store, OPT_IN, emp_image, None, subject="emp-0001", consent="c-0001")
        for subject, (image, box) in staff.items():
            enrol(store, OPT_IN, image, box, subject=subject, consent=f"c-{subject[4:]}")
        print("   A contractor enrols for badge-plus-face checks only (1:1).")
        contractor_id = enrol(store, BADGE_ONLY, *contractor, subject="ctr-0100", consent="c-0100")
        stats = store.stats()
        print(f"   the store holds {stats['templates']} templates of {stats['subjects']} people")
        assert (stats["templates"], stats["subjects"]) == (5, 5)

        print("2. emp-0001 comes back to the door (a new capture).")
        matches = door(store, emp_second, None)
        print(f"   {describe(matches)}")
        assert [m.subject for m in matches] == ["emp-0001"]
        assert matches[0].distance < 0.3

        print("3. A visitor who never enrolled walks up to the door.")
        matches = door(store, *visitor)
        print(f"   {describe(matches)}")
        assert matches == []

        print("4. The contractor walks up to the door without tapping the badge.")
        matches = door(store, *contractor_second)
        print(f"   {describe(matches)}")
        assert matches == []
        # identify() asks the store for a shortlist (a SEARCH), then measures distances.
        search = [e for e in watch.events if e.operation is pg.Operation.SEARCH][-2]
        found = [s for s in search.subjects if s != "door-capture"]
        print(f"   audit #{search.seq}, the store's search: {search.reason}")
        print(f"      candidates: {', '.join(found)}; ctr-0100's enrolment is not among them")
        assert contractor_id not in search.template_ids
        assert "ctr-0100" not in search.subjects
        assert len(found) == 4
        print("   The contractor taps the badge; the badge reader checks the face 1:1:")
        ok, dist = badge_check(store, contractor_id, *contractor_second)
        print(f"   ctr-0100 (distance {dist:.2f}): {'the door opens' if ok else 'refused'}")
        assert ok
        assert dist < 0.4

        print("5. emp-0001 leaves the company and asks to be erased.")
        removed = erasure_request(store, "emp-0001")
        print(f"   erase_subject('emp-0001') removed {removed} template")
        assert removed == 1
        matches = door(store, emp_second, None)
        print(f"   the same capture at the door: {describe(matches)}")
        assert matches == []

    print(f"6. {STORE_FILE} is closed and reopened.")
    with GuardedStore(SQLiteBackend(store_path)) as reopened:
        stats = reopened.stats()
        print(f"   it holds {stats['templates']} templates of {stats['subjects']} people")
        assert (stats["templates"], stats["subjects"]) == (4, 4)
        with pg.purpose(DOOR):
            try:
                reopened.get(leaver_id)
            except pg.TemplateNotFoundError:
                print(f"   emp-0001's old template id: not found ({watch.events[-1].reason})")
                assert watch.events[-1].reason == "get of an unknown template id"
            else:
                raise AssertionError("an erased template was found")
        assert door(reopened, emp_second, None) == []
        print("   and the door still does not know emp-0001")
    uri = store_path.resolve().as_uri() + "?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as db:
        (rows,) = db.execute(
            "SELECT count(*) FROM pg_templates WHERE subject = ?", ("emp-0001",)
        ).fetchone()
    print(f"   rows of emp-0001 in the file's pg_templates table: {rows}")
    assert rows == 0


def check_log(store_path: Path, log_path: Path, key: bytes) -> None:
    """Verify the audit log, then read what it says about the erasure."""
    print(f"7. The auditor verifies {LOG_FILE} with the key.")
    result = verify(log_path, key=key)
    print(f"   {'OK' if result.ok else 'TAMPERED'}: {result.reason}")
    assert result.ok
    erasures = [e for e in events_of(log_path) if e["operation"] == "delete"]
    assert len(erasures) == 1
    erasure = erasures[0]
    print(
        f"   event #{erasure['seq']}: {erasure['outcome']} {erasure['operation']} "
        f"of {', '.join(erasure['subjects'])} at {erasure['site']}: {erasure['reason']}"
    )
    assert erasure["subjects"] == ["emp-0001"]
    assert erasure["outcome"] == "granted"
    report = build_report(store=store_path, audit_log=log_path, key=key)
    assert report.audit is not None
    assert not report.tampered
    kinds, removed = report.audit.erasures["erase_subject"]
    print(
        f"   the record of processing: {report.audit.events} events, "
        f"{report.audit.outcomes['denied']} refused (the fetch of the erased id); "
        f"erasures: {kinds} request, {removed} template removed"
    )
    assert (kinds, removed, report.audit.subjects_erased) == (1, 1, 1)
    assert report.audit.outcomes["denied"] == 1  # the reopened store's get of the erased id


if __name__ == "__main__":
    raise SystemExit(main())
