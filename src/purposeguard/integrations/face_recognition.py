"""purposeguard for the `face_recognition` package (dlib's ResNet model, 128-d encodings).

The adapter puts the two places where a pipeline touches face data under the guard:

- **Collection.** [`FaceEncoder`][purposeguard.integrations.face_recognition.FaceEncoder]
  is the pipeline's collection point: its embedding function is decorated with
  [`collects`][purposeguard.collects], so encodings come out already wrapped in
  [`FaceTemplate`][purposeguard.FaceTemplate]s that carry their label, and each one is
  a COLLECT, checked and audited. No raw encoding is ever handed to the caller.
- **Matching.** [`face_distance`][purposeguard.integrations.face_recognition.face_distance],
  [`compare_faces`][purposeguard.integrations.face_recognition.compare_faces],
  [`verify`][purposeguard.integrations.face_recognition.verify] and
  [`identify`][purposeguard.integrations.face_recognition.identify] keep
  `face_recognition`'s semantics (Euclidean distance, a match at 0.6 or closer) but go
  through the guard. Comparing a probe with one subject's templates is a COMPARE (1:1
  verification); comparing it with templates of more than one subject is a SEARCH (1:N
  identification), which verification purposes do not allow. A verification enrolment
  therefore cannot be reused for identification by putting it in a list.

Install (the `face-recognition` distribution declares `dlib`, which would build from
source; `dlib-bin` provides the same module prebuilt):

```sh
pip install 'purposeguard[face-recognition]'
pip install --no-deps face-recognition
```

This module imports without them; the first call that needs the model raises
`ImportError` naming the install commands.
"""

from __future__ import annotations

import importlib
import importlib.util
import numbers
import os
import threading
import warnings
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal

import attrs
import numpy as np
import numpy.typing as npt

from purposeguard._errors import InvalidTemplateError, PolicyError
from purposeguard._guard import Guard, current_guard
from purposeguard._purposes import Operation, PurposeLike, purpose_set
from purposeguard._scope import collects
from purposeguard._template import FaceTemplate, as_vector

if TYPE_CHECKING:
    from purposeguard.stores import GuardedStore

__all__ = [
    "DEFAULT_TOLERANCE",
    "ENCODING_DIM",
    "INSTALL_HINT",
    "FaceCountError",
    "FaceEncoder",
    "FaceLocation",
    "FaceMatch",
    "compare_faces",
    "face_distance",
    "identify",
    "is_available",
    "load_image",
    "verify",
]

DEFAULT_TOLERANCE = 0.6
"""The distance at or below which `face_recognition` calls two encodings the same person."""

ENCODING_DIM = 128
"""The length of a `face_recognition` encoding."""

INSTALL_HINT = (
    "pip install 'purposeguard[face-recognition]' && pip install --no-deps face-recognition"
)
"""The commands that install this adapter's dependencies."""

FaceLocation = tuple[int, int, int, int]
"""A face box as `face_recognition` gives it: `(top, right, bottom, left)` in pixels."""

_MODULES = ("face_recognition", "face_recognition_models", "dlib")
# What _precheck decides on: the label is all that matters, never these values.
_STAND_IN = np.ones(ENCODING_DIM, dtype=np.float64)
_STAND_IN.flags.writeable = False
_lock = threading.Lock()
_loaded: ModuleType | None = None


def is_available() -> bool:
    """Whether `face_recognition`, its models and dlib are installed (nothing is loaded)."""
    try:
        return all(importlib.util.find_spec(name) is not None for name in _MODULES)
    except (ImportError, ValueError):  # an import hook refused, or a broken entry
        return False


def _fr() -> ModuleType:
    """Import `face_recognition` once, on first use; it loads dlib's models on import."""
    global _loaded
    if _loaded is not None:
        return _loaded
    with _lock:
        if _loaded is None:
            _loaded = _import_face_recognition()
    return _loaded


def _import_face_recognition() -> ModuleType:
    # face_recognition imports its models inside `except Exception: ... quit()`, which
    # would end the host program with exit status 0; importing the models and dlib
    # first turns their absence into an ImportError that names the fix.
    try:
        from PIL import ImageFile
    except ImportError:  # pragma: no cover - Pillow comes with the extra
        ImageFile = None  # type: ignore[assignment]  # noqa: N806
    truncated = getattr(ImageFile, "LOAD_TRUNCATED_IMAGES", False)
    try:
        with warnings.catch_warnings():
            # face_recognition_models locates its files with pkg_resources, which
            # newer setuptools releases mark as deprecated on import.
            warnings.filterwarnings("ignore", message=".*pkg_resources.*")
            for name in _MODULES[::-1]:
                module = importlib.import_module(name)
    except ImportError as err:
        raise ImportError(
            "purposeguard.integrations.face_recognition needs the face_recognition "
            f"package, its models and dlib ({err.name or err} is missing): {INSTALL_HINT}",
            name=err.name,
        ) from err
    except (Exception, SystemExit) as err:
        raise ImportError(
            "purposeguard.integrations.face_recognition could not load the face_recognition "
            f"package ({type(err).__name__}); reinstall it: {INSTALL_HINT}"
        ) from err
    finally:
        # face_recognition makes Pillow accept truncated image files for the whole
        # process on import; a truncated file must stay an error.
        if ImageFile is not None:
            ImageFile.LOAD_TRUNCATED_IMAGES = truncated
    return module


class FaceCountError(InvalidTemplateError):
    """An image held a different number of faces than the call needs.

    `found` is how many faces the detector found. Raised by
    [`FaceEncoder.encode_one`][purposeguard.integrations.face_recognition.FaceEncoder.encode_one]
    when there is no face, or more than one (enrolling a bystander's face by accident
    would be collection without consent).
    """

    def __init__(self, message: str, *, found: int) -> None:
        super().__init__(message)
        self.found = found


def load_image(image: str | os.PathLike[str] | npt.ArrayLike) -> npt.NDArray[np.uint8]:
    """Read *image* as the RGB `uint8` array `face_recognition` expects.

    *image* is a path to an image file, an `(H, W, 3)` RGB array, an `(H, W, 4)`
    RGBA array (alpha dropped) or an `(H, W)` greyscale array. Float arrays must hold
    values in `[0, 1]` (scikit-image's convention) and are scaled to `0..255`.

    Raises:
        InvalidTemplateError: the file cannot be read, or the array has the wrong
            shape, type or range (the message names which; never pixel values).
    """
    if isinstance(image, str | os.PathLike):
        try:
            from PIL import Image, UnidentifiedImageError
        except ImportError as err:  # pragma: no cover - Pillow comes with the extra
            raise ImportError(f"reading image files needs Pillow: {INSTALL_HINT}") from err
        try:
            with Image.open(image) as im:
                arr = np.asarray(im.convert("RGB"))
        except (OSError, UnidentifiedImageError, ValueError):
            raise InvalidTemplateError(
                f"could not read an image from {os.fspath(image)!r}"
            ) from None
        return np.ascontiguousarray(arr, dtype=np.uint8)
    if isinstance(image, bytes | bytearray | memoryview):
        raise InvalidTemplateError(
            "image must be a path or an array; decode encoded bytes first (e.g. with Pillow)"
        )
    try:
        arr = np.asarray(image)
    except Exception:
        raise InvalidTemplateError(
            f"image could not be read as an array ({type(image).__name__})"
        ) from None
    if arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[:, :, :3]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)):
        raise InvalidTemplateError(
            f"image must be (H, W), (H, W, 3) or (H, W, 4); got shape {arr.shape}"
        )
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise InvalidTemplateError(f"image is empty (shape {arr.shape})")
    if arr.dtype.kind == "f":
        if not bool(np.isfinite(arr).all()):
            raise InvalidTemplateError("image holds NaN or infinite values")
        if float(arr.min()) < 0.0 or float(arr.max()) > 1.0:
            raise InvalidTemplateError("a float image must hold values in [0, 1]")
        arr = np.rint(arr * 255.0).astype(np.uint8)
    elif arr.dtype == np.bool_:
        raise InvalidTemplateError("image must be numeric, got a boolean array")
    elif arr.dtype.kind in "iu":
        if arr.dtype != np.uint8 and arr.size and (arr.min() < 0 or arr.max() > 255):
            raise InvalidTemplateError(
                f"an integer image must hold values in 0..255 ({arr.dtype})"
            )
        arr = arr.astype(np.uint8, copy=False)
    else:
        raise InvalidTemplateError(f"image must be numeric, got dtype {arr.dtype.name}")
    if arr.ndim == 2:
        arr = np.stack([arr, arr, arr], axis=-1)
    return np.ascontiguousarray(arr)


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)


def _locations(
    value: Iterable[Sequence[int]] | None, shape: tuple[int, ...]
) -> list[FaceLocation] | None:
    if value is None:
        return None
    boxes: list[FaceLocation] = []
    for i, box in enumerate(value):
        try:
            values = list(box)
        except TypeError:
            values = []
        if len(values) != 4 or not all(_is_int(v) for v in values):
            raise InvalidTemplateError(
                f"face location {i} must be four integers (top, right, bottom, left)"
            )
        top, right, bottom, left = (int(v) for v in values)
        if not (0 <= top < bottom <= shape[0] and 0 <= left < right <= shape[1]):
            raise InvalidTemplateError(
                f"face location {i} is not a box inside the {shape[1]}x{shape[0]} image"
            )
        boxes.append((top, right, bottom, left))
    return boxes


@attrs.frozen(eq=False)
class FaceEncoder:
    """The collection point of a `face_recognition` pipeline.

    Detects faces, computes their 128-d encodings and returns them already wrapped as
    [`FaceTemplate`][purposeguard.FaceTemplate]s labelled with *purposes* and the
    rest of the label; each template is a COLLECT, checked against the policy and the
    active purpose and audited, exactly as [`FaceTemplate.wrap`][purposeguard.FaceTemplate.wrap].
    Create one encoder per capture point (enrolment screen, door camera, ...), since
    the label is fixed here and the subject and consent are given per capture.

    Args:
        purposes: what the templates may be used for.
        ttl: how long they may be kept; exactly one of *ttl* and *expires_at*.
        expires_at: when they expire (timezone-aware).
        prohibited: purposes they must never serve.
        jurisdictions: the laws that apply (e.g. `"pipl"`).
        context: a `purposeguard.policy.CollectionContext` for the policy's
            collection rules (notice shown, capture setting, ...).
        model: landmark model for the encoding: `"small"` (5 points, the
            `face_recognition` default) or `"large"` (68 points).
        detector: face detector: `"hog"` (CPU) or `"cnn"` (slow without a GPU).
        upsample: how many times to upsample the image when looking for small faces.
        num_jitters: how many times to re-sample each face (slower, a little more
            accurate).

    Raises:
        PolicyError: no purposes, malformed purposes or jurisdictions, or an unknown
            *model* or *detector*.
        InvalidTemplateError: not exactly one of *ttl* and *expires_at*, a *ttl* that
            is not a positive `timedelta`, an *expires_at* without a time zone, or a
            bad *upsample* or *num_jitters*.
    """

    purposes: PurposeLike | Iterable[PurposeLike]
    ttl: timedelta | None = attrs.field(default=None, kw_only=True)
    expires_at: datetime | None = attrs.field(default=None, kw_only=True)
    prohibited: PurposeLike | Iterable[PurposeLike] = attrs.field(default=(), kw_only=True)
    jurisdictions: str | Iterable[str] = attrs.field(default=(), kw_only=True)
    context: object | None = attrs.field(default=None, kw_only=True)
    model: Literal["small", "large"] = attrs.field(default="small", kw_only=True)
    detector: Literal["hog", "cnn"] = attrs.field(default="hog", kw_only=True)
    upsample: int = attrs.field(default=1, kw_only=True)
    num_jitters: int = attrs.field(default=1, kw_only=True)
    _collect: Any = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        # Normalised once: an iterator given here must serve every capture, not one.
        object.__setattr__(self, "purposes", purpose_set(self.purposes, "purposes"))
        object.__setattr__(self, "prohibited", purpose_set(self.prohibited, "prohibited"))
        if not isinstance(self.jurisdictions, str):
            try:
                object.__setattr__(self, "jurisdictions", tuple(self.jurisdictions))
            except TypeError:
                raise PolicyError(
                    "jurisdictions must be a string or an iterable of strings"
                ) from None
        if self.model not in ("small", "large"):
            raise PolicyError(f"unknown landmark model {self.model!r} (use 'small' or 'large')")
        if self.detector not in ("hog", "cnn"):
            raise PolicyError(f"unknown face detector {self.detector!r} (use 'hog' or 'cnn')")
        for name, value, low in (
            ("upsample", self.upsample, 0),
            ("num_jitters", self.num_jitters, 1),
        ):
            if not _is_int(value) or value < low:
                raise InvalidTemplateError(f"{name} must be an integer >= {low}")
        # The collection point: whatever _embed returns is wrapped before anyone sees it.
        collect = collects(
            self.purposes,
            subject=lambda image, boxes, subject, consent: subject,
            consent=lambda image, boxes, subject, consent: consent,
            ttl=self.ttl,
            expires_at=self.expires_at,
            prohibited=self.prohibited,
            jurisdictions=self.jurisdictions,
            context=self.context,
        )(self._embed)
        object.__setattr__(self, "_collect", collect)

    def _precheck(self, subject: str, consent: str | None) -> None:
        """Refuse a collection that would be refused, before the model runs.

        The model's work on a face is itself processing of biometric data, so a
        collection the label, the policy or the active purpose refuses must not reach
        it. The decision is made here exactly as the collection point will make it,
        on a stand-in with the same label; a refusal is audited (one event, as the
        collection's own would be) and raised in enforce mode. When it proceeds the
        collection point checks and audits again, and that is the record.
        """
        guard = current_guard()
        _, label = FaceTemplate._prepare(
            guard,
            _STAND_IN,
            subject=subject,
            purposes=self.purposes,
            expires_at=self.expires_at,
            ttl=self.ttl,
            prohibited=self.prohibited,
            consent=consent,
            jurisdictions=self.jurisdictions,
            collected_at=None,
            context=self.context,
        )
        stand_in = FaceTemplate._new(_STAND_IN, label)
        pending = guard.begin(
            Operation.COLLECT, (stand_in,), context=self.context, own_purpose=True
        )
        if not pending.proceeds:
            pending.commit()  # audits the refusal and raises it

    def _embed(
        self,
        image: npt.NDArray[np.uint8],
        boxes: list[FaceLocation],
        subject: str,
        consent: str | None,
    ) -> list[npt.NDArray[np.float64]]:
        if not boxes:
            return []
        fr = _fr()
        encodings: list[npt.NDArray[np.float64]] = fr.face_encodings(
            image, known_face_locations=boxes, num_jitters=self.num_jitters, model=self.model
        )
        return encodings

    def locate(self, image: str | os.PathLike[str] | npt.ArrayLike) -> list[FaceLocation]:
        """The boxes of the faces in *image*, as `(top, right, bottom, left)`.

        Detection only: no encoding is computed and nothing is collected.

        Raises:
            InvalidTemplateError: *image* cannot be read (see
                [`load_image`][purposeguard.integrations.face_recognition.load_image]).
            ImportError: the extra is not installed.
        """
        pixels = load_image(image)
        found = _fr().face_locations(
            pixels, number_of_times_to_upsample=self.upsample, model=self.detector
        )
        return [(int(t), int(r), int(b), int(lft)) for t, r, b, lft in found]

    def encode(
        self,
        image: str | os.PathLike[str] | npt.ArrayLike,
        *,
        subject: str | Callable[[int, FaceLocation], str],
        consent: str | None = None,
        face_locations: Iterable[Sequence[int]] | None = None,
    ) -> list[FaceTemplate]:
        """Collect one template per face in *image*.

        *subject* is one subject for every face (several samples of one person), or a
        function given each face's index and box that returns that face's subject
        (a frame with several people in it). With *face_locations* the detector is
        skipped and exactly those boxes are encoded. An image with no face gives an
        empty list.

        Raises:
            InvalidTemplateError: bad image or box, or a bad *subject*.
            AccessDeniedError: (a subclass) the collection is not permitted (policy,
                consent, or the active purpose); nothing is returned.
            ImportError: the extra is not installed.
        """
        pixels = load_image(image)
        boxes = _locations(face_locations, pixels.shape)
        if not callable(subject):
            self._precheck(subject, consent)
            if boxes is None:
                boxes = self.locate(pixels)
            result: list[FaceTemplate] = self._collect(pixels, boxes, subject, consent)
            return result
        if boxes is None:
            boxes = self.locate(pixels)
        subjects = [subject(i, box) for i, box in enumerate(boxes)]
        for each in subjects:
            self._precheck(each, consent)
        return [
            self._collect(pixels, [box], each, consent)[0]
            for box, each in zip(boxes, subjects, strict=True)
        ]

    def encode_one(
        self,
        image: str | os.PathLike[str] | npt.ArrayLike,
        *,
        subject: str,
        consent: str | None = None,
        face_location: Sequence[int] | None = None,
    ) -> FaceTemplate:
        """Collect the template of the one face in *image* (enrolment, a live probe).

        Detection runs first and nothing is encoded unless exactly one face is found;
        pass *face_location* to choose a face yourself.

        Raises:
            FaceCountError: no face, or more than one.
            InvalidTemplateError: bad image or box, or a bad *subject*.
            AccessDeniedError: (a subclass) the collection is not permitted.
            ImportError: the extra is not installed.
        """
        pixels = load_image(image)
        self._precheck(subject, consent)
        if face_location is not None:
            boxes = _locations([face_location], pixels.shape)
            assert boxes is not None
        else:
            boxes = self.locate(pixels)
            if len(boxes) != 1:
                what = "no face" if not boxes else f"{len(boxes)} faces"
                raise FaceCountError(
                    f"found {what} in the image; exactly one is needed (pass face_location= "
                    "to choose one)",
                    found=len(boxes),
                )
        templates: list[FaceTemplate] = self._collect(pixels, boxes, subject, consent)
        return templates[0]


@attrs.frozen
class FaceMatch:
    """One identification result: the template, its subject and its distance."""

    template_id: str
    subject: str
    distance: float


def _known(known: FaceTemplate | Sequence[FaceTemplate]) -> list[FaceTemplate]:
    items: object = [known] if isinstance(known, FaceTemplate) else known
    if isinstance(items, str | bytes) or not isinstance(items, Sequence):
        raise InvalidTemplateError(
            f"known must be a FaceTemplate or a sequence of them, got {type(known).__name__}"
        )
    out: list[FaceTemplate] = []
    for i, t in enumerate(items):
        if not isinstance(t, FaceTemplate):
            raise InvalidTemplateError(
                f"known[{i}] must be a FaceTemplate (wrap encodings at collection), "
                f"got {type(t).__name__}"
            )
        out.append(t)
    return out


def face_distance(
    known: FaceTemplate | Sequence[FaceTemplate], probe: FaceTemplate | npt.ArrayLike
) -> npt.NDArray[np.float64]:
    """Euclidean distance from *probe* to each of *known*, as `face_recognition`'s
    `face_distance`: lower is closer, at most 0.6 is usually the same person.

    The comparison goes through the guard under the active purpose, in one audited
    event: a COMPARE when every known template belongs to one subject (1:1
    verification, with one or several enrolment samples), a SEARCH when they belong
    to more than one (1:N identification). *probe* may be a template or a plain array
    (a live probe that was never stored). An empty *known* gives an empty array.

    Raises:
        InvalidTemplateError: a known item is not a template, or dimensions differ.
        AccessDeniedError: (a subclass) the comparison or search is not permitted.
    """
    items = _known(known)
    if not items:
        return np.empty(0, dtype=np.float64)
    if isinstance(probe, FaceTemplate):
        probe_values = probe._values()
        involved = [*items, probe]
    else:
        probe_values = as_vector(probe, "probe")
        involved = items
    dims = {t.dim for t in items}
    if len(dims) != 1 or probe_values.shape[0] not in dims:
        raise InvalidTemplateError(
            f"dimension mismatch: known templates have {sorted(dims)} entries, "
            f"the probe {probe_values.shape[0]}"
        )
    subjects = {t.subject for t in items}
    operation = Operation.COMPARE if len(subjects) == 1 else Operation.SEARCH
    current_guard().authorize(operation, involved)
    gallery = np.stack([t._values() for t in items]).astype(np.float64)
    diff = gallery - probe_values.astype(np.float64)
    out: npt.NDArray[np.float64] = np.linalg.norm(diff, axis=1)
    return out


def _tolerance(value: object) -> float:
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise InvalidTemplateError("tolerance must be a number")
    tol = float(value)
    if not (np.isfinite(tol) and tol > 0.0):
        raise InvalidTemplateError("tolerance must be a positive finite number")
    return tol


def compare_faces(
    known: FaceTemplate | Sequence[FaceTemplate],
    probe: FaceTemplate | npt.ArrayLike,
    tolerance: float = DEFAULT_TOLERANCE,
) -> list[bool]:
    """For each of *known*, whether *probe* is within *tolerance* of it.

    Checked and audited as
    [`face_distance`][purposeguard.integrations.face_recognition.face_distance].
    """
    tol = _tolerance(tolerance)
    return [bool(d <= tol) for d in face_distance(known, probe)]


def verify(
    enrolled: FaceTemplate | Sequence[FaceTemplate],
    probe: FaceTemplate | npt.ArrayLike,
    tolerance: float = DEFAULT_TOLERANCE,
) -> bool:
    """1:1 verification: is *probe* the person *enrolled* belongs to?

    *enrolled* is one template or several samples of the same subject; the probe
    matches when its distance to the closest sample is at most *tolerance*. Given
    templates of more than one subject this is identification, a SEARCH, which a
    verification purpose refuses.

    Raises:
        InvalidTemplateError: nothing enrolled, a bad template, or a bad tolerance.
        AccessDeniedError: (a subclass) the comparison is not permitted.
    """
    tol = _tolerance(tolerance)
    distances = face_distance(enrolled, probe)
    if distances.size == 0:
        raise InvalidTemplateError("nothing enrolled to verify against")
    return bool(distances.min() <= tol)


def identify(
    gallery: GuardedStore | Sequence[FaceTemplate],
    probe: FaceTemplate,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    k: int = 1,
    shortlist: int = 16,
) -> list[FaceMatch]:
    """1:N identification: who in *gallery* is *probe*? Best first, at most *k*.

    Needs an identification purpose that the probe and the gallery's templates permit.
    With a list of templates every one is compared (a SEARCH, audited as in
    [`face_distance`][purposeguard.integrations.face_recognition.face_distance]).
    With a [`GuardedStore`][purposeguard.stores.GuardedStore], the store's own search
    ranks the templates the purpose may see by cosine similarity and returns a
    *shortlist*, which is re-ranked by Euclidean distance; the store's audited
    SEARCH event names every shortlisted template, and only those are compared. Only
    matches within *tolerance* are returned.

    Raises:
        InvalidTemplateError: bad probe, *k*, *shortlist* or tolerance.
        AccessDeniedError: (a subclass) the search is not permitted.
    """
    from purposeguard.stores import GuardedStore

    tol = _tolerance(tolerance)
    for name, value in (("k", k), ("shortlist", shortlist)):
        if not _is_int(value) or value < 1:
            raise InvalidTemplateError(f"{name} must be a positive integer")
    k, shortlist = int(k), int(shortlist)
    if not isinstance(probe, FaceTemplate):
        raise InvalidTemplateError(f"the probe must be a FaceTemplate, got {type(probe).__name__}")
    found: list[tuple[str, str]]
    if isinstance(gallery, GuardedStore):
        shortlisted = gallery._vectors_of(gallery.search(probe, k=max(k, shortlist)))
        if not shortlisted:
            return []
        found = [(m.template_id, m.subject) for m, _ in shortlisted]
        stored = np.stack([v for _, v in shortlisted]).astype(np.float64)
        distances = np.linalg.norm(stored - probe._values().astype(np.float64), axis=1)
    else:
        candidates = _known(gallery)
        if not candidates:
            return []
        found = [(t.id, t.subject) for t in candidates]
        distances = _distances_for_search(candidates, probe, current_guard())
    order = np.argsort(distances, kind="stable")
    return [
        FaceMatch(found[i][0], found[i][1], float(distances[i]))
        for i in order[:k]
        if distances[i] <= tol
    ]


def _distances_for_search(
    candidates: list[FaceTemplate], probe: FaceTemplate, guard: Guard
) -> npt.NDArray[np.float64]:
    """Distances for an identification: always a SEARCH, even over one subject."""
    dims = {t.dim for t in candidates}
    if dims != {probe.dim}:
        raise InvalidTemplateError(
            f"dimension mismatch: gallery templates have {sorted(dims)} entries, "
            f"the probe {probe.dim}"
        )
    guard.authorize(Operation.SEARCH, [*candidates, probe])
    gallery = np.stack([t._values() for t in candidates]).astype(np.float64)
    out: npt.NDArray[np.float64] = np.linalg.norm(
        gallery - probe._values().astype(np.float64), axis=1
    )
    return out
