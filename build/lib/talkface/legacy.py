"""Import an old feature pickle into the safe format: `python -m talkface import-pickle FILE
--out DIR --trust`.

The original system kept features in a pickle: a list of dicts, or a dict of lists, with per
sample `visual` (T x Dv), `audio` (T x Da) and score keys. Unpickling can run arbitrary code, so
it needs the explicit `--trust` flag and a local file, and even then only plain containers and
numpy arrays are accepted (no other class is ever constructed). The result is one `.npz`+`.json`
bundle per sample, a `manifest.csv` (file + one column per score) and a FeatureSpec with backend
"legacy" and generic column names (`v0000`..., `a0000`...), whose sizes are inferred from the
data. A sample whose dimensions disagree with the others is refused by name.
"""
from __future__ import annotations

import argparse
import logging
import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import DatasetError
from .features.extract import FeatureBundle
from .spec import ExtractorConfig, FeatureSpec

log = logging.getLogger(__name__)

NAME_KEYS = ("name", "id", "file", "filename", "video", "path")
ALLOWED_GLOBALS = {
    ("builtins", "list"), ("builtins", "dict"), ("builtins", "tuple"), ("builtins", "set"),
    ("builtins", "frozenset"), ("builtins", "bytearray"), ("builtins", "complex"),
    ("collections", "OrderedDict"), ("collections", "defaultdict"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"), ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
}


class _SafeUnpickler(pickle.Unpickler):
    """Refuses every global except plain containers and numpy arrays/scalars."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise DatasetError(f"the pickle wants to build {module}.{name}; only lists, dicts and "
                           f"numpy arrays are imported")


def read_pickle(path: str | Path, trust: bool) -> Any:
    """Unpickle a local file the user vouched for (`trust`), with the restricted unpickler."""
    text = str(path)
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", text):
        raise DatasetError(f"{text}: only local files are imported; download it and check it "
                           f"first")
    if not trust:
        raise DatasetError(f"{text}: unpickling can run code hidden in the file; pass --trust "
                           f"if you made this file or trust its source")
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    try:
        with path.open("rb") as handle:
            return _SafeUnpickler(handle).load()
    except DatasetError:
        raise
    except Exception as err:  # noqa: BLE001 - any unpickling failure means a bad file
        raise DatasetError(f"{path}: not a readable pickle ({type(err).__name__}: {err})") from None


def as_samples(obj: Any) -> list[dict]:
    """List of dicts, or dict of equally long lists -> list of per-sample dicts."""
    if isinstance(obj, dict):
        if "visual" not in obj or "audio" not in obj:
            raise DatasetError(f"a dict of lists needs `visual` and `audio` keys; found "
                               f"{sorted(map(str, obj))[:10]}")
        sizes = {key: len(value) for key, value in obj.items()}
        if len(set(sizes.values())) != 1:
            raise DatasetError(f"the lists have different lengths: {sizes}")
        n = sizes["visual"]
        return [{key: obj[key][i] for key in obj} for i in range(n)]
    if isinstance(obj, (list, tuple)):
        bad = [i for i, s in enumerate(obj) if not isinstance(s, dict)]
        if bad:
            raise DatasetError(f"sample {bad[0]} is a {type(obj[bad[0]]).__name__}, not a dict")
        return list(obj)
    raise DatasetError(f"expected a list of dicts or a dict of lists, got {type(obj).__name__}")


def sample_name(sample: dict, index: int) -> str:
    for key in NAME_KEYS:
        if isinstance(sample.get(key), str) and sample[key]:
            return Path(sample[key]).stem
    return f"sample{index:05d}"


def _matrix(sample: dict, key: str, label: str) -> np.ndarray:
    if key not in sample:
        raise DatasetError(f"{label} has no `{key}` features")
    try:
        value = np.asarray(sample[key], dtype=np.float32)
    except (TypeError, ValueError):
        raise DatasetError(f"{label}: `{key}` is not numeric") from None
    if value.ndim != 2:
        raise DatasetError(f"{label}: `{key}` has shape {value.shape}; expected frames x "
                           f"features")
    return value


def score_keys(samples: list[dict]) -> list[str]:
    """Keys whose values are numeric scalars in at least one sample (in first-seen order)."""
    keys: list[str] = []
    for sample in samples:
        for key, value in sample.items():
            if key in ("visual", "audio", "valid", "mask") or key in keys:
                continue
            if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
                    value, bool):
                keys.append(key)
    return keys


def convert(samples: list[dict], out: Path, fps: float = 25.0) -> pd.DataFrame:
    """Write bundles + manifest.csv under `out`; returns the manifest."""
    if not samples:
        raise DatasetError("the pickle holds no samples")
    scores, rows, dims = score_keys(samples), [], None
    names = [sample_name(s, i) for i, s in enumerate(samples)]
    if len(set(names)) != len(names):
        names = [f"{n}_{i:05d}" for i, n in enumerate(names)]
    matrices = []
    for i, sample in enumerate(samples):
        label = f"sample {i} ({names[i]})"
        visual, audio = _matrix(sample, "visual", label), _matrix(sample, "audio", label)
        if dims is None:
            dims, first = (visual.shape[1], audio.shape[1]), label
        if (visual.shape[1], audio.shape[1]) != dims:
            raise DatasetError(f"{label} has Dv={visual.shape[1]}, Da={audio.shape[1]} but "
                               f"{first} has Dv={dims[0]}, Da={dims[1]}")
        if len(visual) != len(audio):
            raise DatasetError(f"{label} has {len(visual)} visual frames but {len(audio)} audio "
                               f"frames")
        matrices.append((visual, audio))
    spec = FeatureSpec(visual_names=tuple(f"v{j:04d}" for j in range(dims[0])),
                       audio_names=tuple(f"a{j:04d}" for j in range(dims[1])),
                       extractor=ExtractorConfig(backend="legacy", fps=fps),
                       backend_version="1")
    for i, ((visual, audio), sample) in enumerate(zip(matrices, samples)):
        valid = np.isfinite(visual).all(1) & np.isfinite(audio).all(1)
        visual, audio = np.where(valid[:, None], visual, 0), np.where(valid[:, None], audio, 0)
        target = out / "features" / f"{names[i]}.npz"
        FeatureBundle(visual.astype(np.float32), audio.astype(np.float32), valid, spec,
                      {"source": names[i], "imported_from": "legacy pickle"}).save(target)
        rows.append({"file": f"features/{names[i]}.npz",
                     **{k: float(sample[k]) if k in sample else np.nan for k in scores}})
    manifest = pd.DataFrame(rows, columns=["file", *scores])
    manifest.to_csv(out / "manifest.csv", index=False)
    (out / "feature_spec.json").write_text(spec.to_json())
    return manifest


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("import-pickle", help="convert an old feature pickle into "
                              "bundles + manifest.csv (needs --trust)")
    p.add_argument("file", help="local .pkl file: list of dicts or dict of lists")
    p.add_argument("--out", required=True, help="output dataset folder")
    p.add_argument("--trust", action="store_true",
                   help="I know where this pickle comes from (unpickling can run code)")
    p.add_argument("--fps", type=float, default=25.0, help="frame rate of the old features")
    return p


def run(args: argparse.Namespace) -> int:
    samples = as_samples(read_pickle(args.file, args.trust))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    manifest = convert(samples, out, args.fps)
    scores = [c for c in manifest.columns if c != "file"]
    print(f"imported {len(manifest)} samples into {out} (scores: {', '.join(scores) or 'none'});"
          f" train with: python -m train --config optimized --data {out} "
          f"--output_dir runs/legacy" + (f" --set 'data.tasks=[{','.join(scores)}]'"
                                         if scores else ""))
    return 0
