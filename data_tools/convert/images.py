"""A folder (or zip) of photos -> pseudo-labelled HDF5: dlib detection, 68 landmarks, PnP.

This is how the original study labelled its own photos. Per image: every face that
dlib's HOG detector finds (`baselines.detect.detect_faces`) gets dlib's 68 landmarks
(`baselines.pnp.landmarks_68`) and a pose from solvePnP against the face model
(`baselines.pnp.estimate_pose`), with the uncalibrated camera `geometry.camera_for_image`
(f = image width, principal point at the centre; stored in `camera`). Each face kept is
one sample: the whole photo, `rois` = the detector's box, `pt2d_68` = the landmarks the
pose was computed from, `quats`, `coords` (the PnP head centre projected, 100 mm size).
Photos without a face, and faces without a front-facing PnP solution, are counted.
These labels are only as good as dlib + PnP (about 15 deg MAE on AFLW2000-3D).
"""

from __future__ import annotations

import argparse

import numpy as np

from data_tools.convert.archive import Archive, Skip, read_image
from posenet.core import geometry

SOURCE = "photos pseudo-labelled with dlib 68 landmarks + PnP"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm")


class Converter:
    """Every image member; one sample per face with a PnP pose."""

    source = SOURCE

    def __init__(self, archive: Archive, args: argparse.Namespace | None = None) -> None:
        from baselines import detect, pnp  # dlib loads slowly: only for this format

        self.archive, self.detect, self.pnp = archive, detect, pnp
        self.predictor = pnp.load_shape_predictor()

    def items(self) -> list[str]:
        return [n for n in self.archive.names if n.lower().endswith(IMAGE_SUFFIXES)]

    def convert(self, item: str) -> list[dict[str, object]]:
        image, buffer = read_image(self.archive, item)
        faces = self.detect.detect_faces(image, "hog")
        if not faces:
            raise Skip("no face detected")
        camera = geometry.camera_for_image(image.shape[1], image.shape[0])
        records = []
        for face in faces:
            landmarks = self.pnp.landmarks_68(image, face.box, self.predictor)
            result = self.pnp.estimate_pose(landmarks, camera)
            if result is not None:
                records.append({
                    "images": buffer,
                    "quats": result.quat.astype(np.float32),
                    "coords": geometry.head_coords(result.translation, camera).astype(np.float32),
                    "rois": np.asarray(face.box, np.float32),
                    "pt2d_68": landmarks.astype(np.float32),
                    "camera": camera.astype(np.float32),
                })
        if not records:
            raise Skip("no front-facing PnP solution")
        return records

    def attrs(self) -> dict[str, object]:
        return {"camera_note": "no calibration: f = image width, centre principal point"}
