"""The runtimes a checkpoint runs on: an ONNX graph run by onnxruntime (the default for scoring on
the CPU), PyTorch as it is, and int8 dynamic quantisation (`torch.ao.quantization.quantize_dynamic`).

`talkface.checkpoint.load_checkpoint(path, runtime=...)` is the one place that chooses among
them; `talkface.export` writes the files they read. Whatever the runtime, the inference code sees
numpy: `forward` (quality models) and `sync_embed` (the sync model) take and return numpy arrays,
calling an ONNX session directly and a PyTorch module through tensors, so
`talkface.predict.predict`, the one inference path, and `talkface.sync.estimate` run every
runtime unchanged. Nothing here imports torch at module level: scoring with ONNX never loads it.

int8: the modality encoders' input layers (which see the raw feature columns, whose scales differ
widely) and the task heads (whose output is the score) stay in fp32: quantising them moved scores
on the fixture clips by up to 0.009, the rest moves them by under 0.001.
"""
from __future__ import annotations

import copy
import json
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import numpy as np

from .errors import CheckpointError, TalkfaceError

if TYPE_CHECKING:
    import torch
    from torch import nn

RUNTIMES = ("torch", "int8", "onnx")
ONNX_FILE, META_KEY, CARD_KEY = "model.onnx", "talkface_meta", "talkface_card"
QUANTIZATION = "dynamic-int8"
FP32_LAYERS = ("encoder.mlp.0", "encoder.skip")  # suffixes: the modality encoders' input layers
FP32_PARTS = {"heads", "consistency"}  # the task heads and the consistency map
QUALITY_INPUTS = ("visual", "audio", "mask")
SYNC_INPUTS = ("lips", "crops", "mel")  # those the model's options use, in this order
SYNC_OUTPUTS = ("video", "audio")
_THREADS: dict[str, int] = {}  # this process's share of the cores (`limit_threads`)


@dataclass
class ArrayOutput:
    """A quality model's output as numpy, whatever ran it: `talkface.models.ModelOutput`'s
    fields, `scores[task]` (B,), `attention[name]` (B, T) or (B, T, T), `spread[task]` (B,)."""

    scores: dict[str, np.ndarray]
    attention: dict[str, np.ndarray] = field(default_factory=dict)
    spread: dict[str, np.ndarray] = field(default_factory=dict)


def _on_cpu(device) -> None:
    if str(device).split(":")[0] != "cpu":
        raise TalkfaceError("the onnx runtime runs on the CPU; use runtime='torch' for CUDA")


def forward(model, visual: np.ndarray, audio: np.ndarray, mask: np.ndarray,
            device="cpu") -> ArrayOutput:
    """Run a quality model (an `OnnxModel`, or a PyTorch module on `device`) on numpy inputs
    visual (B, T, Dv), audio (B, T, Da), mask (B, T) bool."""
    if isinstance(model, OnnxModel):
        return model(visual, audio, mask)
    import torch
    with torch.inference_mode():
        out = model(*(torch.from_numpy(x).to(device) for x in (visual, audio, mask)))
    return ArrayOutput(*({k: v.float().cpu().numpy() for k, v in part.items()}
                         for part in (out.scores, out.attention, out.spread)))


def sync_embed(model, lips: Optional[np.ndarray], crops: Optional[np.ndarray],
               mel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run a sync model (an `OnnxSyncModel`, or `talkface.sync.model.SyncNet`): lips
    (1, 160, T), crops (1, T, 24, 48) (None where its options leave them out), mel
    (1, n_mels, 4T + 1) -> (video (1, dim, T - 4), audio (1, dim, T - 4)), unit vectors."""
    if isinstance(model, OnnxSyncModel):
        return model.embed(lips, crops, mel)
    import torch
    tensor = (lambda x: None if x is None else torch.from_numpy(x))  # noqa: E731
    with torch.inference_mode():
        return (model.embed_video(tensor(lips), tensor(crops)).numpy(),
                model.embed_audio(tensor(mel)).numpy())


def limit_threads(count: int) -> None:
    """Give this process `count` threads for model inference (a worker's share of the cores):
    ONNX sessions made from now on, torch if it is already imported, and OpenMP (read by torch
    when it is imported later). Imports nothing."""
    _THREADS["count"] = count
    os.environ["OMP_NUM_THREADS"] = str(count)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(count)


# --- ONNX ----------------------------------------------------------------------------------------

def onnx_session(path: Path, threads: Optional[int] = None):
    try:
        import onnxruntime as ort
    except ImportError as err:
        raise CheckpointError("the onnx runtime needs onnxruntime (pip install onnxruntime)") \
            from err
    options = ort.SessionOptions()
    threads = threads or _THREADS.get("count")
    if threads:
        options.intra_op_num_threads = threads
    # no arena: ORT's arena keeps the largest run's activations for the process's life (about
    # 200 MB after the sync model has seen a 2-minute clip); warm scoring is as fast without
    options.enable_cpu_mem_arena = False
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxModel:
    """A quality model's onnxruntime session with the interface `talkface.predict.predict` uses
    (numpy in, `ArrayOutput` out). Sessions may be run from several threads at once."""

    training = False

    def __init__(self, session, spec, tasks, path: Path) -> None:
        self.session, self.spec, self.tasks, self.path = session, spec, list(tasks), path
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
        _on_cpu(device)
        return self

    def __call__(self, visual: np.ndarray, audio: np.ndarray, mask: np.ndarray) -> ArrayOutput:
        feeds = dict(zip(QUALITY_INPUTS, (np.asarray(visual, np.float32),
                                          np.asarray(audio, np.float32), np.asarray(mask, bool))))
        out = dict(zip(self.outputs, self.session.run(None, feeds)))
        per_task = {k: {t: out[k][:, i] for i, t in enumerate(self.task_names)}
                    for k in ("scores", "spread") if k in out}
        attention = {k: out[k] for k in ("temporal", "cross") if k in out}
        return ArrayOutput(per_task["scores"], attention, per_task.get("spread", {}))


class OnnxSyncModel:
    """The sync model's onnxruntime session (`talkface.export.export_sync_onnx`): both streams
    in one graph, run by `sync_embed`. `options` are the checkpoint's `SyncOptions`."""

    training = False

    def __init__(self, session, options, path: Path) -> None:
        self.session, self.options, self.path = session, options, path
        self.inputs = [i.name for i in self.session.get_inputs()]

    def eval(self) -> "OnnxSyncModel":
        return self

    def to(self, device) -> "OnnxSyncModel":
        _on_cpu(device)
        return self

    def embed(self, lips, crops, mel) -> tuple[np.ndarray, np.ndarray]:
        given = dict(zip(SYNC_INPUTS, (lips, crops, mel)))
        feeds = {name: np.asarray(given[name], np.float32) for name in self.inputs}
        video, audio = self.session.run(list(SYNC_OUTPUTS), feeds)
        return video, audio


def onnx_file(path: Path) -> Path:
    """The .onnx file at `path` (a file, or a folder holding model.onnx)."""
    path = path / ONNX_FILE if path.is_dir() else path
    if not path.exists():
        raise CheckpointError(f"{path}: no ONNX model (make one with `talkface export "
                              f"--checkpoint DIR --format onnx --out {path}`)")
    return path


def read_onnx(path: Path, threads: Optional[int] = None) -> tuple:
    """(session, meta.json's dict, card text) of an exported `.onnx` file: the checkpoint's
    metadata travels inside it."""
    session = onnx_session(path, threads)
    props = session.get_modelmeta().custom_metadata_map
    if META_KEY not in props:
        raise CheckpointError(f"{path}: not a talkface export (no {META_KEY} metadata)")
    return session, json.loads(props[META_KEY]), props.get(CARD_KEY, "")


# --- int8 (PyTorch) ------------------------------------------------------------------------------

def quantizable(model: "nn.Module") -> set[str]:
    """Names of the Linear layers to quantise (see the module docstring for those kept)."""
    from torch import nn
    return {name for name, module in model.named_modules() if type(module) is nn.Linear
            and not name.endswith(FP32_LAYERS) and not FP32_PARTS & set(name.split("."))}


def quantize_int8(model: "nn.Module") -> "nn.Module":
    """A copy of `model` with int8 dynamic quantisation of its inner Linear layers."""
    import torch
    from torch import nn
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


def _quantized_layers(model: "nn.Module") -> dict[str, "nn.Module"]:
    from torch.ao.nn.quantized import dynamic
    return {n: m for n, m in model.named_modules() if isinstance(m, dynamic.Linear)}


def int8_state(quantized: "nn.Module") -> dict[str, "torch.Tensor"]:
    """Plain tensors for safetensors: int8 weights, their scale and zero point, fp32 biases and
    every other parameter and buffer as it is."""
    import torch
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


def load_int8_weights(model: "nn.Module", state: dict[str, "torch.Tensor"],
                      where: str) -> "nn.Module":
    """The quantised model of `model`'s architecture with the weights of `int8_state`."""
    import torch
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


def int8_description(model: "nn.Module") -> dict:
    """The `quantization` entry of an int8 checkpoint's metadata."""
    import torch
    return {"scheme": QUANTIZATION, "layers": sorted(quantizable(model)),
            "torch": torch.__version__.split("+")[0]}
