"""The CPU runtimes a quality checkpoint can run on besides plain PyTorch: an ONNX graph run by
onnxruntime, and int8 dynamic quantisation (`torch.ao.quantization.quantize_dynamic`).

`talkface.checkpoint.load_checkpoint(path, runtime=...)` is the one place that chooses among
them; `talkface.export` writes the files they read. Either runtime is an object with the model's
interface (`tasks`, `eval()`, `__call__` returning `ModelOutput`), so `talkface.predict.predict`,
the one inference path, runs it unchanged.

int8: the modality encoders' input layers (which see the raw feature columns, whose scales differ
widely) and the task heads (whose output is the score) stay in fp32: quantising them moved scores
on the fixture clips by up to 0.009, the rest moves them by under 0.001.
"""
from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from .errors import CheckpointError, TalkfaceError
from .models import ModelOutput

RUNTIMES = ("torch", "int8", "onnx")
ONNX_FILE, META_KEY, CARD_KEY = "model.onnx", "talkface_meta", "talkface_card"
QUANTIZATION = "dynamic-int8"
FP32_LAYERS = ("encoder.mlp.0", "encoder.skip")  # suffixes: the modality encoders' input layers
FP32_PARTS = {"heads", "consistency"}  # the task heads and the consistency map


# --- ONNX ----------------------------------------------------------------------------------------

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


def int8_description(model: nn.Module) -> dict:
    """The `quantization` entry of an int8 checkpoint's metadata."""
    return {"scheme": QUANTIZATION, "layers": sorted(quantizable(model)),
            "torch": torch.__version__.split("+")[0]}
