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
