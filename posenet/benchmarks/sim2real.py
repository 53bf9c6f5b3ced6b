"""Benchmark: how well training on the renderer transfers to real faces (DESIGN.md §9).

A fixed, seeded proxy in which only the renderer can move the figure: render N faces with the
renderer's current defaults, train one fixed small net with a fixed recipe, and score it on a
real file (the AFLW2000-3D development split by default) and on a held-out synthetic split.

The recipe, every part fixed:
- ONE crop rule for synthetic and real faces (`crop_patch`): a grey square centred on the
  68-landmark box, CROP_MARGIN times its longer side, resized to INPUT_SIZE;
- augmentation: crop jitter (centre and scale), contrast and brightness, and the mirror with
  its exact relabelling (R -> M R M, i.e. the quaternion (qx, -qy, -qz, qw); the crop rule is
  mirror-symmetric, so the mirrored patch is the mirrored image's patch);
- a small CNN (four stride-2 stages of two conv-BN-ReLU, global average pooling) with the
  continuous 6D rotation output, trained with the geodesic (matrix angle) loss, Adam with a
  cosine decay over a fixed number of steps of BATCH.

The input path is numpy (no tf.data), so the same code runs on any Keras backend. The real
file measures only: it never trains and no default is fitted to it.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from data_tools import synth
from posenet.core import geometry, h5format
from posenet.core.errors import PosenetError
from posenet.core.evaluation import select, summarize
from posenet.core.fileio import atomic_output
from posenet.core.paths import SHARED_DATA
from posenet.core.protocol import protocol_of

REAL_DEV = SHARED_DATA / "aflw2000_dev.h5"
INPUT_SIZE = 64
CROP_MARGIN = 1.25  # patch side / longer side of the 68-landmark box
SOURCE_SCALE = 1.5  # stored patches cover this many patch sides, so jitter never leaves them
SOURCE_SIZE = round(INPUT_SIZE * SOURCE_SCALE)
JITTER_SHIFT = 0.05  # crop centre offset, share of the patch side
JITTER_SCALE = 0.05  # patch side times uniform(1 - s, 1 + s)
CONTRAST = (0.6, 1.4)
BRIGHTNESS = 0.2
BATCH = 64
LEARNING_RATE = 2e-3
FINAL_LR_FRACTION = 0.02
WIDTHS = (32, 64, 96, 128)
TEST_SEED_OFFSET = 1000
KEYS = ("n", "mae", "mae_yaw", "mae_pitch", "mae_roll", "geodesic_mean", "geodesic_median", "acc10",
        "bias_yaw", "bias_pitch", "bias_roll", "synth_mae")
MIRROR = np.diag([-1.0, 1.0, 1.0])
NEAR_FRONTAL_DEG = 30.0  # |yaw| and |pitch| below this: where pitch is read along a line


@dataclass(frozen=True)
class Budget:
    n_train: int
    n_test: int
    steps: int


QUICK = Budget(n_train=2000, n_test=300, steps=1000)
FULL = Budget(n_train=20000, n_test=1000, steps=10000)


# --- data ------------------------------------------------------------------------------------

def _zoom_about(center: np.ndarray, k: float, size: int) -> np.ndarray:
    """The 2x3 warpAffine matrix that scales by `k` about `center` (edge coordinates) onto the
    centre of a size x size output (pixel centres, as warpAffine maps them)."""
    affine = np.array([[k, 0.0, size / 2.0 - k * center[0]], [0.0, k, size / 2.0 - k * center[1]]])
    affine[:, 2] += 0.5 * k - 0.5
    return affine


def crop_patch(image: np.ndarray, landmarks_xy: np.ndarray, scale: float = SOURCE_SCALE,
               size: int = SOURCE_SIZE) -> np.ndarray:
    """The crop rule: grey uint8 square centred on the landmark box, side CROP_MARGIN x its
    longer side (times `scale`), resized to size x size; pixel-edge convention, border replicated."""
    low, high = landmarks_xy.min(axis=0), landmarks_xy.max(axis=0)
    center = (low + high) / 2.0
    k = size / (CROP_MARGIN * float(np.max(high - low)) * scale)
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    flags = cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR
    return cv2.warpAffine(grey, _zoom_about(center, k, size), (size, size), flags=flags,
                          borderMode=cv2.BORDER_REPLICATE)


def patches_of(dataset: h5format.Dataset) -> np.ndarray:
    """The stored (oversized) patch of every sample, by the crop rule."""
    if "pt3d_68" not in dataset:
        raise PosenetError(f"{dataset.path}: field 'pt3d_68' is missing (the crop rule needs the 68 landmarks)")
    points = np.asarray(dataset["pt3d_68"], np.float64)[:, :, :2]
    return np.stack([crop_patch(dataset.image(i), points[i]) for i in range(len(dataset))])


def render(count: int, seed: int, synth_config=None) -> tuple[np.ndarray, np.ndarray]:
    """(patches, quats) of `count` faces rendered in memory (the renderer's defaults unless `synth_config`)."""
    fields = synth.synthesize(synth_config or synth.SynthConfig(), count, seed,
                              workers=max(1, min(2, os.cpu_count() or 1)), progress=True)
    dataset = h5format.Dataset(fields)
    return patches_of(dataset), np.asarray(fields["quats"], np.float64)


def read_real(path: str | Path, needed: dict[str, str]) -> h5format.Dataset:
    """A real file with the fields `needed` (field -> why, for the error); an AFLW2000-3D file
    keeps the standard protocol's samples."""
    path = Path(path)
    if not path.is_file():
        raise PosenetError(f"{path}: no such real dataset file (--real; convert one with posenet data convert)")
    dataset = h5format.read_dataset(path)
    for field, why in needed.items():
        if field not in dataset:
            raise PosenetError(f"{path}: field '{field}' is missing ({why})")
    if protocol_of(dataset):
        dataset, _ = select(dataset, protocol_of(dataset))
    return dataset


def load_real(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(patches, quats) of a real file (the protocol's samples, see read_real)."""
    dataset = read_real(path, {"quats": "no ground-truth pose"})
    return patches_of(dataset), np.asarray(dataset["quats"], np.float64)


def centre_inputs(patches: np.ndarray) -> np.ndarray:
    """The un-jittered network input of stored patches: float32 NHWC in [0, 1]."""
    low = (SOURCE_SIZE - INPUT_SIZE) // 2
    return (patches[:, low:low + INPUT_SIZE, low:low + INPUT_SIZE, None] / 255.0).astype(np.float32)


def augmented_batch(rng: np.random.Generator, patches: np.ndarray,
                    matrices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One training batch: jittered crops, mirrored half the time (labels follow), contrast, brightness."""
    inputs = np.empty((len(patches), INPUT_SIZE, INPUT_SIZE), np.float32)
    for i, patch in enumerate(patches):
        k = 1.0 / rng.uniform(1 - JITTER_SCALE, 1 + JITTER_SCALE)
        center = SOURCE_SIZE / 2.0 + rng.uniform(-JITTER_SHIFT, JITTER_SHIFT, 2) * INPUT_SIZE
        inputs[i] = cv2.warpAffine(patch, _zoom_about(center, k, INPUT_SIZE), (INPUT_SIZE, INPUT_SIZE),
                                   flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    inputs /= 255.0
    labels = matrices.copy()
    flip = rng.uniform(size=len(inputs)) < 0.5
    inputs[flip] = inputs[flip, :, ::-1]
    labels[flip] = MIRROR @ labels[flip] @ MIRROR
    mean = inputs.mean(axis=(1, 2), keepdims=True)
    contrast = rng.uniform(*CONTRAST, (len(inputs), 1, 1))
    brightness = rng.uniform(-BRIGHTNESS, BRIGHTNESS, (len(inputs), 1, 1))
    inputs = np.clip((inputs - mean) * contrast + mean + brightness, 0.0, 1.0)
    return inputs[..., None].astype(np.float32), labels.astype(np.float32)


# --- the net and its training -----------------------------------------------------------------

def build_proxy_net(seed: int):
    """The fixed small CNN: grey INPUT_SIZE patch -> rotation matrix (6D output)."""
    import keras
    from keras import layers

    from posenet.training.rotations import six_d_to_matrix

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((INPUT_SIZE, INPUT_SIZE, 1))
    x = layers.Rescaling(2.0, offset=-1.0)(inputs)
    for width in WIDTHS:
        for stride in (2, 1):
            x = layers.Conv2D(width, 3, strides=stride, padding="same", use_bias=False)(x)
            x = layers.BatchNormalization()(x)
            x = layers.ReLU()(x)
    x = layers.GlobalAveragePooling2D()(x)
    identity_6d = keras.initializers.Constant([1.0, 0.0, 0.0, 0.0, 1.0, 0.0])
    x = layers.Dense(6, kernel_initializer="zeros", bias_initializer=identity_6d)(x)
    return keras.Model(inputs, layers.Lambda(six_d_to_matrix, name="rotation")(x), name="sim2real_proxy")


def train_proxy(patches: np.ndarray, quats: np.ndarray, steps: int, seed: int):
    """Fit the proxy net: Adam with a cosine decay over `steps` augmented batches of BATCH."""
    import keras
    from keras import ops
    from tqdm import tqdm

    from posenet.training.rotations import matrix_angle

    model = build_proxy_net(seed)
    schedule = keras.optimizers.schedules.CosineDecay(LEARNING_RATE, steps, alpha=FINAL_LR_FRACTION)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=lambda y, p: ops.mean(matrix_angle(y, p)))
    matrices = geometry.quat_to_matrix(quats)
    rng = np.random.default_rng([seed, 7])
    order = rng.permutation(len(patches))
    position = 0
    bar = tqdm(range(steps), desc="sim2real proxy", unit="step", leave=False)
    for step in bar:
        if position + BATCH > len(order):
            order, position = rng.permutation(len(patches)), 0
        index = np.sort(order[position:position + BATCH])
        position += BATCH
        loss = model.train_on_batch(*augmented_batch(rng, patches[index], matrices[index]))
        if step % 50 == 0:
            bar.set_postfix(geodesic_deg=f"{np.degrees(float(np.ravel(loss)[0])):.1f}")
    return model


def predict(model, patches: np.ndarray, mask: tuple[slice, slice] | None = None) -> np.ndarray:
    """Quaternions (x, y, z, w) predicted for stored patches; `mask` (rows, columns of the input)
    is filled with each patch's mean first."""
    inputs = centre_inputs(patches)
    if mask is not None:
        inputs[:, mask[0], mask[1]] = inputs.mean(axis=(1, 2, 3), keepdims=True)
    matrices = np.asarray(model.predict(inputs, batch_size=256, verbose=0), np.float64)
    return geometry.matrix_to_quat(matrices)


# --- the measurement ---------------------------------------------------------------------------

def near_frontal(angles: np.ndarray) -> np.ndarray:
    """Which (yaw, pitch, roll) rows have |yaw| and |pitch| below NEAR_FRONTAL_DEG."""
    return (np.abs(angles[:, 0]) < NEAR_FRONTAL_DEG) & (np.abs(angles[:, 1]) < NEAR_FRONTAL_DEG)


def reading_line(true_ypr: np.ndarray, predicted_ypr: np.ndarray, axis: int) -> tuple[float, float]:
    """(slope, intercept at label 0) of predicted on true angle `axis` (0 yaw, 1 pitch, 2 roll) over
    the near-frontal faces: a slope below 1 is a net that under-reads the angle (its bias then
    follows the faces' mean angle), the intercept an offset."""
    near = near_frontal(true_ypr) & np.isfinite(predicted_ypr[:, axis])
    if near.sum() < 2 or np.ptp(true_ypr[near, axis]) == 0:
        return float("nan"), float("nan")
    slope, intercept = np.polyfit(true_ypr[near, axis], predicted_ypr[near, axis], 1)
    return float(slope), float(intercept)


def pitch_line(true_ypr: np.ndarray, predicted_ypr: np.ndarray) -> tuple[float, float]:
    """The near-frontal pitch line (reading_line): where sim-to-real transfer has failed most."""
    return reading_line(true_ypr, predicted_ypr, 1)


def yaw_line(true_ypr: np.ndarray, predicted_ypr: np.ndarray) -> tuple[float, float]:
    """The near-frontal yaw line (reading_line). The proxy reads mirrored real faces as it reads
    them mirrored, so an offset here is in the faces' appearance, not in the net."""
    return reading_line(true_ypr, predicted_ypr, 0)


QUARTER, FIFTH = INPUT_SIZE // 4, INPUT_SIZE // 5
PROBE_MASKS = {  # a band of the input -> (rows, columns) filled with the patch's mean
    "top quarter": (slice(0, QUARTER), slice(None)),
    "bottom quarter": (slice(INPUT_SIZE - QUARTER, None), slice(None)),
    "left fifth": (slice(None), slice(0, FIFTH)),
    "right fifth": (slice(None), slice(INPUT_SIZE - FIFTH, None)),
    "centre half": (slice(QUARTER, INPUT_SIZE - QUARTER), slice(QUARTER, INPUT_SIZE - QUARTER)),
}


def masking_probe(model, faces: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict:
    """Where the trained net reads pitch: per band ("none", then PROBE_MASKS) and per named set of
    (patches, quats), the pitch bias, the near-frontal pitch line and the MAE with that band hidden.
    A band whose hiding moves real faces' pitch far more than rendered ones' holds a cue that the
    renderer draws otherwise than real photos show it."""
    probe = {}
    for band, mask in {"none": None, **PROBE_MASKS}.items():
        probe[band] = {}
        for name, (patches, quats) in faces.items():
            predicted = predict(model, patches, mask)
            errors = geometry.signed_euler_errors_deg(quats, predicted)
            slope, at_0 = pitch_line(geometry.ypr_deg(quats), geometry.ypr_deg(predicted))
            probe[band][name] = {"bias_pitch": float(errors[:, 1].mean()), "mae": float(np.abs(errors).mean()),
                                 "pitch_slope": slope, "pitch_at_0": at_0}
    return probe


def measure(real: str | Path = REAL_DEV, quick: bool = False, seed: int = 0, synth_config=None,
            budget: Budget | None = None) -> dict:
    """Train on rendered faces, score on `real` (keys KEYS, degrees; acc10 a share) and on a
    held-out synthetic split (synth_mae and the other synth_* keys); plus timings and the budget."""
    budget = budget or (QUICK if quick else FULL)
    start = time.perf_counter()
    real_x, real_q = load_real(real)  # first: a bad file fails before the slow part
    train_x, train_q = render(budget.n_train, seed, synth_config)
    test_x, test_q = render(budget.n_test, seed + TEST_SEED_OFFSET, synth_config)
    rendered = time.perf_counter()
    model = train_proxy(train_x, train_q, budget.steps, seed)
    trained = time.perf_counter()
    result = score(model, (real_x, real_q), (test_x, test_q))
    result.update(real=str(real), render_seconds=round(rendered - start, 1), train_seconds=round(trained - rendered, 1),
                  seconds=round(time.perf_counter() - start, 1), budget=asdict(budget), seed=seed)
    return result


def score(model, real: tuple[np.ndarray, np.ndarray], synthetic: tuple[np.ndarray, np.ndarray]) -> dict:
    """A trained proxy's figures on real and synthetic (patches, quats): KEYS, synth_*, the reading
    lines and the masking probe (also how a saved proxy is scored again)."""
    real_p = predict(model, real[0])
    on_real = summarize(real[1], real_p)
    on_synth = summarize(synthetic[1], predict(model, synthetic[0]))
    result = {key: on_real[key] for key in KEYS if key in on_real}
    result["synth_mae"] = on_synth["mae"]
    real_ypr, predicted_ypr = geometry.ypr_deg(real[1]), geometry.ypr_deg(real_p)
    result["pitch_slope"], result["pitch_at_0"] = pitch_line(real_ypr, predicted_ypr)
    result["yaw_slope"], result["yaw_at_0"] = yaw_line(real_ypr, predicted_ypr)
    result.update({f"synth_{key}": on_synth[key] for key in ("geodesic_median", "bias_yaw", "bias_pitch", "bias_roll")})
    result["probe"] = masking_probe(model, {"real": real, "synthetic": synthetic})
    return result


def summary_line(result: dict) -> str:
    return (f"sim2real: real MAE {result['mae']:.2f} deg (yaw {result['mae_yaw']:.2f}, pitch {result['mae_pitch']:.2f}, "
            f"roll {result['mae_roll']:.2f}; bias {result['bias_yaw']:+.2f}/{result['bias_pitch']:+.2f}/"
            f"{result['bias_roll']:+.2f}), geodesic median {result['geodesic_median']:.2f}, acc@10 "
            f"{100 * result['acc10']:.1f}% on {result['n']} real faces (near-frontal pitch read with slope "
            f"{result['pitch_slope']:.2f}, {result['pitch_at_0']:+.2f} at label 0; yaw {result['yaw_slope']:.2f}, "
            f"{result['yaw_at_0']:+.2f}); synthetic MAE "
            f"{result['synth_mae']:.2f}; {result['seconds']:.0f} s")


TABLE_HEADER = ["| renderer | n real | MAE | yaw | pitch | roll | geo median | acc@10 % | bias yaw | bias pitch "
                "| bias roll | synth MAE | wall s |", "|---|" + "---|" * 12]


def table_row(label: str, r: dict) -> str:
    return (f"| {label} | {r['n']} | {r['mae']:.2f} | {r['mae_yaw']:.2f} | {r['mae_pitch']:.2f} | {r['mae_roll']:.2f} "
            f"| {r['geodesic_median']:.2f} | {100 * r['acc10']:.1f} | {r['bias_yaw']:+.2f} | {r['bias_pitch']:+.2f} "
            f"| {r['bias_roll']:+.2f} | {r['synth_mae']:.2f} | {r['seconds']:.0f} |")


def probe_table(result: dict) -> list[str]:
    """Markdown: the masking probe of one measured result (see masking_probe)."""
    lines = ["| band hidden | real: bias pitch | real: pitch slope | real: MAE | synthetic: bias pitch "
             "| synthetic: pitch slope | synthetic: MAE |", "|---|" + "---|" * 6]
    for band, sets in result["probe"].items():
        real, synthetic = sets["real"], sets["synthetic"]
        lines.append(f"| {band} | {real['bias_pitch']:+.2f} | {real['pitch_slope']:.2f} | {real['mae']:.2f} "
                     f"| {synthetic['bias_pitch']:+.2f} | {synthetic['pitch_slope']:.2f} | {synthetic['mae']:.2f} |")
    return lines


def write_json(path: str | Path, result: dict) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(result, indent=2) + "\n")


def benchmark(quick: bool, real: str | Path | None = None, json_path: str | Path | None = None) -> list[str]:
    """The proxy on the current renderer: one line printed, Markdown for results/benchmarks.md."""
    budget = QUICK if quick else FULL
    result = measure(real or REAL_DEV, quick=quick)
    if json_path:
        write_json(json_path, result)
    print(summary_line(result))
    return [f"Fixed recipe: {budget.n_train} rendered faces (seed 0), {budget.steps} steps of {BATCH}, "
            f"{INPUT_SIZE}x{INPUT_SIZE} grey crops (side {CROP_MARGIN} x the 68-landmark box, the same rule for "
            f"real faces), 6D output, geodesic loss; real: `{Path(result['real']).name}`; synthetic test: "
            f"{budget.n_test} faces (seed {TEST_SEED_OFFSET}). Degrees; bias = mean signed error "
            "(prediction - truth). Target (DESIGN.md §7): real MAE <= 9, |bias| < 1.5 per axis.",
            "", *TABLE_HEADER, table_row("current defaults", result),
            "", f"Near-frontal real faces (|yaw|, |pitch| < {NEAR_FRONTAL_DEG:g}), reading on label: pitch slope "
            f"{result['pitch_slope']:.2f} ({result['pitch_at_0']:+.2f} at label 0), yaw slope {result['yaw_slope']:.2f} "
            f"({result['yaw_at_0']:+.2f} at label 0).",
            "", "Where the trained net reads pitch (`masking_probe`): each band of the input filled with the "
            "patch's mean in turn, on the real faces and the synthetic test faces:", "", *probe_table(result),
            "", "The ablation of the renderer's changes is in [`sim2real_ablation.md`](sim2real_ablation.md) "
            "(`posenet bench sim2real-ablation`)."]


# --- the ablation: one row per renderer change ----------------------------------------------------

RENDERER_V6 = {"neck_pose": False}  # sessions 10-11's defaults, where v8 differs (v7: a reverted variant)
RENDERER_V5 = {**RENDERER_V6, "wide_pitch_share": 0.0}  # session 8's defaults, where v6 differs
# session 7's defaults, where v5 differs
RENDERER_V4 = {**RENDERER_V5, "face_layout": "model", "brow_lowering_mm": synth.BROW_LOWERING_ANTHROPOMETRIC_MM}
RENDERER_V3 = {**RENDERER_V4, "eye_gaze": "ahead"}  # session 6's defaults, where v4 differs
RENDERER_V2 = {**RENDERER_V3, "brow_lowering_mm": 0.0, "face_on_axis": False}  # sessions 2-5's, where v3 differs
FIRST_RENDERER = {**RENDERER_V2, "pose_distribution": "uniform", "head_on_axis": False, "detailed_face": False,
                  "muted_backgrounds": False}
V5_MOUTH_JAW = {**RENDERER_V5, "neutral_mouth": True, "warp_contour": False}  # session 9's options, both off by default
ABLATION = {  # row label -> SynthConfig fields changed from the defaults (the first row: the first renderer)
    "first renderer's settings": FIRST_RENDERER,
    "+ realistic pose distribution": {**FIRST_RENDERER, "pose_distribution": "realistic"},
    "+ head on the optical axis": {**FIRST_RENDERER, "pose_distribution": "realistic", "head_on_axis": True},
    "+ detailed face (eyes, brows, fringes)": {**RENDERER_V2, "muted_backgrounds": False},
    "+ muted backgrounds (= renderer v2)": RENDERER_V2,
    "renderer v2, uniform poses": {**RENDERER_V2, "pose_distribution": "uniform"},
    "renderer v2, head off-axis": {**RENDERER_V2, "head_on_axis": False},
    "renderer v2 + light from above": {**RENDERER_V2, "light_from_above": True},
    "renderer v2 without the detailed face": {**RENDERER_V2, "detailed_face": False},
    "renderer v2, identity shape offsets x2": {**RENDERER_V2, "identity_scale": 2.0},
    "renderer v2, camera 0.35-4 m from the head": {**RENDERER_V2, "face_distance_mm": (350.0, 4000.0)},
    "renderer v2, eyes painted open to the lid landmarks (not 1.6x)": {**RENDERER_V2, "eye_opening": 1.0},
    "renderer v2, 60 % of people with a fringe over the forehead": {**RENDERER_V2, "fringe_probability": 0.6},
    "+ brows 9 mm lower (anthropometric)": {**RENDERER_V3, "face_on_axis": False},
    "+ brows 9 mm lower, camera 5-10 m (weak perspective)": {**RENDERER_V3, "face_on_axis": False,
                                                             "face_distance_mm": (5000.0, 10000.0)},
    "+ brows 9 mm lower, the face on the axis (= renderer v3)": RENDERER_V3,
    "+ eyes turned toward the camera (= renderer v4)": RENDERER_V4,
    "renderer v4, pitch spread 20 deg (not 13)": {**RENDERER_V4, "pose_sigma_deg": (30.0, 20.0, 9.0)},
    "renderer v4, pitches centred on -4 deg (not 0)": {**RENDERER_V4, "pitch_centre_deg": -4.0},
    "+ faces in the layout of AFLW's 3D model, its brows (= renderer v5)": RENDERER_V5,
    "renderer v5, mouths closed before the expressions open them": {**RENDERER_V5, "neutral_mouth": True},
    "renderer v5, mouths closed, the model's jaw kept (contour labels apart)": V5_MOUTH_JAW,
    "renderer v5, mouths closed, the model's jaw kept, hair volume 0-30 mm": {**V5_MOUTH_JAW,
                                                                               "hair_volume_mm": (0.0, 30.0)},
    "renderer v5, hairlines moved up or down by up to 15 mm": {**RENDERER_V5, "hairline_shift_mm": 15.0},
    "renderer v5, face depth x0.7-1 per person (the face model's to the 3DMM's)": {**RENDERER_V5,
                                                                                  "face_depth_scale": (0.7, 1.0)},
    "+ a quarter of the pitches uniform over +-60 deg (= renderer v6)": RENDERER_V6,
    "renderer v6, face depth x0.7-1 per person": {**RENDERER_V6, "face_depth_scale": (0.7, 1.0)},
    "renderer v6, hairlines moved up or down by up to 15 mm (v7, reverted)": {**RENDERER_V6, "hairline_shift_mm": 15.0},
    "renderer v6, hairlines moved and tilted by up to 15 mm": {**RENDERER_V6, "hairline_shift_mm": 15.0,
                                                              "hairline_tilt_mm": 15.0},
    "+ poses drawn in the neck's order (= renderer v8, current defaults)": {},
}


def ablation(quick: bool, real: str | Path | None = None) -> list[str]:
    """Every row of ABLATION through `measure` (the full budget takes about 15 min a row on 2 cores)."""
    lines = [*TABLE_HEADER]
    for label, changes in ABLATION.items():
        print(f"-- {label}")
        result = measure(real or REAL_DEV, quick=quick, synth_config=replace(synth.SynthConfig(), **changes))
        print(summary_line(result))
        lines.append(table_row(label, result))
    return lines


def contact_sheet(synthetic: np.ndarray, real: np.ndarray, columns: int = 8, scale: int = 2) -> np.ndarray:
    """Two rows of `columns` inputs each, synthetic above real, as the proxy's net sees them (grey)."""
    def row(patches: np.ndarray) -> np.ndarray:
        tiles = (centre_inputs(patches[:columns])[..., 0] * 255).astype(np.uint8)
        return np.concatenate(list(tiles), axis=1)

    sheet = np.concatenate([row(synthetic), np.full((4, columns * INPUT_SIZE), 255, np.uint8), row(real)], axis=0)
    return cv2.resize(sheet, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)


def write_sheet(path: str | Path, real: str | Path = REAL_DEV, synth_config=None, count: int = 16) -> Path:
    """results/sim2real_sheet.png: rendered and real dev crops side by side, by the one crop rule."""
    synthetic, _ = render(count, seed=0, synth_config=synth_config)
    real_patches, _ = load_real(real)
    sheet = np.concatenate([contact_sheet(synthetic[i:i + 8], real_patches[i:i + 8]) for i in (0, 8)], axis=0)
    ok, encoded = cv2.imencode(".png", sheet)
    if not ok:
        raise PosenetError(f"{path}: cannot encode the sheet as PNG")
    with atomic_output(path) as tmp:
        tmp.write_bytes(encoded.tobytes())
    return Path(path)
