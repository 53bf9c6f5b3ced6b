"""Procedural face renderer: the embedded, exactly labelled default dataset.

One parametric head mesh in millimetres is built once (`head_mesh`): a star-shaped surface
around the head centre (skull, face, jaw and neck from a radius function over the unit
sphere: an ellipsoid and a cylinder, bent through the landmarks and a few extra face points
by a thin-plate spline), two ears and the shoulders. Its vertices include 68 landmarks exactly,
so the labels are points of the rendered surface: those of a face layout (`FACE_LAYOUTS`), the
PnP face model of `posenet.core.facemodel` or, by default, the 3D model behind AFLW2000-3D's
labels, onto which the model's head is warped. Identity and expression are small vertex offsets
along a handful of smooth procedural fields (`BASIS_NAMES`); the landmark vertices move with the
surface, so a sample's model points are `layout + offsets` and its labels stay exact.

Rendering: per-vertex Lambert + ambient + a little specular light from one to three
coloured lights; triangles sorted far to near are filled with `cv2.fillConvexPoly`
into a triangle-id buffer (painter's algorithm); every covered pixel then interpolates
the vertex light and its texture position (the mean head's x, y: a front and a back
texture), which looks up the albedo in a procedural texture (skin, hair, brows, eyes,
lips, clothing) and a fixed skin-detail noise. The shoulders are flat-shaded directly.

Pixel coordinates follow the project's pixel-edge convention (pixel i covers [i, i+1]),
so `project(transform(model_points, quat, t), camera)` is exactly the stored 2D label.

Every sample draws from its own `np.random.default_rng([seed, index])`: any sample
regenerates alone, workers split the index range freely, and the same seed gives a
byte-identical file.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import functools
import multiprocessing
import os
import time
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Iterator, NamedTuple

import cv2
import numpy as np
from scipy import sparse
from scipy.interpolate import RBFInterpolator
from scipy.spatial import ConvexHull
from tqdm import tqdm

from posenet.core.errors import PosenetError
from posenet.core.facemodel import (
    AFLW_3DMM_LANDMARKS_68,
    AFLW_FRAME_ROTATION,
    ANATOMICAL_LANDMARKS_68,
    HEAD_CENTER,
    LANDMARKS_68,
)
from posenet.core.fileio import check_writable
from posenet.core.geometry import (
    HEAD_SIZE_MM,
    aflw_to_quat,
    head_coords,
    neck_to_quat,
    project,
    quat_to_matrix,
    quat_to_rotvec,
    rotvec_to_matrix,
    transform,
)
from posenet.core.h5format import encode_image, write_dataset
from posenet.core.values import check_seed

MODES = ("face", "scene")
FACE_SIZE = 256  # default face-crop side, pixels
SCENE_SIZE = (288, 224)  # scene frame (width, height): the localizer input
VIRTUAL_FRAME = (640, 480)  # the full frame that face crops are cut from (never rendered)
FACE_FOV_DEG = (35.0, 80.0)  # horizontal field of view of the virtual frame
FACE_DISTANCE_MM = (350.0, 1500.0)  # camera to head centre
FACE_ON_AXIS_STEPS = 3  # fixed-point steps that centre the landmark box on the axis (to < 0.1 px)
EYE_OPENING_SCALE = 1.6  # painted eye opening height / the lid landmarks' (detailed face)
# The face model's brow peak sits 32 mm above the pupil. Adults' lower brow border sits about 19.5 mm
# above the lower edge of the cornea (eyebrow-position studies), i.e. 14 mm above the pupil, and
# brows are 8-10 mm tall: their upper margin, which the iBUG brow points follow, about 23 mm.
BROW_LOWERING_ANTHROPOMETRIC_MM = 9.0
BROW_LOWERING_LIMIT_MM = 15.0  # further and the brows would reach the upper lids
CROP_MARGIN = (1.5, 2.1)  # crop side / longer side of the landmark box
CROP_JITTER = 0.08  # crop centre offset, fraction of the crop side
SCENE_FOV_DEG = (45.0, 75.0)
SCENE_HEAD_SIZE = (0.08, 0.32)  # `coords` size as a fraction of the frame height
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
POSE_DISTRIBUTIONS = ("realistic", "uniform")
REALISTIC_SIGMA_DEG = (30.0, 13.0, 9.0)  # yaw, pitch, roll spread of the near-frontal part
REALISTIC_WIDE_YAW = 0.25  # share of faces whose yaw is uniform over the whole range (turned heads, profiles)
REALISTIC_WIDE_PITCH = REALISTIC_WIDE_YAW  # the same for pitch (renderer v6's default `wide_pitch_share`)
EYE_GAZES = ("ahead", "camera")
FACE_LAYOUTS = {"model": LANDMARKS_68, "aflw-3dmm": AFLW_3DMM_LANDMARKS_68}  # SynthConfig.face_layout -> 68 points
FACE_LAYOUT = "aflw-3dmm"  # renderer v5's default
CONTOUR = np.arange(17)  # the jaw contour among the 68 landmarks (iBUG order)
INNER_LIPS = (62, 66)  # the middle of the upper and lower inner lip
NEUTRAL_MOUTH_GAP_MM = float(np.linalg.norm(LANDMARKS_68[INNER_LIPS[0]] - LANDMARKS_68[INNER_LIPS[1]]))  # closed lips
EYEBALL_RADIUS_MM = 12.0  # the iris centre moves on this sphere as the eye turns
EYE_TURN_LIMIT_DEG = (30.0, 20.0)  # horizontal, vertical: beyond this people turn the head, not the eyes
GAZE_JITTER_DEG = 4.0  # the eyes' spread about the camera (a lens, or the screen just below a webcam)
IRIS_RADIUS_MM, PUPIL_RADIUS_MM = 5.5, 2.2
SOURCE = "posenet-synth v8"  # bump when the same config and seed would render other pixels (stale caches re-render)

SHIFT = 4  # fillConvexPoly sub-pixel bits
NEAR_MM = 50.0  # triangles closer than this to the camera plane are dropped
NOISE_BANK_SIZE = 512  # fixed Gaussian noise image, windows of it are the sensor noise
MATMUL_ROWS = 16384  # row block for per-pixel matrix products (see _matmul_rows)


# --- configuration -------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class SynthConfig:
    """Everything that shapes a synthetic dataset except its seed and size.

    Angles in degrees: yaw, pitch and roll are drawn within +-range (see sample_pose; labels are
    AFLW's, geometry.ypr_deg). `identity_scale` and `expression_scale` scale the
    random shape offsets (0, with `brow_lowering_mm` 0, renders the exact mean face of
    facemodel.LANDMARKS_68).
    """

    mode: str = "face"
    size: int = FACE_SIZE
    scene_size: tuple[int, int] = SCENE_SIZE
    yaw_range: float = 90.0
    pitch_range: float = 60.0
    roll_range: float = 45.0
    pose_distribution: str = "realistic"  # or "uniform" (see sample_pose)
    pose_sigma_deg: tuple[float, float, float] = REALISTIC_SIGMA_DEG  # "realistic": yaw, pitch, roll spread
    pitch_centre_deg: float = 0.0  # "realistic": the pitches' centre (negative: faces seen a little from above)
    # "realistic": share of faces whose pitch is uniform over the whole +-pitch_range, as the
    # REALISTIC_WIDE_YAW share is for yaw, so that steep pitches are common enough to learn (renderer
    # v6; with 0, renderer v5's pitches: 2 % beyond 30 deg, where nets read real faces at half size).
    # Drawn after a person's optional draws, so options that draw change which faces are steep.
    wide_pitch_share: float = REALISTIC_WIDE_PITCH
    # "realistic": the drawn angles are the neck's (`geometry.neck_to_quat`: turn, then nod about
    # the turned head's ear axis, then tilt), not AFLW's Euler angles; labels stay AFLW's, exactly.
    # A turned head that looks down then carries AFLW pitch and roll together, as photographed
    # people do (renderer v8; False: v6's poses, AFLW's angles drawn independently).
    neck_pose: bool = True
    # Face crops: the head on the camera's optical axis, so that the label is also the pose the
    # face appears to have in the crop (what weak-perspective labels such as AFLW's describe).
    # False: anywhere in a wide virtual frame, where a head seen off-axis looks turned by up to
    # ~25 deg more than its label says (the first renderer).
    head_on_axis: bool = True
    # With head_on_axis: the centre of the face (its landmark box), not the skull's centre, on the
    # axis. A near camera looking at the skull centre sees the face, 40 mm lower, from above: at
    # 0.4 m a weak-perspective fit of its landmarks reads a pitch 5 deg off its label.
    face_on_axis: bool = True
    detailed_face: bool = True  # eye sockets, lash lines, dark full brows, fringes (False: the first renderer's face)
    muted_backgrounds: bool = True  # procedural backgrounds desaturated, lower contrast, often out of focus
    light_from_above: bool = False  # lights only in the upper half around the viewing axis, as in most photos
    # Face crops: camera to head centre, mm (uniform). Near cameras (webcams) show perspective:
    # the jaw contour, 60-90 mm behind the eyes and nose, looks narrower than in a photo from afar.
    face_distance_mm: tuple[float, float] = FACE_DISTANCE_MM
    eye_opening: float = EYE_OPENING_SCALE  # detailed face: painted eye opening height / the lid landmarks' (1: at the lids)
    # "camera" (renderer v4): the eyes turn toward the camera (within EYE_TURN_LIMIT_DEG, with
    # GAZE_JITTER_DEG of spread), as people look into a lens in photos and at the screen beside a
    # webcam, so a turned head shows eyes turned back; "ahead": irises painted straight ahead in the
    # head (renderer v3 and before), which real faces almost never show.
    eye_gaze: str = "camera"
    # Where the face's 68 landmarks sit (FACE_LAYOUTS): "model", the anthropometric face model that
    # landmark PnP uses (facemodel.LANDMARKS_68), or "aflw-3dmm", the 3D morphable model AFLW2000-3D's
    # labels are fits of (facemodel.AFLW_3DMM_LANDMARKS_68): the mesh is warped onto those points, and
    # its painted features, offset fields and labels follow. Renderer v5 draws the benchmark's layout:
    # its faces then carry the landmarks, and the pose, that real labels mean.
    face_layout: str = FACE_LAYOUT
    # A layout averaged over fitted faces (AFLW's) parts the lips by 7 mm, its faces' mean expression,
    # and the renderer opens mouths on top of it. True: the layout's jaw raised first, lips about as
    # far apart as the face model's closed ones (`closed_mouth`).
    neutral_mouth: bool = False
    # Warp the surface onto the layout's jaw contour too. AFLW's contour points sit by the ears, 13-22 mm
    # behind the face model's jaw line, and warping onto them pushes the cheeks back. False: the surface
    # keeps the model's jaw and the contour labels are the layout's points, riding with the head.
    warp_contour: bool = True
    # Hair as geometry: people whose style is not bald get the crown and the back of the head pushed
    # out by uniform(low, high) mm (`hair_volume_field`), so the head's outline above and behind the
    # face varies as real hair makes it; (0, 0): the bare skull's outline (renderer v5 and before).
    hair_volume_mm: tuple[float, float] = (0.0, 0.0)
    # Each person's front hairline moved up or down by uniform(-h, h) mm (`hairline_rows`), so that
    # the forehead's height is no longer one of the hair styles' few fixed values; 0: as painted
    # (measured on three seeds against v6 and left off: results/sim2real_ablation.md, session 11).
    hairline_shift_mm: float = 0.0
    # Each person's front hairline tilted: up to uniform(-t, t) mm higher toward one temple and as much
    # lower toward the other (`hairline_rows`), as a side parting or a fringe swept to one side leaves
    # it (real hair is rarely mirror-symmetric). 0: level, as painted; measured and left off
    # (results/sim2real_ablation.md, session 11).
    hairline_tilt_mm: float = 0.0
    # Each person's brows, lips and dark features (mouth opening, nostrils, lash lines, pupils, eye
    # sockets) drawn at uniform(low, high) of their contrast against the skin: real faces show them
    # from bold to faint; (1, 1): the palette's full contrast (renderer v5 and before).
    feature_contrast: tuple[float, float] = (1.0, 1.0)
    # Each person's face depth: the 68 landmarks' depth about the eyes scaled by uniform(low, high),
    # the surface carried along by the layout's spline (`HeadMesh.depth_field`). Real faces differ in
    # depth (the face model's nose stands 25 mm before the eyes, AFLW's 3DMM's 39 mm); (1, 1): the layout's.
    face_depth_scale: tuple[float, float] = (1.0, 1.0)
    fringe_probability: float = 0.0  # detailed face: share of people drawn from the fringe styles (0: every style alike)
    # Mean brow height below the layout's, mm (the brow_raise offset of every person moves by this).
    # Renderers v3 and v4 lowered the "model" layout's brows by BROW_LOWERING_ANTHROPOMETRIC_MM; the
    # "aflw-3dmm" layout's brows are where the labels put them, so v5 lowers nothing. The PnP face
    # model keeps its brows.
    brow_lowering_mm: float = 0.0
    identity_scale: float = 1.0
    expression_scale: float = 1.0
    backgrounds: str | None = None
    lossy: bool = True
    quality: int = 90
    face_probability: float = 0.8  # scene mode: share of frames with a face
    occluder_probability: float = 0.25
    glasses_probability: float = 0.15
    degrade: bool = True  # blur, noise, colour jitter and JPEG artefacts

    @property
    def image_size(self) -> tuple[int, int]:
        """(width, height) of the stored images."""
        return (self.size, self.size) if self.mode == "face" else tuple(self.scene_size)


# --- the head mesh ---------------------------------------------------------------------------

SKULL_AXES = {"x": 76.0, "top": 122.0, "bottom": 78.0, "front": 80.0, "back": 104.0}
NECK = {"ax": 47.0, "az": 45.0, "z": 14.0, "bottom": 215.0}  # elliptic cylinder, mm
EAR = {"center": (79.0, 14.0, 6.0), "axes": (6.0, 30.0, 16.0)}
TORSO = {"center": (0.0, 330.0, 24.0), "axes": (180.0, 125.0, 100.0)}  # shoulders and chest
TORSO_FOLLOW = 0.3  # share of the head rotation that the torso follows
NECK_PIVOT = np.array([0.0, 70.0, 10.0])  # head frame, mm: the head turns on the body about this point
NECK_BEND = (118.0, 185.0)  # mean-head y over which the neck blends from head pose to body pose
SPHERE_POINTS = 450  # directions over the whole head
FACE_POINTS = 750  # extra directions in the face cap
FACE_CAP = (np.array([0.0, 0.3, -1.0]) / np.hypot(0.3, 1.0), np.radians(68.0))  # axis, half-angle
LANDMARK_CLEARANCE = np.radians(1.6)  # grid directions this close to a landmark are dropped

# Extra surface points (image-left half and midline, mm) that shape the face between landmarks.
_SHAPE_POINTS_HALF = [
    (0, -45, -80), (-25, -45, -77), (-48, -45, -64), (0, -75, -71), (-30, -75, -64), (-55, -70, -48),
    (-66, -25, -38), (-70, -45, -20), (-31, -15, -71), (-31, -1, -73), (-31, 12, -71), (-46, 14, -63),
    (-8, 8, -81), (-11, 22, -84), (-19, 35, -75), (-8, 31, -91), (-40, 30, -67), (-56, 40, -48),
    (-34, 50, -71), (-52, 64, -44), (-22, 50, -79), (0, 52, -89.5), (-8, 52, -86.5), (0, 90, -81),
    (-15, 92, -77), (0, 100, -81), (-33, 69, -67), (0, 124, -52), (-30, 112, -42), (-50, 96, -22),
    (-62, 60, 2), (-56, 92, 4),
]

# Identity and expression: offset fields over the mean head, one coefficient each.
# A sample's coefficients: normal(0, IDENTITY_SIGMA) + uniform(0, EXPRESSION_MAX) part of the time.
BASIS_NAMES = ("width", "lower_face", "nose", "jaw", "eye_spacing", "brow_raise", "mouth_open", "smile")
IDENTITY_SIGMA = np.array([0.05, 0.05, 4.0, 5.0, 2.0, 2.5, 0.0, 0.0])
EXPRESSION_MAX = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 5.0, 12.0, 4.0])
HAIR_VOLUME_LIMIT_MM = 80.0  # more would be a hat
HAIR_VOLUME_TAPER_MM = 15.0  # hair volume grows from 0 at the hairline to full this far inside it
HAIR_VOLUME_FACE_Y = (-40.0, -55.0)  # on the face side, hair volume fades in over this mean-head y (above the brows)
HAIRLINE_FIXED_Y = -40.0  # mean-head y (mm, down) above which a person's hairline shift moves the paint
HAIRLINE_RAMP_MM = 20.0  # the shift grows to full size over this height
HAIRLINE_SHIFT_LIMIT_MM = 30.0


@dataclasses.dataclass(frozen=True)
class HeadMesh:
    """The mean head and shoulders: vertices (V,3) mm, outward triangles of the head and
    ears (T,3) and of the torso, vertex normals (V,3), the vertex index of each of the 68
    landmarks, the offset fields (K,V,3), how much each vertex follows the body rather
    than the head (0 for the head and ears, rising along the neck, 1 for the torso; see
    `pose_mesh`), where each vertex sits on the face model's head (V,3): its texture
    position, the same as `vertices` unless the face is warped to another layout, and where
    hair volume pushes it."""

    vertices: np.ndarray
    triangles: np.ndarray
    torso_triangles: np.ndarray
    normals: np.ndarray
    landmark_index: np.ndarray
    basis: np.ndarray
    body_weight: np.ndarray
    texture_vertices: np.ndarray
    hair_field: np.ndarray  # (styles, V, 3) where hair volume pushes each vertex, per mm (`hair_volume_field`)
    depth_field: np.ndarray  # (V, 3) how each vertex moves as the face's depth scale grows by 1 (`depth_moves`)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _fibonacci_cap(n: int, axis: np.ndarray, half_angle: float) -> np.ndarray:
    """n near-uniform unit directions within `half_angle` of `axis`."""
    i = np.arange(n) + 0.5
    cos_polar = 1.0 - (1.0 - np.cos(half_angle)) * i / n
    sin_polar = np.sqrt(1.0 - cos_polar**2)
    azimuth = np.pi * (1.0 + 5**0.5) * i
    local = np.stack([sin_polar * np.cos(azimuth), sin_polar * np.sin(azimuth), cos_polar], axis=-1)
    helper = np.array([1.0, 0.0, 0.0]) if abs(axis[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    u = _unit(np.cross(axis, helper))
    return local @ np.stack([u, np.cross(axis, u), axis])


def _base_radius(d: np.ndarray) -> np.ndarray:
    """Radius of the skull ellipsoid united with the neck cylinder along unit directions d."""
    dx, dy, dz = d.T
    ay = np.where(dy < 0, SKULL_AXES["top"], SKULL_AXES["bottom"])
    az = np.where(dz < 0, SKULL_AXES["front"], SKULL_AXES["back"])
    skull = 1.0 / np.sqrt((dx / SKULL_AXES["x"]) ** 2 + (dy / ay) ** 2 + (dz / az) ** 2)
    a = (dx / NECK["ax"]) ** 2 + (dz / NECK["az"]) ** 2
    b = -2.0 * dz * NECK["z"] / NECK["az"] ** 2
    c = (NECK["z"] / NECK["az"]) ** 2 - 1.0
    side = (-b + np.sqrt(b**2 - 4.0 * a * c)) / (2.0 * np.maximum(a, 1e-12))
    neck = np.where(dy > 0, np.minimum(side, NECK["bottom"] / np.maximum(dy, 1e-6)), 0.0)
    return np.maximum(skull, neck)


def _shape_points() -> np.ndarray:
    """Landmarks plus the extra face-shaping points, mirrored to both sides."""
    half = np.array(_SHAPE_POINTS_HALF, dtype=np.float64)
    mirrored = half[half[:, 0] < 0] * np.array([-1.0, 1.0, 1.0])
    return np.concatenate([ANATOMICAL_LANDMARKS_68, half, mirrored])


def _anchor_directions() -> np.ndarray:
    """Directions away from the face where the radius keeps its base value."""
    d = _fibonacci_cap(160, np.array([0.0, 0.0, 1.0]), np.pi)
    face_side = d @ FACE_CAP[0] > np.cos(FACE_CAP[1] + np.radians(12.0))
    return d[~face_side]


def _ellipsoid(center: np.ndarray, axes: np.ndarray, rings: int = 7,
               segments: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """A closed UV ellipsoid: vertices, outward triangles."""
    polar = np.linspace(0.0, np.pi, rings + 1)[1:-1]
    azimuth = np.linspace(0.0, 2 * np.pi, segments, endpoint=False)
    p, a = np.meshgrid(polar, azimuth, indexing="ij")
    ring = np.stack([np.sin(p) * np.cos(a), np.cos(p), np.sin(p) * np.sin(a)], axis=-1).reshape(-1, 3)
    unit = np.concatenate([[[0.0, 1.0, 0.0]], ring, [[0.0, -1.0, 0.0]]])
    triangles = ConvexHull(unit).simplices
    return center + unit * axes, _orient_outward(unit, triangles)


def _orient_outward(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Reorder triangles of a star-shaped surface (around the origin) so normals point out."""
    a, b, c = (points[triangles[:, k]] for k in range(3))
    inward = np.einsum("ij,ij->i", np.cross(b - a, c - a), a + b + c) < 0
    triangles = triangles.copy()
    triangles[inward] = triangles[inward][:, [0, 2, 1]]
    return triangles


def _triangle_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Each triangle's normal, as long as twice its area (so that vertex sums are area-weighted)."""
    a, b, c = (vertices[triangles[:, k]] for k in range(3))
    return np.cross(b - a, c - a)


def _vertex_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    face_normals = _triangle_normals(vertices, triangles)
    normals = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(normals, triangles[:, k], face_normals)
    return _unit(normals)


def _smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _gauss(x: np.ndarray, center: float, width: float) -> np.ndarray:
    return np.exp(-(((x - center) / width) ** 2))


def offset_basis(points: np.ndarray) -> np.ndarray:
    """The offset fields (K, P, 3) at mean-head points (P, 3): one per BASIS_NAMES entry.

    Each field is smooth and left/right symmetric; a coefficient of 1 moves points by
    about 1 mm (or 1 x of the size for the two scale fields).
    """
    x, y, z = points.T
    zero = np.zeros_like(x)
    front = _smoothstep(-20.0, -55.0, z)  # the face side of the head
    side = np.sign(x)
    eye_area = _gauss(np.abs(x), 31.0, 16.0) * _gauss(y, -5.0, 16.0) * front
    brow_area = _gauss(y, -29.0, 11.0) * (np.abs(x) < 70) * front
    mouth_area = _gauss(np.abs(x), 0.0, 32.0) * _gauss(y, 68.0, 14.0) * front
    corners = _gauss(np.abs(x), 24.0, 9.0) * _gauss(y, 67.0, 8.0) * front
    lower_jaw = _smoothstep(66.2, 67.8, y) * np.clip((10.0 - z) / 60.0, 0.0, 1.0)
    fields = [
        (x, zero, zero),                                                     # width (x scale)
        (zero, np.maximum(y, 0.0), zero),                                    # lower_face (y scale)
        (zero, zero, -_gauss(x, 0.0, 13.0) * _gauss(y, 22.0, 22.0) * front),  # nose (protrusion)
        (side * _smoothstep(20.0, 90.0, y) * np.clip(np.abs(x) / 70.0, 0, 1), zero, zero),  # jaw
        (side * eye_area, zero, zero),                                       # eye_spacing
        (zero, -brow_area, zero),                                            # brow_raise
        (zero, lower_jaw, 0.3 * lower_jaw),                                  # mouth_open
        (side * corners, -0.6 * corners + 0.1 * mouth_area, zero),            # smile
    ]
    return np.stack([np.stack(f, axis=-1) for f in fields])


def closed_mouth(layout: np.ndarray) -> np.ndarray:
    """`layout` with its jaw raised along the mouth_open field by its inner-lip gap less the face
    model's (NEUTRAL_MOUTH_GAP_MM), leaving the lips about as far apart as the model's closed ones.

    A layout averaged over fitted faces (AFLW's) carries their mean expression: its lips part
    by 7 mm; the renderer draws its own expressions on top, which would open every mouth twice."""
    mouth_open = offset_basis(ANATOMICAL_LANDMARKS_68)[BASIS_NAMES.index("mouth_open")] @ AFLW_FRAME_ROTATION.T
    excess = max(0.0, float(np.linalg.norm(layout[INNER_LIPS[0]] - layout[INNER_LIPS[1]])) - NEUTRAL_MOUTH_GAP_MM)
    return layout - excess * mouth_open


def layout_points(layout: str, neutral_mouth: bool) -> np.ndarray:
    """The 68 landmarks (head frame, mm) of a face layout (FACE_LAYOUTS), its mouth closed if asked."""
    return closed_mouth(FACE_LAYOUTS[layout]) if neutral_mouth else FACE_LAYOUTS[layout]


def hair_volume_field(points: np.ndarray, style: HairStyle) -> np.ndarray:
    """Outward displacement (P, 3) per mm of hair at mean-head points (anatomical frame) for one
    style: 1 where the style paints hair (`_front_texture`, `_back_texture`), tapering to 0 over
    HAIR_VOLUME_TAPER_MM inside its hairline; on the face side only above the brows, so never at a
    landmark; 0 for a bald crown."""
    x, y, z = points.T
    if style.bald:
        return np.zeros_like(points)
    inside = np.where(z < 0, hair_depth_mm(style, x, y, back=False), hair_depth_mm(style, x, y, back=True))
    weight = _smoothstep(0.0, HAIR_VOLUME_TAPER_MM, inside) * np.where(z < 0, _smoothstep(*HAIR_VOLUME_FACE_Y, y), 1.0)
    return _unit(points) * weight[:, None]


def _layout_warp(points: np.ndarray, layout: np.ndarray) -> np.ndarray:
    """Displacements (P, 3) that carry the calibrated face model onto `layout` (68, 3) smoothly: a
    thin-plate spline through the 68 landmark moves, pinned to zero over the back of the skull."""
    anchors = _anchor_directions()
    anchors = (anchors * _base_radius(anchors)[:, None]) @ AFLW_FRAME_ROTATION.T
    control = np.concatenate([LANDMARKS_68, anchors])
    moves = np.concatenate([layout - LANDMARKS_68, np.zeros_like(anchors)])
    return RBFInterpolator(control, moves, kernel="thin_plate_spline", degree=1)(points)


def depth_moves(points: np.ndarray) -> np.ndarray:
    """How the 68 landmarks (68, 3) move as the face's depth scale grows by 1: along the head's
    depth axis, by their depth before (negative) or behind the eyes."""
    moves = np.zeros_like(points)
    moves[:, 2] = points[:, 2] - _eye_centres(points)[:, 2].mean()
    return moves


@functools.lru_cache(maxsize=4)
def head_mesh(layout: str = "model", neutral_mouth: bool = False, warp_contour: bool = True) -> HeadMesh:
    """Build the mean head, ears and shoulders once per process and face (about 0.1 s).

    The head is built around the face model's landmarks; another layout (FACE_LAYOUTS; with
    `neutral_mouth`, its mouth closed: `layout_points`) warps the skull surface onto its points
    (the ears keep their shape and place), while texture positions and offset fields stay those
    of the model's head, so the painted features and the expressions travel with the warp.
    Without `warp_contour` the surface keeps the model's jaw and cheeks, and the layout's 17
    contour landmarks become extra vertices that ride with the head off the surface (AFLW's sit
    by the ears, 13-22 mm behind the model's jaw line: warping onto them pushes the cheeks back).
    The depth field carries the landmarks' `depth_moves` to the skull surface by the same spline."""
    landmark_dirs = _unit(ANATOMICAL_LANDMARKS_68)
    grid = np.concatenate([_fibonacci_cap(SPHERE_POINTS, np.array([0.0, 0.0, 1.0]), np.pi),
                           _fibonacci_cap(FACE_POINTS, *FACE_CAP)])
    closest = np.max(grid @ landmark_dirs.T, axis=1)
    grid = grid[closest < np.cos(LANDMARK_CLEARANCE)]
    directions = np.concatenate([landmark_dirs, grid])

    shape = _shape_points()
    anchors = _anchor_directions()
    control = np.concatenate([_unit(shape), anchors])
    residual = np.concatenate([np.linalg.norm(shape, axis=1) - _base_radius(_unit(shape)), np.zeros(len(anchors))])
    correction = RBFInterpolator(control, residual, kernel="thin_plate_spline", degree=1)
    radius = _base_radius(directions) + correction(directions)
    head = directions * radius[:, None]
    head[: len(LANDMARKS_68)] = ANATOMICAL_LANDMARKS_68  # exact (the interpolation matches to ~1e-9 mm)
    head_triangles = _orient_outward(directions, ConvexHull(directions).simplices)

    parts = [(head, head_triangles)]
    for sign in (-1.0, 1.0):
        parts.append(_ellipsoid(np.array(EAR["center"]) * np.array([sign, 1.0, 1.0]), np.array(EAR["axes"])))
    head_count = sum(len(v) for v, _ in parts)
    parts.append(_ellipsoid(np.array(TORSO["center"]), np.array(TORSO["axes"]), rings=12, segments=24))
    offsets = np.cumsum([0] + [len(v) for v, _ in parts])
    vertices = np.concatenate([v for v, _ in parts])
    triangles = np.concatenate([t + offset for (_, t), offset in zip(parts, offsets)]).astype(np.int32)
    torso = np.arange(len(vertices)) >= head_count
    torso_triangles = torso[triangles[:, 0]]
    basis = offset_basis(vertices)
    basis[:, torso] = 0.0  # identity and expression move the head only
    hair_field = np.zeros((len(DETAILED_HAIR_STYLES), *vertices.shape))  # per style (HAIR_STYLES is a prefix)
    hair_field[:, : len(head)] = [hair_volume_field(head, style) for style in DETAILED_HAIR_STYLES]
    assert not hair_field[:, : len(LANDMARKS_68)].any(), "hair must not move the landmarks"
    body_weight = np.where(torso, 1.0, _smoothstep(*NECK_BEND, vertices[:, 1]))
    assert not body_weight[: len(LANDMARKS_68)].any(), "landmarks must move rigidly with the head"
    # Built in the anatomical frame, then re-expressed in the calibrated head frame (facemodel),
    # so that the landmark vertices are exactly LANDMARKS_68 and the labels are in that frame.
    vertices = (vertices - HEAD_CENTER) @ AFLW_FRAME_ROTATION.T + HEAD_CENTER
    vertices[: len(LANDMARKS_68)] = LANDMARKS_68
    basis = basis @ AFLW_FRAME_ROTATION.T
    hair_field = hair_field @ AFLW_FRAME_ROTATION.T
    texture_vertices = vertices.copy()
    landmark_index = np.arange(len(LANDMARKS_68))
    points = layout_points(layout, neutral_mouth)
    contour_apart = layout != "model" and not warp_contour
    target = points.copy()
    if contour_apart:
        target[CONTOUR] = LANDMARKS_68[CONTOUR]
    landmark_depth_moves = depth_moves(target)
    depth_field = np.zeros_like(vertices)  # on the skull surface; the ears keep their place
    depth_field[: len(head)] = _layout_warp(vertices[: len(head)], LANDMARKS_68 + landmark_depth_moves)
    depth_field[: len(LANDMARKS_68)] = landmark_depth_moves
    if layout != "model":  # the skull surface only: the ears keep their shape and place
        vertices[: len(head)] += _layout_warp(vertices[: len(head)], target)
        vertices[: len(LANDMARKS_68)] = target
    normals = _vertex_normals(vertices, triangles)
    if contour_apart:
        extra = len(vertices) + np.arange(len(CONTOUR))
        vertices = np.concatenate([vertices, points[CONTOUR]])
        normals = np.concatenate([normals, normals[CONTOUR]])
        basis = np.concatenate([basis, basis[:, CONTOUR]], axis=1)
        body_weight = np.concatenate([body_weight, np.zeros(len(CONTOUR))])
        texture_vertices = np.concatenate([texture_vertices, texture_vertices[CONTOUR]])
        hair_field = np.concatenate([hair_field, np.zeros((len(hair_field), len(CONTOUR), 3))], axis=1)
        depth_field = np.concatenate([depth_field, depth_moves(points)[CONTOUR]])
        landmark_index = np.concatenate([extra, landmark_index[len(CONTOUR):]])
    mesh = HeadMesh(vertices=vertices, triangles=triangles[~torso_triangles], torso_triangles=triangles[torso_triangles],
                    normals=normals, landmark_index=landmark_index,
                    basis=basis, body_weight=body_weight, texture_vertices=texture_vertices, hair_field=hair_field,
                    depth_field=depth_field)
    for array in dataclasses.asdict(mesh).values():
        array.setflags(write=False)
    return mesh


# --- the albedo texture ------------------------------------------------------------------------

REGIONS = ("skin", "hair", "brow", "lips", "dark", "sclera", "iris", "cloth")
TEX_MM = 0.8  # texel size
TEX_X = (-100.0, 100.0)
TEX_Y = (-150.0, 230.0)
CLOTH_Y = 165.0  # the collar: clothing starts this far below the eyes, front and back alike
EAR_GAP_X = 71.0  # the back texture leaves skin around the ears beyond this |x|


def _tex_px(points_mm: np.ndarray | list[float]) -> np.ndarray:
    """Texture pixel coordinates (OpenCV drawing, SHIFT bits) of (x, y) mm points."""
    xy = (np.asarray(points_mm, float)[..., :2] - [TEX_X[0], TEX_Y[0]]) / TEX_MM - 0.5
    return np.round(xy * (1 << SHIFT)).astype(np.int32)


def _tex_mm(value: float) -> int:
    return max(1, int(round(value / TEX_MM)))


def _paint(weights: np.ndarray, mask: np.ndarray, region: str, soften_mm: float = 0.6) -> None:
    """Lay `mask` (float 0..1) of `region` over the weights (H, W, K) in place."""
    mask = cv2.GaussianBlur(mask, (0, 0), soften_mm / TEX_MM)[..., None]
    onehot = np.eye(len(REGIONS), dtype=np.float32)[REGIONS.index(region)]
    weights *= 1.0 - mask
    weights += mask * onehot


def _texture_shape() -> tuple[int, int]:
    return (int(round((TEX_Y[1] - TEX_Y[0]) / TEX_MM)), int(round((TEX_X[1] - TEX_X[0]) / TEX_MM)))


class HairStyle(NamedTuple):
    """Where the hair is painted, in mean-head mm (y down)."""

    front_top: float  # hairline height on the forehead midline (it curves down to the temples)
    side_bottom: float  # hair reaches this low beside the face (|x| > SIDE_HAIR_X)
    back_bottom: float  # and this low at the back of the head
    bald: bool  # a bare crown: hair only in a band around the back and sides


HAIR_STYLES = (
    HairStyle(-68.0, -14.0, 58.0, False),  # short
    HairStyle(-88.0, -20.0, 45.0, False),  # receding hairline
    HairStyle(-42.0, -5.0, 70.0, False),  # fringe
    HairStyle(-64.0, 120.0, 150.0, False),  # long, over the ears
    HairStyle(-150.0, 25.0, 45.0, True),  # bald crown
)
DETAILED_HAIR_STYLES = HAIR_STYLES + (  # hair that frames the face, as in most photos
    HairStyle(-30.0, 10.0, 80.0, False),  # fringe down to the brows
    HairStyle(-50.0, 140.0, 170.0, False),  # long, with a low fringe
)
FRINGE_HAIRLINE_MM = -55.0  # a hairline at least this low on the forehead midline is a fringe
FRINGE_STYLES = tuple(i for i, style in enumerate(DETAILED_HAIR_STYLES)
                      if not style.bald and style.front_top >= FRINGE_HAIRLINE_MM)  # hair over the forehead
SIDE_HAIR_X = 64.0
EYE_SOCKET_RAISE_MM = 2.5  # the socket shadow sits a little above the eye's centre
EYE_SOCKET_HALF_HEIGHT_MM = 8.0
EYE_SOCKET_OPACITY = 0.5
BALD_TOP = -30.0  # a bald crown keeps hair only below this height


def _eye_socket(shape: tuple[int, int], eye: np.ndarray) -> np.ndarray:
    """Soft shadow of the eye socket and upper lid crease around one eye (0..1)."""
    socket = np.zeros(shape, np.float32)
    center = eye.mean(axis=0) - [0.0, EYE_SOCKET_RAISE_MM, 0.0]
    half_width = 0.5 * float(np.ptp(eye[:, 0])) + 4.0
    cv2.ellipse(socket, tuple(_tex_px(center)), (_tex_mm(half_width) << SHIFT, _tex_mm(EYE_SOCKET_HALF_HEIGHT_MM) << SHIFT),
                0.0, 0, 360, 1.0, -1, cv2.LINE_AA, SHIFT)
    return cv2.GaussianBlur(socket, (0, 0), 2.5 / TEX_MM)


def _face_features(shape: tuple[int, int], detailed: bool, eye_opening: float = EYE_OPENING_SCALE,
                   irises: bool = True) -> np.ndarray:
    """Region weights of the face side without hair: brows, eyes, lips, nostrils on skin.
    `detailed` adds what makes a real face's eyes read from afar: socket shadows, lash lines
    and full brows. Without `irises` the eye openings stay white (`_turn_eyes` paints them)."""
    weights = np.zeros((*shape, len(REGIONS)), np.float32)
    weights[..., 0] = 1.0
    lm = LANDMARKS_68
    brow_mm, brow_opacity = (6.5, 1.0) if detailed else (4.5, 0.85)
    for brow in (lm[17:22], lm[22:27]):
        mask = np.zeros(shape, np.float32)
        cv2.polylines(mask, [_tex_px(brow)], False, 1.0, _tex_mm(brow_mm), cv2.LINE_AA, SHIFT)
        _paint(weights, mask * brow_opacity, "brow", 0.8)
    for eye in (lm[36:42], lm[42:48]):
        if detailed:  # a socket shadow, and the opening painted a little taller than the lid landmarks
            _paint(weights, _eye_socket(shape, eye) * EYE_SOCKET_OPACITY, "dark", 0.3)
            eye = eye.mean(axis=0) + (eye - eye.mean(axis=0)) * [1.0, eye_opening, 1.0]
        opening = np.zeros(shape, np.float32)
        cv2.fillPoly(opening, [_tex_px(eye)], 1.0, cv2.LINE_AA, SHIFT)
        _paint(weights, opening, "sclera", 0.3)
        center = eye[[1, 2, 4, 5]].mean(axis=0)
        if irises:
            iris, pupil = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
            cv2.circle(iris, tuple(_tex_px(center)), _tex_mm(IRIS_RADIUS_MM) << SHIFT, 1.0, -1, cv2.LINE_AA, SHIFT)
            cv2.circle(pupil, tuple(_tex_px(center)), _tex_mm(PUPIL_RADIUS_MM) << SHIFT, 1.0, -1, cv2.LINE_AA, SHIFT)
            _paint(weights, iris * opening, "iris", 0.3)
            _paint(weights, pupil * opening, "dark", 0.3)
        lash = np.zeros(shape, np.float32)
        cv2.polylines(lash, [_tex_px(eye[:4])], False, 1.0, _tex_mm(2.2 if detailed else 1.3), cv2.LINE_AA, SHIFT)
        if detailed:
            cv2.polylines(lash, [_tex_px(eye[[3, 4, 5, 0]])], False, 0.6, _tex_mm(0.8), cv2.LINE_AA, SHIFT)
        _paint(weights, lash, "dark", 0.3)
    lips, mouth = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
    cv2.fillPoly(lips, [_tex_px(lm[48:60])], 1.0, cv2.LINE_AA, SHIFT)
    cv2.fillPoly(mouth, [_tex_px(lm[60:68])], 1.0, cv2.LINE_AA, SHIFT)
    _paint(weights, lips, "lips", 0.8)
    _paint(weights, mouth, "dark", 0.3)
    nostrils = np.zeros(shape, np.float32)
    for sign in (-1, 1):
        cv2.ellipse(nostrils, tuple(_tex_px([sign * 6.5, 42.0])), (_tex_mm(3.2) << SHIFT, _tex_mm(1.6) << SHIFT),
                    sign * 15.0, 0, 360, 0.8, -1, cv2.LINE_AA, SHIFT)
    _paint(weights, nostrils, "dark", 0.6)
    return weights


def _texel_grid(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Mean-head y (rows, 1) and x (1, cols) in mm at the texel centres."""
    rows = (np.arange(shape[0]) + 0.5) * TEX_MM + TEX_Y[0]
    cols = (np.arange(shape[1]) + 0.5) * TEX_MM + TEX_X[0]
    return rows[:, None], cols[None, :]


def hair_depth_mm(style: HairStyle, x: np.ndarray, y: np.ndarray, back: bool) -> np.ndarray:
    """How far (mm) mean-head points (x, y) lie inside the hair a style paints on the face side or
    the back of the head, before the bald crown and the skin by the ears are cut out (negative: outside)."""
    if back:
        return style.back_bottom - 0.006 * x**2 - y
    return np.where(np.abs(x) >= SIDE_HAIR_X, style.side_bottom - y, style.front_top + 0.009 * x**2 - y)


def _front_texture(features: np.ndarray, style: HairStyle) -> np.ndarray:
    """Region weights of the face side (z < 0), indexed by (y, x) of the mean head."""
    weights = features.copy()
    y, x = _texel_grid(weights.shape[:2])
    beside = np.abs(x) >= SIDE_HAIR_X
    hair = hair_depth_mm(style, x, y, back=False) > 0
    if style.bald:
        hair &= beside & (y > BALD_TOP)
    _paint(weights, hair.astype(np.float32), "hair", 1.5)
    _paint(weights, (y > CLOTH_Y).astype(np.float32) * np.ones_like(x), "cloth", 1.0)
    return weights


def _back_texture(style: HairStyle) -> np.ndarray:
    """Region weights of the back of the head (z >= 0): hair, skin by the ears, clothing."""
    shape = _texture_shape()
    weights = np.zeros((*shape, len(REGIONS)), np.float32)
    weights[..., 0] = 1.0
    y, x = _texel_grid(shape)
    hair = hair_depth_mm(style, x, y, back=True) > 0
    if style.side_bottom < 40.0:  # short hair leaves the skin behind the ears bare
        hair &= ~((np.abs(x) > EAR_GAP_X) & (y > -8.0) & (y < 40.0))
    if style.bald:
        hair &= y > BALD_TOP
    _paint(weights, hair.astype(np.float32), "hair", 1.5)
    _paint(weights, (y > CLOTH_Y).astype(np.float32) * np.ones_like(x), "cloth", 1.0)
    return weights


def _beard(shape: tuple[int, int]) -> np.ndarray:
    """Front-side beard coverage (H, W) in 0..1: jaw, chin, under the chin and a moustache,
    never on the lips."""
    y, x = _texel_grid(shape)
    jaw = LANDMARKS_68[1:16, :2] * [1.08, 1.05]
    under_chin = np.array([[40.0, 128.0], [0.0, 134.0], [-40.0, 128.0]])
    inside = np.zeros(shape, np.float32)
    cv2.fillPoly(inside, [_tex_px(jaw), _tex_px(np.concatenate([jaw[3:12], under_chin]))], 1.0, cv2.LINE_AA, SHIFT)
    cheeks = y > 60.0 - 0.6 * np.maximum(np.abs(x) - 25.0, 0.0)
    moustache = (np.abs(x) < 26.0) & (y > 46.0) & (y < 62.0)
    lips = np.zeros(shape, np.float32)
    cv2.fillPoly(lips, [_tex_px(LANDMARKS_68[48:60])], 1.0, cv2.LINE_AA, SHIFT)
    beard = np.maximum(inside * cheeks, moustache.astype(np.float32))
    beard = cv2.GaussianBlur(beard, (0, 0), 2.0 / TEX_MM) * (1.0 - cv2.GaussianBlur(lips, (0, 0), 0.6 / TEX_MM))
    return np.stack([beard, np.zeros_like(beard)])


def _hair_styles(detailed: bool) -> tuple[HairStyle, ...]:
    return DETAILED_HAIR_STYLES if detailed else HAIR_STYLES


@functools.lru_cache(maxsize=4)
def _textures(detailed: bool = True, eye_opening: float = EYE_OPENING_SCALE,
              irises: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Region weights (styles, 2 sides, H, W, K), skin-detail noise (2 sides, H, W) and beard
    coverage (2 sides, H, W), built once per face variant."""
    shape = _texture_shape()
    features = _face_features(shape, detailed, eye_opening, irises)
    weights = np.stack([np.stack([_front_texture(features, style), _back_texture(style)])
                        for style in _hair_styles(detailed)])
    rng = np.random.default_rng(0)
    detail = sum(cv2.resize(rng.normal(size=(shape[0] // s, shape[1] // s)).astype(np.float32),
                            shape[::-1], interpolation=cv2.INTER_CUBIC) / np.sqrt(s)
                 for s in (2, 6, 18))
    detail = (np.stack([detail, detail[::-1]]) / np.std(detail)).astype(np.float32)
    beard = _beard(shape).astype(np.float32)
    for array in (weights, detail, beard):
        array.setflags(write=False)
    return weights, detail, beard


# --- appearance: identity, expression, colours and light ---------------------------------------

@dataclasses.dataclass(frozen=True)
class Appearance:
    """One person under one light: shape coefficients, region colours, lights.

    Keep one Appearance fixed and vary the pose to render a moving head (see render_view).
    """

    coefficients: np.ndarray  # (len(BASIS_NAMES),)
    colours: np.ndarray  # (len(REGIONS), 3) RGB albedo, 0..255
    ambient: np.ndarray  # (3,)
    light_dirs: np.ndarray  # (L, 3) camera frame, from the surface toward the light
    light_colours: np.ndarray  # (L, 3)
    specular: float
    shininess: float
    detail: float  # skin-detail noise amplitude (fraction of albedo)
    detail_shift: int  # where this person's skin detail starts in the noise texture
    hair_style: int  # index into _hair_styles(detailed)
    detailed: bool  # the detailed face textures (SynthConfig.detailed_face)
    beard: float  # beard opacity, 0 for none
    eye_opening: float = EYE_OPENING_SCALE  # SynthConfig.eye_opening (detailed face)
    gaze_jitter_deg: np.ndarray | None = None  # (2,) eyes turned toward the camera plus this; None: straight ahead
    face_layout: str = FACE_LAYOUT  # SynthConfig.face_layout
    neutral_mouth: bool = False  # SynthConfig.neutral_mouth
    warp_contour: bool = True  # SynthConfig.warp_contour
    hair_volume_mm: float = 0.0  # how far hair pushes the crown and the back of the head out
    hairline_shift_mm: float = 0.0  # how far the front hairline sits above the style's (negative: below)
    hairline_tilt_mm: float = 0.0  # how much higher it sits toward the temple at x > 0 (negative: lower)
    depth_scale: float = 1.0  # this face's depth over its layout's (SynthConfig.face_depth_scale)

    @property
    def face(self) -> tuple[str, bool, bool]:
        """Which mean head this person is drawn on: `head_mesh(*face)`."""
        return self.face_layout, self.neutral_mouth, self.warp_contour

    def model_points(self) -> np.ndarray:
        """This person's 68 landmarks in the head frame (mm): the mean face plus offsets."""
        mesh = head_mesh(*self.face)
        offsets = np.tensordot(self.coefficients, mesh.basis[:, mesh.landmark_index], axes=1)
        if self.depth_scale != 1.0:
            offsets = offsets + (self.depth_scale - 1.0) * mesh.depth_field[mesh.landmark_index]
        return mesh.vertices[mesh.landmark_index] + offsets


SKIN_TONES = np.array([[240, 205, 185], [225, 180, 150], [198, 150, 115], [160, 110, 80],
                       [120, 80, 58], [85, 58, 42]], np.float64)
HAIR_COLOURS = np.array([[25, 20, 18], [60, 40, 28], [110, 75, 45], [200, 165, 110],
                         [150, 70, 35], [170, 170, 165], [45, 35, 30]], np.float64)
BEARD_PROBABILITY = 0.2
FEATURE_REGIONS = ("brow", "lips", "dark")  # what SynthConfig.feature_contrast fades toward the skin
FEATURE_INDEX = [REGIONS.index(name) for name in FEATURE_REGIONS]
IRIS_COLOURS = np.array([[70, 45, 25], [60, 90, 120], [80, 100, 60], [40, 28, 20]], np.float64)


def _lerp_palette(rng: np.random.Generator, palette: np.ndarray) -> np.ndarray:
    """A colour between two neighbouring palette entries."""
    i = rng.integers(len(palette) - 1)
    return palette[i] + rng.uniform() * (palette[i + 1] - palette[i])


def _hair_style(config: SynthConfig, rng: np.random.Generator) -> int:
    """Any style alike; with `fringe_probability` > 0 (an extra draw) a fringe style that often."""
    style = int(rng.integers(len(_hair_styles(config.detailed_face))))
    if config.fringe_probability > 0 and config.detailed_face and rng.uniform() < config.fringe_probability:
        style = FRINGE_STYLES[style % len(FRINGE_STYLES)]
    return style


def sample_appearance(config: SynthConfig, rng: np.random.Generator) -> Appearance:
    """Draw a random person, expression and lighting."""
    coefficients = (rng.normal(size=len(BASIS_NAMES)) * IDENTITY_SIGMA * config.identity_scale
                    + rng.uniform(-0.4, 1.0, len(BASIS_NAMES)).clip(0.0) * EXPRESSION_MAX * config.expression_scale)
    coefficients[BASIS_NAMES.index("brow_raise")] -= config.brow_lowering_mm
    skin = _lerp_palette(rng, SKIN_TONES) * rng.uniform(0.92, 1.08, 3)
    hair = _lerp_palette(rng, HAIR_COLOURS) * rng.uniform(0.85, 1.15)
    colours = np.stack([  # in REGIONS order
        skin,
        hair,
        (0.2 * skin + 0.8 * np.minimum(hair, 70.0)) if config.detailed_face else (0.35 * skin + 0.65 * np.minimum(hair, 90.0)),
        skin * np.array([0.85, 0.55, 0.55]) * rng.uniform(0.8, 1.05),
        np.array([28.0, 16.0, 16.0]) * rng.uniform(0.7, 1.3),
        np.array([225.0, 218.0, 208.0]) * rng.uniform(0.8, 1.0),
        _lerp_palette(rng, IRIS_COLOURS),
        rng.uniform(20.0, 235.0, 3),
    ])
    n_lights = int(rng.integers(1, 4))
    azimuth = rng.uniform(-np.pi, np.pi, n_lights)
    if config.light_from_above:  # the upper half only (y points down): no draw added, streams stay aligned
        azimuth = -np.abs(azimuth)
    elevation = rng.uniform(0.15, 1.2, n_lights)  # angle from the viewing axis
    light_dirs = np.stack([np.sin(elevation) * np.cos(azimuth), np.sin(elevation) * np.sin(azimuth),
                           -np.cos(elevation)], axis=-1)
    tint = rng.uniform(0.75, 1.0, (n_lights, 3))
    light_colours = tint / tint.max(axis=1, keepdims=True) * rng.uniform(0.5, 1.0, (n_lights, 1))
    light_colours *= rng.uniform(0.8, 1.1) / light_colours.sum(axis=0).max()
    gazing = config.eye_gaze == "camera"
    appearance = Appearance(  # the keywords' order is the order of the draws
        coefficients=coefficients, colours=colours, ambient=rng.uniform(0.2, 0.45) * rng.uniform(0.85, 1.0, 3),
        light_dirs=light_dirs, light_colours=light_colours, specular=rng.uniform(0.0, 0.25),
        shininess=rng.uniform(8.0, 30.0), detail=rng.uniform(0.01, 0.05), detail_shift=int(rng.integers(1 << 20)),
        hair_style=_hair_style(config, rng), detailed=config.detailed_face, eye_opening=config.eye_opening,
        beard=float(rng.uniform(0.35, 0.95)) if rng.uniform() < BEARD_PROBABILITY else 0.0,
        gaze_jitter_deg=_child(rng).normal(0.0, GAZE_JITTER_DEG, 2) if gazing else None,
        face_layout=config.face_layout, neutral_mouth=config.neutral_mouth, warp_contour=config.warp_contour)
    if config.hair_volume_mm[1] > 0 and not _hair_styles(config.detailed_face)[appearance.hair_style].bald:
        appearance = dataclasses.replace(appearance, hair_volume_mm=float(_child(rng).uniform(*config.hair_volume_mm)))
    if config.feature_contrast != (1.0, 1.0):
        contrast = _child(rng).uniform(*config.feature_contrast)
        colours = appearance.colours.copy()
        colours[FEATURE_INDEX] = skin + contrast * (colours[FEATURE_INDEX] - skin)
        appearance = dataclasses.replace(appearance, colours=colours)
    if config.face_depth_scale != (1.0, 1.0):
        appearance = dataclasses.replace(appearance, depth_scale=float(_child(rng).uniform(*config.face_depth_scale)))
    if config.hairline_shift_mm > 0:
        shift = float(_child(rng).uniform(-config.hairline_shift_mm, config.hairline_shift_mm))
        appearance = dataclasses.replace(appearance, hairline_shift_mm=shift)
    if config.hairline_tilt_mm > 0:
        tilt = float(_child(rng).uniform(-config.hairline_tilt_mm, config.hairline_tilt_mm))
        appearance = dataclasses.replace(appearance, hairline_tilt_mm=tilt)
    return appearance


def _child(rng: np.random.Generator) -> np.random.Generator:
    """A stream of its own for an optional draw (the eyes' spread, hair volume, the hairline):
    spawning draws nothing from `rng`, so the people, poses and cameras stay those drawn without
    the option and the variants are paired."""
    return np.random.default_rng(rng.bit_generator.seed_seq.spawn(1)[0])


# --- rasterising ---------------------------------------------------------------------------------

def _shade_vertices(appearance: Appearance, points_cam: np.ndarray, normals_cam: np.ndarray) -> np.ndarray:
    """Per-vertex light (V, 4): diffuse RGB (ambient + Lambert) and a white specular highlight."""
    light = np.zeros((len(points_cam), 4))
    light[:, :3] = appearance.ambient
    to_camera = _unit(-points_cam)
    for direction, colour in zip(appearance.light_dirs, appearance.light_colours):
        lambert = np.clip(normals_cam @ direction, 0.0, None)
        light[:, :3] += lambert[:, None] * colour
        half = _unit(to_camera + direction)
        highlight = np.clip(np.einsum("ij,ij->i", normals_cam, half), 0.0, None) ** appearance.shininess
        light[:, 3] += (appearance.specular * 255.0 * colour.mean()) * highlight * (lambert > 0)
    return light


def _visible_far_to_near(pixels: np.ndarray, points_cam: np.ndarray, triangles: np.ndarray,
                         image_shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the triangles facing the camera and touching the image, sorted far to
    near, and their corners as fixed-point OpenCV polygons (n, 3, 2)."""
    height, width = image_shape
    corners = np.take(pixels, triangles, axis=0)  # np.take: gathering rows by fancy indexing is ~10x slower
    x0, x1, x2 = corners[..., 0].T
    y0, y1, y2 = corners[..., 1].T
    # Outward triangles seen from the front wind clockwise on screen (y down): negative area.
    facing = (x1 - x0) * (y2 - y0) < (y1 - y0) * (x2 - x0)
    # Corner min/max written out: numpy reductions over a length-3 axis are slow.
    inside = ((np.maximum(np.maximum(x0, x1), x2) >= -1) & (np.minimum(np.minimum(x0, x1), x2) <= width)
              & (np.maximum(np.maximum(y0, y1), y2) >= -1) & (np.minimum(np.minimum(y0, y1), y2) <= height))
    depth = np.take(points_cam[:, 2], triangles)
    near = np.minimum(np.minimum(depth[:, 0], depth[:, 1]), depth[:, 2])
    drawn = np.flatnonzero(facing & inside & (near > NEAR_MM))
    far = depth[drawn, 0] + depth[drawn, 1] + depth[drawn, 2]
    drawn = drawn[np.argsort(-far, kind="stable")]
    corners = np.take(corners, drawn, axis=0)
    polygons = np.round((corners - 0.5) * (1 << SHIFT)).astype(np.int32)  # OpenCV: centres at integers
    return drawn, polygons


def _triangle_ids(pixels: np.ndarray, points_cam: np.ndarray, triangles: np.ndarray,
                  image_shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Painter's algorithm into an id buffer: (H, W) int32 (0 = background, k + 1 = triangle
    drawn[k]) and `drawn`, the indices of the drawn triangles, far to near."""
    drawn, polygons = _visible_far_to_near(pixels, points_cam, triangles, image_shape)
    ids = np.zeros(image_shape, np.int32)
    for k, polygon in enumerate(polygons):
        cv2.fillConvexPoly(ids, polygon, k + 1, cv2.LINE_8, SHIFT)
    return ids, drawn


def _draw_torso(image: np.ndarray, appearance: Appearance, triangles: np.ndarray, points_cam: np.ndarray,
                pixels: np.ndarray, light: np.ndarray) -> None:
    """The shoulders, flat-shaded in the clothing colour straight into `image`: large, plain
    and behind the head, they need no texture or per-pixel interpolation."""
    drawn, polygons = _visible_far_to_near(pixels, points_cam, triangles, image.shape[:2])
    corner_light = sum(np.take(light, triangles[drawn, k], axis=0) for k in range(3)) / 3.0
    cloth = appearance.colours[REGIONS.index("cloth")]
    colours = np.clip(cloth * corner_light[:, :3] + corner_light[:, 3:], 0.0, 255.0)
    for polygon, colour in zip(polygons, colours.tolist()):
        cv2.fillConvexPoly(image, polygon, colour, cv2.LINE_8, SHIFT)


def _attribute_planes(corners_px: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per-triangle affine planes (3, T, C): value = x * P[0] + y * P[1] + P[2] inside the
    triangle with corner pixels (T, 3, 2) and corner values (T, 3, C); degenerate
    triangles get a constant plane."""
    (x0, y0), (x1, y1), (x2, y2) = (corners_px[:, k, :, None].transpose(1, 0, 2) for k in range(3))
    v0, dv1, dv2 = values[:, 0], values[:, 1] - values[:, 0], values[:, 2] - values[:, 0]
    det = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
    det = np.where(np.abs(det) < 1e-9, np.inf, det)
    ddx = (dv1 * (y2 - y0) - dv2 * (y1 - y0)) / det
    ddy = (dv2 * (x1 - x0) - dv1 * (x2 - x0)) / det
    return np.stack([ddx, ddy, v0 - ddx * x0 - ddy * y0])


def _matmul_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b in blocks of MATMUL_ROWS rows: OpenBLAS runs large products on several
    threads, which for these thin matrices is up to 40x slower on a busy machine."""
    return np.concatenate([a[start:start + MATMUL_ROWS] @ b for start in range(0, max(len(a), 1), MATMUL_ROWS)])


def _eye_centres(points: np.ndarray) -> np.ndarray:
    """(2, 3) centres of the two eyes: the mean of each eye's four lid points."""
    return np.stack([points[eye][[1, 2, 4, 5]].mean(axis=0) for eye in (slice(36, 42), slice(42, 48))])


EYE_CENTRES_MM = _eye_centres(LANDMARKS_68)  # on the model's head, where the textures paint the eyes
EYES_MIDPOINT_MM = {layout: _eye_centres(points).mean(axis=0) for layout, points in FACE_LAYOUTS.items()}


def iris_offset_mm(appearance: Appearance, quat: np.ndarray, translation_mm: np.ndarray) -> np.ndarray | None:
    """Where the irises sit in the eye openings (x, y mm on the face, y down) when the eyes turn
    toward the camera; None for eyes painted straight ahead."""
    if appearance.gaze_jitter_deg is None:
        return None
    rotation = quat_to_matrix(quat)
    eyes = EYES_MIDPOINT_MM[appearance.face_layout] @ rotation.T + np.asarray(translation_mm, float)
    to_camera = -eyes @ rotation  # in the head frame, where the face looks toward -z
    turn = np.degrees([np.arctan2(to_camera[0], -to_camera[2]), np.arctan2(to_camera[1], np.hypot(*to_camera[[0, 2]]))])
    turn = np.clip(turn, -np.array(EYE_TURN_LIMIT_DEG), EYE_TURN_LIMIT_DEG) + appearance.gaze_jitter_deg
    return EYEBALL_RADIUS_MM * np.sin(np.radians(turn))


def _disc(distance_mm: np.ndarray, radius_mm: float) -> np.ndarray:
    """A disc's coverage with a soft edge about one texel wide."""
    return np.clip((radius_mm - distance_mm) / TEX_MM + 0.5, 0.0, 1.0)


def _turn_eyes(rows: np.ndarray, x_mm: np.ndarray, y_mm: np.ndarray, offset_mm: np.ndarray) -> np.ndarray:
    """Region weights rows (n, K) with the irises and pupils painted `offset_mm` from the eye
    centres: the iris takes the white of the eye only (lids, lashes and shadows stay on top)."""
    sclera, iris, dark = (REGIONS.index(name) for name in ("sclera", "iris", "dark"))
    centres = EYE_CENTRES_MM[(x_mm > 0).astype(np.int64), :2] + offset_mm
    distance = np.hypot(x_mm - centres[:, 0], y_mm - centres[:, 1])
    rows = rows.copy()
    to_iris = _disc(distance, IRIS_RADIUS_MM) * rows[:, sclera]
    rows[:, sclera] -= to_iris
    rows[:, iris] += to_iris
    to_pupil = _disc(distance, PUPIL_RADIUS_MM) * rows[:, iris]
    rows[:, iris] -= to_pupil
    rows[:, dark] += to_pupil
    return rows


def _albedo(appearance: Appearance, row: np.ndarray, col: np.ndarray, back: np.ndarray,
            iris_offset: np.ndarray | None = None) -> np.ndarray:
    """Albedo (3, n) at texture positions (rows, columns, back-side flags) from this
    person's hair-style texture and the skin-detail noise; the irises `iris_offset` mm from
    the eye centres when the eyes are turned (`iris_offset_mm`)."""
    weights, detail, beard = _textures(appearance.detailed, appearance.eye_opening, iris_offset is None)
    height, width = weights.shape[2:4]
    if appearance.hairline_shift_mm or appearance.hairline_tilt_mm:
        row = hairline_rows(row, col, back, appearance.hairline_shift_mm, appearance.hairline_tilt_mm)
    exact_row, exact_col = row, col  # unrounded texel coordinates, for the turned eyes
    row = np.clip(row.astype(np.int32), 0, height - 1)
    col = np.clip(col.astype(np.int32), 0, width - 1)
    texel = (back * np.int32(height) + row) * np.int32(width) + col
    style = weights[appearance.hair_style].reshape(-1, len(REGIONS))
    colours = appearance.colours.astype(np.float32)
    rows = np.take(style, texel, axis=0)
    if iris_offset is not None:
        eye = np.flatnonzero(rows[:, REGIONS.index("sclera")] > 0)
        x_mm = exact_col[eye] * np.float32(TEX_MM) + np.float32(TEX_X[0])
        y_mm = exact_row[eye] * np.float32(TEX_MM) + np.float32(TEX_Y[0])
        rows[eye] = _turn_eyes(rows[eye], x_mm, y_mm, iris_offset)
    albedo = _matmul_rows(rows, colours)
    if appearance.beard > 0:
        coverage = appearance.beard * np.take(beard.reshape(-1), texel)[:, None]
        albedo += coverage * (colours[REGIONS.index("hair")] - albedo)
    grain = np.take(detail.reshape(-1), texel + appearance.detail_shift, mode="wrap")
    return albedo.T * (1.0 + appearance.detail * grain)  # channels first: broadcasting along a length-3 axis is slow


def hairline_rows(row: np.ndarray, col: np.ndarray, back: np.ndarray, shift_mm: float,
                  tilt_mm: float = 0.0) -> np.ndarray:
    """Texture rows that move the face side's paint above the brows up by `shift_mm` (down when
    negative), plus `tilt_mm` times x / SIDE_HAIR_X (clipped to +-1) for a tilted hairline: the
    hairline and the forehead above HAIRLINE_FIXED_Y, the shift growing to its full size over
    HAIRLINE_RAMP_MM, so the brows and everything below stay where they are."""
    y_mm = row * TEX_MM + TEX_Y[0]
    weight = _smoothstep(HAIRLINE_FIXED_Y, HAIRLINE_FIXED_Y - HAIRLINE_RAMP_MM, y_mm) * (back == 0)
    shift = np.float32(shift_mm / TEX_MM)
    if tilt_mm:
        across = np.clip((col * TEX_MM + TEX_X[0]) / SIDE_HAIR_X, -1.0, 1.0)
        shift = shift + np.float32(tilt_mm / TEX_MM) * across.astype(np.float32)
    return row + shift * weight.astype(np.float32)


@functools.lru_cache(maxsize=4)
def _mesh_texels(layout: str = "model", neutral_mouth: bool = False,
                 warp_contour: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Texture (row, column) of every vertex of `head_mesh(layout, neutral_mouth, warp_contour)` (V, 2),
    and each triangle's side (T,) int32: 1 when its centroid is behind the head centre (the back texture)."""
    mesh = head_mesh(layout, neutral_mouth, warp_contour)
    positions = mesh.texture_vertices
    texel = np.stack([(positions[:, 1] - TEX_Y[0]) / TEX_MM, (positions[:, 0] - TEX_X[0]) / TEX_MM], axis=-1)
    back = (positions[mesh.triangles, 2].mean(axis=1) >= 0).astype(np.int32)  # head triangles only
    return texel, back


def render_view(appearance: Appearance, quat: np.ndarray, translation_mm: np.ndarray, camera: np.ndarray,
                image_size: tuple[int, int], background: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Render one head at a given pose into a frame; the public entry point for videos.

    appearance: the person, expression and light (`sample_appearance`); keep it fixed
        across frames for a moving head.
    quat: (x, y, z, w) rotation of head-frame points into the camera frame.
    translation_mm: (3,) head centre in the camera frame (z > 0, in front of the camera).
    camera: (fx, fy, cx, cy) in pixels of this frame.
    image_size: (width, height).
    background: optional RGB uint8 (height, width, 3); mid grey when None.

    Returns the RGB uint8 frame and the 68 landmarks (68, 2) in pixels (pixel-edge
    convention): `project(transform(appearance.model_points(), quat, t), camera)`.
    No blur, noise or occluder is added here: see `degrade` and `occlude`.
    """
    width, height = image_size
    if background is not None and background.shape != (height, width, 3):
        raise ValueError(f"background has shape {background.shape}, expected {(height, width, 3)}")
    image = np.full((height, width, 3), 128, np.uint8) if background is None else background.astype(np.uint8)
    mesh = head_mesh(*appearance.face)
    points_cam, normals_cam = pose_mesh(mesh, appearance, quat, translation_mm)
    pixels = project(points_cam, camera)
    _draw_head(image, appearance, mesh, points_cam, pixels, normals_cam, iris_offset_mm(appearance, quat, translation_mm))
    return image, pixels[mesh.landmark_index]


def pose_mesh(mesh: HeadMesh, appearance: Appearance, quat: np.ndarray,
              translation_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Camera-frame vertices and normals (V, 3) of the posed head and shoulders.

    The head (with this person's offsets) moves rigidly with (quat, translation). The
    body shares the point NECK_PIVOT with the head but turns by only TORSO_FOLLOW of the
    head rotation, so it stays roughly upright; the neck blends between the two poses
    (linear skinning), so a strongly turned head never swings its collar across the face.
    """
    translation = np.asarray(translation_mm, float)
    rotation = quat_to_matrix(quat)
    body_rotation = rotvec_to_matrix(TORSO_FOLLOW * quat_to_rotvec(quat))
    vertices = mesh.vertices + np.tensordot(appearance.coefficients, mesh.basis, axes=1)
    if appearance.hair_volume_mm:
        vertices += appearance.hair_volume_mm * mesh.hair_field[appearance.hair_style]
    mean_normals = mesh.normals
    if appearance.depth_scale != 1.0:  # a deeper or flatter face: its own normals, so its shading follows
        vertices += (appearance.depth_scale - 1.0) * mesh.depth_field
        mean_normals = _deformed_normals(appearance.face, vertices)
    head = vertices @ rotation.T + translation
    body = (vertices - NECK_PIVOT) @ body_rotation.T + (NECK_PIVOT @ rotation.T + translation)
    weight = mesh.body_weight[:, None]
    normals = (1.0 - weight) * (mean_normals @ rotation.T) + weight * (mean_normals @ body_rotation.T)
    return (1.0 - weight) * head + weight * body, _unit(normals)


@functools.lru_cache(maxsize=4)
def _surface(face: tuple[str, bool, bool]) -> tuple[np.ndarray, sparse.csr_matrix]:
    """The triangles of `head_mesh(*face)` and which triangles meet at each vertex (V, T)."""
    mesh = head_mesh(*face)
    triangles = np.concatenate([mesh.triangles, mesh.torso_triangles])
    corners = sparse.csr_matrix((np.ones(triangles.size), (triangles.ravel(), np.repeat(np.arange(len(triangles)), 3))),
                                shape=(len(mesh.vertices), len(triangles)))
    return triangles, corners


def _deformed_normals(face: tuple[str, bool, bool], vertices: np.ndarray) -> np.ndarray:
    """Vertex normals (area-weighted, as `_vertex_normals`) of `head_mesh(*face)` moved to
    `vertices`; landmarks that ride off the surface keep their mean-head normals."""
    triangles, corners = _surface(face)
    normals = corners @ _triangle_normals(vertices, triangles)
    off_surface = np.linalg.norm(normals, axis=1) == 0
    normals[off_surface] = head_mesh(*face).normals[off_surface]
    return _unit(normals)


def _draw_head(image: np.ndarray, appearance: Appearance, mesh: HeadMesh, points_cam: np.ndarray,
               pixels: np.ndarray, normals_cam: np.ndarray, iris_offset: np.ndarray | None = None) -> None:
    """Rasterise the posed shoulders, then the head, over `image` (RGB uint8, in place)."""
    light = _shade_vertices(appearance, points_cam, normals_cam)
    _draw_torso(image, appearance, mesh.torso_triangles, points_cam, pixels, light)
    ids, drawn = _triangle_ids(pixels, points_cam, mesh.triangles, image.shape[:2])
    flat_ids = ids.reshape(-1)
    covered = np.flatnonzero(flat_ids)
    if not covered.size:
        return
    texel, back = _mesh_texels(*appearance.face)
    corners = np.take(mesh.triangles, drawn, axis=0)
    vertex_values = np.concatenate([texel, light], axis=1)
    # Channels first, (3, C, T) and (C, n): broadcasting along a length-C axis is slow.
    planes = _attribute_planes(np.take(pixels, corners, axis=0), np.take(vertex_values, corners, axis=0))
    planes = np.ascontiguousarray(planes.transpose(0, 2, 1), dtype=np.float32)
    triangle = np.take(flat_ids, covered) - 1
    width = ids.shape[1]
    x = (covered % width).astype(np.float32) + np.float32(0.5)
    y = (covered // width).astype(np.float32) + np.float32(0.5)
    values = np.take(planes[2], triangle, axis=1)
    values += x * np.take(planes[0], triangle, axis=1)
    values += y * np.take(planes[1], triangle, axis=1)
    albedo = _albedo(appearance, values[0], values[1], np.take(back[drawn], triangle), iris_offset)
    colour = np.clip(albedo * values[2:5] + values[5], 0.0, 255.0).astype(np.uint8)
    flat_image, red = image.reshape(-1), covered * 3
    for channel in range(3):  # one channel at a time: assigning (n, 3) rows is ~4x slower
        flat_image[red + channel] = colour[channel]


# --- backgrounds and image degradations --------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _noise_bank() -> np.ndarray:
    """A fixed unit Gaussian noise image; random windows of it are the sensor noise."""
    return np.random.default_rng(1).normal(size=(NOISE_BANK_SIZE, NOISE_BANK_SIZE, 3)).astype(np.float32)


def _noise_window(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A random (height, width, 3) window of the noise bank (tiled for large images)."""
    bank = _noise_bank()
    if height > NOISE_BANK_SIZE or width > NOISE_BANK_SIZE:
        bank = np.tile(bank, (-(-height // NOISE_BANK_SIZE), -(-width // NOISE_BANK_SIZE), 1))
    y0 = int(rng.integers(bank.shape[0] - height + 1))
    x0 = int(rng.integers(bank.shape[1] - width + 1))
    return bank[y0:y0 + height, x0:x0 + width]


@functools.lru_cache(maxsize=4)
def _background_files(directory: str) -> tuple[Path, ...]:
    files = tuple(sorted(p for p in Path(directory).rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS))
    if not files:
        raise PosenetError(f"{directory}: no background images ({', '.join(IMAGE_EXTENSIONS)}) found")
    return files


@functools.lru_cache(maxsize=64)
def _load_background(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise PosenetError(f"{path}: background image cannot be decoded")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _photo_background(rng: np.random.Generator, directory: str, width: int, height: int) -> np.ndarray:
    """A random crop of a random image of `directory`, resized to (width, height)."""
    files = _background_files(directory)
    photo = _load_background(files[rng.integers(len(files))])
    scale = rng.uniform(0.3, 1.0)
    crop_w = max(8, int(photo.shape[1] * scale))
    crop_h = min(photo.shape[0], max(8, int(crop_w * height / width)))
    x0 = int(rng.integers(photo.shape[1] - crop_w + 1))
    y0 = int(rng.integers(photo.shape[0] - crop_h + 1))
    return cv2.resize(photo[y0:y0 + crop_h, x0:x0 + crop_w], (width, height), interpolation=cv2.INTER_AREA)


def _draw_random_shapes(rng: np.random.Generator, image: np.ndarray, count: int) -> None:
    """Filled rectangles, ellipses, polygons and thick lines in random colours (in place)."""
    height, width = image.shape[:2]
    for _ in range(count):
        colour = tuple(float(c) for c in rng.uniform(0, 255, 3))
        x, y = int(rng.integers(width)), int(rng.integers(height))
        size = int(rng.uniform(0.05, 0.5) * max(width, height))
        kind = rng.integers(4)
        if kind == 0:
            cv2.rectangle(image, (x, y), (x + size, y + int(size * rng.uniform(0.2, 2))), colour, -1)
        elif kind == 1:
            cv2.ellipse(image, (x, y), (size // 2 + 1, int(size * rng.uniform(0.1, 0.6)) + 1),
                        float(rng.uniform(0, 180)), 0, 360, colour, -1, cv2.LINE_AA)
        elif kind == 2:
            polygon = np.array([x, y]) + rng.normal(0, size / 2, (int(rng.integers(3, 7)), 2))
            cv2.fillPoly(image, [polygon.astype(np.int32)], colour, cv2.LINE_AA)
        else:
            end = (x + int(rng.normal(0, size)), y + int(rng.normal(0, size)))
            cv2.line(image, (x, y), end, colour, int(rng.integers(1, 12)), cv2.LINE_AA)


def _mute(rng: np.random.Generator, image: np.ndarray, muted: bool) -> np.ndarray:
    """Most rooms are dull and behind the focus: desaturate, flatten and (often) blur.
    The random numbers are drawn either way, so muted and plain renders share their streams."""
    saturation, contrast = rng.uniform(*MUTED_SATURATION), rng.uniform(*MUTED_CONTRAST)
    blur = rng.uniform(*MUTED_BLUR_PX) if rng.uniform() < MUTED_BLUR_SHARE else 0.0
    if not muted:
        return image
    pixels = image.astype(np.float32)
    grey = _grey(pixels)
    _scale_about(pixels, cv2.merge([grey, grey, grey]), saturation)
    _scale_about(pixels, pixels.mean(), contrast)
    if blur:
        pixels = cv2.GaussianBlur(pixels, (0, 0), blur)
    return np.clip(pixels, 0, 255, out=pixels).astype(np.uint8)


def _grey(pixels: np.ndarray) -> np.ndarray:
    """The channel mean (H, W) of a float32 (H, W, 3) image; summed channel by channel, as
    numpy's reduction over a length-3 axis is some 15x slower (the same sums: pixels are integers)."""
    return (pixels[..., 0] + pixels[..., 1] + pixels[..., 2]) / np.float32(3)


def _scale_about(pixels: np.ndarray, centre: np.ndarray | np.float32, factor: float) -> None:
    """pixels = centre + factor * (pixels - centre), in place (float32); `centre` a scalar or
    an array of the same shape (broadcasting along a length-3 axis is slow)."""
    pixels -= centre
    pixels *= np.float32(factor)
    pixels += centre


def make_background(rng: np.random.Generator, width: int, height: int, directory: str | None = None,
                    muted: bool = False) -> np.ndarray:
    """A random RGB uint8 background: a photo crop (when `directory` is given, 80 %),
    or a procedural mix of a gradient, smooth colour noise and random shapes (`muted`: dulled
    and often out of focus, see `_mute`)."""
    if directory and rng.uniform() < 0.8:
        return _photo_background(rng, directory, width, height)
    corners = rng.uniform(0, 255, (2, 2, 3)).astype(np.float32)
    image = cv2.resize(corners, (width, height), interpolation=cv2.INTER_LINEAR)
    if rng.uniform() < 0.6:
        cells = int(rng.integers(2, 12))
        blobs = rng.uniform(-1, 1, (cells, max(2, cells * width // height), 3)).astype(np.float32)
        image += float(rng.uniform(20, 90)) * cv2.resize(blobs, (width, height), interpolation=cv2.INTER_CUBIC)
    image = np.clip(image, 0, 255).astype(np.uint8)
    _draw_random_shapes(rng, image, int(rng.integers(0, 14)))
    return _mute(rng, image, muted)


MUTED_SATURATION = (0.15, 0.6)  # share of the colour kept
MUTED_CONTRAST = (0.4, 0.85)  # share of the contrast kept
MUTED_BLUR_SHARE = 0.6
MUTED_BLUR_PX = (1.0, 4.0)  # Gaussian sigma at the output size
GLASSES_RIM_MM = (25.0, 16.0)  # semi-axes of each rim
GLASSES_OFFSET_MM = np.array([0.0, 1.0, -12.0])  # rim centre from the eye centre (in front of it)
GLASSES_HINGE_MM = np.array([70.0, -2.0, 0.0])  # where a temple arm meets the head (x mirrored)


def _glasses(model_points: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Spectacles in the head frame (mm): (polyline (P, 3), outward normal) for the two
    rims, the bridge and the two temple arms; a part is drawn when its normal faces the camera."""
    angles = np.linspace(0.0, 2.0 * np.pi, 25)
    ellipse = np.stack([GLASSES_RIM_MM[0] * np.cos(angles), GLASSES_RIM_MM[1] * np.sin(angles), 0 * angles], -1)
    parts, inner = [], []
    for eye, side in ((slice(36, 42), -1.0), (slice(42, 48), 1.0)):
        center = model_points[eye].mean(axis=0) + GLASSES_OFFSET_MM
        rim = center + ellipse
        parts.append((rim, _unit(np.array([0.35 * side, 0.0, -1.0]))))
        inner.append(rim[np.argmin(side * rim[:, 0])])
        outer = rim[np.argmax(side * rim[:, 0])]
        parts.append((np.stack([outer, GLASSES_HINGE_MM * [side, 1.0, 1.0] + [0.0, center[1], 0.0]]),
                      _unit(np.array([side, 0.0, -0.3]))))
    bridge = np.stack([inner[0], (inner[0] + inner[1]) / 2.0 - [0.0, 4.0, 2.0], inner[1]])
    parts.append((bridge, np.array([0.0, 0.0, -1.0])))
    return parts


def draw_glasses(rng: np.random.Generator, image: np.ndarray, model_points: np.ndarray, quat: np.ndarray,
                 translation_mm: np.ndarray, camera: np.ndarray) -> None:
    """Spectacle frames posed with the head and projected over `image` (in place).

    Only parts whose outward normal faces the camera are drawn, so the far rim and arm of
    a turned head stay hidden. Labels are unchanged: glasses only occlude.
    """
    rotation = quat_to_matrix(quat)
    translation = np.asarray(translation_mm, float)
    thickness_mm = rng.uniform(1.5, 4.0)
    colour = tuple(float(c) for c in (rng.uniform(0, 60, 3) if rng.uniform() < 0.7 else rng.uniform(0, 255, 3)))
    for polyline, normal in _glasses(model_points):
        points = polyline @ rotation.T + translation
        if (rotation @ normal) @ points.mean(axis=0) >= 0:
            continue
        thickness = max(1, int(round(camera[0] * thickness_mm / points[:, 2].mean())))
        pixels = np.round((project(points, camera) - 0.5) * (1 << SHIFT)).astype(np.int32)
        cv2.polylines(image, [pixels], False, colour, thickness, cv2.LINE_AA, SHIFT)


def occlude(rng: np.random.Generator, image: np.ndarray, landmarks: np.ndarray) -> None:
    """Cover part of the face with a random shape (a hand, a cup, a microphone...), in place."""
    lo, hi = landmarks.min(axis=0), landmarks.max(axis=0)
    face = float(max(hi - lo))
    center = landmarks[rng.integers(len(landmarks))] + rng.normal(0, 0.1 * face, 2)
    axes = (face * rng.uniform(0.12, 0.45, 2)).astype(int) + 1
    colour = tuple(float(c) for c in rng.uniform(0, 255, 3))
    if rng.uniform() < 0.5:
        cv2.ellipse(image, tuple(int(v) for v in center), tuple(int(a) for a in axes),
                    float(rng.uniform(0, 180)), 0, 360, colour, -1, cv2.LINE_AA)
    else:
        angles = np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(4, 9))))
        polygon = center + np.stack([np.cos(angles), np.sin(angles)], -1) * axes * rng.uniform(0.6, 1.2, (len(angles), 1))
        cv2.fillPoly(image, [polygon.astype(np.int32)], colour, cv2.LINE_AA)


def degrade(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Camera effects on an RGB uint8 image: per-channel gain, offset and gamma, blur (half
    the time), sensor noise and JPEG artefacts (a quarter of the time). Labels are unchanged."""
    height, width = image.shape[:2]
    levels = np.arange(256)[:, None] / 255.0
    curve = 255.0 * levels ** rng.uniform(0.8, 1.25) * rng.uniform(0.8, 1.2, 3) + rng.uniform(-20, 20)
    out = cv2.LUT(image, np.clip(curve, 0, 255).astype(np.uint8).reshape(256, 1, 3))
    if rng.uniform() < 0.5:
        out = cv2.GaussianBlur(out, (0, 0), float(rng.uniform(0.4, 1.6)))
    out = cv2.addWeighted(out, 1.0, _noise_window(rng, height, width), float(rng.uniform(0.0, 8.0)), 0.0,
                          dtype=cv2.CV_8U)
    if rng.uniform() < 0.25:
        ok, buffer = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(20, 70))])
        out = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
    return out


# --- one labelled sample -----------------------------------------------------------------------------

def _truncated_normal(rng: np.random.Generator, sigma: float, limit: float, centre: float = 0.0) -> float:
    """Normal(centre, sigma) restricted to [-limit, limit] (redrawn, never clipped: no pile-up at the limits)."""
    for _ in range(64):
        value = rng.normal(centre, sigma)
        if abs(value) <= limit:
            return float(value)
    return float(rng.uniform(-limit, limit))


def sample_pose(config: SynthConfig, rng: np.random.Generator) -> np.ndarray:
    """A quaternion whose three drawn angles (degrees) stay within the ranges.

    "uniform": AFLW's yaw, pitch and roll, each uniform in +-range (the labels stay in the ranges).
    "realistic" (the default): as people are photographed, mostly near frontal: pitch and roll
    normal (`pose_sigma_deg`), yaw normal too except a REALISTIC_WIDE_YAW share drawn uniformly over
    the whole range, so profiles out to +-90 stay common enough to learn; `wide_pitch_share`
    (renderer v6: REALISTIC_WIDE_PITCH) does the same for pitch. With `neck_pose` (renderer v8)
    these are the neck's angles (`geometry.neck_to_quat`), whose AFLW labels may leave the ranges.
    The spreads are set from the published pose statistics of face datasets in general, not
    fitted to any evaluation set.
    """
    limits = np.array([config.yaw_range, config.pitch_range, config.roll_range])
    if config.pose_distribution == "uniform":
        yaw, pitch, roll = rng.uniform(-1, 1, 3) * limits
    else:
        wide = rng.uniform() < REALISTIC_WIDE_YAW
        sigma = config.pose_sigma_deg
        yaw = rng.uniform(-limits[0], limits[0]) if wide else _truncated_normal(rng, sigma[0], limits[0])
        pitch = _truncated_normal(rng, sigma[1], limits[1], config.pitch_centre_deg)
        roll = _truncated_normal(rng, sigma[2], limits[2])
        if config.wide_pitch_share > 0:
            steep = _child(rng)
            if steep.uniform() < config.wide_pitch_share:
                pitch = steep.uniform(-limits[1], limits[1])
        if config.neck_pose:
            return neck_to_quat(np.radians([yaw, pitch, roll]))
    return aflw_to_quat(np.radians([pitch, yaw, roll]))


def _frame_camera(rng: np.random.Generator, width: int, height: int, fov_deg: tuple[float, float]) -> np.ndarray:
    """(fx, fy, cx, cy) of a frame with a random horizontal field of view."""
    focal = width / 2.0 / np.tan(np.radians(rng.uniform(*fov_deg)) / 2.0)
    return np.array([focal, focal, width / 2.0, height / 2.0])


def _place_head(camera: np.ndarray, size_px: float, center_px: np.ndarray) -> np.ndarray:
    """Head-centre translation (mm) that projects to `center_px` with `coords` size `size_px`."""
    z = camera[0] * HEAD_SIZE_MM / size_px
    return np.array([(center_px[0] - camera[2]) * z / camera[0], (center_px[1] - camera[3]) * z / camera[1], z])


def _pose_labels(model_points: np.ndarray, quat: np.ndarray, translation: np.ndarray, camera: np.ndarray) -> dict:
    """quats, coords, pt3d_68 (x, y px; z depth from the head centre in the same scale), pt2d_68."""
    points_cam = model_points @ quat_to_matrix(quat).T + translation
    pt2d = project(points_cam, camera)
    depth = (points_cam[:, 2] - translation[2]) * camera[0] / translation[2]
    return {
        "quats": quat,
        "coords": head_coords(translation, camera),
        "pt3d_68": np.concatenate([pt2d, depth[:, None]], axis=1),
        "pt2d_68": pt2d,
    }


def _face_box(points: np.ndarray) -> np.ndarray:
    """The roi: bounding box (x0, y0, x1, y1) of the 68 landmarks."""
    return np.concatenate([points.min(axis=0), points.max(axis=0)])


def _face_on_axis(model_points: np.ndarray, quat: np.ndarray, translation: np.ndarray,
                  camera: np.ndarray) -> np.ndarray:
    """The head moved sideways (same depth) until its landmark box is centred on the optical axis,
    so that the crop sees the face straight on: the pose weak-perspective labels (AFLW's) describe."""
    rotated = transform(model_points, quat, np.zeros(3))
    for _ in range(FACE_ON_AXIS_STEPS):
        points = rotated + translation
        box = _face_box(project(points, camera))
        offset_px = (box[:2] + box[2:]) / 2.0 - camera[2:]
        translation = translation - np.append(offset_px * points[:, 2].mean() / camera[:2], 0.0)
    return translation


def _face_view(config: SynthConfig, rng: np.random.Generator, appearance: Appearance,
               quat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A face-centred crop: the head is placed in a virtual full frame, the crop gets its own camera."""
    frame = _frame_camera(rng, *VIRTUAL_FRAME, fov_deg=FACE_FOV_DEG)
    distance = rng.uniform(*config.face_distance_mm)
    center = rng.uniform(0.2, 0.8, 2) * VIRTUAL_FRAME  # drawn either way: the variants share their random streams
    if config.head_on_axis:
        center = frame[2:]
    translation = _place_head(frame, frame[0] * HEAD_SIZE_MM / distance, center)
    model_points = appearance.model_points()
    if config.head_on_axis and config.face_on_axis:
        translation = _face_on_axis(model_points, quat, translation, frame)
    box = _face_box(_pose_labels(model_points, quat, translation, frame)["pt2d_68"])
    side = max(box[2] - box[0], box[3] - box[1]) * rng.uniform(*CROP_MARGIN)
    crop_center = (box[:2] + box[2:]) / 2.0 + rng.uniform(-CROP_JITTER, CROP_JITTER, 2) * side
    scale = config.size / side
    origin = crop_center - side / 2.0
    camera = np.array([frame[0] * scale, frame[1] * scale, (frame[2] - origin[0]) * scale, (frame[3] - origin[1]) * scale])
    background = make_background(rng, config.size, config.size, config.backgrounds, config.muted_backgrounds)
    return camera, translation, background


def _scene_view(config: SynthConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """A full localizer frame: camera, head translation (None for no face) and background."""
    width, height = config.image_size
    camera = _frame_camera(rng, width, height, fov_deg=SCENE_FOV_DEG)
    background = make_background(rng, width, height, config.backgrounds, config.muted_backgrounds)
    if rng.uniform() >= config.face_probability:
        return camera, None, background
    center = rng.uniform([0.1 * width, 0.15 * height], [0.9 * width, 0.85 * height])
    translation = _place_head(camera, rng.uniform(*SCENE_HEAD_SIZE) * height, center)
    return camera, translation, background


def _empty_labels() -> dict:
    return {"quats": np.array([0.0, 0.0, 0.0, 1.0]), "coords": np.zeros(3), "rois": np.zeros(4),
            "pt3d_68": np.zeros((68, 3)), "pt2d_68": np.zeros((68, 2)), "model_68": np.zeros((68, 3))}


def render_sample(config: SynthConfig, seed: int, index: int) -> dict[str, np.ndarray]:
    """Sample `index` of the dataset with `seed`: its encoded image and labels.

    Keys: images (encoded uint8 buffer), quats, coords, rois, pt3d_68, pt2d_68, camera,
    model_68 (this face's 68 model points in mm, head frame), and hasface in scene mode.
    Regenerates alone: the random stream is `default_rng([seed, index])`.
    """
    rng = np.random.default_rng([seed, index])
    appearance = sample_appearance(config, rng)
    quat = sample_pose(config, rng)
    width, height = config.image_size
    if config.mode == "face":
        camera, translation, image = _face_view(config, rng, appearance, quat)
    else:
        camera, translation, image = _scene_view(config, rng)
    if translation is None:
        labels = _empty_labels()
    else:
        image, _ = render_view(appearance, quat, translation, camera, (width, height), image)
        model_points = appearance.model_points()
        labels = _pose_labels(model_points, quat, translation, camera)
        labels["model_68"] = model_points
        labels["rois"] = _face_box(labels["pt2d_68"])
        if config.mode == "scene":
            labels["rois"] = np.clip(labels["rois"], 0.0, [width, height, width, height])
        if rng.uniform() < config.glasses_probability:
            draw_glasses(rng, image, model_points, quat, translation, camera)
        if rng.uniform() < config.occluder_probability:
            occlude(rng, image, labels["pt2d_68"])
    if config.degrade:
        image = degrade(rng, image)
    sample = {name: np.asarray(value, np.float32) for name, value in labels.items()}
    sample["camera"] = camera.astype(np.float32)
    if config.mode == "scene":
        sample["hasface"] = np.bool_(translation is not None)
    sample["images"] = encode_image(image, lossy=config.lossy, quality=config.quality)
    return sample


# --- many samples ------------------------------------------------------------------------------------

CHUNK = 32  # samples per worker task
POOL_START = "forkserver"


def _render_range(task: tuple[SynthConfig, int, int, int]) -> list[dict[str, np.ndarray]]:
    config, seed, start, stop = task
    return [render_sample(config, seed, index) for index in range(start, stop)]


def _worker_init() -> None:
    """One process per core: OpenCV's own threads would only compete. The meshes and textures
    are built on first use, so a worker builds only those its config renders with."""
    cv2.setNumThreads(1)


def _pool(workers: int) -> concurrent.futures.ProcessPoolExecutor:
    """Worker processes forked from a clean server that has imported this module.

    Not plain fork: forking a process whose OpenCV threads hold locks deadlocks the
    children; the forkserver only imports modules, so forking it is safe and cheap.
    An executor rather than multiprocessing.Pool: a worker that dies (as one does when a
    script without a `__main__` guard renders again while it starts) breaks the executor,
    which raises, where a Pool would replace the worker forever.
    """
    context = multiprocessing.get_context(POOL_START)
    context.set_forkserver_preload([__name__])
    return concurrent.futures.ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_init)


def _iter_samples(config: SynthConfig, n: int, seed: int, workers: int, progress: bool) -> Iterator[dict]:
    """Samples 0..n-1 in order, rendered by `workers` processes."""
    tasks = [(config, seed, start, min(start + CHUNK, n)) for start in range(0, n, CHUNK)]
    bar = tqdm(total=n, unit="img", desc="synth", disable=not progress, leave=False)
    pool = _pool(workers) if workers > 1 else None
    try:
        for chunk in (pool.map(_render_range, tasks) if pool else map(_render_range, tasks)):
            bar.update(len(chunk))
            yield from chunk
    except BrokenProcessPool:
        raise PosenetError("synth: the rendering worker processes died; a script that renders with workers > 1 "
                           "must do so under `if __name__ == \"__main__\":` (or use workers=1)") from None
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


def synthesize(config: SynthConfig, n: int, seed: int, workers: int = 2, progress: bool = False) -> dict[str, object]:
    """Render samples 0..n-1: a dict of fields as posenet.core.h5format.write_dataset takes them.

    With workers > 1 the samples are rendered in forkserver processes; a script that calls
    this at import time must do so under `if __name__ == "__main__":` (else one clear error).
    """
    _check_config(config, n, workers)
    samples = list(_iter_samples(config, n, seed, workers, progress))
    fields: dict[str, object] = {"images": [s["images"] for s in samples]}
    for name in samples[0]:
        if name != "images":
            fields[name] = np.stack([s[name] for s in samples])
    return fields


def write_synth(path: str | os.PathLike, config: SynthConfig, n: int, seed: int, workers: int = 2,
                progress: bool = False) -> Path:
    """Render n samples and write them atomically to the HDF5 file `path`."""
    check_writable(path)
    fields = synthesize(config, n, seed, workers, progress)
    return write_dataset(path, fields, synth_attrs(config, seed), lossy=config.lossy)


def synth_attrs(config: SynthConfig, seed: int) -> dict[str, str]:
    """The file attributes of a rendered set: they say which renderer, settings and seed made it."""
    return {"source": f"{SOURCE} mode={config.mode} seed={seed}", "split": "synthetic",
            "created_by": "posenet data synth", "config": repr(config)}


def is_current(path: str | os.PathLike, config: SynthConfig, seed: int) -> bool:
    """Whether `path` holds a set this renderer would make now with `config` and `seed`, so a
    cached split is reused only while the renderer and its settings are unchanged."""
    import h5py

    expected = synth_attrs(config, seed)
    try:
        with h5py.File(path, "r") as handle:
            return all(handle.attrs.get(key) == expected[key] for key in ("source", "config"))
    except OSError:
        return False


def _check_interval(name: str, interval: tuple[float, float], lowest: float, highest: float, unit: str = "") -> None:
    """A (low, high) option of per-person uniform draws: within [lowest, highest], low first."""
    low, high = interval
    if not lowest <= low <= high <= highest:
        raise PosenetError(f"{name}: need {lowest:g} <= low <= high <= {highest:g}{unit}, got {low:g}..{high:g}{unit}")


def _check_config(config: SynthConfig, n: int, workers: int) -> None:
    """One clear error for any impossible setting."""
    if n <= 0:
        raise PosenetError(f"--n: the number of samples must be positive, got {n}")
    if workers < 1:
        raise PosenetError(f"--workers: must be at least 1, got {workers}")
    if config.mode not in MODES:
        raise PosenetError(f"--mode: unknown mode '{config.mode}', choose from {', '.join(MODES)}")
    if config.size < 32 or min(config.scene_size) < 32:
        raise PosenetError(f"--size: images must be at least 32 pixels, got {config.size}")
    for name, value, limit in (("--yaw-range", config.yaw_range, 180), ("--pitch-range", config.pitch_range, 90),
                               ("--roll-range", config.roll_range, 180)):
        if not 0 <= value <= limit:
            raise PosenetError(f"{name}: must be between 0 and {limit} degrees, got {value}")
    if config.pose_distribution not in POSE_DISTRIBUTIONS:
        raise PosenetError(f"--pose: unknown distribution '{config.pose_distribution}', choose from "
                           f"{', '.join(POSE_DISTRIBUTIONS)}")
    if config.eye_gaze not in EYE_GAZES:
        raise PosenetError(f"eye gaze: unknown '{config.eye_gaze}', choose from {', '.join(EYE_GAZES)}")
    if len(config.pose_sigma_deg) != 3 or min(config.pose_sigma_deg) <= 0:
        raise PosenetError(f"pose spread: need three positive angles (yaw, pitch, roll), got {config.pose_sigma_deg}")
    if not abs(config.pitch_centre_deg) < config.pitch_range:
        raise PosenetError(f"pitch centre: must lie inside the +-{config.pitch_range:g} deg pitch range, "
                           f"got {config.pitch_centre_deg:g}")
    _check_interval("feature contrast", config.feature_contrast, 0.0, 1.0)
    _check_interval("face depth scale", config.face_depth_scale, 0.5, 1.5)
    if not 0.0 <= config.wide_pitch_share <= 1.0:
        raise PosenetError(f"wide pitch share: must be 0..1, got {config.wide_pitch_share:g}")
    if config.face_layout not in FACE_LAYOUTS:
        raise PosenetError(f"face layout: unknown '{config.face_layout}', choose from {', '.join(FACE_LAYOUTS)}")
    if not 0.0 <= config.fringe_probability <= 1.0:
        raise PosenetError(f"fringe probability: must be 0..1, got {config.fringe_probability:g}")
    if not 0.5 <= config.eye_opening <= 3.0:
        raise PosenetError(f"eye opening: must be 0.5..3 times the lid landmarks' height, got {config.eye_opening:g}")
    if not -BROW_LOWERING_LIMIT_MM <= config.brow_lowering_mm <= BROW_LOWERING_LIMIT_MM:
        raise PosenetError(f"brow lowering: must be within +-{BROW_LOWERING_LIMIT_MM:g} mm, got {config.brow_lowering_mm:g}")
    _check_interval("hair volume", config.hair_volume_mm, 0.0, HAIR_VOLUME_LIMIT_MM, " mm")
    for name, value in (("hairline shift", config.hairline_shift_mm), ("hairline tilt", config.hairline_tilt_mm)):
        if not 0.0 <= value <= HAIRLINE_SHIFT_LIMIT_MM:
            raise PosenetError(f"{name}: must be 0..{HAIRLINE_SHIFT_LIMIT_MM:g} mm, got {value:g}")
    low, high = config.face_distance_mm
    if not NEAR_MM * 4 <= low <= high:
        raise PosenetError(f"face distance: need {NEAR_MM * 4:g} mm <= near <= far, got {low:g}..{high:g} mm")
    if not 1 <= config.quality <= 100:
        raise PosenetError(f"--quality: JPEG quality must be 1..100, got {config.quality}")
    if config.backgrounds is not None:
        if not Path(config.backgrounds).is_dir():
            raise PosenetError(f"--backgrounds: {config.backgrounds} is not a directory")
        _background_files(config.backgrounds)


# --- command line and benchmark ------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n", type=int, required=True, help="number of samples")
    parser.add_argument("--out", type=Path, required=True, help="output HDF5 file")
    parser.add_argument("--seed", type=int, default=0, help="random seed (sample i uses default_rng([seed, i]))")
    parser.add_argument("--mode", choices=MODES, default="face",
                        help="face: face-centred crops; scene: localizer frames with zero or one face")
    parser.add_argument("--size", type=int, default=FACE_SIZE,
                        help=f"face-crop side in pixels (face mode; scene frames are {SCENE_SIZE[0]}x{SCENE_SIZE[1]})")
    parser.add_argument("--pose", dest="pose_distribution", choices=POSE_DISTRIBUTIONS, default="realistic",
                        help="pose distribution: realistic (mostly near frontal, some profiles) or uniform in the ranges")
    parser.add_argument("--yaw-range", type=float, default=90.0, help="largest |yaw|, degrees")
    parser.add_argument("--pitch-range", type=float, default=60.0, help="largest |pitch|, degrees")
    parser.add_argument("--roll-range", type=float, default=45.0, help="largest |roll|, degrees")
    parser.add_argument("--backgrounds", type=str, default=None, help="folder of background photos")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="rendering processes")
    encoding = parser.add_mutually_exclusive_group()
    encoding.add_argument("--lossy", dest="lossy", action="store_true", default=True,
                          help=f"store JPEG, quality {SynthConfig.quality}")
    encoding.add_argument("--png", dest="lossy", action="store_false", default=argparse.SUPPRESS,
                          help="store lossless PNG instead")


def run(args: argparse.Namespace) -> None:
    config = SynthConfig(mode=args.mode, size=args.size, yaw_range=args.yaw_range, pitch_range=args.pitch_range,
                         roll_range=args.roll_range, pose_distribution=args.pose_distribution,
                         backgrounds=args.backgrounds, lossy=args.lossy)
    _check_config(config, args.n, args.workers)
    check_seed(args.seed)
    check_writable(args.out)
    start = time.perf_counter()
    path = write_synth(args.out, config, args.n, args.seed, args.workers, progress=True)
    seconds = time.perf_counter() - start
    width, height = config.image_size
    print(f"wrote {path}: {args.n} {config.mode} samples {width}x{height} "
          f"({'JPEG' if config.lossy else 'PNG'}), seed {args.seed}, {args.n / seconds:.0f} images/s")
