"""MTCNN detector on real photos and on the street video, against hand-checked labels (fixtures/)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from lfr.core.config import Settings, load_settings
from lfr.modelbuild.evaluate import (
    detection_recall,
    load_frame_labels,
    load_photo_labels,
    read_frames,
    reference_agreement,
    reference_cascade,
    small_face_canvases,
)
from lfr.vision import ImageTooLargeError
from lfr.vision.boxes import iou_matrix
from lfr.vision.pipeline import load_detector


def _xyxy(b: np.ndarray) -> np.ndarray:
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    return np.column_stack([b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]])


def test_photo_faces_found_with_iou(settings: Settings, faces_dir: Path, photo_labels: dict) -> None:
    det = load_detector(settings)
    data = photo_labels
    checked = 0
    for item in data["images"]:
        img = cv2.imread(str(faces_dir / item["image"]))
        found = det.detect(img)
        assert found, item["image"]
        pred = _xyxy(np.array([d.bbox for d in found]))
        for face in item["faces"]:
            if face.get("truncated"):
                continue
            best = float(iou_matrix(_xyxy(face["bbox"]), pred).max())
            assert best >= 0.5, f"{item['image']} face {face['bbox']}: best IoU {best:.2f}"
            checked += 1
        # Every confident detection of a sizeable face is a labelled face (no false alarms).
        labels = _xyxy(np.array([f["bbox"] for f in item["faces"]]))
        for d in found:
            if d.bbox[2] >= 40:
                assert float(iou_matrix(_xyxy(d.bbox), labels).max()) >= 0.3, (item["image"], d.bbox)
    assert checked >= 15


def test_landmarks_are_ordered_image_left_to_right(settings: Settings, faces_dir: Path) -> None:
    det = load_detector(settings)
    img = cv2.imread(str(faces_dir / "facenet_pytorch_samples/multi_face/multiface.jpg"))
    for d in det.detect(img):
        lm = d.landmarks
        assert lm.shape == (5, 2) and lm.dtype == np.float32
        assert lm[0, 0] < lm[1, 0] and lm[3, 0] < lm[4, 0]  # eyes and mouth corners: image-left first
        assert lm[:2, 1].max() < lm[2, 1] < lm[3:, 1].min()  # eyes above nose above mouth
        x, y, w, h = d.bbox
        assert np.all((lm[:, 0] >= x) & (lm[:, 0] <= x + w) & (lm[:, 1] >= y) & (lm[:, 1] <= y + h))


def test_video_recall_of_faces_40px_and_wider(
    settings: Settings, faces_dir: Path, fixtures_dir: Path
) -> None:

    video, frames = load_frame_labels(fixtures_dir / "video_faces.json")
    imgs = read_frames(faces_dir / video, [f.frame for f in frames])
    det = load_detector(settings)
    found, total = detection_recall(
        det, [imgs[f.frame] for f in frames], [f.boxes for f in frames], min_width=40
    )
    assert total >= 25
    assert found / total >= 0.95, f"recall {found}/{total}"


def test_strips_and_chunks_change_nothing(
    settings: Settings, faces_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """P-Net strips and R-Net/O-Net chunks are for the CPU caches only: detections are bit-identical."""
    from lfr.vision.detectors import mtcnn

    det = load_detector(settings)
    video = faces_dir / "facenet_pytorch_samples" / "video" / "video.mp4"
    frames = read_frames(video, [0, 40])
    split = {i: det.detect(f) for i, f in frames.items()}
    monkeypatch.setattr(mtcnn, "PNET_STRIP_ROWS", 10**6)
    monkeypatch.setattr(mtcnn, "REFINE_CHUNK", 10**6)
    for i, f in frames.items():
        whole = det.detect(f)
        assert len(whole) == len(split[i]) >= 3
        for a, b in zip(whole, split[i], strict=True):
            assert a.bbox == b.bbox and a.score == b.score
            np.testing.assert_array_equal(a.landmarks, b.landmarks)


def test_oversized_image_is_refused(models_dir: Path) -> None:
    det = load_detector(load_settings(models={"dir": str(models_dir)}, detector={"max_image_pixels": 1000}))
    with pytest.raises(ImageTooLargeError, match="max_image_pixels"):
        det.detect(np.zeros((40, 40, 3), np.uint8))
    assert isinstance(ImageTooLargeError("x"), ValueError)


def test_blank_and_grey_images(settings: Settings) -> None:
    det = load_detector(settings)
    assert det.detect(np.zeros((480, 640, 3), np.uint8)) == []
    assert det.detect(np.full((200, 300), 128, np.uint8)) == []
    assert det.detect(np.zeros((8, 8, 3), np.uint8)) == []


def test_held_out_small_faces_recall(settings: Settings, faces_dir: Path, fixtures_dir: Path) -> None:
    """The labelled photos' faces (not the video's), shrunk to 44-72 px on a 1080p canvas, are found."""
    images, boxes = small_face_canvases(load_photo_labels(fixtures_dir / "photo_faces.json", faces_dir))
    found, total = detection_recall(load_detector(settings), images, boxes, min_width=40)
    assert total >= 40
    assert found / total >= 0.95, f"recall {found}/{total}"


def test_first_level_thresholds_only_prune_candidates(
    settings: Settings, faces_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stricter finest-level P-Net threshold sends fewer candidates to R-Net and keeps the faces."""
    from lfr.vision.detectors import mtcnn

    video = faces_dir / "facenet_pytorch_samples" / "video" / "video.mp4"
    frames = read_frames(video, [0, 10, 30, 50, 70, 90])
    frame = frames.pop(0)
    counts: list[int] = []
    real_refine = mtcnn.MtcnnDetector._refine

    def counting_refine(self: mtcnn.MtcnnDetector, levels: list, boxes: np.ndarray) -> np.ndarray:
        counts.append(len(boxes))
        return real_refine(self, levels, boxes)

    monkeypatch.setattr(mtcnn.MtcnnDetector, "_refine", counting_refine)
    strict_det, reference_det = load_detector(settings), load_detector(reference_cascade(settings))
    strict = strict_det.detect(frame)
    loose = reference_det.detect(frame)
    assert settings.detector.first_level_thresholds  # the default is the stricter cascade
    assert counts[0] < 0.9 * counts[1], counts
    for d in loose:
        if d.bbox[2] >= 40:
            best = float(iou_matrix(_xyxy(d.bbox), _xyxy(np.array([s.bbox for s in strict]))).max())
            assert best >= 0.5, d.bbox
    # Frames nobody labelled (the labels are on every 20th): the reference cascade's faces are still found.
    kept, total = reference_agreement(strict_det, reference_det, frames.values())
    # Measured 23/24: the one lost is a 42 px face half hidden behind another on frame 90 (462/463 over all
    # 99 unlabelled frames, `lfr bench models`); the floor is the recall target.
    assert total >= 20
    assert kept / total >= 0.95, f"{kept}/{total}"
