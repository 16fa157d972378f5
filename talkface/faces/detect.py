"""Face detection with MediaPipe's BlazeFace, at any frame size.

Reference: Bazarevsky et al., "BlazeFace: Sub-millisecond Neural Face Detection on Mobile GPUs"
(2019), and MediaPipe's `face_detection_full_range` graph, whose anchor and decoding settings are
reproduced here (SsdAnchorsCalculator: one 48x48 layer of unit anchors on a 192x192 input;
TensorsToDetectionsCalculator: 16 values per anchor = box centre and size + 6 key points,
sigmoid scores; weighted non-maximum suppression at IoU 0.3).

The full-range model sees the whole frame letterboxed to 192 px and finds faces down to about
4% of the frame's long side. Smaller faces (a full-body phone video, a wide shot) are found by
running it again on overlapping tiles when the whole-frame pass finds nothing, so the smallest face
found is about 32 px tall whatever the frame size; a frame smaller than 192 px is enlarged.
Boxes and key points are returned in source pixels.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..media import NativeFrame
from .model_files import TFLiteModel, mediapipe_model

INPUT = 192
GRID = 48  # one anchor per cell of a 48x48 grid (stride 4)
MIN_SCORE = 0.5
NMS_IOU = 0.3
# key points, as MediaPipe numbers them (the subject's right eye is on the image's left)
RIGHT_EYE, LEFT_EYE, NOSE, MOUTH, RIGHT_EAR, LEFT_EAR = range(6)


@dataclass(frozen=True)
class Detection:
    """One face: box (x0, y0, x1, y1) and key points (6, 2) in source pixels (None from a
    detector without key points), score (BlazeFace's in [0, 1]) and which detector found it."""

    box: tuple[float, float, float, float]
    keypoints: Optional[np.ndarray]
    score: float
    detector: str = "blazeface"

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]


def _anchors() -> np.ndarray:
    """(2304, 2) anchor centres in [0, 1] (x, y), row by row."""
    centres = (np.arange(GRID) + 0.5) / GRID
    x, y = np.meshgrid(centres, centres)
    return np.stack([x.ravel(), y.ravel()], axis=1).astype(np.float32)


def box_iou(a, b) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes; 0 when their union is empty."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def weighted_nms(boxes: np.ndarray, points: np.ndarray, scores: np.ndarray,
                 iou: float = NMS_IOU) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """MediaPipe's blending NMS: each kept detection is the score-weighted mean of the
    detections overlapping it. boxes (N, 4), points (N, 6, 2), scores (N,)."""
    order = list(np.argsort(-scores))
    kept = []
    while order:
        top = order[0]
        overlaps = [i for i in order if box_iou(boxes[top], boxes[i]) > iou]
        w = scores[overlaps][:, None]
        box = (boxes[overlaps] * w).sum(0) / w.sum()
        pts = (points[overlaps] * w[:, :, None]).sum(0) / w.sum()
        kept.append((box, pts, float(scores[top])))
        order = [i for i in order if i not in set(overlaps)]
    return kept


class FaceDetector:
    """BlazeFace full range: `detect(frame)` -> detections in source pixels, largest first."""

    def __init__(self, min_score: float = MIN_SCORE, threads: int = 1) -> None:
        self.model = TFLiteModel(mediapipe_model("face_detection_full_range.tflite"), threads)
        self.min_score = float(min_score)
        self.anchors = _anchors()

    def _run(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A square 192x192 RGB image -> boxes (N, 4), points (N, 6, 2) in [0, 1], scores."""
        x = (rgb.astype(np.float32) / 127.5 - 1.0)[None]
        raw_boxes, raw_scores = self.model(x)
        scores = 1.0 / (1.0 + np.exp(-np.clip(raw_scores[0, :, 0], -80, 80)))
        keep = scores >= self.min_score
        if not keep.any():
            return np.zeros((0, 4)), np.zeros((0, 6, 2)), np.zeros(0)
        raw = raw_boxes[0, keep] / INPUT
        anchors = self.anchors[keep]
        centre, size = raw[:, 0:2] + anchors, raw[:, 2:4]
        boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
        points = raw[:, 4:16].reshape(-1, 6, 2) + anchors[:, None, :]
        valid = (size > 0).all(1)
        return boxes[valid], points[valid], scores[keep][valid]

    def _detect_region(self, frame: NativeFrame, region: tuple[int, int, int, int]):
        """Letterbox a frame region into the model's input; results in source pixels."""
        x0, y0, x1, y1 = region
        w, h = x1 - x0, y1 - y0
        scale = INPUT / max(w, h)
        tw, th = max(2, int(round(w * scale / 2)) * 2), max(2, int(round(h * scale / 2)) * 2)
        image = np.zeros((INPUT, INPUT, 3), np.uint8)
        ox, oy = (INPUT - tw) // 2, (INPUT - th) // 2
        image[oy:oy + th, ox:ox + tw] = frame.region(region, (tw, th))
        boxes, points, scores = self._run(image)
        sx, sy = w / tw, h / th  # letterbox pixels -> source pixels
        boxes = (boxes * INPUT - [ox, oy, ox, oy]) * [sx, sy, sx, sy] + [x0, y0, x0, y0]
        points = (points * INPUT - [ox, oy]) * [sx, sy] + [x0, y0]
        return boxes, points, scores

    def tiles(self, width: int, height: int, side: int = 480) -> list[tuple[int, int, int, int]]:
        """Overlapping square tiles (half a tile apart) covering a frame, for small faces."""
        side = min(side, width, height)
        xs = np.unique(np.linspace(0, width - side, max(1, int(np.ceil(2 * width / side)) - 1))
                       .round().astype(int))
        ys = np.unique(np.linspace(0, height - side, max(1, int(np.ceil(2 * height / side)) - 1))
                       .round().astype(int))
        return [(int(x), int(y), int(x) + side, int(y) + side) for y in ys for x in xs]

    def detect(self, frame: NativeFrame, tiled: bool | None = None,
               tile_side: int = 480) -> list[Detection]:
        """Faces in a frame. `tiled`: also search tiles of `tile_side` pixels (None: only when
        the whole-frame pass finds nothing and the frame is large enough for tiles to see
        more)."""
        results = [self._detect_region(frame, (0, 0, frame.width, frame.height))]
        big = max(frame.width, frame.height) > 1.5 * 480
        if tiled or (tiled is None and big and len(results[0][2]) == 0):
            results += [self._detect_region(frame, t)
                        for t in self.tiles(frame.width, frame.height, tile_side)]
        boxes = np.concatenate([r[0] for r in results])
        if len(boxes) == 0:
            return []
        points = np.concatenate([r[1] for r in results])
        scores = np.concatenate([r[2] for r in results])
        found = [Detection(tuple(float(v) for v in box), pts.astype(np.float32), score)
                 for box, pts, score in weighted_nms(boxes, points, scores)]
        return sorted(found, key=lambda d: -d.height)
