"""Multi-task quality models: `create_model(name, spec, tasks, **overrides)`."""
from .registry import ModelOutput, TalkfaceModel, create_model, list_models, register_model

__all__ = ["ModelOutput", "TalkfaceModel", "create_model", "list_models", "register_model"]
