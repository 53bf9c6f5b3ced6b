"""`posenet train`: train one registered net; study nets and tracker nets each go to their wing's trainer."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from posenet.study.config import TrainConfig
from posenet.study.losses import LOSSES
from posenet.study.pipeline import PipelineConfig
from posenet.training.registry import MODELS, ModelConfig, model_entry
from posenet.training.runs import Run

if TYPE_CHECKING:
    from posenet.tracker.train import TrackerTrainConfig


def _optional(value: str) -> str | None:
    return None if value.lower() == "none" else value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = TrainConfig()
    pipe = defaults.pipeline
    parser.add_argument("--model", required=True, help=f"network: {', '.join(MODELS)}")
    parser.add_argument("--loss", default=defaults.loss, help=f"training loss: {', '.join(LOSSES)}")
    parser.add_argument("--train", required=True, help="training split (HDF5)")
    parser.add_argument("--val", required=True, help="validation split (HDF5), never seen in training")
    parser.add_argument("--logdir", default=defaults.logdir, help="TensorBoard / runs directory")
    parser.add_argument("--run-name", default=None,
                        help="run directory name (default: MODEL-LOSS for study nets, MODEL for tracker nets)")
    parser.add_argument("--epochs", type=int, default=defaults.epochs, help="total epochs")
    parser.add_argument("--lr", type=float, default=defaults.learning_rate, help="Adam learning rate")
    parser.add_argument("--batch-size", type=int, default=pipe.batch_size)
    parser.add_argument("--input-size", type=int, default=pipe.input_size, help="square input side, pixels")
    parser.add_argument("--schedule", default=defaults.schedule,
                        help="constant; original (the rate drops 5x after 50/80 of the epochs); or cosine (decays to 5%% of --lr)")
    parser.add_argument("--weights", type=_optional, default=None,
                        help="backbone weights: none; imagenet (C_RESNET: the Keras cache, else Keras downloads it once; "
                             "C_MOBILENET, MOBILENET_QUAT, pose_mobilenet: the installed offline package); or a local file "
                             "(ResNet50 .h5, torchvision MobileNetV2 .pth)")
    parser.add_argument("--trainable-from", type=_optional, default=None,
                        help="C_RESNET: none (frozen backbone) or conv4_block4 (the original's partial unfreeze)")
    parser.add_argument("--cache-features", action=argparse.BooleanOptionalAction, default=None,
                        help="train a frozen backbone's head (C_RESNET, C_MOBILENET) on cached backbone features "
                             "(default: when frozen)")
    parser.add_argument("--distribute", default=None,
                        help="train on several devices (study and tracker nets): mirrored (all local GPUs) or "
                             "multiworker (several machines, described by TF_CONFIG); --batch-size stays the global "
                             "batch, split across the replicas")
    parser.add_argument("--seed", type=int, default=pipe.seed)
    parser.add_argument("--augment", action="store_true", help="in-plane rotation, mirror and photometric jitter")
    parser.add_argument("--rotation-deg", type=float, default=pipe.rotation_deg, help="max in-plane rotation")
    parser.add_argument("--no-flip", dest="flip", action="store_false", help="no mirror augmentation")
    parser.add_argument("--no-photometric", dest="photometric", action="store_false", help="no colour jitter")
    parser.add_argument("--margin", type=float, default=pipe.margin, help="crop margin, share of the box side")
    parser.add_argument("--boxes", default=pipe.boxes, help="face boxes: file (rois) or dlib")
    parser.add_argument("--normalization", default=None,
                        help="resnet (caffe-style), unit ([0, 1]) or torch (torchvision's ImageNet); "
                             "default: what the net expects (torch for the MobileNet nets, else resnet)")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The study run the flags ask for: the run's own settings, the pipeline's and the net's."""
    normalization = args.normalization or model_entry(args.model).normalization
    pipe = PipelineConfig(input_size=args.input_size, normalization=normalization, augment=args.augment,
                          rotation_deg=args.rotation_deg, flip=args.flip, photometric=args.photometric,
                          margin=args.margin, boxes=args.boxes, batch_size=args.batch_size, seed=args.seed)
    net = ModelConfig(input_size=args.input_size, weights=args.weights, trainable_from=args.trainable_from)
    return TrainConfig(model=args.model, loss=args.loss, train=args.train, val=args.val, logdir=args.logdir,
                       run_name=args.run_name, epochs=args.epochs, learning_rate=args.lr, schedule=args.schedule,
                       cache_features=args.cache_features, distribute=args.distribute, pipeline=pipe, net=net)


def tracker_config_from_args(args: argparse.Namespace) -> TrackerTrainConfig:
    """The tracker run the flags ask for; the study's pipeline and C_RESNET flags do not apply to its nets."""
    from posenet.tracker import data as tracker_data
    from posenet.tracker.train import TrackerTrainConfig

    return TrackerTrainConfig(model=args.model, train=str(args.train), val=str(args.val), logdir=args.logdir,
                              run_name=args.run_name, epochs=args.epochs, learning_rate=args.lr, weights=args.weights,
                              distribute=args.distribute,
                              data=tracker_data.TrackerDataConfig(batch_size=args.batch_size, seed=args.seed))


def run(args: argparse.Namespace) -> None:
    if model_entry(args.model).task != "rotvec":
        from posenet.tracker import train as tracker_train

        return tracker_train.run(tracker_config_from_args(args))
    from posenet.study import train as study_train

    run_dir = study_train.train(config_from_args(args))
    done = Run(run_dir).summary()
    print(f"trained {args.model} ({args.loss}): {run_dir} (best val_loss {done['best_val_loss']:.4f} at epoch "
          f"{done['best_epoch'] + 1}/{done['epochs']}, val geodesic {done['val_geodesic_deg']:.1f} deg, "
          f"acc@10 {done['val_acc10']:.1%})")
