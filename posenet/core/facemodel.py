"""The 3D 68-landmark mean face (iBUG-300W order) and the iBUG mirror permutation.

Written for this project from anthropometric proportions of an adult head (not fitted to
any scanned data set): face width about 140 mm at the jaw contour, outer eye corners
90 mm apart, inner corners 32 mm apart, nasion to subnasale 56 mm, subnasale to chin
67 mm, nose tip 96 mm in front of the head centre.

Frame (DESIGN.md §2): millimetres, x right, y down, z into the screen; the face looks
toward -z, so the nose tip has the most negative z. The origin is the head centre,
roughly the centre of the skull at eye height, so that `coords` (the projected head
centre and the projected length of `HEAD_SIZE_MM`) are natural. Point 0 is the jaw end
on the image left at identity pose (the subject's right side).

Only the left half (image left, x <= 0) and the midline are written out; the right half
is its mirror image, so the model is exactly symmetric under x -> -x with
`FLIP_PERMUTATION_68`.

Head frame calibration (issue #11): the points are written in an anatomical frame
(`ANATOMICAL_LANDMARKS_68`); `LANDMARKS_68`, the model everyone uses, is that face rotated
about the head centre by `AFLW_FRAME_PITCH_DEG` about the x axis, so that identity pose
means what AFLW2000-3D's labels mean by a frontal face. The angle is fitted on real labels:
the chordal mean of R_gt^T R_pnp (head-local) over the 1969
protocol images of AFLW2000-3D (opal23 label file), with near-orthographic PnP (f = 30 x
image width, as AFLW's weak-perspective fits project their landmarks) on the labelled 68
points; the fit's y and z parts (0.14 and -0.11 deg) are dropped so that the model stays
mirror-symmetric. It removes the oracle's -3.9 deg mean signed pitch error on the
development split (to -0.3 deg). `posenet bench head-frame` is the fit, runnable: after any
change to the points below it prints the value this constant must take (a test checks it).

A second layout, `AFLW_3DMM_LANDMARKS_68`, is the benchmark's own: the 68 landmark vertices of the
3D morphable model that AFLW2000-3D's and 300W-LP's labels are fits of, read from 16 of its 3D
label files (none in the development split; `posenet bench face-model` is the recipe). It is in
the labels' frame by construction (near-orthographic PnP with it on the 1669 protocol images
outside the development split fits -0.19 deg about x with all 68 points and -0.31 with the inner
51, where the model above needs +2.49 and +5.21 on the same images): oracle PnP with it scores
1.18 deg MAE on the development split, 2.69 with the model above. Its jaw contour points are
fixed vertices by the ears, not the visible silhouette that dlib's points follow, so landmark PnP keeps the model above (dlib + PnP on the
development split: 4.40 with it, 4.99 with the 3DMM layout); the renderer draws its faces with
the 3DMM layout since renderer v5 (`SynthConfig.face_layout`).
"""

from __future__ import annotations

import numpy as np

from posenet.core.geometry import HEAD_SIZE_MM  # noqa: E402,F401  (the `coords` size: one owner, geometry)

HEAD_CENTER = np.zeros(3)  # the model origin is the head centre

# iBUG-68 re-indexing for a horizontally mirrored image: new[i] = old[FLIP_PERMUTATION_68[i]].
FLIP_PERMUTATION_68 = np.array(
    list(range(16, -1, -1))                          # jaw contour 0..16 reversed
    + list(range(26, 16, -1))                        # brows 17..21 <-> 26..22
    + [27, 28, 29, 30]                               # nose bridge on the midline
    + [35, 34, 33, 32, 31]                           # nostril base reversed
    + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]  # eyes swapped, outer corner first
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]  # outer lip
    + [64, 63, 62, 61, 60, 67, 66, 65],              # inner lip
    dtype=np.int64,
)

# Image-left half and midline points (index -> x, y, z in mm).
_HALF_FACE = {
    # jaw contour, from the ear (0) down to the chin (8)
    0: (-70.0, 5.0, -5.0), 1: (-69.0, 25.0, -9.0), 2: (-66.0, 44.0, -15.0),
    3: (-62.0, 62.0, -23.0), 4: (-55.0, 79.0, -34.0), 5: (-45.0, 92.0, -48.0),
    6: (-33.0, 102.0, -61.0), 7: (-18.0, 109.0, -71.0), 8: (0.0, 111.0, -75.0),
    # brow, outer (17) to inner (21)
    17: (-57.0, -22.0, -56.0), 18: (-47.0, -30.0, -67.0), 19: (-35.0, -33.0, -74.0),
    20: (-23.0, -32.0, -78.0), 21: (-11.0, -27.0, -80.0),
    # nose bridge, nasion (27) to tip (30)
    27: (0.0, -12.0, -78.0), 28: (0.0, 3.0, -84.0), 29: (0.0, 17.0, -90.0), 30: (0.0, 32.0, -96.0),
    # nostril base, image-left wing (31) to subnasale (33)
    31: (-14.0, 40.0, -79.0), 32: (-7.0, 43.0, -85.0), 33: (0.0, 44.0, -87.0),
    # image-left eye: outer corner, upper lid (outer, inner), inner corner, lower lid (inner, outer)
    36: (-45.0, 0.0, -63.0), 37: (-37.0, -5.0, -70.0), 38: (-25.0, -5.5, -72.0),
    39: (-16.0, 0.0, -70.0), 40: (-25.0, 3.0, -71.0), 41: (-37.0, 3.0, -69.0),
    # outer lip: corner (48), upper lip to the midline (51); lower lip from the midline (57)
    48: (-25.0, 67.0, -71.0), 49: (-16.0, 62.0, -81.0), 50: (-7.0, 59.0, -87.0), 51: (0.0, 60.0, -88.0),
    57: (0.0, 79.0, -86.0), 58: (-7.0, 78.0, -85.0), 59: (-16.0, 75.0, -80.0),
    # inner lip: corner (60), upper (61, 62), lower (66, 67)
    60: (-21.0, 67.0, -75.0), 61: (-8.0, 66.0, -85.0), 62: (0.0, 66.0, -86.5),
    66: (0.0, 68.0, -86.5), 67: (-8.0, 68.0, -85.0),
}


# The 3D morphable model behind AFLW2000-3D's and 300W-LP's labels, as its 68 landmark vertices
# (image-left half and midline; mm, head frame of the labels). `posenet bench face-model` derives it
# again from the 3D label files in ../shared/data/aflw2000 and a test holds this table to it.
_AFLW_3DMM_HALF_FACE = {
    # jaw contour, from the ear (0) down to the chin (8)
    0: (-75.3, 10.7, 8.6), 1: (-73.3, 31.6, 6.3), 2: (-69.2, 50.8, 4.7), 3: (-65.0, 67.7, 0.9),
    4: (-59.0, 85.5, -8.6), 5: (-49.1, 99.7, -25.1), 6: (-37.5, 108.6, -44.9), 7: (-22.5, 116.4, -62.3),
    8: (0.0, 121.1, -69.5),
    # brow, outer (17) to inner (21)
    17: (-58.6, -11.7, -56.4), 18: (-50.0, -17.6, -68.9), 19: (-39.1, -19.7, -77.1), 20: (-28.7, -18.8, -82.1),
    21: (-19.3, -16.4, -84.4),
    # nose bridge, top (27) to tip (30)
    27: (0.0, 2.7, -88.1), 28: (0.0, 15.0, -97.0), 29: (0.0, 27.2, -106.6), 30: (0.0, 37.7, -109.1),
    # nostril base, image-left wing (31) to subnasale (33)
    31: (-12.7, 46.3, -86.1), 32: (-7.3, 47.4, -90.6), 33: (0.0, 48.7, -92.8),
    # image-left eye: outer corner, upper lid (outer, inner), inner corner, lower lid (inner, outer)
    36: (-45.0, 2.7, -63.5), 37: (-38.2, -1.6, -71.8), 38: (-28.7, -1.9, -72.0), 39: (-19.8, 3.3, -69.3),
    40: (-27.9, 5.5, -71.8), 41: (-38.0, 5.9, -69.5),
    # outer lip: corner (48), upper lip to the midline (51); lower lip from the midline (57)
    48: (-26.8, 72.3, -73.2), 49: (-17.7, 65.3, -86.0), 50: (-6.1, 61.2, -92.7), 51: (0.0, 62.5, -93.4),
    57: (0.0, 83.9, -88.6), 58: (-8.7, 83.1, -87.5), 59: (-16.8, 79.3, -82.8),
    # inner lip: corner (60), upper (61, 62), lower (66, 67)
    60: (-24.7, 72.0, -73.8), 61: (-7.7, 68.7, -87.2), 62: (0.0, 68.4, -89.1), 66: (0.0, 75.2, -87.4),
    67: (-7.6, 74.7, -86.2),
}


def _mirror_half(half: dict[int, tuple[float, float, float]]) -> np.ndarray:
    """Complete the 68 points: each missing point is the mirror image of its flip partner."""
    points = np.full((68, 3), np.nan)
    for index, xyz in half.items():
        points[index] = xyz
    for index in range(68):
        if np.isnan(points[index, 0]):
            points[index] = points[FLIP_PERMUTATION_68[index]] * np.array([-1.0, 1.0, 1.0])
    return points


AFLW_FRAME_PITCH_DEG = 2.51  # rotation about +x (y down, z into the screen) from the anatomical frame


def rotation_about_x(degrees: float) -> np.ndarray:
    """3x3 rotation by `degrees` about the x axis (right-handed; y -> z for positive angles)."""
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


AFLW_FRAME_ROTATION = rotation_about_x(AFLW_FRAME_PITCH_DEG)  # calibrated = R @ anatomical, about HEAD_CENTER

ANATOMICAL_LANDMARKS_68 = _mirror_half(_HALF_FACE)
LANDMARKS_68 = (ANATOMICAL_LANDMARKS_68 - HEAD_CENTER) @ AFLW_FRAME_ROTATION.T + HEAD_CENTER
AFLW_3DMM_LANDMARKS_68 = _mirror_half(_AFLW_3DMM_HALF_FACE)  # already in the labels' frame: no calibration
for _array in (ANATOMICAL_LANDMARKS_68, LANDMARKS_68, AFLW_3DMM_LANDMARKS_68, AFLW_FRAME_ROTATION):
    _array.setflags(write=False)
FLIP_PERMUTATION_68.setflags(write=False)


def mirror_landmarks(points: np.ndarray) -> np.ndarray:
    """Mirror model-frame landmarks (..., 68, 3): x -> -x and iBUG re-indexing."""
    points = np.asarray(points, dtype=np.float64)[..., FLIP_PERMUTATION_68, :]
    return points * np.array([-1.0, 1.0, 1.0])
