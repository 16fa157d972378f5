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

Either runtime is an object with the model's interface (`tasks`, `eval()`, `__call__` returning
`ModelOutput`), so `talkface.predict.predict`, the one inference path, runs it unchanged.
"""
from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import nn

from .checkpoint import LoadedModel, load_checkpoint, save_checkpoint
from .errors import CheckpointError, TalkfaceError
from .models import ModelOutput, create_model

log = logging.getLogger(__name__)
FORMATS = ("onnx", "int8")
ONNX_FILE, META_KEY, CARD_KEY = "model.onnx", "talkface_meta", "talkface_card"
QUANTIZATION = "dynamic-int8"
FP32_LAYERS = ("encoder.mlp.0", "encoder.skip")  # suffixes: the modality encoders' input layers
FP32_PARTS = {"heads", "consistency"}  # the task heads and the consistency map


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
        (path / "meta.json").write_text(json.dumps(loaded.meta, indent=1))
        (path / "card.md").write_text(loaded.card)
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
    onnx.helper.set_model_props(graph, {META_KEY: json.dumps(loaded.meta),
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


def onnx_session(path: Path, threads: Optional[int] = None):
    try:
        import onnxruntime as ort
    except ImportError as err:
        raise CheckpointError("the onnx runtime needs onnxruntime (pip install onnxruntime)") \
            from err
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxModel:
    """An onnxruntime session with the interface `talkface.predict.predict` uses. Sessions may
    be run from several threads at once."""

    training = False

    def __init__(self, path: Path, spec, tasks, threads: Optional[int] = None) -> None:
        self.session = onnx_session(path, threads)
        self.spec, self.tasks, self.path = spec, list(tasks), path
        self.outputs = [o.name for o in self.session.get_outputs()]

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.tasks]

    def eval(self) -> "OnnxModel":
        return self

    def train(self, mode: bool = True) -> "OnnxModel":
        if mode:
            raise TalkfaceError("an ONNX model cannot be trained")
        return self

    def to(self, device) -> "OnnxModel":
        if torch.device(device).type != "cpu":
            raise TalkfaceError("the onnx runtime runs on the CPU; use runtime='torch' for CUDA")
        return self

    def __call__(self, visual: torch.Tensor, audio: torch.Tensor,
                 mask: torch.Tensor) -> ModelOutput:
        feeds = {"visual": visual.cpu().numpy(), "audio": audio.cpu().numpy(),
                 "mask": mask.cpu().numpy()}
        out = dict(zip(self.outputs, self.session.run(None, feeds)))
        per_task = {k: {t: torch.from_numpy(out[k][:, i]) for i, t in enumerate(self.task_names)}
                    for k in ("scores", "spread") if k in out}
        attention = {k: torch.from_numpy(out[k]) for k in ("temporal", "cross") if k in out}
        return ModelOutput(per_task["scores"], attention, per_task.get("spread", {}))


def load_onnx(path: str | os.PathLike, threads: Optional[int] = None) -> LoadedModel:
    """An exported `.onnx` file (or a folder holding model.onnx) as a LoadedModel."""
    from .spec import FeatureSpec, TaskSpec
    path = Path(path)
    if path.is_dir():
        path = path / ONNX_FILE
    if not path.exists():
        raise CheckpointError(f"{path}: no ONNX model (make one with `talkface export "
                              f"--checkpoint DIR --format onnx --out {path}`)")
    session = onnx_session(path)
    props = session.get_modelmeta().custom_metadata_map
    if META_KEY not in props:
        raise CheckpointError(f"{path}: not a talkface export (no {META_KEY} metadata)")
    meta = json.loads(props[META_KEY])
    spec = FeatureSpec.model_validate(meta["feature_spec"])
    tasks = [TaskSpec.model_validate(t) for t in meta["tasks"]]
    model = OnnxModel(path, spec, tasks, threads)
    return LoadedModel(model, spec, tasks, {**meta, "runtime": "onnx"}, path.parent,
                       props.get(CARD_KEY, ""), meta.get("metrics", {}))


# --- int8 ----------------------------------------------------------------------------------------

def quantizable(model: nn.Module) -> set[str]:
    """Names of the Linear layers to quantise (see the module docstring for those kept)."""
    return {name for name, module in model.named_modules() if type(module) is nn.Linear
            and not name.endswith(FP32_LAYERS) and not FP32_PARTS & set(name.split("."))}


def quantize_int8(model: nn.Module) -> nn.Module:
    """A copy of `model` with int8 dynamic quantisation of its inner Linear layers."""
    from torch.ao.quantization import quantize_dynamic
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's eager quantisation is marked deprecated
        quantized = quantize_dynamic(copy.deepcopy(model).eval(), quantizable(model),
                                     dtype=torch.qint8)
    for layer in quantized.modules():
        if isinstance(layer, nn.TransformerEncoderLayer):
            # PyTorch's fused inference path reads linear1.weight as a tensor, which a quantised
            # layer does not have; this flag only gates that path
            layer.activation_relu_or_gelu = False
    return quantized


def _quantized_layers(model: nn.Module) -> dict[str, nn.Module]:
    from torch.ao.nn.quantized import dynamic
    return {n: m for n, m in model.named_modules() if isinstance(m, dynamic.Linear)}


def int8_state(quantized: nn.Module) -> dict[str, torch.Tensor]:
    """Plain tensors for safetensors: int8 weights, their scale and zero point, fp32 biases and
    every other parameter and buffer as it is."""
    layers = _quantized_layers(quantized)
    state = {k: v for k, v in quantized.state_dict().items()
             if isinstance(v, torch.Tensor) and not any(k.startswith(n + ".") for n in layers)}
    for name, layer in layers.items():
        weight, bias = layer._packed_params._weight_bias()
        state[f"{name}.weight_int8"] = weight.int_repr()
        state[f"{name}.weight_scale"] = torch.tensor([weight.q_scale()], dtype=torch.float64)
        state[f"{name}.weight_zero_point"] = torch.tensor([weight.q_zero_point()])
        if bias is not None:
            state[f"{name}.bias"] = bias.detach()
    return {k: v.detach().cpu().contiguous() for k, v in state.items()}


def load_int8_weights(model: nn.Module, state: dict[str, torch.Tensor], where: str) -> nn.Module:
    """The quantised model of `model`'s architecture with the weights of `int8_state`."""
    quantized = quantize_int8(model)
    layers = _quantized_layers(quantized)
    expected = set(int8_state(quantized))
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise CheckpointError(f"{where} does not match its int8 model: missing {missing[:5]}, "
                              f"unexpected {unexpected[:5]}")
    tensors = {**dict(quantized.named_parameters()), **dict(quantized.named_buffers())}
    with torch.no_grad():
        for key, value in state.items():
            if key in tensors:
                tensors[key].copy_(value)
    for name, layer in layers.items():
        weight = torch._make_per_tensor_quantized_tensor(
            state[f"{name}.weight_int8"], float(state[f"{name}.weight_scale"]),
            int(state[f"{name}.weight_zero_point"]))
        layer.set_weight_bias(weight, state.get(f"{name}.bias"))
    return quantized.eval()


def export_int8(loaded: LoadedModel, out: str | os.PathLike) -> Path:
    """Write `loaded` with int8 weights as a checkpoint folder at `out` (one atomic write)."""
    meta = loaded.meta
    quantization = {"scheme": QUANTIZATION, "layers": sorted(quantizable(loaded.model)),
                    "torch": torch.__version__.split("+")[0]}
    return save_checkpoint(out, loaded.model, meta["model_config"], metrics=meta.get("metrics"),
                           data=meta.get("data"), command=meta.get("command", ""),
                           card=loaded.card, calibration=meta.get("calibration"),
                           state=int8_state(quantize_int8(loaded.model)),
                           extra_meta={"quantization": quantization})


def int8_model(meta: dict, state: dict[str, torch.Tensor], where: str) -> nn.Module:
    """Rebuild an int8 checkpoint's model (called by `load_checkpoint`)."""
    from .spec import FeatureSpec, TaskSpec
    spec = FeatureSpec.model_validate(meta["feature_spec"])
    tasks = [TaskSpec.model_validate(t) for t in meta["tasks"]]
    model = create_model(meta["model_name"], spec, tasks, **meta.get("model_config", {}))
    return load_int8_weights(model, state, where)


# --- command line --------------------------------------------------------------------------------

def add_parser(subparsers) -> None:
    p = subparsers.add_parser("export", help="export a checkpoint for CPU deployment "
                              "(ONNX or int8)")
    p.add_argument("--checkpoint", help="checkpoint folder (default: the active one)")
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("--out", required=True,
                   help="onnx: a .onnx file or a folder; int8: a checkpoint folder")


def run(args: argparse.Namespace) -> int:
    loaded = load_checkpoint(args.checkpoint)
    if loaded.meta.get("quantization"):
        raise CheckpointError(f"{loaded.path} is already quantised; export the fp32 checkpoint")
    if args.format == "onnx":
        path = export_onnx(loaded, args.out)
    else:
        path = export_int8(loaded, args.out)
    size = sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) \
        if Path(path).is_dir() else Path(path).stat().st_size
    print(f"wrote {path} ({size / 1e6:.1f} MB, {args.format}) from {loaded.path}")
    return 0
