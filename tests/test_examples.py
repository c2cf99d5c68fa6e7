"""The scripts in examples/ run as a user runs them, and tell the story they promise.

Each example runs in a subprocess (``python examples/<name>.py``) from an empty
temporary working directory, with its own temporary folder (``TMPDIR``), on the real
`face_recognition` model and scikit-image's sample faces. The examples assert every
outcome they print; here we check the exit status, the key lines of the narrative, and
that nothing is left behind unless ``--dir`` asks for it. ``examples/faces.py`` is also
imported and its helpers tested directly.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from purposeguard.audit import verify
from purposeguard.integrations import face_recognition as pfr
from purposeguard.stores import GuardedStore, SQLiteBackend

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TIMEOUT = 300  # seconds per script; each takes a few seconds on a laptop

pytestmark = pytest.mark.skipif(
    not pfr.is_available() or importlib.util.find_spec("skimage") is None,
    reason="needs the face-recognition extra and scikit-image (purposeguard[examples])",
)


def run_example(
    name: str, tmp_path: Path, *args: str, expect: int = 0
) -> subprocess.CompletedProcess[str]:
    """Run examples/<name>.py from an empty folder under *tmp_path*; check its status."""
    cwd = tmp_path / "cwd"
    tmp = tmp_path / "tmp"
    cwd.mkdir(exist_ok=True)
    tmp.mkdir(exist_ok=True)
    # No bytecode cache in examples/: the run leaves the checkout as it found it.
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, str(EXAMPLES / f"{name}.py"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert proc.returncode == expect, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert not list(tmp.iterdir()), "the example left files in its temporary folder"
    return proc


def lines_in_order(out: str, *patterns: str) -> None:
    """Every pattern matches a line of *out*, each after the one before."""
    lines = out.splitlines()
    at = 0
    for pattern in patterns:
        for i in range(at, len(lines)):
            if re.search(pattern, lines[i]):
                at = i + 1
                break
        else:
            raise AssertionError(f"no line matching {pattern!r} after line {at}:\n{out}")


def test_device_unlock(tmp_path: Path) -> None:
    proc = run_example("device_unlock", tmp_path)
    lines_in_order(
        proc.stdout,
        r"^1\. The owner of profile-1 enrols",
        r"the whole photo is refused: found 2 faces",
        r"a crop with one face is enrolled: <FaceTemplate [0-9a-f]{32} dim=128 "
        r"purposes=face\.verification\.device_unlock .*values=redacted>",
        r"^   distance 0\.[0-3]\d -> unlocked$",
        r"^3\. A stranger",
        r"^   distance (0\.[6-9]|1\.)\d* -> stays locked$",
        r"^   3 profiles: profile-1, profile-2, profile-3$",
        r"^   distance 0\.[0-3]\d -> unlocked$",
        r"refused: .*the taxonomy does not allow search for "
        r"'face\.verification\.device_unlock'",
        r"denied search for face\.verification\.device_unlock at __main__:skip_profile_picker",
        r"refused: .*purpose 'face\.identification\.closed_set_optin' is not within the "
        r"label's allowed purposes \(face\.verification\.device_unlock\)",
        r"denied search for face\.identification\.closed_set_optin at __main__:vendor_telemetry",
        r"^The audit log holds \d+ events: 2 refused",
    )
    assert not list((tmp_path / "cwd").iterdir())


GALLERY_STORY = (
    r"^   the store holds 5 templates of 5 people$",
    r"^   emp-0001 \(distance 0\.[0-2]\d\): the door opens$",
    r"^3\. A visitor who never enrolled",
    r"^   no match: the door stays closed$",
    r"^4\. The contractor walks up",
    r"^   no match: the door stays closed$",
    r"candidates: emp-0001, emp-0002, emp-0003, emp-0004; ctr-0100's enrolment is not",
    r"^   ctr-0100 \(distance 0\.[0-3]\d\): the door opens$",
    r"^   erase_subject\('emp-0001'\) removed 1 template$",
    r"^   the same capture at the door: no match",
    r"^   it holds 4 templates of 4 people$",
    r"emp-0001's old template id: not found \(get of an unknown template id\)",
    r"^   rows of emp-0001 in the file's pg_templates table: 0$",
    r"^   OK: \d+ entries \(\d+ events\) in 1 file",
    r"granted delete of emp-0001 at __main__:erasure_request: erase_subject removed 1",
    r"erasures: 1 request, 1 template removed$",
)


def test_access_control_gallery(tmp_path: Path) -> None:
    proc = run_example("access_control_gallery", tmp_path)
    lines_in_order(proc.stdout, *GALLERY_STORY)
    assert "Kept in" not in proc.stdout
    assert not list((tmp_path / "cwd").iterdir())


def test_access_control_gallery_keeps_its_files_with_dir(tmp_path: Path) -> None:
    proc = run_example("access_control_gallery", tmp_path, "--dir", "out")
    lines_in_order(proc.stdout, *GALLERY_STORY, r"^Kept in .*out: door-gallery\.db")
    out = tmp_path / "cwd" / "out"
    assert sorted(p.name for p in out.iterdir()) == ["audit.jsonl", "audit.key", "door-gallery.db"]
    assert (out / "audit.key").stat().st_mode & 0o077 == 0
    key = bytes.fromhex((out / "audit.key").read_text(encoding="ascii").strip())
    result = verify(out / "audit.jsonl", key=key)
    assert result.ok, result.reason
    with GuardedStore(SQLiteBackend(out / "door-gallery.db")) as store:
        stats = store.stats()
    assert (stats["templates"], stats["subjects"]) == (4, 4)
    # A second run would overwrite the evidence: it refuses, before any work.
    again = run_example("access_control_gallery", tmp_path, "--dir", "out", expect=2)
    assert "already holds door-gallery.db, audit.jsonl, audit.key" in again.stderr
    assert again.stdout == ""


ROLLOUT_LOGS = ("1-draft-audit", "2-fix-audit", "3-draft-enforce", "4-fix-enforce")


def test_audit_mode_rollout(tmp_path: Path) -> None:
    proc = run_example("audit_mode_rollout", tmp_path, "--dir", "logs")
    lines_in_order(
        proc.stdout,
        r"^1\. A new purpose, face\.analytics\.footfall",
        r"it allows collect, store and transform, not compare,",
        r"kept for at most 60 minutes$",
        r"a footfall template kept for a day is refused, even in audit mode",
        r"expiry exceeds the maximum retention of 1:00:00 that the taxonomy sets",
        r"^2\. The draft counter runs in audit mode over the entrance traffic \(5 faces\)",
        r"it ran as before and counted 3 visitors; but 8 of its accesses",
        r"8 PurposeWarnings and 8 would_deny events",
        r"^3\. The would-deny report of the draft:",
        r"^   __main__:count_visitors_v1: 3 x fetch$",
        r"touched 3 door enrolments \(emp-0001, emp-0002, emp-0003\)$",
        r"- purpose 'face\.analytics\.footfall' is not within the label's allowed purposes",
        r"^   __main__:count_visitors_v1: 5 x search$",
        r"touched 3 door enrolments \(emp-0001, emp-0002, emp-0003\) and 5 entrance captures",
        r"- the taxonomy does not allow search for 'face\.analytics\.footfall'",
        r"by rule id, in the verified log's record of processing: \(label or scope\) x 8$",
        r"^4\. The fix:",
        r"^   audit mode again: 3 visitors, 0 would_deny$",
        r"^5\. Enforcement is switched on\.",
        r"the draft is blocked at its first fetch: TemplateNotFoundError",
        r"denied fetch of emp-0001",
        r"at __main__:count_visitors_v1: purpose 'face\.analytics\.footfall' is not within",
        r"^   the fix counts 3 visitors, 0 refused$",
        r"^Kept in .*logs: ",
    )
    logs = tmp_path / "cwd" / "logs"
    names = sorted(p.name for p in logs.iterdir())
    assert names == sorted(["audit.key", *(f"{n}.jsonl" for n in ROLLOUT_LOGS)])
    key = bytes.fromhex((logs / "audit.key").read_text(encoding="ascii").strip())
    for name in ROLLOUT_LOGS:
        result = verify(logs / f"{name}.jsonl", key=key)
        assert result.ok, (name, result.reason)
        assert result.events > 0
    again = run_example("audit_mode_rollout", tmp_path, "--dir", "logs", expect=2)
    assert "already holds audit.key, 1-draft-audit.jsonl" in again.stderr


# -- examples/faces.py -----------------------------------------------------------------


@pytest.fixture(scope="module")
def faces() -> ModuleType:
    """examples/faces.py, imported by path (as the scripts import it by name)."""
    spec = importlib.util.spec_from_file_location("examples_faces", EXAMPLES / "faces.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_astronaut_images(faces: ModuleType) -> None:
    frame = faces.astronaut_frame()
    portrait = faces.astronaut_portrait()
    second = faces.astronaut_second_capture()
    assert frame.shape == (512, 512, 3)
    assert portrait.shape == second.shape == (300, 300, 3)
    for image in (frame, portrait, second):
        assert image.dtype == np.uint8
        assert image.flags.c_contiguous
    assert np.array_equal(portrait, frame[0:300, 80:380])
    assert np.array_equal(second, portrait[:, ::-1])
    # Each call gives a fresh copy: a caller that draws on it changes nothing else.
    frame[:] = 0
    portrait[:] = 0
    assert faces.astronaut_frame().any()
    assert faces.astronaut_portrait().any()


def test_lfw_face(faces: ModuleType) -> None:
    image, box = faces.lfw_face(0)
    assert image.shape == (faces.LFW_SIZE, faces.LFW_SIZE, 3) == (150, 150, 3)
    assert image.dtype == np.uint8
    assert image.flags.c_contiguous
    assert box == faces.LFW_BOX == (0, 150, 150, 0)
    assert np.array_equal(image[..., 0], image[..., 1])
    assert np.array_equal(image[..., 0], image[..., 2])
    assert int(image.max()) > 128 > int(image.min())  # a face, not a blank
    mirrored, _ = faces.lfw_face(0, mirrored=True)
    assert np.array_equal(mirrored, image[:, ::-1])
    assert not np.array_equal(faces.lfw_face(1)[0], image)
    last, _ = faces.lfw_face(faces.LFW_FACES - 1)
    assert last.shape == image.shape
    image[:] = 0
    assert faces.lfw_face(0)[0].any()


@pytest.mark.parametrize("index", [-1, 100, 1000, True, 1.0, "3", None])
def test_lfw_face_rejects_what_is_not_one_of_the_faces(faces: ModuleType, index: object) -> None:
    with pytest.raises(IndexError, match=r"LFW face index must be an integer in 0\.\.99"):
        faces.lfw_face(index)


def test_distinct_people_are_far_apart(faces: ModuleType) -> None:
    """What DISTINCT_PEOPLE promises: every capture of each is more than 0.75 from every
    capture of the others and of the astronaut, and each person's two captures match."""
    fr = pfr._fr()

    def encode(image: np.ndarray, box: tuple[int, int, int, int] | None) -> np.ndarray:
        boxes = None if box is None else [box]
        (encoding,) = fr.face_encodings(image, known_face_locations=boxes)
        return np.asarray(encoding, dtype=np.float64)

    people: list[list[np.ndarray]] = [
        [encode(faces.astronaut_portrait(), None), encode(faces.astronaut_second_capture(), None)]
    ]
    for index in faces.DISTINCT_PEOPLE:
        people.append([encode(*faces.lfw_face(index, mirrored=m)) for m in (False, True)])
    for captures in people:
        assert np.linalg.norm(captures[0] - captures[1]) < 0.4
    for a, b in itertools.combinations(people, 2):
        closest = min(np.linalg.norm(x - y) for x in a for y in b)
        assert closest > 0.75
