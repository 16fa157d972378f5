"""talkface: no-reference quality assessment of AI-generated talking-face videos.

media -> features -> FeatureSpec -> model -> checkpoint -> Scorer -> app / CLI.
"""
from .version import __version__  # noqa: F401  (talkface.__version__)


def __getattr__(name: str):
    """`talkface.load_scorer` without importing torch and the extractor on `import talkface`."""
    if name in ("load_scorer", "Scorer", "ScoreResult", "TaskScore"):
        from . import api
        return getattr(api, name)
    raise AttributeError(f"module 'talkface' has no attribute {name!r}")
