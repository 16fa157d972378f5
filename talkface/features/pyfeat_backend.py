"""py-feat backend: Detectorv1's 68 landmarks, action units, emotions and head pose per frame.

Reference: py-feat 2.1.5 (Cheong et al., "Py-Feat: Python Facial Expression Analysis Toolbox",
Affective Science 2023; https://py-feat.org). Each frame goes through py-feat's own
`Detectorv1.detect_faces` and `Detectorv1.forward` (the two steps `Detectorv1.detect` runs per
batch, without its DataLoader and `Fex` wrapping, which cost more than the models on one frame).

Column names are py-feat's: `forward` returns one table per frame and this backend keeps its
landmark, AU, emotion and pose columns (plus identity and gaze when those models are switched on),
in py-feat's order, grouped as `pyfeat_landmarks`, `pyfeat_pose`, `pyfeat_aus`, ... Because the names come from
py-feat's output, `columns()` runs the detector once on a blank probe image the first time it is
asked and caches the answer. Landmark values are relative to py-feat's face box (0..1 across the
box, as the `landmarks` backend does), not frame pixels, so they do not depend on resolution or
where the face sits. With several faces the largest is chosen and then followed by box overlap.

py-feat downloads its weights from the Hugging Face hub (`py-feat/<model>`) into its resources
folder on first use. A missing weight file raises `BackendUnavailable` naming the file; with
HF_HUB_OFFLINE set this happens before py-feat is asked (which would otherwise retry the network).
Importing py-feat sets OMP_NUM_THREADS=1 when it is unset; this module undoes that and sets torch's
(process-wide) thread count itself: `threads=N`, else the user's OMP_NUM_THREADS, else every CPU.
Nothing here imports py-feat until a backend is built.
"""
from __future__ import annotations

import logging
import os
import sys
import warnings
from typing import Optional

import numpy as np

from ..errors import BackendUnavailable, ConfigError
from .base import Box, FrameResult, FrameSession, VisualBackend, choose_face, register_backend
from .image_stats import CropStats
from .landmarks import _landmark_box, _mouth_box

log = logging.getLogger(__name__)

# The cheap configuration: RetinaFace (py-feat's default and faster than img2pose), MobileFaceNet
# landmarks, XGBoost AU probabilities, HOG+SVM emotions, no identity embedding, no gaze.
DEFAULT_MODELS = {"face_model": "retinaface", "landmark_model": "mobilefacenet",
                  "au_model": "xgb", "emotion_model": "svm", "identity_model": None,
                  "gaze_model": None}

# Hub files Detectorv1 (feat/detector.py, 2.1.5) loads per model choice: (repo, file[, fallback]).
WEIGHT_FILES: dict[tuple[str, str], list[tuple[str, ...]]] = {
    ("face_model", "retinaface"): [("py-feat/retinaface_r34", "model.safetensors",
                                    "retinaface_r34.safetensors"),
                                   # pose comes from py-feat's landmarks-to-pose MLP
                                   ("py-feat/pose_mlp_v2", "pose_mlp_v2.safetensors"),
                                   ("py-feat/pose_mlp_v2", "pose_mlp_v2.json")],
    ("face_model", "img2pose"): [("py-feat/img2pose", "config.json"),
                                 ("py-feat/img2pose", "model.safetensors")],
    ("landmark_model", "mobilefacenet"): [("py-feat/mobilefacenet",
                                           "mobilefacenet_model_best.pth.tar")],
    ("landmark_model", "mobilenet"): [("py-feat/mobilenet",
                                       "mobilenet_224_model_best_gdconv_external.pth.tar")],
    ("landmark_model", "pfld"): [("py-feat/pfld", "pfld_model_best.pth.tar")],
    ("au_model", "xgb"): [("py-feat/xgb_au", "xgb_au_classifier_v2.skops",
                           "xgb_au_classifier.skops")],
    ("au_model", "svm"): [("py-feat/svm_au", "svm_au_classifier_v2.skops",
                           "svm_au_classifier.skops")],
    ("emotion_model", "resmasknet"): [("py-feat/resmasknet", "config.json"),
                                      ("py-feat/resmasknet",
                                       "ResMaskNet_Z_resmasking_dropout1_rot30.pth")],
    ("emotion_model", "svm"): [("py-feat/svm_emo", "svm_emo_classifier.skops")],
    ("identity_model", "facenet"): [("py-feat/facenet", "facenet_20180402_114759_vggface2.pth")],
    ("identity_model", "arcface"): [("py-feat/arcface_r50", "arcface_r50.safetensors")],
    ("gaze_model", "l2cs"): [("py-feat/l2cs", "l2cs_gaze360_resnet50.safetensors")],
}


def missing_weights(models: dict, cache_dir: str) -> list[str]:
    """`repo/file` of each weight file `models` need that is not in the hub cache `cache_dir`."""
    from huggingface_hub import try_to_load_from_cache
    missing = []
    for key in models.items():
        for repo, *names in WEIGHT_FILES.get(key, []):
            if not any(isinstance(try_to_load_from_cache(repo, name, cache_dir=cache_dir), str)
                       for name in names):
                missing.append(f"{repo}/{names[0]}")
    return missing


def _missing_message(missing: list[str], cache_dir: str, reason: str = "") -> str:
    offline = _hub_offline()
    lines = [f"py-feat weights not found: {', '.join(missing) or 'see below'} "
             f"(looked in {cache_dir}).",
             "py-feat downloads them from the Hugging Face hub (https://huggingface.co/py-feat) "
             "the first time it is used."]
    if offline:
        lines.append("HF_HUB_OFFLINE is set, so nothing can be downloaded: unset it and run once "
                     "with internet access, or copy the files into that folder.")
    if reason:
        lines.append(f"The download failed: {reason}")
    lines.append("The default 'landmarks' backend needs no download.")
    return " ".join(lines)


def _hub_offline() -> bool:
    from huggingface_hub import constants
    return bool(constants.is_offline_mode())


def _default_threads() -> int:
    """OMP_NUM_THREADS if the user set it (py-feat is not imported yet, so the value is theirs),
    else every CPU this process may use."""
    omp = os.environ.get("OMP_NUM_THREADS", "")
    if "feat" not in sys.modules and omp.isdigit() and int(omp) > 0:
        return int(omp)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _import_feat(threads: Optional[int]):
    """Import py-feat, undo its OMP_NUM_THREADS=1 default and set torch's thread count."""
    threads = int(threads) if threads else _default_threads()
    omp_was_set = "feat" in sys.modules or "OMP_NUM_THREADS" in os.environ
    import feat
    import torch
    if not omp_was_set:
        os.environ.pop("OMP_NUM_THREADS", None)
    torch.set_num_threads(threads)
    log.debug("py-feat %s imported; torch on %d threads", feat.__version__, threads)
    return feat


@register_backend("pyfeat")
class PyFeatBackend(VisualBackend):
    """py-feat's Detectorv1 on each frame; see the module docstring."""

    name = "pyfeat"
    version = "1"
    frame_kind = "rgb"

    def __init__(self, face_model: str = DEFAULT_MODELS["face_model"],
                 landmark_model: str = DEFAULT_MODELS["landmark_model"],
                 au_model: Optional[str] = DEFAULT_MODELS["au_model"],
                 emotion_model: Optional[str] = DEFAULT_MODELS["emotion_model"],
                 identity_model: Optional[str] = None, gaze_model: Optional[str] = None,
                 face_detection_threshold: float = 0.5, device: str = "cpu",
                 threads: Optional[int] = None) -> None:
        if landmark_model is None:
            raise ConfigError("the pyfeat backend needs a landmark_model: face boxes, pose, AUs "
                              "and emotions are all computed from py-feat's 68 landmarks")
        self.models = {"face_model": face_model, "landmark_model": landmark_model,
                       "au_model": au_model, "emotion_model": emotion_model,
                       "identity_model": identity_model, "gaze_model": gaze_model}
        self.face_detection_threshold = float(face_detection_threshold)
        self.device = device
        self._feat = _import_feat(threads)
        self._detector = self._build_detector()
        self._columns: Optional[list[tuple[str, list[str]]]] = None

    def _build_detector(self):
        import torch
        from feat.utils.io import get_resource_path
        from feat.utils.face_pose_mlp import _load_pose_mlp
        cache = get_resource_path()
        missing = missing_weights(self.models, cache)
        if missing and _hub_offline():
            raise BackendUnavailable(_missing_message(missing, cache))
        grad = torch.is_grad_enabled()  # py-feat's RetinaFace turns autograd off process-wide
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "retinaface does not regress 6DoF pose"
                detector = self._feat.Detectorv1(**self.models, device=self.device)
            if self.models["face_model"] == "retinaface" and _load_pose_mlp(self.device) is None:
                raise FileNotFoundError("py-feat/pose_mlp_v2 could not be loaded")
        except OSError as err:  # the hub client's not-found and connection errors are OSErrors
            raise BackendUnavailable(_missing_message(missing_weights(self.models, cache),
                                                      cache, str(err).splitlines()[0])) from None
        finally:
            torch.set_grad_enabled(grad)
        return detector

    def options(self) -> dict:
        return {**self.models, "face_detection_threshold": self.face_detection_threshold}

    def library_versions(self) -> dict[str, str]:
        import torch
        return {"py-feat": self._feat.__version__, "torch": torch.__version__}

    def columns(self) -> list[tuple[str, list[str]]]:
        """py-feat's column names, read from its output on a blank probe image (run once)."""
        if self._columns is None:
            table, _ = self.detect(np.full((96, 96, 3), 127, np.uint8))
            self._columns = self._group(list(table.columns))
            names = [n for _, cols in self._columns for n in cols]
            self._index = table.columns.get_indexer(names)
            position = {n: i for i, n in enumerate(names)}
            landmarks = self._landmark_names()
            self._x_pos = np.array([position[n] for n in landmarks[:68]])
            self._y_pos = np.array([position[n] for n in landmarks[68:]])
        return [(g, list(cols)) for g, cols in self._columns] + CropStats.columns()

    def start(self) -> "PyFeatSession":
        if self._columns is None:
            self.columns()  # builds the column index
        return PyFeatSession(self)

    def _landmark_names(self) -> list[str]:
        from feat.utils import openface_2d_landmark_columns
        return list(openface_2d_landmark_columns)  # x_0..x_67, y_0..y_67

    def _group(self, table_columns: list[str]) -> list[tuple[str, list[str]]]:
        from feat.pretrained import AU_LANDMARK_MAP
        from feat.utils import (FEAT_EMOTION_COLUMNS, FEAT_FACEPOSE_COLUMNS_6D,
                                FEAT_GAZE_COLUMNS, FEAT_IDENTITY_COLUMNS)
        m = self.models
        wanted = [("pyfeat_landmarks", self._landmark_names(), True),
                  ("pyfeat_aus", AU_LANDMARK_MAP["Feat"], m["au_model"] is not None),
                  ("pyfeat_emotions", FEAT_EMOTION_COLUMNS, m["emotion_model"] is not None),
                  ("pyfeat_pose", FEAT_FACEPOSE_COLUMNS_6D, True),
                  ("pyfeat_identity", FEAT_IDENTITY_COLUMNS[1:], m["identity_model"] is not None),
                  ("pyfeat_gaze", FEAT_GAZE_COLUMNS, m["gaze_model"] is not None)]
        groups = [(group, [c for c in table_columns if c in set(names)])
                  for group, names, on in wanted if on]
        order = {c: i for i, c in enumerate(table_columns)}  # py-feat's own column order
        return sorted(groups, key=lambda g: order[g[1][0]] if g[1] else len(order))

    def detect(self, frame: np.ndarray):
        """(H, W, 3) uint8 RGB -> (py-feat's per-face table, number of faces found)."""
        import torch
        image = torch.from_numpy(np.require(frame, np.uint8, ["C", "W"])).permute(2, 0, 1)[None]
        zero = torch.zeros(1)
        batch = {"Image": image, "Scale": torch.ones(1),  # no DataLoader rescale: identity
                 "Padding": {"Left": zero, "Top": zero, "Right": zero, "Bottom": zero}}
        det = self._detector
        faces = det.detect_faces(image, face_size=getattr(det, "face_size", 112),
                                 face_detection_threshold=self.face_detection_threshold)
        # a frame without a face still yields one all-NaN row (py-feat's placeholder)
        found = int((~torch.isnan(faces[0]["boxes"]).any(dim=1)).sum())
        return det.forward(faces, batch), found



class PyFeatSession(FrameSession):
    """One clip's face-following state for `PyFeatBackend`."""

    def __init__(self, backend: PyFeatBackend) -> None:
        super().__init__(backend)
        self._box: Optional[Box] = None

    def process(self, frame: np.ndarray) -> FrameResult:
        b = self.backend
        table, found = b.detect(frame)
        if found == 0:
            self._box = None
            return FrameResult(None, n_faces=0)
        rects = table[["FaceRectX", "FaceRectY", "FaceRectWidth", "FaceRectHeight"]].to_numpy()
        boxes = [(x, y, x + w, y + h) for x, y, w, h in rects[:found].tolist()]
        i = choose_face(boxes, self._box)
        row = table.to_numpy(np.float32)[i]
        values = row[b._index]
        pts = np.stack([values[b._x_pos], values[b._y_pos]], axis=1)
        if not np.isfinite(pts).all():
            self._box = None
            return FrameResult(None, n_faces=found)
        self._box = boxes[i]
        x0, y0, x1, y1 = boxes[i]
        values[b._x_pos] = (pts[:, 0] - x0) / max(x1 - x0, 1.0)
        values[b._y_pos] = (pts[:, 1] - y0) / max(y1 - y0, 1.0)
        return FrameResult(values, face_box=_landmark_box(pts), mouth_box=_mouth_box(pts),
                           n_faces=found)
