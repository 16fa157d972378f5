"""CPU deployment: a checkpoint as an ONNX graph (run by onnxruntime) or with int8 weights.

    python -m talkface export --checkpoint DIR --format onnx --out model.onnx   # or a folder
    python -m talkface export --checkpoint DIR --format int8 --out DIR_INT8
    scorer = talkface.load_scorer(path, runtime="onnx")  # or "int8", or "torch" (default)

- `onnx`: `torch.onnx.export` (the dynamo exporter) with dynamic batch and time axes; inputs
  `visual` (B, T, Dv), `audio` (B, T, Da), `mask` (B, T) bool; outputs `scores` (B, K) in task
  order, `spread` (B, K) for an ensemble, `temporal` (B, T) and `cross` (B, T, T) where the model
  has them. The checkpoint's meta.json and card travel inside the file (ONNX metadata), so one
  `.onnx` file loads on its own; given a folder, `--out` writes model.onnx, meta.json and card.md.
  After export the graph is run with onnxruntime and compared with the PyTorch model.
- `int8`: dynamic quantisation (`torch.ao.quantization.quantize_dynamic`, Linear layers, int8
  weights, activations quantised per batch at run time). The modality encoders' input layers
  (which see the raw feature columns, whose scales differ widely) and the task heads (whose output
  is the score) stay in fp32: quantising them moved scores on the fixture clips by up to 0.009,
  the rest moves them by under 0.001. The folder is a checkpoint (`model.safetensors` with int8
  weights and their scales, `meta.json` with a `quantization` entry, `card.md`), loaded by
  `load_checkpoint` like any other.

What runs these files is `talkface.runtime`, chosen by `load_checkpoint(path, runtime=...)`; this
module only writes them. The `export` command is `talkface.export_cli`.
"""
from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .checkpoint import CARD, META, LoadedModel, save_checkpoint, write_text_atomic
from .errors import CheckpointError
from .runtime import (CARD_KEY, META_KEY, ONNX_FILE, int8_description, int8_state, onnx_session,
                      quantize_int8)

log = logging.getLogger(__name__)


# --- ONNX ----------------------------------------------------------------------------------------

class _Outputs(nn.Module):
    """The model with tensor outputs in a fixed order (ONNX has no dicts)."""

    def __init__(self, model: nn.Module, names: list[str], attention: list[str],
                 spread: bool) -> None:
        super().__init__()
        self.model, self.names, self.attention, self.spread = model, names, attention, spread

    def forward(self, visual, audio, mask):
        out = self.model(visual, audio, mask)
        tensors = [torch.stack([out.scores[n] for n in self.names], dim=1)]
        if self.spread:
            tensors.append(torch.stack([out.spread[n] for n in self.names], dim=1))
        return tuple(tensors + [out.attention[k] for k in self.attention])


def example_inputs(spec, batch: int = 2, frames: int = 24, seed: int = 0):
    """Inputs for tracing and checking: standard-normal features, one clip half padded."""
    g = torch.Generator().manual_seed(seed)
    visual = torch.randn(batch, frames, spec.visual_dim, generator=g)
    audio = torch.randn(batch, frames, spec.audio_dim, generator=g)
    mask = torch.ones(batch, frames, dtype=torch.bool)
    mask[-1, frames // 2:] = False
    return visual, audio, mask


def export_onnx(loaded: LoadedModel, out: str | os.PathLike) -> Path:
    """Write `loaded` as ONNX at `out` (a `.onnx` file, or a folder for model.onnx + meta.json +
    card.md), check it with onnxruntime, return the .onnx path."""
    import onnx
    model = loaded.model.eval()
    names = [t.name for t in loaded.tasks]
    inputs = example_inputs(loaded.spec)
    with torch.no_grad():
        sample = model(*inputs)
    attention = [k for k in ("temporal", "cross") if k in sample.attention]
    wrapper = _Outputs(model, names, attention, bool(sample.spread)).eval()
    outputs = ["scores"] + (["spread"] if sample.spread else []) + attention
    path = Path(out)
    if path.suffix != ".onnx":
        path.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path / META, loaded.meta.to_json())
        write_text_atomic(path / CARD, loaded.card)
        path = path / ONNX_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    batch, time = torch.export.Dim("batch"), torch.export.Dim("time")
    tmp = path.with_name(path.name + ".part")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(wrapper, inputs, input_names=["visual", "audio", "mask"],
                                     output_names=outputs, dynamo=True, verbose=False,
                                     dynamic_shapes=({0: batch, 1: time},) * 3)
    program.save(str(tmp))
    graph = onnx.load(str(tmp))
    onnx.helper.set_model_props(graph, {META_KEY: loaded.meta.to_json(),
                                        CARD_KEY: loaded.card})
    onnx.save(graph, str(tmp))
    os.replace(tmp, path)
    check_onnx(path, wrapper, loaded.spec)
    return path


def check_onnx(path: Path, wrapper: nn.Module, spec, tolerance: float = 1e-4) -> float:
    """Largest difference between onnxruntime and PyTorch on inputs of another batch and length
    than the export's (so the dynamic axes are exercised). Raises when above `tolerance`."""
    session = onnx_session(path)
    worst = 0.0
    for batch, frames in ((3, 37), (1, 5)):
        inputs = example_inputs(spec, batch, frames, seed=batch)
        with torch.no_grad():
            expected = wrapper(*inputs)
        got = session.run(None, {k: x.numpy() for k, x in zip(("visual", "audio", "mask"),
                                                               inputs)})
        worst = max(worst, float(np.abs(got[0] - expected[0].numpy()).max()))
    if worst > tolerance:
        raise CheckpointError(f"{path}: onnxruntime's scores differ from PyTorch's by {worst:.2g}")
    return worst


# --- int8 ----------------------------------------------------------------------------------------

def export_int8(loaded: LoadedModel, out: str | os.PathLike) -> Path:
    """Write `loaded` with int8 weights as a checkpoint folder at `out` (one atomic write)."""
    meta = loaded.meta
    return save_checkpoint(out, loaded.model, meta.options, metrics=meta.metrics, data=meta.data,
                           command=meta.command, card=loaded.card, calibration=meta.calibration,
                           state=int8_state(quantize_int8(loaded.model)),
                           quantization=int8_description(loaded.model))
