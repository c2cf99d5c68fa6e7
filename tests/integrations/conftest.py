"""Real faces for the adapter tests, detected and encoded once per session.

The faces ship with scikit-image: the astronaut photograph (Eileen Collins) and the
Labeled Faces in the Wild subset. Every reference encoding here is computed with
`face_recognition` itself, not through the adapter, so the adapter's results can be
compared with what the library gives for the same pixels and the same box.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from purposeguard.integrations import face_recognition as pfr

# How many LFW faces the tests use (the first ones of the subset are faces).
LFW_FACES = 4
# LFW images are 25x25; the encoder needs a larger face, given as the whole image.
LFW_SIDE = 150
LFW_BOX: pfr.FaceLocation = (0, LFW_SIDE, LFW_SIDE, 0)

Image = npt.NDArray[np.uint8]
Vector = npt.NDArray[np.float64]


@dataclass(frozen=True, repr=False)
class Faces:
    """Real face images and their `face_recognition` encodings.

    Attributes:
        full: the whole astronaut image; HOG finds two boxes in it (the face and a
            false positive on the mission patch).
        crop_view: ``full[0:300, 80:380]``, a non-contiguous view holding one face.
        crop: a contiguous copy of ``crop_view`` (what dlib needs).
        mirror: the crop flipped left to right: the same person.
        crop_box: the face box in ``crop``.
        full_boxes: the boxes HOG finds in ``full``, in its order.
        lfw: the first LFW faces, upscaled, as grey float images in ``[0, 1]``.
        lfw_rgb: the same as RGB ``uint8`` (how the adapter reads them).
        enc_crop, enc_mirror: the encodings of the one face in each.
        enc_full: the encodings of ``full_boxes``, in order.
        enc_lfw: the encodings of ``lfw_rgb`` over the whole image.
    """

    full: Image
    crop_view: Image
    crop: Image
    mirror: Image
    crop_box: pfr.FaceLocation
    full_boxes: list[pfr.FaceLocation]
    lfw: list[npt.NDArray[np.float64]]
    lfw_rgb: list[Image]
    enc_crop: Vector
    enc_mirror: Vector
    enc_full: list[Vector]
    enc_lfw: list[Vector]

    def __repr__(self) -> str:
        return f"<Faces: astronaut, {len(self.lfw)} LFW faces>"


def _boxes(found: Any) -> list[pfr.FaceLocation]:
    return [(int(t), int(r), int(b), int(lft)) for t, r, b, lft in found]


@pytest.fixture(scope="session")
def fr() -> ModuleType:
    """The `face_recognition` module (skips when the extra is not installed)."""
    if not pfr.is_available():
        pytest.skip(f"face_recognition is not installed: {pfr.INSTALL_HINT}")
    return pfr._fr()


@pytest.fixture(scope="session")
def faces(fr: ModuleType) -> Faces:
    """The real faces and their reference encodings, computed once per session."""
    data: Any = pytest.importorskip("skimage.data")
    transform: Any = importlib.import_module("skimage.transform")
    full = np.ascontiguousarray(data.astronaut(), dtype=np.uint8)
    crop_view = full[0:300, 80:380]
    crop = np.ascontiguousarray(crop_view)
    mirror = np.ascontiguousarray(crop[:, ::-1])

    crop_boxes = _boxes(fr.face_locations(crop))
    mirror_boxes = _boxes(fr.face_locations(mirror))
    full_boxes = _boxes(fr.face_locations(full))
    assert len(crop_boxes) == 1, "the astronaut crop should hold exactly one face"
    assert len(mirror_boxes) == 1, "the mirrored crop should hold exactly one face"
    assert len(full_boxes) == 2, "HOG should find the face and the mission patch"

    lfw_all = data.lfw_subset()
    lfw: list[npt.NDArray[np.float64]] = []
    lfw_rgb: list[Image] = []
    for i in range(LFW_FACES):
        grey = np.asarray(transform.resize(lfw_all[i], (LFW_SIDE, LFW_SIDE)), dtype=np.float64)
        lfw.append(grey)
        channel = np.rint(grey * 255.0).astype(np.uint8)
        lfw_rgb.append(np.ascontiguousarray(np.stack([channel] * 3, axis=-1)))

    def encodings(image: Image, boxes: list[pfr.FaceLocation]) -> list[Vector]:
        return [np.asarray(e, dtype=np.float64) for e in fr.face_encodings(image, boxes)]

    return Faces(
        full=full,
        crop_view=crop_view,
        crop=crop,
        mirror=mirror,
        crop_box=crop_boxes[0],
        full_boxes=full_boxes,
        lfw=lfw,
        lfw_rgb=lfw_rgb,
        enc_crop=encodings(crop, crop_boxes)[0],
        enc_mirror=encodings(mirror, mirror_boxes)[0],
        enc_full=encodings(full, full_boxes),
        enc_lfw=[encodings(img, [LFW_BOX])[0] for img in lfw_rgb],
    )
