"""`posenet data augment IN OUT`: in-plane rotation groups and mirroring, labels exact.

The original study enlarged its training set by rotating each image by the angles of
one of four groups, {-11, 0, 5}, {-7, 0, 13}, {-19, 0, 31}, {-29, 0, 17} degrees (one
group per image; here drawn from a random stream seeded by `--seed` and the sample
index), and by mirroring. `--groups LO,HI` (or `A` for -A,A) draws instead one angle in
[LO, 0) and one in (0, HI] beside 0; `--groups none` keeps 0 only. Every output sample is
a rotated copy, and with `--flip` its mirror image too.

Labels follow the image exactly (DESIGN.md §2):
- Rotation by a (positive = clockwise on screen) about the principal point (the
  image centre when there is no `camera`): the image is warped with
  `geometry.inplane_affine`, the pose becomes `geometry.rotate_quat_inplane(q, a)`,
  landmarks and the `coords` centre follow the same affine map, `coords` size and the
  camera are unchanged (a roll of a pinhole camera about its axis, exact when fx = fy).
  `rois`: the box of the rotated ellipse inscribed in the old box, which stays the old
  box at 0 and 180 deg and swaps width and height at 90 deg; the box of the rotated
  corners would grow by up to 41% for a face that did not grow.
- Mirror of width W: image columns reversed, `geometry.mirror_quat`, x -> W - x for
  landmarks, centre and box (`geometry.mirror_x`, `geometry.mirror_roi`), landmarks
  re-indexed with `facemodel.FLIP_PERMUTATION_68`, camera cx -> W - cx.
- `pose_para` (raw AFLW angles) is recomputed from the new quaternion.
- `--relabel pnp` then recomputes `quats` and `coords` with solvePnP from the
  transformed landmarks (`pt2d_68`, else `pt3d_68` x, y) against the face model, as the
  original study labelled its data (`baselines.pnp.estimate_pose`); samples where PnP
  finds no front-facing solution are dropped and counted.
Fields without a transform rule (e.g. Opentrack's `shapeparams`) are dropped and named
in the summary. Image pixels use the pixel-edge convention (pixel i covers [i, i+1)):
OpenCV's warp, which puts pixel centres on integers, gets the centre shifted by 0.5.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import numpy as np
from tqdm import tqdm

from posenet.core import geometry
from posenet.core.errors import PosenetError
from posenet.core.fileio import check_writable
from posenet.core.h5format import Dataset, encode_image, read_dataset, write_dataset
from posenet.core.transforms import LANDMARK_FIELDS, Sample, mirror_sample, rotate_sample
from posenet.core.values import check_seed

ORIGINAL_GROUPS_DEG = ((-11.0, 0.0, 5.0), (-7.0, 0.0, 13.0), (-19.0, 0.0, 31.0), (-29.0, 0.0, 17.0))
MAX_GROUP_DEG = 180.0  # an in-plane rotation range beyond a half turn means nothing new (NaN, inf refused)
KNOWN_FIELDS = {"images", "quats", "coords", "rois", "camera", "hasface", "pose_para", *LANDMARK_FIELDS}


# --- groups ------------------------------------------------------------------------------

def parse_groups(text: str) -> str | tuple[float, float]:
    """`original`, `none`, or a range `LO,HI` / `A` (degrees) -> what `group_for` draws from."""
    if text in ("original", "none"):
        return text
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) == 1:
        values = [-abs(values[0]), abs(values[0])]
    if len(values) != 2 or not -MAX_GROUP_DEG <= values[0] < 0 < values[1] <= MAX_GROUP_DEG:
        raise PosenetError(f"--groups {text}: expected 'original', 'none', or LO,HI with "
                           f"-{MAX_GROUP_DEG:g} <= LO < 0 < HI <= {MAX_GROUP_DEG:g} (degrees)")
    return values[0], values[1]


def group_for(groups: str | tuple[float, float], rng: np.random.Generator) -> tuple[float, ...]:
    """The rotation angles (degrees) of one image."""
    if groups == "none":
        return (0.0,)
    if groups == "original":
        return ORIGINAL_GROUPS_DEG[rng.integers(len(ORIGINAL_GROUPS_DEG))]
    low, high = groups
    return (float(rng.uniform(low, 0.0)), 0.0, float(rng.uniform(0.0, high)))


# --- transforms --------------------------------------------------------------------------

def rotate_about_principal_point(sample: Sample, image: np.ndarray, angle_deg: float) -> tuple[Sample, np.ndarray]:
    """The sample and its image rotated by `angle_deg` about the principal point (a camera roll)."""
    height, width = image.shape[:2]
    centre = sample["camera"][2:] if "camera" in sample else np.array([width / 2, height / 2])
    return rotate_sample(sample, image, np.radians(angle_deg), centre)


def relabel_pnp(sample: Sample, image_shape: tuple[int, ...]) -> Sample | None:
    """`quats` and `coords` recomputed by solvePnP from the sample's landmarks; None on failure."""
    from baselines.pnp import estimate_pose  # dlib import is slow: only when asked for

    name = "pt2d_68" if "pt2d_68" in sample else "pt3d_68"
    if name not in sample:
        raise PosenetError("--relabel pnp: the dataset has no pt2d_68 or pt3d_68 landmarks")
    camera = sample["camera"] if "camera" in sample else geometry.camera_for_image(image_shape[1], image_shape[0])
    result = estimate_pose(np.asarray(sample[name])[:, :2], camera)
    if result is None:
        return None
    return {**sample, "quats": result.quat, "coords": geometry.head_coords(result.translation, camera)}


# --- the command -----------------------------------------------------------------------------

def augment(dataset: Dataset, groups: str | tuple[float, float], flip: bool, relabel: str | None,
            seed: int = 0) -> tuple[dict[str, list], Counter]:
    """All augmented samples as field lists (images encoded), and counts of dropped samples."""
    names = [n for n in dataset.fields if n in KNOWN_FIELDS]
    fields: dict[str, list] = {name: [] for name in names}
    dropped: Counter = Counter()
    for index in tqdm(range(len(dataset)), desc="augment", unit="image"):
        image = dataset.image(index)
        sample = {n: np.asarray(dataset[n][index], dtype=np.float64) for n in names if n != "images"}
        for angle in group_for(groups, np.random.default_rng([seed, index])):
            rotated = rotate_about_principal_point(sample, image, angle)
            for variant, pixels in [rotated, mirror_sample(*rotated)] if flip else [rotated]:
                if relabel == "pnp":
                    variant = relabel_pnp(variant, pixels.shape)
                    if variant is None:
                        dropped["no front-facing PnP solution"] += 1
                        continue
                if "pose_para" in variant:
                    variant["pose_para"] = geometry.quat_to_aflw(variant["quats"])
                fields["images"].append(encode_image(pixels))
                for name in names:
                    if name != "images":
                        fields[name].append(variant[name])
    return fields, dropped


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, help="input HDF5 dataset")
    parser.add_argument("output", type=Path, help="output HDF5 dataset")
    parser.add_argument("--groups", default="original",  # parsed in run: a bad value is one line, not a traceback
                        help="'original' (the study's four rotation groups), 'none', or LO,HI degrees")
    parser.add_argument("--flip", action="store_true", help="add the mirror image of every sample")
    parser.add_argument("--relabel", choices=["pnp"], default=None,
                        help="recompute poses with solvePnP from the transformed landmarks (the original's way)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the per-image group choice")


def run(args: argparse.Namespace) -> None:
    groups = parse_groups(args.groups)
    check_seed(args.seed)
    check_writable(args.output, inputs=(args.input,))
    dataset = read_dataset(args.input)
    if not len(dataset):
        raise PosenetError(f"{args.input}: the dataset is empty")
    fields, dropped = augment(dataset, groups, args.flip, args.relabel, args.seed)
    if not fields["images"]:
        raise PosenetError(f"{args.input}: no sample survived augmentation ({dict(dropped)})")
    lost = sorted(set(dataset.fields) - KNOWN_FIELDS)
    attrs = {**dataset.attrs, "created_by": f"posenet data augment --groups {args.groups} "
             f"{'--flip ' if args.flip else ''}{'--relabel pnp' if args.relabel else ''}".strip()}
    write_dataset(args.output, {n: np.stack(v) if n != "images" else v for n, v in fields.items()}, attrs)
    notes = [f"dropped {n} ({reason})" for reason, n in dropped.items()]
    notes += [f"fields without a transform rule left out: {', '.join(lost)}"] if lost else []
    print(f"wrote {len(fields['images'])} samples from {len(dataset)} to {args.output}"
          + (f"; {'; '.join(notes)}" if notes else ""))
