"""Multi-task quality models: `create_model(name, spec, tasks, **overrides)`.

The built-in variants register themselves here, on import of the package (as timm's model
modules do), so the registry is complete whichever module is imported first."""
from . import ensemble, improved, original  # noqa: F401  (registration)
from .base import ModelOutput, TalkfaceModel, create_model, list_models, register_model

__all__ = ["ModelOutput", "TalkfaceModel", "create_model", "list_models", "register_model"]
