"""Sample faces from scikit-image, for the examples; replace with your camera.

The examples need real faces without a camera or a download, so they use two images
that ship with scikit-image (``pip install 'purposeguard[examples]'``):

- ``skimage.data.astronaut()``: a 512x512 colour portrait of the astronaut Eileen
  Collins (NASA, public domain). :func:`astronaut_portrait` crops the one face;
  :func:`astronaut_frame` is the whole picture, in which the detector also finds a
  "face" on the mission patch of her suit (two boxes); :func:`astronaut_second_capture`
  is the portrait mirrored, which the model sees as a second photo of the same person
  (distance about 0.19).
- ``skimage.data.lfw_subset()``: 25x25 greyscale crops from Labeled Faces in the Wild.
  The first 100 are faces, without names. :func:`lfw_face` scales one up to 150x150 RGB
  and returns the box to encode, since the detector cannot find faces that small.

At this resolution some pairs of different LFW people fall under the 0.6 match
threshold. :data:`DISTINCT_PEOPLE` lists faces the model puts more than 0.75 apart from
each other and from the astronaut, in either capture (measured once); the examples use
only those when they need different people, and assert every outcome they print.

In your pipeline, these functions are your camera: replace them with frames from the
enrolment screen, the door camera, and so on.
"""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt

__all__ = [
    "DISTINCT_PEOPLE",
    "LFW_BOX",
    "LFW_FACES",
    "LFW_SIZE",
    "Image",
    "astronaut_frame",
    "astronaut_portrait",
    "astronaut_second_capture",
    "lfw_face",
]

Image = npt.NDArray[np.uint8]
"""An ``(H, W, 3)`` RGB image with values 0..255, as ``face_recognition`` expects."""

LFW_FACES = 100
"""How many of ``lfw_subset()``'s images are faces (the first 100; the rest are not)."""

LFW_SIZE = 150
"""The side, in pixels, that :func:`lfw_face` scales the 25x25 crops up to."""

LFW_BOX: tuple[int, int, int, int] = (0, LFW_SIZE, LFW_SIZE, 0)
"""The face box of an :func:`lfw_face` image, ``(top, right, bottom, left)``: all of it."""

DISTINCT_PEOPLE: tuple[int, ...] = (39, 66, 73, 75, 83, 84, 98)
"""LFW indices of faces that are more than 0.75 apart from one another and from the
astronaut, in either capture (original or mirrored): safely different people."""

# The rows and columns of the astronaut picture that hold exactly one face.
_PORTRAIT = (slice(0, 300), slice(80, 380))


@functools.cache
def _astronaut() -> Image:
    from skimage import data

    # scikit-image does not annotate its data loaders or resize().
    frame = np.ascontiguousarray(data.astronaut(), dtype=np.uint8)  # type: ignore[no-untyped-call]
    frame.flags.writeable = False
    return frame


@functools.cache
def _lfw() -> npt.NDArray[np.float64]:
    from skimage import data

    faces = np.asarray(data.lfw_subset(), dtype=np.float64)  # type: ignore[no-untyped-call]
    faces.flags.writeable = False
    return faces


def astronaut_frame() -> Image:
    """The whole astronaut picture, 512x512 RGB: a face and, for the detector, a second
    "face" on the mission patch."""
    return _astronaut().copy()


def astronaut_portrait() -> Image:
    """A 300x300 crop of the astronaut picture that holds exactly one face."""
    return np.ascontiguousarray(_astronaut()[_PORTRAIT])


def astronaut_second_capture() -> Image:
    """The portrait mirrored left to right: another capture of the same person."""
    return np.ascontiguousarray(_astronaut()[_PORTRAIT][:, ::-1])


def lfw_face(index: int, *, mirrored: bool = False) -> tuple[Image, tuple[int, int, int, int]]:
    """LFW face *index* (0..99) as a 150x150 RGB image, and the box to encode.

    The 25x25 greyscale crop is scaled up with scikit-image's ``resize`` and repeated
    into three channels. Pass the box as ``face_location=`` (or ``face_locations=[...]``):
    the crop is the face. ``mirrored=True`` flips it left to right, a second capture of
    the same person (distance about 0.15 to 0.35).

    Raises:
        IndexError: *index* is not one of the 100 faces.
    """
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < LFW_FACES:
        raise IndexError(f"LFW face index must be an integer in 0..{LFW_FACES - 1}")
    from skimage.transform import resize

    scaled = resize(_lfw()[index], (LFW_SIZE, LFW_SIZE))  # type: ignore[no-untyped-call]
    grey = np.rint(np.clip(scaled, 0.0, 1.0) * 255.0).astype(np.uint8)
    if mirrored:
        grey = grey[:, ::-1]
    return np.ascontiguousarray(np.stack([grey, grey, grey], axis=-1)), LFW_BOX
