"""Benchmark: the benchmark's own face layout, read again from AFLW2000-3D's 3D labels.

AFLW2000-3D (like 300W-LP) labels a face by fitting a 3D morphable model to it: `Pose_Para` holds
the fit's rotation and `pt3d_68` the fitted model's 68 landmark vertices in the image (x, y in
pixels, z toward the viewer in the same scale). Undo each fit's rotation and scale and what is
left is the landmark layout of the model the labels were written with, in the frame they are
written in: what the benchmark means by a frontal face and where it puts each point.
`posenet.core.facemodel.AFLW_3DMM_LANDMARKS_68` is that layout (issue #11): the mean over the 3D
label files in ../shared/data/aflw2000 (none of them in the development split: the split's images
are left out by name), each scaled to OUTER_EYE_SPAN_MM between the outer eye corners, averaged
with its mirror image, and placed with the eye corners' centre at EYE_CORNERS_CENTRE_MM from the
head centre (where the anthropometric model has it).

This benchmark is that recipe, runnable: it derives the layout from the files again and prints
how far the shipped table is from it (a test holds it to the table's rounding).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import scipy.io

from posenet.benchmarks.head_frame import dev_names
from posenet.core import facemodel, geometry
from posenet.core.errors import PosenetError
from posenet.core.paths import SHARED_DATA

MAT_DIRECTORY = SHARED_DATA / "aflw2000"
DEV_SPLIT = SHARED_DATA / "aflw2000_dev.h5"
OUTER_EYE_SPAN_MM = 90.0  # adult outer canthal width: the labels are in pixels, the model in mm
EYE_CORNERS = [36, 39, 42, 45]
EYE_CORNERS_CENTRE_MM = np.array([0.0, 3.0, -66.4])  # from the head centre (the skull's centre at eye height)
SHIPPED_TOLERANCE_MM = 0.06  # the shipped table is rounded to 0.1 mm


def label_layout(pose_para: np.ndarray, pt3d_68: np.ndarray) -> np.ndarray:
    """One 3D label's 68 points (68, 3) in the head frame of its pose label, scaled to
    OUTER_EYE_SPAN_MM and centred on their mean: the fit's rotation undone."""
    points = np.asarray(pt3d_68, np.float64).reshape(3, 68).T * [1.0, 1.0, -1.0]  # our z points into the screen
    rotation = geometry.quat_to_matrix(geometry.aflw_to_quat(np.asarray(pose_para, np.float64).ravel()[:3]))
    local = (points - points.mean(axis=0)) @ rotation  # row-wise R^T
    return local * OUTER_EYE_SPAN_MM / np.linalg.norm(local[36] - local[45])


def mean_layout(layouts: np.ndarray) -> np.ndarray:
    """The mirror-symmetric mean of label layouts (N, 68, 3), placed by EYE_CORNERS_CENTRE_MM."""
    mean = np.mean(layouts, axis=0)
    mean = (mean + facemodel.mirror_landmarks(mean)) / 2.0
    return mean - mean[EYE_CORNERS].mean(axis=0) + EYE_CORNERS_CENTRE_MM


def read_label_files(directory: str | Path, exclude: set[str] = frozenset()) -> tuple[list[str], np.ndarray]:
    """(names, label layouts (N, 68, 3)) of the `.mat` files in `directory`, less those in `exclude`."""
    directory = Path(directory)
    paths = sorted(p for p in directory.glob("*.mat") if p.stem not in exclude)
    if not paths:
        raise PosenetError(f"{directory}: no AFLW2000-3D .mat label files")
    names, layouts = [], []
    for path in paths:
        try:
            mat = scipy.io.loadmat(path)
        except Exception as error:  # scipy raises many types (IndexError, MatReadError, ...) for a non-MATLAB file
            raise PosenetError(f"{path}: not a readable .mat file ({type(error).__name__})") from None
        try:
            layouts.append(label_layout(mat["Pose_Para"], mat["pt3d_68"]))
        except (KeyError, ValueError) as error:
            raise PosenetError(f"{path}: not an AFLW2000-3D label file ({error})") from None
        names.append(path.stem)
    return names, np.array(layouts)


def measure(directory: str | Path | None = None, dev: str | Path | None = None) -> dict:
    """The layout derived from the label files (dev images left out) and its distance from the shipped table."""
    start = time.perf_counter()
    names, layouts = read_label_files(directory or MAT_DIRECTORY, dev_names(dev or DEV_SPLIT))
    derived = mean_layout(layouts)
    shipped = facemodel.AFLW_3DMM_LANDMARKS_68
    spread = np.linalg.norm(layouts - layouts.mean(axis=0), axis=2).mean()  # identity and expression
    return {"names": names, "layout": derived, "max_difference_mm": float(np.abs(derived - shipped).max()),
            "spread_mm": float(spread), "seconds": round(time.perf_counter() - start, 1)}


def benchmark(quick: bool) -> list[str]:
    """The layout of AFLW2000-3D's 3D model derived again; prints whether the shipped table is it."""
    del quick  # a few files: always the whole recipe
    result = measure()
    verdict = ("the derived layout, as it should be" if result["max_difference_mm"] <= SHIPPED_TOLERANCE_MM
               else "NOT the derived layout: write the derived table into posenet/core/facemodel.py")
    print(f"face model: derived from {len(result['names'])} AFLW2000-3D 3D label files; the shipped table is "
          f"{result['max_difference_mm']:.2f} mm from it at most: {verdict}; {result['seconds']:.1f} s")
    layout = result["layout"]
    lines = [f"The 68-point layout of AFLW2000-3D's 3D model derived again from {len(result['names'])} of its 3D "
             f"label files (`pt3d_68` with its `Pose_Para` rotation undone, scaled to {OUTER_EYE_SPAN_MM:g} mm between "
             f"the outer eye corners, mirror-averaged; none from the development split). Mean distance of one "
             f"face's points from the mean (identity and expression): {result['spread_mm']:.1f} mm. The shipped table "
             f"(`facemodel.AFLW_3DMM_LANDMARKS_68`, the renderer's default layout) is "
             f"{result['max_difference_mm']:.2f} mm from the derived one at most: {verdict}.", "",
             "| point | x mm | y mm | z mm |", "|---|---|---|---|"]
    for index, label in {8: "chin (8)", 19: "brow peak (19)", 27: "nose bridge top (27)", 30: "nose tip (30)",
                         33: "subnasale (33)", 36: "outer eye corner (36)", 39: "inner eye corner (39)",
                         48: "mouth corner (48)"}.items():
        x, y, z = np.round(layout[index], 1) + 0.0  # no "-0.0" on the midline
        lines.append(f"| {label} | {x:+.1f} | {y:+.1f} | {z:+.1f} |")
    return lines
