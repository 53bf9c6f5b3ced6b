"""`posenet tracker-models`: the tracker's two ONNX models from nothing, in one resumable command.

Renders the rendered-face and scene sets (reused while the renderer and its settings are
unchanged), trains the pose net (by default `pose_mobilenet` on the offline ImageNet trunk, the
recipe of results/tracker_pose_recipes.md) and the localizer (each resumes if interrupted, and a
finished run is reused), exports both in Opentrack's contract into `--out` (pose_mobilenet as int8
unless `--no-int8`; pose_net and the localizer float, measured slower as int8) and prints what each
step took.
`--quick` is a smoke test with tiny sizes.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, replace
from pathlib import Path

from posenet.core.errors import PosenetError
from posenet.core.fileio import check_writable
from posenet.core.paths import OUR_MODELS
from posenet.training.strategy import STRATEGIES


@dataclass(frozen=True)
class Sizes:
    """How many images each set gets and how long each net trains."""

    faces: int
    face_val: int
    scenes: int
    scene_val: int
    pose_epochs: int
    localizer_epochs: int


FULL = Sizes(faces=80000, face_val=500, scenes=4000, scene_val=400, pose_epochs=6, localizer_epochs=16)
MIN_FACES = 64  # one training batch
QUICK = Sizes(faces=64, face_val=32, scenes=64, scene_val=32, pose_epochs=1, localizer_epochs=1)
SEEDS = {"face_train": 41, "face_val": 12, "scene_train": 21, "scene_val": 22}  # face_val as in the README
RATES = {"pose_mobilenet": 2e-4, "pose_net": 2e-3, "localizer": 3e-3}  # measured (tracker_pose_recipes.md)
OUTPUTS = {"pose": "pose_net.onnx", "localizer": "localizer.onnx"}  # the names `posenet track` looks for
INT8_BY_DEFAULT = ("pose_mobilenet",)  # pose nets faster as int8 (measured; pose_net and the localizer are not)


def render(path: Path, mode: str, n: int, seed: int) -> Path:
    """A synthetic set, rendered unless one of this renderer, settings and size is already there."""
    import h5py

    from data_tools import synth

    config = synth.SynthConfig(mode=mode)
    if synth.is_current(path, config, seed):
        with h5py.File(path, "r") as handle:
            if len(handle["images"]) == n:
                print(f"{path}: {n} images of this renderer, reused")
                return path
    synth.write_synth(path, config, n, seed=seed, progress=True)
    return path


def export(run_dir: Path, out: Path, data: Path, int8: bool) -> Path:
    """Opentrack's contract, checked against Keras and the contract checker (and int8 if asked)."""
    from posenet.export import export_run

    summary = export_run(run_dir, out, "opentrack", data, int8=int8)
    print(f"wrote {out} (ONNX - Keras <= {summary['max_abs_diff']:.1e}; Opentrack contract ok"
          + ("; int8" if int8 else "") + ")")
    return out


def train(model: str, weights: str | None, train_file: Path, val_file: Path, runs: Path, epochs: int,
          distribute: str | None = None) -> Path:
    """One tracker run (resumed if interrupted, reused if finished on the data there now), under the
    `distribute` strategy."""
    from posenet.tracker.train import TrackerTrainConfig, fit_tracker_model
    from posenet.training.runs import Run, retire_if_stale

    config = TrackerTrainConfig(model=model, train=str(train_file), val=str(val_file), logdir=str(runs),
                                epochs=epochs, learning_rate=RATES[model], weights=weights,
                                distribute=distribute)
    retire_if_stale(config.run_dir, [train_file, val_file], model)  # a newer renderer re-rendered its data
    if Run(config.run_dir).done:
        print(f"{model}: already trained ({config.run_dir}), reused")
        return config.run_dir
    return fit_tracker_model(config)


def run(args: argparse.Namespace) -> None:
    sizes = QUICK if args.quick else FULL
    if args.faces is not None:
        if args.faces < MIN_FACES:
            raise PosenetError(f"--faces {args.faces}: need at least {MIN_FACES} rendered faces to train on")
        sizes = replace(sizes, faces=args.faces)
    for name in OUTPUTS.values():
        check_writable(args.out / name)  # fail now, not after an hour of training
    data, runs = args.workdir / "data", args.workdir / "runs"
    weights = "imagenet" if args.pose_model == "pose_mobilenet" else None
    int8 = args.int8 if args.int8 is not None else args.pose_model in INT8_BY_DEFAULT
    steps = {
        "render faces": lambda: (render(data / "face_train.h5", "face", sizes.faces, SEEDS["face_train"]),
                                 render(data / "face_val.h5", "face", sizes.face_val, SEEDS["face_val"])),
        "render scenes": lambda: (render(data / "scene_train.h5", "scene", sizes.scenes, SEEDS["scene_train"]),
                                  render(data / "scene_val.h5", "scene", sizes.scene_val, SEEDS["scene_val"])),
        "train the pose net": lambda: train(args.pose_model, weights, data / "face_train.h5", data / "face_val.h5",
                                            runs, sizes.pose_epochs, args.distribute),
        "export the pose net": lambda: export(runs / args.pose_model, args.out / OUTPUTS["pose"], data / "face_val.h5",
                                              int8),
        "train the localizer": lambda: train("localizer", None, data / "scene_train.h5", data / "scene_val.h5",
                                             runs, sizes.localizer_epochs, args.distribute),
        "export the localizer": lambda: export(runs / "localizer", args.out / OUTPUTS["localizer"],
                                               data / "scene_val.h5", int8=False),
    }
    start, took = time.perf_counter(), {}
    for number, (step, action) in enumerate(steps.items(), start=1):
        print(f"[{number}/{len(steps)}] {step}")
        begin = time.perf_counter()
        action()
        took[step] = time.perf_counter() - begin
    print("took: " + ", ".join(f"{step} {seconds / 60:.1f} min" for step, seconds in took.items())
          + f"; in all {(time.perf_counter() - start) / 60:.1f} min")
    pose, localizer = args.out / OUTPUTS["pose"], args.out / OUTPUTS["localizer"]
    use = ("`posenet track` uses them by default" if args.out.resolve() == OUR_MODELS.resolve()
           else f"track with them: posenet track --pose {pose} --localizer {localizer} ...")
    print(f"wrote {pose} and {localizer}; {use}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=OUR_MODELS, help="folder for pose_net.onnx and localizer.onnx")
    parser.add_argument("--workdir", type=Path, default=Path("work/tracker"), help="rendered sets and training runs")
    parser.add_argument("--pose-model", choices=("pose_mobilenet", "pose_net"), default="pose_mobilenet",
                        help="pose_mobilenet: ImageNet MobileNetV2 trunk (trained on renderer v4's faces: 6.6 deg on "
                             "real ones, 0.8 ms/patch as int8); pose_net: the small net from scratch (9.7 deg, 0.15 ms)")
    parser.add_argument("--int8", action=argparse.BooleanOptionalAction, default=None,
                        help="export the pose net as int8 (ONNX Runtime static quantisation). Default: int8 for "
                             "pose_mobilenet (2x faster than float and as accurate on real faces, so the tracker is "
                             "not slower than with Opentrack's models), float for pose_net (slower as int8); the "
                             "localizer stays float (slower as int8)")
    parser.add_argument("--faces", type=int, default=None,
                        help=f"rendered faces the pose net trains on (default: {FULL.faces}; training time grows "
                             "with it: about 0.65 min per 1,000 faces on 2 CPU cores)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and one epoch: a smoke test")
    parser.add_argument("--distribute", choices=STRATEGIES, default=None,
                        help="train both nets on several devices: mirrored (all local GPUs) or multiworker (several "
                             "machines, described by TF_CONFIG); the batch stays the global one, split across the "
                             "replicas (default: one device)")
