"""Feature extraction: media -> per-frame visual + audio features + FeatureSpec.

The built-in visual backends register themselves here, on import of the package (py-feat itself
is imported only when its backend is built)."""
from . import landmarks, mesh_backend, pyfeat_backend  # noqa: F401  (registration)
from .base import FrameResult, VisualBackend, create_backend, list_backends, register_backend
from .extract import Extractor, FeatureBundle

__all__ = ["Extractor", "FeatureBundle", "FrameResult", "VisualBackend", "create_backend",
           "list_backends", "register_backend"]
