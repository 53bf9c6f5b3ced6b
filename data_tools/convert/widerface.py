"""WIDER FACE -> localizer data: 288x224 crops holding exactly one face, or none.

Reads every `wider_face_<split>_bbx_gt*.txt` in the archive (`name / count / x y w h
blur expression illumination invalid occlusion pose` records; a count of 0 is followed
by one line of zeros) and the images they name (matched by path, else by file name).

Per image, with a random stream seeded by `--seed` and the image name (so any image
regenerates alone and the same seed gives the same file):

- one positive crop: a valid face (`invalid` = 0, at least `MIN_FACE_PX` wide and high)
  is framed by a window of the localizer's aspect (`CROP_SIZE`, width 288, height 224)
  whose width is the face width divided by a fraction drawn from `FACE_FRACTION`,
  placed at random with the face fully inside and the window inside the image. The
  window is rejected when any other annotated box (valid or not) touches it, so an
  image whose crop would hold two faces gives no positive crop. `hasface` = 1, `rois` =
  the face box in crop pixels.
- one negative crop: a window of the same aspect that touches no annotated box;
  `hasface` = 0, `rois` = zeros.
Up to `TRIES` placements are drawn for each. Windows are resized to 288x224
(INTER_AREA); box coordinates scale with the pixel-edge convention.

The file attribute `split` is WIDER's own split name(s) of the annotation files read
(`train`, `val`); `seed` is stored beside it so the crops can be regenerated.
"""

from __future__ import annotations

import argparse
import posixpath
import re
import zlib
from dataclasses import dataclass

import cv2
import numpy as np

from data_tools.convert.archive import Archive, Skip, read_image
from posenet.core.errors import PosenetError
from posenet.core.h5format import encode_image

SOURCE = "WIDER FACE"
ANNOTATION = re.compile(r"(?:^|/)wider_face_(train|val|test)_bbx_gt[^/]*\.txt$")
CROP_SIZE = (288, 224)  # (width, height): the localizer input
MIN_FACE_PX = 20
FACE_FRACTION = (0.15, 0.5)  # face width / crop width
TRIES = 20
INVALID_COLUMN = 7


@dataclass(frozen=True)
class Annotation:
    boxes: np.ndarray  # (K, 4) x0, y0, x1, y1 pixels
    valid: np.ndarray  # (K,) bool: not `invalid` and large enough to be a positive


def parse_annotations(text: str, source: str) -> dict[str, Annotation]:
    """A `wider_face_*_bbx_gt.txt` file -> {image name: annotation}."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    result, i = {}, 0
    try:
        while i < len(lines):
            name, count = lines[i], int(lines[i + 1])
            rows = np.array([line.split()[:10] for line in lines[i + 2: i + 2 + max(count, 1)]], dtype=np.float64)
            rows = rows[:count].reshape(count, 10)
            boxes = np.column_stack([rows[:, :2], rows[:, :2] + rows[:, 2:4]])
            size_ok = np.all(rows[:, 2:4] >= MIN_FACE_PX, axis=1)
            result[name] = Annotation(boxes, (rows[:, INVALID_COLUMN] == 0) & size_ok)
            i += 2 + max(count, 1)
    except (IndexError, ValueError):
        raise PosenetError(f"{source}: malformed WIDER annotation near line {i + 1} ({lines[i][:60]!r})") from None
    return result


def _touches(window: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Which boxes overlap the window (x0, y0, x1, y1) with a positive area."""
    return ((np.minimum(boxes[:, 2], window[2]) > np.maximum(boxes[:, 0], window[0]))
            & (np.minimum(boxes[:, 3], window[3]) > np.maximum(boxes[:, 1], window[1])))


def _window(rng: np.random.Generator, width: float, image_size: tuple[int, int],
            around: np.ndarray | None) -> np.ndarray | None:
    """A random integer window of the crop aspect, inside the image (and around a box)."""
    image_w, image_h = image_size
    aspect = CROP_SIZE[1] / CROP_SIZE[0]
    width = int(round(min(width, image_w, image_h / aspect)))
    height = int(round(width * aspect))
    if width < CROP_SIZE[0] // 4:
        return None
    low, high = np.zeros(2), np.array([image_w - width, image_h - height], float)
    if around is not None:
        low = np.maximum(low, np.ceil(around[2:] - [width, height]))
        high = np.minimum(high, np.floor(around[:2]))
    if np.any(low > high):
        return None
    x0, y0 = (rng.integers(low, high + 1)).astype(float)
    return np.array([x0, y0, x0 + width, y0 + height])


def crop(image: np.ndarray, window: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The window resized to `CROP_SIZE`, and the scale (sx, sy) from image to crop pixels."""
    x0, y0, x1, y1 = window.astype(int)
    patch = cv2.resize(image[y0:y1, x0:x1], CROP_SIZE, interpolation=cv2.INTER_AREA)
    return patch, np.array(CROP_SIZE, float) / [x1 - x0, y1 - y0]


class Converter:
    """Images named in the WIDER annotation files -> positive and negative crops."""

    source = SOURCE

    def __init__(self, archive: Archive, args: argparse.Namespace | None = None) -> None:
        self.archive = archive
        self.seed = getattr(args, "seed", 0)
        self.annotations: dict[str, Annotation] = {}
        self.splits: set[str] = set()
        for name in archive.names:
            match = ANNOTATION.search(name)
            if match:
                self.splits.add(match.group(1))
                text = archive.read(name).decode("utf-8", errors="replace")
                self.annotations.update(parse_annotations(text, f"{archive.path}/{name}"))
        if not self.annotations:
            raise PosenetError(f"{archive.path}: no wider_face_*_bbx_gt.txt annotation file")
        self._by_name = {posixpath.basename(n): n for n in archive.names}

    def items(self) -> list[str]:
        return sorted(self.annotations)

    def _member(self, item: str) -> str:
        for name in (n for n in self.archive.names if n.endswith("/" + item) or n == item):
            return name
        if posixpath.basename(item) in self._by_name:
            return self._by_name[posixpath.basename(item)]
        raise Skip("image named in the annotations is missing")

    def convert(self, item: str) -> list[dict[str, object]]:
        annotation = self.annotations[item]
        image, _ = read_image(self.archive, self._member(item))
        rng = np.random.default_rng([self.seed, zlib.crc32(item.encode())])
        size = (image.shape[1], image.shape[0])
        return self._positive(image, annotation, rng, size) + self._negative(image, annotation, rng, size)

    def _positive(self, image, annotation: Annotation, rng, size) -> list[dict[str, object]]:
        for face in rng.permutation(np.flatnonzero(annotation.valid)):
            box = annotation.boxes[face]
            others = np.delete(annotation.boxes, face, axis=0)
            for _ in range(TRIES):
                window = _window(rng, (box[2] - box[0]) / rng.uniform(*FACE_FRACTION), size, box)
                if window is not None and not _touches(window, others).any():
                    patch, scale = crop(image, window)
                    roi = (box - np.tile(window[:2], 2)) * np.tile(scale, 2)
                    return [self._record(patch, True, roi)]
        return []

    def _negative(self, image, annotation: Annotation, rng, size) -> list[dict[str, object]]:
        for _ in range(TRIES):
            window = _window(rng, rng.uniform(0.3, 1.0) * size[0], size, None)
            if window is not None and not _touches(window, annotation.boxes).any():
                return [self._record(crop(image, window)[0], False, np.zeros(4))]
        return []

    @staticmethod
    def _record(patch: np.ndarray, hasface: bool, roi: np.ndarray) -> dict[str, object]:
        return {"images": encode_image(patch), "hasface": np.bool_(hasface), "rois": roi.astype(np.float32)}

    def attrs(self) -> dict[str, object]:
        return {"split": "+".join(sorted(self.splits)), "seed": self.seed}
