"""CPU deployment: a checkpoint as an ONNX graph (run by onnxruntime) or with int8 weights.

    python -m talkface export --checkpoint DIR --format onnx --out DIR         # beside the weights
    python -m talkface export --checkpoint DIR --format onnx --out model.onnx  # or elsewhere
    python -m talkface export --checkpoint DIR --format int8 --out DIR_INT8
    scorer = talkface.load_scorer(path)  # ONNX where DIR has a current model.onnx, else torch

- `onnx`: `torch.onnx.export` (the dynamo exporter) with dynamic batch and time axes; inputs
  `visual` (B, T, Dv), `audio` (B, T, Da), `mask` (B, T) bool; outputs `scores` (B, K) in task
  order, `spread` (B, K) for an ensemble, `temporal` (B, T) and `cross` (B, T, T) where the model
  has them. The checkpoint's meta.json and card travel inside the file (ONNX metadata), so one
  `.onnx` file loads on its own; given a folder, `--out` writes model.onnx, meta.json and card.md.
  Given the checkpoint's own folder, model.onnx is added beside model.safetensors (one atomic
  rewrite of the folder, `add_onnx`) and meta.json's `onnx` entry records the sha256 of the
  weights it came from, so that scoring runs it by default and notices when it goes stale
  (`talkface.checkpoint.scoring_runtime`). A sync checkpoint exports the same way: both streams
  in one graph, inputs `lips` (1, 160, T), `crops` (1, T, 24, 48), `mel` (1, n_mels, M), outputs
  `video` (1, dim, T - 4) and `audio` (1, dim, (M - 1) / 4 - 4). After export the graph is run
  with onnxruntime on other lengths and compared with the PyTorch model.
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
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .checkpoint import (CARD, FILES, META, WEIGHTS, LoadedModel, load_checkpoint, onnx_entry,
                         save_checkpoint, write_folder, write_text_atomic)
from .errors import CheckpointError
from .runtime import (CARD_KEY, META_KEY, ONNX_FILE, SYNC_OUTPUTS,
                      int8_description, int8_state, onnx_session, quantize_int8)

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


class _SyncOutputs(nn.Module):
    """The sync model's two streams as one graph: (lips?, crops?, mel) -> (video, audio)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, *inputs):
        o = self.model.options
        lips = inputs[0] if o.lips else None
        crops = inputs[int(o.lips)] if o.crops else None
        return self.model.embed_video(lips, crops), self.model.embed_audio(inputs[-1])


def sync_inputs(options, frames: int = 30, seed: int = 0) -> dict[str, torch.Tensor]:
    """Inputs for tracing and checking the sync graph, by name (those `options` use)."""
    from .sync.frontend import CROP_SIZE
    g = torch.Generator().manual_seed(seed)
    crop_w, crop_h = CROP_SIZE
    every = {"lips": torch.randn(1, 160, frames, generator=g),
             "crops": torch.randn(1, frames, crop_h, crop_w, generator=g),
             "mel": torch.randn(1, options.n_mels, 4 * frames + 1, generator=g)}
    used = {"lips": options.lips, "crops": options.crops, "mel": True}
    return {k: v for k, v in every.items() if used[k]}


def _graph(loaded: LoadedModel):
    """(wrapper module, example inputs, input names, output names, dynamic shapes)."""
    model = loaded.model.eval()
    if loaded.meta.kind == "sync":
        inputs = sync_inputs(model.options)
        time, mel = torch.export.Dim("time", min=8), torch.export.Dim("mel_time", min=33)
        axes = {"lips": {2: time}, "crops": {1: time}, "mel": {2: mel}}
        return (_SyncOutputs(model).eval(), tuple(inputs.values()), list(inputs),
                list(SYNC_OUTPUTS), (tuple(axes[k] for k in inputs),))  # forward(*inputs)
    names = [t.name for t in loaded.tasks]
    inputs = example_inputs(loaded.spec)
    with torch.no_grad():
        sample = model(*inputs)
    attention = [k for k in ("temporal", "cross") if k in sample.attention]
    wrapper = _Outputs(model, names, attention, bool(sample.spread)).eval()
    outputs = ["scores"] + (["spread"] if sample.spread else []) + attention
    batch, time = torch.export.Dim("batch"), torch.export.Dim("time")
    return (wrapper, inputs, ["visual", "audio", "mask"], outputs,
            ({0: batch, 1: time},) * 3)


def _write_graph(loaded: LoadedModel, meta_json: str, path: Path) -> None:
    """Export `loaded` to `path` with its metadata inside, and check it against PyTorch."""
    import onnx
    wrapper, inputs, input_names, outputs, axes = _graph(loaded)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(wrapper, inputs, input_names=input_names,
                                     output_names=outputs, dynamo=True, verbose=False,
                                     dynamic_shapes=axes)
    program.save(str(path))
    graph = onnx.load(str(path))
    onnx.helper.set_model_props(graph, {META_KEY: meta_json, CARD_KEY: loaded.card})
    onnx.save(graph, str(path))
    if loaded.meta.kind == "sync":
        check_sync_onnx(path, wrapper)
    else:
        check_onnx(path, wrapper, loaded.spec)


def export_onnx(loaded: LoadedModel, out: str | os.PathLike, shipping: bool = False) -> Path:
    """Write `loaded` (a quality or sync model) as ONNX at `out`: a `.onnx` file; a folder for
    model.onnx + meta.json + card.md; or the checkpoint's own folder, to add model.onnx beside
    its weights (`add_onnx`; `shipping` as in `talkface.checkpoint.write_folder`). The graph is
    checked with onnxruntime. Returns the .onnx path."""
    path = Path(out)
    meta = loaded.meta
    if (loaded.path / WEIGHTS).exists():
        meta = meta.model_copy(update={"onnx": onnx_entry(loaded.path)})
    beside = path.suffix != ".onnx" and path.exists() and path.resolve() == loaded.path.resolve()
    with tempfile.TemporaryDirectory() as tmp:
        graph = Path(tmp) / ONNX_FILE
        _write_graph(loaded, meta.to_json(), graph)
        if beside:
            files = {name: (path / name).read_bytes() for name in FILES if (path / name).exists()}
            write_folder(path, {**files, META: meta.to_json(), ONNX_FILE: graph.read_bytes()},
                         shipping)
            return path / ONNX_FILE
        if path.suffix != ".onnx":
            path.mkdir(parents=True, exist_ok=True)
            write_text_atomic(path / META, meta.to_json())
            write_text_atomic(path / CARD, loaded.card)
            path = path / ONNX_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_name(path.name + ".part")
        shutil.copyfile(graph, part)
        os.replace(part, path)
    return path


def add_onnx(folder: str | os.PathLike, shipping: bool = False) -> Path:
    """Export the checkpoint at `folder` (quality or sync) to model.onnx beside its weights, as
    `train.ship` and `train.sync` do for the shipped ones (`shipping=True`)."""
    from .checkpoint import read_meta
    folder = Path(folder)
    return export_onnx(load_checkpoint(folder, kind=read_meta(folder).kind), folder, shipping)


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


def check_sync_onnx(path: Path, wrapper: nn.Module, tolerance: float = 1e-4) -> float:
    """Largest difference between onnxruntime's sync embeddings and PyTorch's, on lengths other
    than the export's. Raises when above `tolerance`."""
    session = onnx_session(path)
    worst = 0.0
    for frames in (12, 61):
        inputs = sync_inputs(wrapper.model.options, frames, seed=frames)
        with torch.no_grad():
            expected = wrapper(*inputs.values())
        got = session.run(list(SYNC_OUTPUTS), {k: v.numpy() for k, v in inputs.items()})
        worst = max(worst, *(float(np.abs(g - e.numpy()).max()) for g, e in zip(got, expected)))
    if worst > tolerance:
        raise CheckpointError(f"{path}: onnxruntime's embeddings differ from PyTorch's by "
                              f"{worst:.2g}")
    return worst


# --- int8 ----------------------------------------------------------------------------------------

def export_int8(loaded: LoadedModel, out: str | os.PathLike) -> Path:
    """Write `loaded` with int8 weights as a checkpoint folder at `out` (one atomic write)."""
    meta = loaded.meta
    return save_checkpoint(out, loaded.model, meta.options, metrics=meta.metrics, data=meta.data,
                           command=meta.command, card=loaded.card, calibration=meta.calibration,
                           state=int8_state(quantize_int8(loaded.model)),
                           quantization=int8_description(loaded.model))
