"""talkface: no-reference quality assessment of AI-generated talking-face videos.

media -> features -> FeatureSpec -> model -> checkpoint -> Scorer -> app / CLI.
"""
__version__ = "0.2.0"


def __getattr__(name: str):
    """`talkface.load_scorer` without importing torch and the extractor on `import talkface`."""
    if name in ("load_scorer", "Scorer", "ScoreResult", "TaskScore"):
        from . import api
        return getattr(api, name)
    raise AttributeError(f"module 'talkface' has no attribute {name!r}")
