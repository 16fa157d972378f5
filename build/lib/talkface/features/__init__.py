"""Feature extraction: media -> per-frame visual + audio features + FeatureSpec."""
from .base import FrameResult, VisualBackend, create_backend, list_backends, register_backend
from .extract import Extractor, FeatureBundle

__all__ = ["Extractor", "FeatureBundle", "FrameResult", "VisualBackend", "create_backend",
           "list_backends", "register_backend"]
