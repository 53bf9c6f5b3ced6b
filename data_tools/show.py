"""`posenet data show`: a contact sheet (PNG) of dataset samples with their labels drawn.

Each tile shows the image with the face box (yellow), the 68 landmarks (green; the
first 17 jaw points cyan so the left/right order is visible) and the pose axes of the
quaternion at the head centre from `coords`: x red, y green, z blue, each as long as
the `coords` size (the projected 100 mm), drawn with weak perspective. Fields a file
lacks are simply not drawn; localizer frames without a face are marked "no face".
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from posenet.core.draw import draw_axes
from posenet.core.errors import PosenetError
from posenet.core.fileio import atomic_output
from posenet.core.geometry import ypr_deg
from posenet.core.h5format import Dataset, read_dataset
from posenet.core.values import check_seed

TILE = 200  # tile side, pixels (a 4x4 sheet of synthetic faces stays under 1 MB)
BOX_COLOUR = (255, 220, 0)
LANDMARK_COLOUR = (0, 255, 0)
JAW_COLOUR = (0, 220, 255)
TEXT_COLOUR = (255, 255, 255)


def _letterbox(image: np.ndarray, side: int) -> tuple[np.ndarray, float, np.ndarray]:
    """Fit `image` into a side x side black tile; returns tile, scale and offset (x, y)."""
    height, width = image.shape[:2]
    scale = side / max(height, width)
    resized = cv2.resize(image, (max(1, round(width * scale)), max(1, round(height * scale))),
                         interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    tile = np.zeros((side, side, 3), np.uint8)
    offset = np.array([(side - resized.shape[1]) // 2, (side - resized.shape[0]) // 2])
    tile[offset[1]:offset[1] + resized.shape[0], offset[0]:offset[0] + resized.shape[1]] = resized
    return tile, scale, offset


def _point(xy: np.ndarray) -> tuple[int, int]:
    return int(round(float(xy[0]))), int(round(float(xy[1])))


def draw_sample(dataset: Dataset, index: int, side: int = TILE) -> np.ndarray:
    """One annotated RGB tile of sample `index`."""
    tile, scale, offset = _letterbox(dataset.image(index), side)
    to_tile = lambda xy: np.asarray(xy, np.float64)[..., :2] * scale + offset  # noqa: E731
    if "hasface" in dataset and not bool(dataset["hasface"][index]):
        cv2.putText(tile, "no face", (6, side - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.45, TEXT_COLOUR, 1, cv2.LINE_AA)
        return tile
    if "rois" in dataset:
        x0, y0, x1, y1 = dataset["rois"][index]
        cv2.rectangle(tile, _point(to_tile([x0, y0])), _point(to_tile([x1, y1])), BOX_COLOUR, 1, cv2.LINE_AA)
    points = dataset["pt3d_68"] if "pt3d_68" in dataset else dataset["pt2d_68"] if "pt2d_68" in dataset else None
    if points is not None:
        for k, xy in enumerate(to_tile(points[index])):
            cv2.circle(tile, _point(xy), 1, JAW_COLOUR if k < 17 else LANDMARK_COLOUR, -1, cv2.LINE_AA)
    if "quats" in dataset and "coords" in dataset:
        x, y, size = dataset["coords"][index]
        draw_axes(tile, dataset["quats"][index], to_tile([x, y]), size * scale)
    if "quats" in dataset:
        yaw, pitch, roll = ypr_deg(dataset["quats"][index])
        text = f"{index}: y{yaw:+.0f} p{pitch:+.0f} r{roll:+.0f}"
        cv2.putText(tile, text, (5, side - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(tile, text, (5, side - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.42, TEXT_COLOUR, 1, cv2.LINE_AA)
    return tile


def contact_sheet(dataset: Dataset, indices: list[int], cols: int, side: int = TILE) -> np.ndarray:
    """Tiles of `indices` in rows of `cols`, RGB uint8."""
    tiles = [draw_sample(dataset, i, side) for i in indices]
    tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % cols)
    rows = [np.hstack(tiles[r:r + cols]) for r in range(0, len(tiles), cols)]
    return np.vstack(rows)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="dataset (HDF5)")
    parser.add_argument("--out", type=Path, required=True, help="output PNG")
    parser.add_argument("--n", type=int, default=16, help="number of samples")
    parser.add_argument("--cols", type=int, default=4, help="tiles per row")
    parser.add_argument("--seed", type=int, default=None, help="draw the samples at random with this seed "
                        "instead of taking the first n")
    parser.add_argument("--tile", type=int, default=TILE, help="tile side in pixels")


def run(args: argparse.Namespace) -> None:
    if args.n <= 0 or args.cols <= 0 or args.tile < 32:
        raise PosenetError(f"--n, --cols must be positive and --tile at least 32 (got {args.n}, {args.cols}, {args.tile})")
    if args.seed is not None:
        check_seed(args.seed)
    if args.out.suffix.lower() != ".png":
        raise PosenetError(f"{args.out}: the contact sheet is written as PNG, use a .png name")
    dataset = read_dataset(args.file)
    count = min(args.n, len(dataset))
    if count == 0:
        raise PosenetError(f"{args.file}: the dataset is empty")
    if args.seed is None:
        indices = list(range(count))
    else:
        indices = sorted(np.random.default_rng(args.seed).choice(len(dataset), count, replace=False).tolist())
    sheet = contact_sheet(dataset, indices, min(args.cols, count), args.tile)
    ok, png = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    with atomic_output(args.out) as tmp:
        tmp.write_bytes(png.tobytes())
    print(f"wrote {args.out}: {count} samples of {args.file} ({sheet.shape[1]}x{sheet.shape[0]}, {png.size // 1024} KB)")
