"""Errors a user can read.

Every failure talkface reports on purpose is a `TalkfaceError`; its message says what is wrong with
the input and, where possible, what to do. The CLI and the app print `str(err)`, never a traceback.
"""


class TalkfaceError(Exception):
    """Base class for every error talkface raises on purpose."""


class MediaError(TalkfaceError):
    """The file could not be used as a talking-face video."""


class NotAMediaFile(MediaError):
    """The file is not audio/video at all (a text file, an image, an empty file...)."""


class NoVideoStream(MediaError):
    """The file is media but holds no video track (e.g. an audio-only file)."""


class NoDecodableFrames(MediaError):
    """The video track exists but not one frame could be decoded."""


class CorruptMedia(MediaError):
    """The container or stream is damaged part way through."""


class TooShort(MediaError):
    """The clip is shorter than the minimum length that can be scored."""


class FileTooLarge(MediaError):
    """The file is above the configured size limit."""


class BackendUnavailable(TalkfaceError):
    """A feature backend's dependencies or weights are missing."""


class SpecMismatch(TalkfaceError):
    """Features were extracted differently from what a checkpoint expects."""


class CheckpointError(TalkfaceError):
    """A checkpoint is missing, damaged or does not match its metadata."""


class ConfigError(TalkfaceError):
    """A training or extraction config is invalid."""


class DatasetError(TalkfaceError):
    """A dataset folder, manifest or legacy pickle is unusable."""
