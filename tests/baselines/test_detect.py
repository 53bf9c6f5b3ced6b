"""Face detectors: one interface, misses reported (never raised), degenerate images handled."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from baselines import detect
from baselines.detect import Detection, best_face, box_iou, choose_face, detect_faces, fallback_box
from posenet.core.errors import PosenetError

DEGENERATE = {
    "empty": np.zeros((0, 0, 3), np.uint8),
    "1x1": np.zeros((1, 1, 3), np.uint8),
    "thin": np.full((8, 300, 3), 200, np.uint8),  # dlib's CNN aborts the process on this
    "grey-2d": np.full((120, 160), 128, np.uint8),
    "grey-rgb": np.full((120, 160, 3), 128, np.uint8),
}


def _read_rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


@pytest.mark.parametrize("detector", ["hog", "cnn"])
@pytest.mark.parametrize("name", sorted(DEGENERATE))
def test_degenerate_images_have_no_face(detector: str, name: str) -> None:
    image = DEGENERATE[name]
    assert detect_faces(image, detector) == []
    assert best_face(image, detector) is None


def test_bad_arguments_raise_one_clear_error() -> None:
    with pytest.raises(PosenetError, match="unknown face detector"):
        detect_faces(DEGENERATE["grey-rgb"], "yolo")
    with pytest.raises(PosenetError, match="uint8"):
        detect_faces(np.zeros((50, 50, 3), np.float32))


def test_haar_works_or_says_why() -> None:
    if detect.haar_available():
        assert detect_faces(DEGENERATE["grey-rgb"], "haar") == []
    else:
        with pytest.raises(PosenetError, match="haar|Haar|haarcascade"):
            detect_faces(DEGENERATE["grey-rgb"], "haar")


def test_packaged_model_missing_file_names_it() -> None:
    with pytest.raises(PosenetError, match="no_such_model.dat: dlib model file not found"):
        detect.packaged_model("no_such_model.dat")


def test_choose_face_prefers_the_roi_face_over_the_best_score() -> None:
    near = Detection(np.array([100.0, 100.0, 200.0, 200.0]), 0.5)
    far = Detection(np.array([400.0, 100.0, 500.0, 200.0]), 2.0)
    assert choose_face([near, far]) is far
    assert choose_face([near, far], roi=np.array([110.0, 90.0, 210.0, 210.0])) is near
    assert choose_face([far], roi=np.array([110.0, 90.0, 210.0, 210.0])) is None  # another face: a miss
    assert choose_face([]) is None


def test_fallback_chain_ends_at_the_dataset_box() -> None:
    roi = np.array([10.0, 10.0, 90.0, 90.0])
    box, source = fallback_box(DEGENERATE["grey-rgb"], roi)
    assert source == "roi" and np.array_equal(box, roi)
    assert fallback_box(DEGENERATE["grey-rgb"], None) == (None, "none")


def test_real_face_found_by_hog_and_cnn(shared_data: Path) -> None:
    image = _read_rgb(shared_data / "biwi" / "01" / "frame_00166_rgb.png")
    small = cv2.resize(image, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)  # keeps the CNN fast
    hog = best_face(image, "hog")
    cnn = best_face(small, "cnn", upsample=1)
    assert hog is not None and cnn is not None
    assert box_iou(hog.box, cnn.box * 2) > 0.5  # both find the same face
    box, source = fallback_box(image, roi=hog.box)
    assert source == "hog" and np.array_equal(box, hog.box)


def test_animals_are_not_faces(shared_data: Path) -> None:
    for path in sorted((shared_data / "negatives").glob("*.jpg")):
        assert best_face(_read_rgb(path), "hog") is None, path.name


@pytest.mark.parametrize("shape", [(30, 40), (30, 40, 1), (30, 40, 3), (30, 40, 4)])
def test_any_uint8_layout_becomes_contiguous_rgb(shape: tuple[int, ...]) -> None:
    image = np.arange(np.prod(shape), dtype=np.uint8).reshape(shape)
    rgb = detect.as_rgb_uint8(image)
    assert rgb.shape == (30, 40, 3) and rgb.flags.c_contiguous
    np.testing.assert_array_equal(rgb[..., 0], image if image.ndim == 2 else image[..., 0])


def test_wrong_layout_is_one_clear_error() -> None:
    with pytest.raises(PosenetError, match=r"got shape \(30, 40, 2\)"):
        detect.as_rgb_uint8(np.zeros((30, 40, 2), np.uint8))


def test_haar_and_hog_find_the_same_real_face(shared_data: Path) -> None:
    """OpenCV's Haar cascade (shipped with opencv-python 4.x) agrees with dlib HOG on a real photo."""
    image = _read_rgb(shared_data / "aflw2000" / "image00050.jpg")
    haar, hog = best_face(image, "haar"), best_face(image, "hog")
    assert haar is not None and hog is not None
    assert box_iou(haar.box, hog.box) > 0.5
