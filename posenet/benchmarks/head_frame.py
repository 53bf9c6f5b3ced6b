"""Benchmark: the head-frame calibration, fitted again from AFLW2000-3D's labels.

`posenet.core.facemodel.AFLW_FRAME_PITCH_DEG` is fitted on real labels (issue #11; the other
quantity taken from them is the renderer's face layout, `posenet bench face-model`): the rotation
that makes the PnP face model's identity pose what AFLW2000-3D calls a frontal face. This
benchmark is its recipe, runnable: for each of the 1969 protocol images of the opal23 label file
(all 2000 images' poses and 68 landmarks, ../shared/data/aflw2000), near-orthographic PnP (the
labels' camera: `protocol.AFLW_LABEL_FOCAL_WIDTHS` image widths) of the anatomical face model on
the labelled points gives R_pnp; D = R_gt^T R_pnp is the model's offset in the head frame, and the
chordal mean of D over the images is the fit. The shipped constant is its x part (the model stays
mirror-symmetric). Run it after any change to the face model: it prints the value the constant
should then take.

Two more rows describe the fit rather than change it: the same fit without the development
split's 300 images (so the dev figures are not circular), and with the 51 inner points only (jaw
contour left out). Where a face model matched real faces, all rows would agree; the inner-point
row reads far more pitch than the full one, which measures how differently the model's inner face
and its jaw contour are laid out from AFLW's (results/sim2real_ablation.md).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation
from tqdm import tqdm

from posenet.core import facemodel, geometry
from posenet.core.errors import PosenetError
from posenet.core.paths import SHARED_DATA
from posenet.core.protocol import AFLW_LABEL_FOCAL_WIDTHS, within_aflw_limit

LABELS = SHARED_DATA / "aflw2000" / "aflw2000_all_labels_opal23.txt"
DEV_SPLIT = SHARED_DATA / "aflw2000_dev.h5"
IMAGE_SIDE = 450.0  # AFLW2000-3D images are 450 x 450 pixels
LABEL_COLUMNS = 5 + 2 * 68  # image; name; yaw; pitch; roll; 68 x, y
INNER_POINTS = np.arange(17, 68)  # brows, nose, eyes, mouth: the points that are not the jaw contour
QUICK_STRIDE = 10  # --quick fits every 10th image


def read_labels(path: str | Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(names, raw Pose_Para (pitch, yaw, roll) radians (N, 3), landmarks (N, 68, 2)) of an opal23
    label file, whose yaw is -Pose_Para yaw (its README)."""
    path = Path(path)
    if not path.is_file():
        raise PosenetError(f"{path}: no such AFLW2000-3D label file (the opal23 file in ../shared/data/aflw2000)")
    names, angles, points = [], [], []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split(";")
        try:
            if len(fields) != LABEL_COLUMNS:
                raise ValueError(f"{len(fields)} fields, expected {LABEL_COLUMNS}")
            values = np.array(fields[2:], dtype=np.float64)
        except ValueError as error:
            raise PosenetError(f"{path}: line {number}: not an opal23 label row ({error})") from None
        yaw, pitch, roll = values[:3]
        names.append(fields[1])
        angles.append(np.radians([pitch, -yaw, roll]))
        points.append(values[3:].reshape(68, 2))
    if not names:
        raise PosenetError(f"{path}: no label rows")
    return names, np.array(angles), np.array(points)


def dev_names(path: str | Path) -> set[str]:
    """The development split's image names (its `names` attribute), or none without the file."""
    import h5py

    if not Path(path).is_file():
        return set()
    with h5py.File(path, "r") as handle:
        return set(str(handle.attrs.get("names", "")).split())


def fit_offset(raw_angles: np.ndarray, points: np.ndarray, model: np.ndarray = facemodel.ANATOMICAL_LANDMARKS_68,
               subset: np.ndarray | None = None, progress: bool = False) -> tuple[np.ndarray, int]:
    """(rotation vector in degrees of the chordal mean of R_gt^T R_pnp, images fitted)."""
    from baselines.pnp import estimate_pose

    camera = geometry.camera_for_image(IMAGE_SIDE, IMAGE_SIDE, AFLW_LABEL_FOCAL_WIDTHS * IMAGE_SIDE)
    truth = geometry.aflw_to_quat(raw_angles)
    used = np.arange(68) if subset is None else np.asarray(subset)
    offsets = []
    for i in tqdm(range(len(points)), desc="head frame", unit="img", leave=False, disable=not progress):
        landmarks = np.full((68, 2), np.nan)
        landmarks[used] = points[i, used]
        result = estimate_pose(landmarks, camera, model_points=model)
        if result is not None:
            offsets.append(Rotation.from_quat(truth[i]).inv() * Rotation.from_quat(result.quat))
    if not offsets:
        raise PosenetError("head frame: PnP found no pose on any image")
    mean = Rotation.concatenate(offsets).mean()  # the chordal L2 mean
    return np.degrees(mean.as_rotvec()), len(offsets)


def measure(labels: str | Path | None = None, quick: bool = False, dev: str | Path | None = None) -> dict:
    """The calibration rows: label -> (rotation vector deg, images), plus the shipped constant
    (`labels` and `dev` default to the files in ../shared/data)."""
    start = time.perf_counter()
    names, raw_angles, points = read_labels(labels or LABELS)
    keep = within_aflw_limit(raw_angles)  # the AFLW2000-3D protocol's images
    if quick:
        keep &= np.arange(len(keep)) % QUICK_STRIDE == 0
    held_out = dev_names(dev or DEV_SPLIT)
    not_dev = keep & ~np.isin(names, sorted(held_out))
    rows = {"all 68 points (the shipped fit)": (keep, None),
            f"all 68 points, without the {len(held_out)} development images": (not_dev, None),
            "51 inner points (no jaw contour)": (keep, INNER_POINTS)}
    fits = {label: fit_offset(raw_angles[mask], points[mask], subset=subset, progress=True)
            for label, (mask, subset) in rows.items() if mask.any()}
    return {"fits": fits, "shipped_deg": facemodel.AFLW_FRAME_PITCH_DEG, "images": int(keep.sum()),
            "seconds": round(time.perf_counter() - start, 1)}


def benchmark(quick: bool) -> list[str]:
    """The calibration fitted again; prints whether the shipped constant is the fit's x part."""
    result = measure(quick=quick)
    fits, shipped = result["fits"], result["shipped_deg"]
    refit = next(iter(fits.values()))[0][0]
    if quick:
        verdict = f"a subset (every {QUICK_STRIDE}th image): run without --quick to check the constant"
    elif round(refit, 2) == round(shipped, 2):
        verdict = "the fit's x part, as it should be"
    else:
        verdict = f"NOT the fit's x part: set it to {refit:.2f}"
    print(f"head frame: fitted {refit:+.3f} deg about x on {result['images']} images; shipped "
          f"AFLW_FRAME_PITCH_DEG = {shipped:.2f}: {verdict}; {result['seconds']:.0f} s")
    lines = [f"The head-frame calibration fitted again from `{LABELS.name}` ({result['images']} protocol images"
             + (f", every {QUICK_STRIDE}th" if quick else "") + f"; PnP of the anatomical face model at f = "
             f"{AFLW_LABEL_FOCAL_WIDTHS:g} image widths; chordal mean of R_gt^T R_pnp). The shipped "
             f"`AFLW_FRAME_PITCH_DEG` = {shipped:.2f} is {verdict}.",
             "", "| fit | images | about x (pitch) | about y | about z |", "|---|---|---|---|---|"]
    for label, (rotvec, count) in fits.items():
        lines.append(f"| {label} | {count} | {rotvec[0]:+.3f} | {rotvec[1]:+.3f} | {rotvec[2]:+.3f} |")
    return lines
