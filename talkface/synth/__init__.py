"""A controlled talking-head benchmark: real faces, real speech, labels known by construction.

Clean talking heads are rendered from redistributable photos (`faces`) driven by the envelope of
real or synthesised speech (`speech`, `generator`); controlled degradations (`degrade`) are applied
with strengths worked back from uniformly sampled target scores (`labels`), and `build` writes the
clips with a manifest whose split column keeps face and voice identities apart. This is how
video-quality research validates a metric: start from clean material, degrade it on purpose, and
know the true answer because we made it.
"""
__all__ = ["LABEL_VERSION", "TASKS"]


def __getattr__(name: str):
    """`talkface.synth.TASKS` without importing cv2 and numpy on `import talkface.synth.cli`
    (which `talkface --help` does)."""
    if name in __all__:
        from . import labels
        return getattr(labels, name)
    raise AttributeError(f"module 'talkface.synth' has no attribute {name!r}")
