"""A controlled talking-head benchmark: real faces, real speech, labels known by construction.

Clean talking heads are rendered from redistributable photos (`faces`) driven by the envelope of
real or synthesised speech (`speech`, `generator`); controlled degradations (`degrade`) are applied
with strengths worked back from uniformly sampled target scores (`labels`), and `build` writes the
clips with a manifest whose split column keeps face and voice identities apart. This is how
video-quality research validates a metric: start from clean material, degrade it on purpose, and
know the true answer because we made it.
"""
from .labels import LABEL_VERSION, TASKS

__all__ = ["LABEL_VERSION", "TASKS"]
