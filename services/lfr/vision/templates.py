"""Landmark templates: where five landmarks should land in an embedder's chip.

Why these live in code as well as in cards: the build writes them into the default embedder's card, and
the calibration that produced the MTCNN template (see :mod:`lfr.modelbuild.calibrate`) is recorded here with
its provenance so a rebuild is reproducible without re-running it.

Coordinates are chip pixels with x to the right and y down, in the order of the named landmark scheme.
"""

from __future__ import annotations

Point = tuple[float, float]
Template5 = tuple[Point, Point, Point, Point, Point]

DLIB_CHIP_SIZE = 150
DLIB_CHIP_PADDING = 0.25

# dlib's mean face for its 5-point predictor (get_face_chip_details in dlib/image_transforms/
# interpolation.h), on the unit square, in the predictor's order: subject's left eye outer corner, subject's
# left eye inner corner, subject's right eye outer corner, subject's right eye inner corner, nose base.
DLIB5_UNIT: Template5 = (
    (0.8595674595992, 0.2134981538014),
    (0.6460604764104, 0.2289674387677),
    (0.1205750620789, 0.2137274526848),
    (0.3340850613712, 0.2290642403242),
    (0.4901123135679, 0.6277975316475),
)


def dlib5_template(size: int = DLIB_CHIP_SIZE, padding: float = DLIB_CHIP_PADDING) -> Template5:
    """dlib's 5-point template in chip pixel indices: ``(padding + p) / (2 * padding + 1) * size - 0.5``.

    The -0.5: dlib fits the template in continuous coordinates, then samples chip pixel 0 at the corner of
    a rectangle one pixel narrower than ``size * scale``, i.e. pixel centres sit half a pixel inside, which
    is the pixel-index convention ``cv2.warpAffine`` uses.
    """
    k = 1.0 / (2 * padding + 1)
    pts = tuple(((padding + x) * k * size - 0.5, (padding + y) * k * size - 0.5) for x, y in DLIB5_UNIT)
    return pts  # type: ignore[return-value]


# MTCNN landmarks (image-left eye centre, image-right eye centre, nose tip, image-left mouth corner,
# image-right mouth corner) mapped into dlib's 150 px / 0.25-padding chip (pixel-index convention).
# Fitted by ``python -m lfr.modelbuild.calibrate`` on 51 faces that are NOT used for evaluation: every photo
# in face_recognition_demo/{knn_examples,known_people,enroll,multi_face}, facenet_pytorch_samples/test_images
# and every 10th frame of face_recognition_demo/video/short_hamilton_clip.mp4 (faces found by both dlib's
# HOG detector and MTCNN). Raw mean: eyes (46.887, 45.291) (100.695, 44.977), nose (73.239, 78.174), mouth
# (49.752, 104.503) (99.054, 104.164); mean residual 4.6 px. Stored symmetrised about dlib's own template
# axis x = 73.51 (pairs keep their mean half-width and mean height), so a mirrored face gives a mirrored chip.
MTCNN5_DLIB_CHIP: Template5 = (
    (46.606, 45.134),
    (100.414, 45.134),
    (73.510, 78.174),
    (48.859, 104.334),
    (98.161, 104.334),
)
MTCNN5_DLIB_CHIP_SOURCE = (
    "lfr.modelbuild.calibrate: mean MTCNN landmarks in dlib get_face_chip(150, 0.25) chips of 51 faces from "
    "face_recognition_demo and facenet_pytorch_samples/test_images (not the evaluation sets), symmetrised"
)

# The widely used ArcFace / InsightFace 112x112 reference points for the same five landmarks (eye centres,
# nose tip, mouth corners), for forces plugging in ArcFace-style models.
ARCFACE_112: Template5 = (
    (38.2946, 51.6963),
    (73.5318, 51.5014),
    (56.0252, 71.7366),
    (41.5493, 92.3655),
    (70.7299, 92.2041),
)

# Mean MTCNN landmark positions relative to MTCNN's own box (fractions of box width/height), used to place a
# synthetic face in the centre of a tight crop when the detector finds none. Fitted by
# lfr.modelbuild.calibrate on the same 51 faces as MTCNN5_DLIB_CHIP, symmetrised about x = 0.5.
MTCNN5_IN_BOX: Template5 = (
    (0.2763, 0.3968),
    (0.7237, 0.3968),
    (0.5000, 0.5943),
    (0.2949, 0.7548),
    (0.7051, 0.7548),
)

# YuNet landmarks (same order as MTCNN's) where they land in chips that MTCNN's landmarks align to the
# templates above. Fitted by ``python -m lfr.modelbuild.calibrate_landmarks`` on the 36 faces both detectors
# find (>= 40 px, IoU >= 0.5) in face_recognition_demo/{knn_examples,known_people,enroll,multi_face} and
# facenet_pytorch_samples/test_images (not the evaluation sets), symmetrised about each template's axis.
# Raw means in the ArcFace chip: eyes (36.971, 52.82) (73.223, 52.33), nose (55.748, 73.61), mouth
# (39.73, 89.669) (71.887, 89.612): YuNet's eyes sit lower and its mouth corners higher than MTCNN's.
YUNET5_ARCFACE_112: Template5 = (
    (37.787, 52.575),
    (74.039, 52.575),
    (55.913, 73.61),
    (39.835, 89.64),
    (71.992, 89.64),
)
YUNET5_DLIB_CHIP: Template5 = (
    (45.979, 46.075),
    (101.041, 46.075),
    (73.51, 78.036),
    (49.09, 102.357),
    (97.93, 102.357),
)
YUNET5_SOURCE = (
    "lfr.modelbuild.calibrate_landmarks: mean YuNet landmarks in the chips MTCNN's landmarks make with the "
    "mtcnn5 template, 36 faces from face_recognition_demo and facenet_pytorch_samples/test_images (not the "
    "evaluation sets), symmetrised"
)
