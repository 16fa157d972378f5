"""Import an old feature pickle into the safe format (the command `python -m talkface
import-pickle FILE --out DIR --trust` is `talkface.legacy_cli`).

The original system kept features in a pickle: a list of dicts, or a dict of lists, with per
sample `visual` (T x Dv), `audio` (T x Da) and score keys. Unpickling can run arbitrary code, so
it needs the explicit `--trust` flag and a local file, and even then only plain containers and
numpy arrays are accepted (no other class is ever constructed), and what the pickle may build is
bounded by the file's size (an 87-byte pickle cannot ask for gigabytes). The result is one `.npz`+`.json`
bundle per sample, a `manifest.csv` (file + one column per score) and a FeatureSpec with backend
"legacy" and generic column names (`v0000`..., `a0000`...), whose sizes are inferred from the
data. A sample whose dimensions disagree with the others is refused by name.
"""
from __future__ import annotations

import io
import logging
import pickle
import pickletools
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .constants import FPS
from .errors import DatasetError
from .features.extract import FeatureBundle
from .spec import ExtractorConfig, FeatureSpec

log = logging.getLogger(__name__)

NAME_KEYS = ("name", "id", "file", "filename", "video", "path")
MAX_PICKLE_BYTES = 1024 ** 3  # the whole file is read first, so a lying length cannot allocate
BUDGET_FACTOR = 8  # constructors may build at most this many items per byte of the file


class _Budget:
    """How many items (list/tuple/dict entries, bytes, array bytes) the constructors a pickle
    calls may still build. A pickle can call a constructor many times on one remembered object;
    the budget keeps what it builds in proportion to the file's size."""

    def __init__(self, limit: int) -> None:
        self.left = int(limit)

    def spend(self, amount: int, what: str) -> None:
        self.left -= max(0, int(amount))
        if self.left < 0:
            raise DatasetError(f"the pickle builds more than the file could hold ({what}); "
                               f"refusing a pickle that inflates itself")


def _size(value: Any) -> int:
    try:
        return len(value)
    except TypeError:
        return 1


def _array_bytes(shape: Any, dtype: Any) -> int:
    try:
        dims = shape if isinstance(shape, (tuple, list)) else (shape,)
        count = 1
        for d in dims:
            count *= int(d)
        return count * np.dtype(dtype).itemsize
    except (TypeError, ValueError):
        raise DatasetError(f"the pickle asks for an array of shape {shape!r}") from None


class _ArrayClass:
    """Stands for numpy.ndarray in a pickle: numpy's own pickles only pass it to _reconstruct;
    calling it (`ndarray(shape)`) would allocate memory the file does not hold."""

    def __call__(self, *args, **kwargs):
        raise DatasetError("the pickle calls numpy.ndarray(...) directly; only arrays stored "
                           "with their data are imported")


_NDARRAY = _ArrayClass()


def _guarded(module: str, name: str, real: Any, budget: _Budget) -> Any:
    """`real` wrapped so that everything it builds is paid for from `budget`."""
    what = f"{module}.{name}"
    if (module, name) == ("builtins", "bytearray"):
        def build(*args):
            if args and not isinstance(args[0], (bytes, bytearray, str)):
                raise DatasetError(f"the pickle calls bytearray({type(args[0]).__name__}): "
                                   f"only bytearrays of stored bytes are imported")
            budget.spend(_size(args[0]) if args else 0, what)
            return real(*args)
    elif (module, name) == ("numpy", "ndarray"):
        return _NDARRAY  # only ever an argument of _reconstruct, never called
    elif name == "_reconstruct":
        def build(subtype, shape, dtype):
            if subtype is not _NDARRAY:
                raise DatasetError("the pickle rebuilds an array of another class")
            budget.spend(_array_bytes(shape, dtype), what)
            return real(np.ndarray, shape, dtype)
    elif name == "_frombuffer":
        def build(buf, dtype, shape, order):
            if _array_bytes(shape, dtype) > _size(buf):
                raise DatasetError("the pickle's array is larger than its stored data")
            return real(buf, dtype, shape, order)
    elif name == "scalar":
        def build(dtype, *data):
            budget.spend(np.dtype(dtype).itemsize, what)
            return real(dtype, *data)
    elif (module, name) == ("_codecs", "encode"):  # how protocol 2 stores bytes
        def build(text, encoding="utf-8", *rest):
            if str(encoding).lower().replace("-", "") != "latin1" or not isinstance(text, str):
                raise DatasetError(f"the pickle calls _codecs.encode(..., {encoding!r})")
            budget.spend(len(text), what)
            return real(text, encoding)
    elif name == "dtype":
        return real  # describes a type, allocates nothing
    else:  # containers: list, dict, tuple, set, frozenset, complex, OrderedDict, defaultdict
        def build(*args, **kwargs):
            budget.spend(sum(_size(a) for a in args) + len(kwargs), what)
            return real(*args, **kwargs)
    return build


ALLOWED_GLOBALS = {
    ("builtins", "list"), ("builtins", "dict"), ("builtins", "tuple"), ("builtins", "set"),
    ("builtins", "frozenset"), ("builtins", "bytearray"), ("builtins", "complex"),
    ("collections", "OrderedDict"), ("collections", "defaultdict"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"), ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"), ("_codecs", "encode"),
}


class _SafeUnpickler(pickle.Unpickler):
    """Refuses every global except plain containers and numpy arrays/scalars, each wrapped so
    that what it builds is bounded by the file's size (`_Budget`)."""

    def __init__(self, handle, budget: _Budget) -> None:
        super().__init__(handle)
        self.budget = budget

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in ALLOWED_GLOBALS:
            return _guarded(module, name, super().find_class(module, name), self.budget)
        raise DatasetError(f"the pickle wants to build {module}.{name}; only lists, dicts and "
                           f"numpy arrays are imported")


def _check_lengths(data: bytes) -> None:
    """Walk the opcodes once (pure Python, nothing built): a length field that claims more
    bytes than the file holds fails here, before the C unpickler would allocate that much."""
    for _ in pickletools.genops(data):
        pass


def read_pickle(path: str | Path, trust: bool, max_bytes: int = MAX_PICKLE_BYTES) -> Any:
    """Unpickle a local file the user vouched for (`trust`), with the restricted, bounded
    unpickler: the file is read whole first (at most `max_bytes`), and what the pickle builds
    may not exceed BUDGET_FACTOR items per byte of it."""
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
    size = path.stat().st_size
    if size > max_bytes:
        raise DatasetError(f"{path}: {size / 1e9:.1f} GB is above the {max_bytes / 1e9:.1f} GB "
                           f"limit for a pickle")
    data = path.read_bytes()
    budget = _Budget(BUDGET_FACTOR * len(data) + 4096)
    try:
        _check_lengths(data)
        return _SafeUnpickler(io.BytesIO(data), budget).load()
    except DatasetError as err:
        raise DatasetError(f"{path}: {err}") from None
    except MemoryError:
        raise DatasetError(f"{path}: the pickle asks for more memory than there is") from None
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


def convert(samples: list[dict], out: Path, fps: float = FPS) -> pd.DataFrame:
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
