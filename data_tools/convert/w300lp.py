"""300W-LP: subsets AFW, HELEN, IBUG, LFPW and their `_Flip` twins -> HDF5.

Layout: `300W_LP/<SUBSET>/<name>.jpg` + `<name>.mat` (AFLW-style keys: `Pose_Para`,
`pt2d` 2x68, no `pt3d_68`) and `300W_LP/landmarks/<SUBSET>/<name>_pts.mat` (`pts_3d`
68x2: the 3DMM's 68 points projected, hidden jaw contour included; `pts_2d` 68x2: the
visible contour). Any `*.jpg` with a sibling `.mat` converts, so loose files (the shared
sample) work too. Labels follow `aflw2000` (same quaternion, coords, roi and camera
rules), with two differences:

- Landmarks: `pts_3d` of the `landmarks/` file when present, else the `.mat`'s `pt2d`.
  300W-LP has no depth: `pt3d_68` z is the fitted face model's depth (see
  `aflw2000.labelled_record`). `pt2d_68` stores the `.mat`'s `pt2d` (visible contour).
- `_Flip` items: their `Pose_Para` describes the flipped image. When the unflipped twin
  is in the archive this is checked: the flip's quaternion must equal
  `geometry.mirror_quat` of the twin's within `FLIP_TOLERANCE_DEG`, else the item is
  skipped ("_Flip label is not the mirrored twin's") rather than written wrong.
"""

from __future__ import annotations

import posixpath

import numpy as np

from data_tools.convert import aflw2000
from data_tools.convert.archive import Skip, read_image, stem
from posenet.core import geometry

SOURCE = "300W-LP"
SUBSETS = ("AFW", "HELEN", "IBUG", "LFPW")
FLIP_SUFFIX = "_Flip"
LANDMARKS_DIR = "landmarks"
FLIP_TOLERANCE_DEG = 1.0


def _points(values: object, name: str) -> np.ndarray:
    """A 68-point array given as 2x68 or 68x2 -> (68, 2); `Skip` otherwise."""
    points = aflw2000.floats(values, name)
    if points.shape == (2, 68):
        points = points.T
    if points.shape != (68, 2) or not np.all(np.isfinite(points)):
        raise Skip(f"no 68-point {name}")
    return points


def split_item(item: str) -> tuple[str, str, str]:
    """`root/SUBSET/name.jpg` -> (root, SUBSET, name); SUBSET is '' for loose files."""
    folder, file = posixpath.split(stem(item))
    root, subset = posixpath.split(folder)
    if subset.removesuffix(FLIP_SUFFIX) not in SUBSETS:
        return folder, "", file
    return root, subset, file


class Converter(aflw2000.Converter):
    """AFLW-style items, landmarks from `landmarks/`, `_Flip` labels checked against twins."""

    source = SOURCE

    def items(self) -> list[str]:
        return [n for n in super().items() if f"/{LANDMARKS_DIR}/" not in f"/{n}"]

    def _landmarks(self, item: str, mat: dict[str, np.ndarray]) -> np.ndarray:
        root, subset, name = split_item(item)
        path = posixpath.join(root, LANDMARKS_DIR, subset, f"{name}_pts.mat")
        if subset and path in self.archive.names:
            return _points(aflw2000.load_mat(self.archive, path).get("pts_3d"), "pts_3d")
        return _points(mat.get("pt2d"), "pt2d")

    def _check_flip(self, item: str, angles: np.ndarray) -> None:
        root, subset, name = split_item(item)
        if not subset.endswith(FLIP_SUFFIX):
            return
        twin = posixpath.join(root, subset.removesuffix(FLIP_SUFFIX), f"{name}.mat")
        if twin not in self.archive.names:
            return
        expected = geometry.mirror_quat(geometry.aflw_to_quat(aflw2000.pose_para(aflw2000.load_mat(self.archive, twin))))
        if geometry.geodesic_deg(expected, geometry.aflw_to_quat(angles)) > FLIP_TOLERANCE_DEG:
            raise Skip("_Flip label is not the mirrored twin's")

    def convert(self, item: str) -> list[dict[str, object]]:
        mat = aflw2000.load_mat(self.archive, stem(item) + ".mat")
        angles = aflw2000.pose_para(mat)
        self._check_flip(item, angles)
        points = self._landmarks(item, mat)
        image, buffer = read_image(self.archive, item)
        record = aflw2000.labelled_record(image, buffer, angles, points, None)
        if "pt2d" in mat:
            record["pt2d_68"] = _points(mat["pt2d"], "pt2d").astype(np.float32)
        return [record]

    def attrs(self) -> dict[str, object]:
        return {**super().attrs(), "depth_note": "pt3d_68 z from the fitted face model (300W-LP has no depth)"}
