"""Small builders the tests share."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from talkface import tasks as talkface_tasks
from talkface.spec import ExtractorConfig, FeatureSpec, tasks_from_names

if TYPE_CHECKING:
    from talkface.features import Extractor


def make_spec(dv: int = 7, da: int = 5) -> FeatureSpec:
    """A FeatureSpec with `dv` visual and `da` audio columns named v0.., a0.."""
    return FeatureSpec(visual_names=tuple(f"v{i}" for i in range(dv)),
                       audio_names=tuple(f"a{i}" for i in range(da)),
                       extractor=ExtractorConfig(backend="test"), backend_version="1")


TASKS = list(talkface_tasks.TASKS)
SMALL = {"encoder_dim": 32, "num_layers": 1, "visual_layers": 1, "num_heads": 2,
         "encoder_layers": 1, "dropout": 0.0}


def make_random_checkpoint(folder: Path, model_name: str = "improved", seed: int = 0,
                           extractor: Extractor | None = None) -> Path:
    """A test fixture: random weights, the default extractor's spec. Not a trained model."""
    import torch
    torch.manual_seed(seed)
    from talkface.checkpoint import save_checkpoint
    from talkface.features.extract import Extractor
    from talkface.models import create_model
    spec = (extractor or Extractor()).spec
    options = SMALL if model_name == "improved" else {k: SMALL[k] for k in
                                                       ("encoder_dim", "num_layers", "num_heads")}
    model = create_model(model_name, spec, tasks_from_names(TASKS), **options)
    return save_checkpoint(folder, model, options, data={"note": "test fixture, random weights"})


def turn_head(frame, points, yaw: float, pitch: float = 0.0):
    """`frame` (H, W, 3) uint8 with its face turned by `yaw` degrees about the vertical axis
    (> 0: toward the image's left) and `pitch` about the horizontal one (> 0: down), rendered
    from the face's FaceMesh `points` (468, 3) in pixels: the mesh and two rings around it (the
    head and hair, which follow the turn, then the background, which stays) are triangulated,
    rotated about a pivot at the depth of the cheeks' sides, and drawn far to near, each triangle
    an affine warp of the source. A turned face with a nose that hides the far cheek, a profile
    silhouette at 90 degrees; not a render of the back of the head (there is none to show)."""
    import cv2
    import numpy as np
    from scipy.spatial import Delaunay

    h, w = frame.shape[:2]
    xy, z = points[:, :2].astype(np.float64), points[:, 2].astype(np.float64)
    centre, depth = xy.mean(0), z[[234, 454]].mean()  # the cheeks' sides, by the ears
    half = (xy.max(0) - xy.min(0)) / 2
    angle = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    unit = np.stack([np.cos(angle), np.sin(angle)], 1)
    border = np.array([[0, 0], [w, 0], [0, h], [w, h], [w / 2, 0], [w / 2, h], [0, h / 2],
                       [w, h / 2]], float)
    src = np.vstack([xy, centre + unit * half * 1.5, centre + unit * half * 2.3, border])
    moving = len(xy) + len(unit)
    p3 = np.column_stack([src - centre, np.r_[z, np.full(len(src) - len(z), depth)] - depth])
    ty, tp = np.radians(yaw), np.radians(pitch)
    ry = np.array([[np.cos(ty), 0, np.sin(ty)], [0, 1, 0], [-np.sin(ty), 0, np.cos(ty)]])
    rx = np.array([[1, 0, 0], [0, np.cos(tp), -np.sin(tp)], [0, np.sin(tp), np.cos(tp)]])
    turned = p3 @ (ry @ rx).T
    dst = src.copy()
    dst[:moving] = turned[:moving, :2] + centre
    near = np.where(np.arange(len(src)) < moving, turned[:, 2], np.inf)  # smaller z is nearer
    tri = Delaunay(src).simplices
    ids = np.full((h, w), -1, np.int32)
    for k in np.argsort(-near[tri].mean(1)):  # far to near: the near triangles are drawn last
        cv2.fillConvexPoly(ids, np.round(dst[tri[k]]).astype(np.int32), int(k))
    # per triangle, the affine map from output pixels back to source pixels
    maps = np.linalg.solve(np.concatenate([dst[tri], np.ones((len(tri), 3, 1))], 2), src[tri])
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    k = np.maximum(ids, 0)
    mx = np.where(ids >= 0, xs * maps[k, 0, 0] + ys * maps[k, 1, 0] + maps[k, 2, 0], xs)
    my = np.where(ids >= 0, xs * maps[k, 0, 1] + ys * maps[k, 1, 1] + maps[k, 2, 1], ys)
    return cv2.remap(frame, mx.astype(np.float32), my.astype(np.float32), cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REFLECT)
