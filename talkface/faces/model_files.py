"""Where the face stage's model files live, and one TFLite interpreter per thread.

Every model ships with talkface or inside a pip package, so nothing is downloaded at run time:

- MediaPipe's BlazeFace full-range detector and 468-point FaceMesh model (Apache-2.0), in
  `talkface/faces/weights/` (see the README there), run by `ai-edge-litert`.
- dlib's 5- and 68-point shape predictors, its ResNet face descriptor and its CNN (MMOD) face
  detector, from `face-recognition-models` (located without importing it: its __init__ needs
  pkg_resources).

A TFLite interpreter must not be invoked from two threads at once, so `TFLiteModel` keeps one per
thread: a `Scorer` can then serve several threads without a lock.
"""
from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path

import numpy as np

from ..errors import BackendUnavailable


def _package_dir(package: str, install_hint: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise BackendUnavailable(f"the face models need the {package!r} package "
                                 f"({install_hint})")
    return Path(spec.submodule_search_locations[0])


WEIGHTS = Path(__file__).with_name("weights")


def mediapipe_model(name: str) -> Path:
    """Path of a bundled MediaPipe model, e.g. 'face_landmark.tflite'."""
    path = WEIGHTS / name
    if not path.exists():
        raise BackendUnavailable(f"MediaPipe model {name} not found at {path}")
    return path


def dlib_model(name: str) -> Path:
    """Path of a dlib model shipped in face-recognition-models, e.g.
    'shape_predictor_68_face_landmarks.dat'."""
    path = _package_dir("face_recognition_models", "pip install face-recognition-models") \
        / "models" / name
    if not path.exists():
        raise BackendUnavailable(f"dlib model {name} not found at {path}")
    return path


class TFLiteModel:
    """A .tflite model run by ai-edge-litert: `model(x)` -> list of output arrays.

    One interpreter per calling thread (TFLite interpreters are not thread-safe), each on one
    CPU thread: the callers decide the parallelism.
    """

    def __init__(self, path: str | os.PathLike, threads: int = 1) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise BackendUnavailable("the face models need the TFLite runtime "
                                     "(pip install ai-edge-litert)") from None
        self._interpreter_cls, self.path, self.threads = Interpreter, str(path), int(threads)
        self._local = threading.local()
        first = self._interpreter()
        self.input_shape = tuple(first.get_input_details()[0]["shape"])

    def _interpreter(self):
        it = getattr(self._local, "interpreter", None)
        if it is None:
            it = self._interpreter_cls(model_path=self.path, num_threads=self.threads)
            it.allocate_tensors()
            self._local.interpreter = it
            self._local.inputs = it.get_input_details()[0]["index"]
            self._local.outputs = [d["index"] for d in it.get_output_details()]
        return it

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        it = self._interpreter()
        it.set_tensor(self._local.inputs, np.ascontiguousarray(x, np.float32))
        it.invoke()
        return [it.get_tensor(i) for i in self._local.outputs]
