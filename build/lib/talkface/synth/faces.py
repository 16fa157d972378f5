"""Face sources for the synthetic benchmark, with stored landmarks.

Bundled faces live in `faces/` beside this file as square JPEG crops; `faces.json` records for each
one its identity, source, licence and 68 iBUG landmarks (normalised to the crop) found once with
dlib and then stored, because a mouth found afresh on every run could land somewhere else.
Variants (mirror, skin-tone shift, side lighting) are derived from a crop at load time; they keep
the identity of the person photographed, so dataset splits never put one person in two splits.

A user folder (`--faces DIR`) is read at run time: every image with one detectable face becomes a
face; images in a sub-folder share that sub-folder's name as identity, loose images are each their
own identity.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from ..errors import DatasetError

log = logging.getLogger(__name__)

FACES_DIR = Path(__file__).with_name("faces")
FACES_JSON = Path(__file__).with_name("faces.json")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
CROP_SCALE = 1.8  # crop side / landmark width: the face fills ~55% of the frame, HOG-detectable


@dataclass
class Face:
    """A square face photo with its 68 landmarks in pixels of `image`."""

    name: str
    identity: str
    image: np.ndarray  # (S, S, 3) uint8 RGB
    landmarks: np.ndarray  # (68, 2) float32, pixels
    source: str = ""
    licence: str = ""
    redistributable: bool = False
    transform: dict = field(default_factory=dict)

    def resized(self, size: int) -> "Face":
        """The same face scaled to a `size` x `size` frame."""
        scale = size / self.image.shape[0]
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
        img = cv2.resize(self.image, (size, size), interpolation=interp)
        return Face(self.name, self.identity, img, (self.landmarks * scale).astype(np.float32),
                    self.source, self.licence, self.redistributable, dict(self.transform))


def detect_landmarks(image: np.ndarray) -> Optional[np.ndarray]:
    """68 landmarks (68, 2) of the largest face dlib's HOG detector finds, or None."""
    import dlib

    from ..features.landmarks import shape_predictor_path
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    rects = dlib.get_frontal_face_detector()(gray, 1)
    if not rects:
        return None
    rect = max(rects, key=lambda r: r.width() * r.height())
    shape = dlib.shape_predictor(shape_predictor_path())(gray, rect)
    return np.array([(p.x, p.y) for p in shape.parts()], np.float32)


def square_crop(image: np.ndarray, landmarks: np.ndarray,
                max_side: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Crop a square around the face (edge pixels repeated where it leaves the photo)."""
    (x0, y0), (x1, y1) = landmarks.min(0), landmarks.max(0)
    side = int(round(CROP_SCALE * (x1 - x0)))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 - 0.08 * side
    left, top = int(round(cx - side / 2)), int(round(cy - side / 2))
    pad = max(0, -left, -top, left + side - image.shape[1], top + side - image.shape[0])
    padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    crop = padded[top + pad:top + pad + side, left + pad:left + pad + side]
    pts = landmarks - np.array([left, top], np.float32)
    if side > max_side:
        scale = max_side / side
        crop = cv2.resize(crop, (max_side, max_side), interpolation=cv2.INTER_AREA)
        pts = pts * scale
    return np.ascontiguousarray(crop), pts.astype(np.float32)


def apply_transform(image: np.ndarray, transform: dict) -> np.ndarray:
    """Deterministic appearance variant: {"mirror": bool, "tone": [r, g, b] gains,
    "light": strength of a left-to-right lighting ramp}."""
    out = image.astype(np.float32)
    if transform.get("mirror"):
        out = out[:, ::-1]
    if "tone" in transform:
        out = out * np.asarray(transform["tone"], np.float32)[None, None, :]
    if "light" in transform:
        ramp = np.linspace(1 - transform["light"], 1 + transform["light"], out.shape[1])
        out = out * ramp[None, :, None]
    return np.ascontiguousarray(np.clip(out, 0, 255).round().astype(np.uint8))


def _read_rgb(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DatasetError(f"{path}: not an image OpenCV can read")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def load_bundled_faces(redistributable_only: bool = True) -> list[Face]:
    """The faces listed in faces.json (variants included), with their stored landmarks."""
    meta = json.loads(FACES_JSON.read_text())
    faces, crops = [], {}
    for entry in meta["faces"]:
        if redistributable_only and not entry.get("redistributable", False):
            continue
        file = entry["file"]
        if file not in crops:
            crops[file] = _read_rgb(FACES_DIR / file)
        image = apply_transform(crops[file], entry.get("transform", {}))
        pts = np.asarray(entry["landmarks"], np.float32) * image.shape[0]
        faces.append(Face(entry["name"], entry["identity"], image, pts, entry["source"],
                          entry["licence"], bool(entry.get("redistributable")),
                          dict(entry.get("transform", {}))))
    return faces


def load_user_faces(folder: str | Path) -> list[Face]:
    """Faces from a user folder, landmarks detected now. Images without a face are skipped."""
    root = Path(folder)
    if not root.is_dir():
        raise DatasetError(f"--faces {folder}: not a folder")
    faces = []
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
        image = _read_rgb(path)
        pts = detect_landmarks(image)
        if pts is None:
            log.warning("%s: no face found, skipped", path)
            continue
        crop, crop_pts = square_crop(image, pts)
        rel = path.relative_to(root)
        identity = rel.parts[0] if len(rel.parts) > 1 else path.stem
        faces.append(Face(f"user-{rel.with_suffix('').as_posix().replace('/', '-')}",
                          f"user-{identity}", crop, crop_pts, str(path), "user-supplied"))
    if not faces:
        raise DatasetError(f"--faces {folder}: no image with a detectable face")
    return faces


def load_faces(extra_dir: Optional[str | Path] = None,
               redistributable_only: bool = False) -> list[Face]:
    """Bundled faces plus, optionally, a user folder (never redistributable)."""
    faces = load_bundled_faces(redistributable_only=False)
    if extra_dir is not None and not redistributable_only:
        faces += load_user_faces(extra_dir)
    if redistributable_only:
        faces = [f for f in faces if f.redistributable]
    return faces


def stored_entry(name: str, identity: str, file: str, image: np.ndarray, transform: dict,
                 source: str, licence: str) -> dict:
    """A faces.json entry: landmarks detected once on the transformed crop, then stored."""
    pts = detect_landmarks(apply_transform(image, transform))
    if pts is None:
        raise DatasetError(f"{name}: dlib finds no face in the stored crop")
    norm = [[round(float(x), 4), round(float(y), 4)] for x, y in pts / image.shape[0]]
    return {"name": name, "identity": identity, "file": file, "transform": transform,
            "source": source, "licence": licence, "redistributable": True, "landmarks": norm}


# How the bundled crops were made (run once; needs the source files named in SOURCES).
SOURCES = [
    ("astronaut", "eileen-collins", "skimage: skimage/data/astronaut.png (NASA portrait of "
     "Eileen Collins)", "public domain (work of NASA, a US government agency)"),
    ("grace_hopper", "grace-hopper", "matplotlib: mpl-data/sample_data/grace_hopper.jpg (US Navy "
     "portrait)", "public domain (work of the US Navy, a US government agency)"),
    ("luispedro", "luis-pedro-coelho", "mahotas 1.4.19 wheel: mahotas/demos/data/luispedro.jpg "
     "(photo of the package author, shipped by him in the package)", "MIT (mahotas package)"),
]
VARIANTS = [("", {}), ("-mirror", {"mirror": True}), ("-warm", {"tone": [1.08, 1.0, 0.88]}),
            ("-cool-mirror", {"mirror": True, "tone": [0.9, 0.98, 1.08]}),
            ("-sidelight", {"light": 0.18})]


def prepare_bundled(paths: dict[str, str]) -> None:
    """Write faces/<name>.jpg crops and faces.json from the source photos in `paths`."""
    FACES_DIR.mkdir(exist_ok=True)
    entries = []
    for name, identity, source, licence in SOURCES:
        image = _read_rgb(Path(paths[name]))
        pts = detect_landmarks(image)
        if pts is None:
            raise DatasetError(f"{name}: no face found in {paths[name]}")
        crop, _ = square_crop(image, pts)
        file = f"{name}.jpg"
        cv2.imwrite(str(FACES_DIR / file), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, 95])
        stored = _read_rgb(FACES_DIR / file)  # landmarks on the JPEG actually shipped
        entries += [stored_entry(name + suffix, identity, file, stored, transform, source,
                                 licence) for suffix, transform in VARIANTS]
    lines = ",\n  ".join(json.dumps(e) for e in entries)  # one face per line: diffable
    FACES_JSON.write_text(f'{{"version": 1, "crop_scale": {CROP_SCALE},\n "faces": [\n  '
                          f'{lines}\n ]\n}}\n')


if __name__ == "__main__":  # python -m talkface.synth.faces astronaut=... grace_hopper=... ...
    import sys
    logging.basicConfig(level=logging.INFO)
    prepare_bundled(dict(arg.split("=", 1) for arg in sys.argv[1:]))
