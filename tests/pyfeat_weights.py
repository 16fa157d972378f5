"""Random-weight py-feat models in the Hugging Face hub-cache layout, for offline tests.

py-feat 2.1.5 fetches every model with `hf_hub_download(repo_id="py-feat/<repo>", filename=...,
cache_dir=feat.utils.io.get_resource_path())`; offline, the hub client reads
`<cache>/models--py-feat--<repo>/snapshots/<sha>/<file>`, with `refs/main` holding `<sha>`. This
module builds py-feat's own model classes with seeded random weights, saves them in that layout in a
temporary folder and, inside `random_weights_hub()`, points py-feat's resource path at that folder
with HF_HUB_OFFLINE on (`pyfeat_resources_at` does the pointing). Nothing is ever written to
py-feat's real resources folder.

Random weights need two nudges to run end to end: a random RetinaFace fires on every anchor and its
box decode overflows, so its box/landmark heads are constant and its class head fires on one anchor
size only; random 68-point landmarks make py-feat's face alignment singular, so the landmark net's
last layer is biased towards py-feat's neutral face template. What these models output means
nothing: use them for shapes, names, masks and speed, never for accuracy.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

# The frame size the detector nudges are tuned for: 16:9 clips downscaled to 512 px (talkface's
# default). Other frames up to 512 px still get exactly one face, just not centred.
FRAME_W, FRAME_H = 512, 288
FACE_PX = 200  # side of the random "face" (landmark hull) in such a frame
_BOX_SCALE = 4.0  # the one firing 512 px anchor decodes to 2048 px: NMS then keeps one box
EMOTIONS = ["anger", "disgust", "fear", "happ", "sad", "sur", "neutral"]
AUS = ["AU1", "AU2", "AU4", "AU5", "AU6", "AU7", "AU9", "AU10", "AU11", "AU12", "AU14", "AU15",
       "AU17", "AU20", "AU23", "AU24", "AU25", "AU26", "AU28", "AU43"]


def _put(root: Path, repo: str, filename: str, write: Callable[[Path], None]) -> Path:
    """Write one file where `hf_hub_download(repo, filename, cache_dir=root)` finds it offline."""
    sha = hashlib.sha1(repo.encode()).hexdigest()  # any 40-hex string works as a commit id
    folder = root / f"models--{repo.replace('/', '--')}"
    snapshot = folder / "snapshots" / sha
    snapshot.mkdir(parents=True, exist_ok=True)
    (folder / "refs").mkdir(exist_ok=True)
    (folder / "refs" / "main").write_text(sha)
    write(snapshot / filename)
    return snapshot / filename


def _template(span: float):
    """py-feat's neutral face as (136,) interleaved x, y in [0, 1] crop units, `span` wide."""
    import pandas as pd
    import torch
    from feat.utils.io import get_resource_path
    pts = pd.read_csv(os.path.join(get_resource_path(), "neutral_face_coordinates.csv"))
    pts = pts[["x", "y"]].to_numpy(np.float64)
    pts = (pts - (pts.min(0) + pts.max(0)) / 2) / np.ptp(pts, axis=0).max() * span + 0.5
    return torch.tensor(pts.reshape(-1), dtype=torch.float32)


def _retinaface(path: Path) -> None:
    import torch
    from safetensors.torch import save_file
    from feat.face_detectors.Retinaface.Retinaface_model import RETINAFACE_R34_CFG, RetinaFace
    net = RetinaFace(RETINAFACE_R34_CFG).eval()
    anchors = RETINAFACE_R34_CFG["num_anchors"]
    big = RETINAFACE_R34_CFG["min_sizes"][-1][-1]  # 512: the last level's larger anchor
    step = RETINAFACE_R34_CFG["steps"][-1]
    var_xy, var_wh = RETINAFACE_R34_CFG["variance"]
    with torch.no_grad():
        for head in (net.BboxHead, net.LandmarkHead, net.ClassHead):
            for conv in head._convs:
                conv.weight.zero_()
                conv.bias.zero_()
        for conv in net.ClassHead._convs:  # (background, face) logits per anchor: background
            conv.bias.copy_(torch.tensor([6.0, -6.0] * anchors))
        net.ClassHead._convs[-1].bias[-2:] = torch.tensor([-6.0, 6.0])  # ... but the 512 px one
        # Every location's box is identical but shifted: move the first location's box (the one
        # NMS keeps among equal scores) to the frame centre and make it big enough that NMS
        # suppresses all the others.
        shift = torch.tensor([(FRAME_W / 2 - step / 2) / (var_xy * big),
                              (FRAME_H / 2 - step / 2) / (var_xy * big)])
        grow = math.log(_BOX_SCALE) / var_wh
        net.BboxHead._convs[-1].bias[-4:] = torch.tensor([*shift.tolist(), grow, grow])
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))


def _landmark_net(name: str):
    """py-feat's landmark model `name` with its output layer set to the neutral face."""
    import torch
    from feat.utils import N_OPENFACE_LANDMARKS_2D_FLAT
    # the face crop is 1.2 x the detector box (see feat.utils.image_operations)
    template = _template(FACE_PX / (1.2 * _BOX_SCALE * 512))
    if name == "mobilefacenet":
        from feat.landmark_detectors.mobilefacenet_test import MobileFaceNet
        net = MobileFaceNet([112, 112], N_OPENFACE_LANDMARKS_2D_FLAT)
        last = net.output_layer.bn  # BatchNorm1d(136) in eval mode: y = w * x + b
    elif name == "pfld":
        from feat.landmark_detectors.pfld_compressed_test import PFLDInference
        net = PFLDInference()
        last = net.fc
    else:
        raise ValueError(f"no random-weight recipe for landmark_model={name!r}")
    with torch.no_grad():
        last.weight.mul_(1e-2)  # keep the random part small next to the template
        last.bias.copy_(template)
    return net.eval()


_LANDMARK_FILES = {"mobilefacenet": ("py-feat/mobilefacenet", "mobilefacenet_model_best.pth.tar"),
                   "pfld": ("py-feat/pfld", "pfld_model_best.pth.tar")}


def _hog_dim(face_size: int, template) -> int:
    """Width of py-feat's HOG vector for a `face_size` crop (what its AU/emotion models read)."""
    import torch
    from feat.utils.face_mask import extract_hog_features_batched
    hog, _ = extract_hog_features_batched(torch.rand(1, 3, face_size, face_size),
                                          template[None])
    return int(hog.shape[1])


def _statistical_models(hog_dim: int, rng: np.random.Generator, n_pca: int) -> dict:
    """Scaler + PCA pairs fitted to noise: the preprocessing py-feat's AU/emotion models load."""
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler
    models = {}
    for part in ("upper", "lower", "full"):
        x = rng.normal(size=(max(2 * n_pca, 64), hog_dim)).astype(np.float32)
        scaler = StandardScaler().fit(x)
        models[f"scaler_{part}"] = scaler
        models[f"pca_model_{part}"] = PCA(n_components=n_pca, random_state=0).fit(
            scaler.transform(x))
    return models


def _classifiers(keys: list[str], kind: str, dim: int, rng: np.random.Generator,
                 trees: int) -> dict:
    from sklearn.svm import LinearSVC
    x = rng.normal(size=(64, dim)).astype(np.float32)
    y = np.arange(64) % 2  # both classes present
    out = {}
    for key in keys:
        if kind == "xgb":
            from xgboost import XGBClassifier
            out[key] = XGBClassifier(n_estimators=trees, max_depth=3, n_jobs=1,
                                     random_state=0).fit(x, rng.permutation(y))
        else:
            out[key] = LinearSVC(random_state=0).fit(x, rng.permutation(y))
    return out


def _skops(obj) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        import skops.io
        skops.io.dump(obj, str(path))
    return write


def write_random_weights(root: str | os.PathLike, landmark_model: str = "mobilefacenet",
                         au_model: str | None = "xgb", emotion_model: str | None = "svm",
                         seed: int = 0, xgb_trees: int = 20, n_pca: int = 32) -> list[Path]:
    """Write random-weight files for Detectorv1(face_model="retinaface", landmark_model,
    au_model, emotion_model, identity_model=None, gaze_model=None) and the pose MLP under `root`
    in hub-cache layout. Returns the files written."""
    import torch
    from safetensors.torch import save_file
    from feat.au_detectors.StatLearning.SL_test import SVMClassifier, XGBClassifier
    from feat.emo_detectors.StatLearning.EmoSL_test import EmoSVMClassifier
    from feat.utils.face_pose_mlp import PoseMLP
    root = Path(root)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    files = [_put(root, "py-feat/retinaface_r34", "model.safetensors", _retinaface)]

    net = _landmark_net(landmark_model)
    repo, name = _LANDMARK_FILES[landmark_model]
    files.append(_put(root, repo, name,
                      lambda p: torch.save({"state_dict": net.state_dict()}, p)))

    pose, hidden = PoseMLP(), [512, 256, 128]  # PoseMLP's default (v2) architecture
    meta = {"architecture": {"hidden": hidden, "dropout": 0.15, "output_normalization": {
        "mean": [0.0] * 6, "std": [1.0] * 6}}}
    files.append(_put(root, "py-feat/pose_mlp_v2", "pose_mlp_v2.safetensors",
                      lambda p: save_file(pose.state_dict(), str(p))))
    files.append(_put(root, "py-feat/pose_mlp_v2", "pose_mlp_v2.json",
                      lambda p: p.write_text(json.dumps(meta))))

    hog_dim = _hog_dim(112, _template(0.7))  # both landmark models here read 112 px crops
    dim = n_pca + 136  # PCA of the HOG vector + the aligned landmarks
    if au_model is not None:
        au = XGBClassifier() if au_model == "xgb" else SVMClassifier()
        au.load_weights(**_statistical_models(hog_dim, rng, n_pca),
                        classifiers=_classifiers(AUS, au_model, dim, rng, xgb_trees))
        files.append(_put(root, f"py-feat/{au_model}_au", f"{au_model}_au_classifier_v2.skops",
                          _skops(au)))
    if emotion_model == "svm":
        emo = EmoSVMClassifier()
        full = _statistical_models(hog_dim, rng, n_pca)
        emo.load_weights(scaler_full=full["scaler_full"], pca_model_full=full["pca_model_full"],
                         classifiers=_classifiers(EMOTIONS, "svm", dim, rng, xgb_trees))
        files.append(_put(root, "py-feat/svm_emo", "svm_emo_classifier.skops", _skops(emo)))
    elif emotion_model is not None:
        raise ValueError(f"no random-weight recipe for emotion_model={emotion_model!r}")
    return files


def _resource_path_users(original) -> list[tuple[object, str]]:
    """Every loaded feat module that holds `get_resource_path` (detector.py imports it by name,
    others look it up in feat.utils.io at call time)."""
    return [(mod, "get_resource_path") for name, mod in list(sys.modules.items())
            if name.split(".")[0] == "feat" and mod is not None
            and getattr(mod, "get_resource_path", None) is original]


@contextlib.contextmanager
def pyfeat_resources_at(root: str | os.PathLike) -> Iterator[Path]:
    """Within this block py-feat reads its resources and hub cache from `root`, offline.

    The hub client reads HF_HUB_OFFLINE once, at import, so its constant is set along with the
    environment variable. py-feat caches the loaded pose MLP per process: the cache is cleared on
    entry and on exit, so random weights never outlive the block."""
    import feat.utils.face_pose_mlp as pose_mlp
    import feat.utils.io
    import huggingface_hub.constants as hub_constants
    patched = _resource_path_users(feat.utils.io.get_resource_path)
    original = feat.utils.io.get_resource_path

    def resource_path() -> str:
        return str(root)

    saved_env = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "FEAT_POSE_MLP_PATH")}
    saved_offline = hub_constants.HF_HUB_OFFLINE
    try:
        for mod, attr in patched:
            setattr(mod, attr, resource_path)
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ.pop("FEAT_POSE_MLP_PATH", None)
        hub_constants.HF_HUB_OFFLINE = True
        pose_mlp._CACHE.clear()
        yield Path(root)
    finally:
        for mod, attr in patched:
            setattr(mod, attr, original)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        hub_constants.HF_HUB_OFFLINE = saved_offline
        pose_mlp._CACHE.clear()


def link_resources(root: str | os.PathLike, skip: tuple[str, ...] = ()) -> None:
    """Link py-feat's bundled resource files (neutral face, ...) into `root`; py-feat reads them
    from the same folder as its hub cache."""
    import feat
    real = Path(feat.__file__).parent / "resources"  # get_resource_path() may be patched now
    for item in real.iterdir():
        if item.name not in skip:
            (Path(root) / item.name).symlink_to(item)


@contextlib.contextmanager
def random_weights_hub(**options) -> Iterator[Path]:
    """Within this block py-feat loads random weights from a temporary folder, offline.

    `options` go to `write_random_weights`. The folder is deleted on exit."""
    root = Path(tempfile.mkdtemp(prefix="pyfeat-random-weights-"))
    try:
        link_resources(root)
        write_random_weights(root, **options)
        with pyfeat_resources_at(root):
            yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)
