"""Feature cache: a bundle is stored under the file's content hash + the extractor's settings key,
so extracting the same bytes with the same settings twice is a lookup.

Default root: $TALKFACE_CACHE, else ~/.cache/talkface/features.
"""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Optional

from .errors import MediaError
from .features.extract import Extractor, FeatureBundle

log = logging.getLogger(__name__)


def default_cache_root() -> Path:
    return Path(os.environ.get("TALKFACE_CACHE",
                               Path.home() / ".cache" / "talkface" / "features"))


def file_hash(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """sha256 of the file's bytes (streamed), first 24 hex digits."""
    digest = hashlib.sha256()
    if not os.path.isfile(path):
        raise MediaError(f"{path}: file not found" if not os.path.exists(path)
                         else f"{path}: is a folder, not a video file")
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()[:24]


class FeatureCache:
    """Bundles under root/<extractor settings key>/<content hash>.npz. Callers that already hashed
    the file pass `digest` so a clip is read for hashing once."""

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_root()

    def path_for(self, extractor: Extractor, path: str | os.PathLike,
                 digest: Optional[str] = None, face: Optional[int] = None) -> Path:
        return self.root / extractor.cache_key(face) / f"{digest or file_hash(path)}.npz"

    def get(self, extractor: Extractor, path: str | os.PathLike, digest: Optional[str] = None,
            face: Optional[int] = None) -> Optional[FeatureBundle]:
        target = self.path_for(extractor, path, digest, face)
        if target.exists() and target.with_suffix(".json").exists():
            try:
                return FeatureBundle.load(target)
            except (OSError, ValueError, KeyError) as err:  # damaged entry: extract again
                log.warning("ignoring damaged cache entry %s (%s)", target, err)
        return None

    def get_or_extract(self, extractor: Extractor, path: str | os.PathLike,
                       progress=None, digest: Optional[str] = None, info=None,
                       face: Optional[int] = None) -> FeatureBundle:
        digest = digest or file_hash(path)
        bundle = self.get(extractor, path, digest, face)
        if bundle is not None:
            return bundle
        bundle = extractor.extract(path, progress=progress, info=info, face=face)
        bundle.save(self.path_for(extractor, path, digest, face))
        return bundle
