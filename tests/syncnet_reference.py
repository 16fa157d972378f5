"""The reference talkface's LSE is checked against: syncnet-python (PyPI, a test-only dependency,
joonson/syncnet_python's code) run on given crops, audio and weights, and a SyncNet with RANDOM
weights in its layout (VGG's trained syncnet_v2.model is neither shipped nor downloaded).
Used by tests/test_lse.py and benchmarks/lse.py; not part of talkface.

The package's `__init__` imports its whole video pipeline (scenedetect, ffmpeg-python, the S3FD
detector), which the comparison does not need and requirements-reference.txt does not install
(the package comes without its dependencies, which would replace OpenCV), so `SyncNetModel.py`
and `SyncNetInstance.py` are loaded from the installed package's folder directly, and
`SyncNetInstance.evaluate` is driven the way the pipeline drives it: a folder of crop frames
(read by cv2.imread) and audio.wav (16 kHz, 16-bit).
"""
from __future__ import annotations

import importlib.util
import io
import time
import types
import warnings
from collections import OrderedDict
from contextlib import redirect_stdout
from pathlib import Path

import cv2
import numpy as np
import torch
from scipy.io import wavfile


def reference_modules() -> tuple[types.ModuleType, types.ModuleType]:
    """syncnet-python's (SyncNetModel, SyncNetInstance) modules."""
    spec = importlib.util.find_spec("syncnet_python")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("syncnet-python is required for the LSE parity checks: "
                          "pip install --no-deps -r requirements-reference.txt")
    folder = Path(spec.submodule_search_locations[0])
    loaded = []
    for name in ("SyncNetModel", "SyncNetInstance"):
        file_spec = importlib.util.spec_from_file_location(f"syncnet_reference_{name}",
                                                           folder / f"{name}.py")
        module = importlib.util.module_from_spec(file_spec)
        file_spec.loader.exec_module(module)
        loaded.append(module)
    return loaded[0], loaded[1]


def random_syncnet_weights(path: Path, seed: int = 0) -> Path:
    """Random weights for syncnet-python's `S`, saved as syncnet_v2.model is stored: a legacy
    (pre-1.6) state dict without BatchNorm's num_batches_tracked.

    Batch-norm statistics are set from one batch of inputs (random pixel windows, MFCC-like
    windows), so activations stay at a finite, trained-like scale instead of growing layer by
    layer. Random embeddings do not respond to sync, so the offset such weights find is
    usually at an end of the search, where `calc_pdist`'s zero padding lies."""
    model_module, _ = reference_modules()
    torch.manual_seed(seed)
    net = model_module.S()
    for m in net.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = None  # running statistics = this batch's
    net.train()
    with torch.no_grad():
        net.forward_lip(torch.rand(6, 3, 5, 224, 224) * 255)
        net.forward_aud(torch.randn(6, 1, 13, 20) * 10)
    state = OrderedDict((k, v) for k, v in net.state_dict().items()
                        if not k.endswith("num_batches_tracked"))
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path, _use_new_zipfile_serialization=False)
    return path


def write_crop_folder(crops: np.ndarray, pcm: np.ndarray, folder: Path) -> Path:
    """What the reference pipeline hands `evaluate`: numbered frames and audio.wav. Frames are
    written losslessly (PNG bytes under .jpg names; cv2.imread goes by content), so both sides
    see the same pixels."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, crop in enumerate(crops):
        ok, data = cv2.imencode(".png", np.ascontiguousarray(crop[..., ::-1]))  # RGB -> BGR
        (folder / f"{i + 1:06d}.jpg").write_bytes(data.tobytes())
    wavfile.write(folder / "audio.wav", 16000, np.asarray(pcm, np.int16))
    return folder


def reference_lse(weights: Path, folder: Path, vshift: int = 15,
                  batch_size: int = 20) -> dict:
    """syncnet-python's `SyncNetInstance.evaluate` on a crop folder, on the CPU:
    {offset, lse_c, lse_d, seconds} (seconds: loading the folder and computing, weights
    already loaded)."""
    model_module, instance_module = reference_modules()
    instance = instance_module.SyncNetInstance(model_module.S(), device="cpu")
    instance.loadParameters(str(weights))
    opt = types.SimpleNamespace(tmp_dir=str(folder), batch_size=batch_size, vshift=vshift)
    start = time.perf_counter()
    with redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # it prints its figures; scipy warns on short clips
        offset, conf, dist = instance.evaluate(opt)
    return {"offset": int(offset), "lse_c": float(conf), "lse_d": float(dist),
            "seconds": time.perf_counter() - start}
