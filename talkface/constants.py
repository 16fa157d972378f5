"""Constants every layer shares, defined once (as whisper's `audio.py` defines SAMPLE_RATE and
HOP_LENGTH and derives the rest).

Every clip is resampled to one frame grid and one audio rate before anyone looks at it, so a
frame index means the same instant in the media, the features, the model and the app.
"""
FPS = 25.0  # frames per second of the common time grid
SAMPLE_RATE = 16000  # audio samples per second (mono)
HOP = int(round(SAMPLE_RATE / FPS))  # 640 audio samples per video frame
MIN_SECONDS = 0.5  # below this there is not one syllable to judge lip sync on
MAX_SECONDS = 120.0  # longer clips are analysed up to here, with a warning
MAX_SIDE = 512  # longest side of the frames handed to per-frame visual backends
# audio-visual offsets are searched (and the sync model trained, and benchmark offsets
# generated) over -MAX_OFFSET_FRAMES..+MAX_OFFSET_FRAMES frames: +-600 ms at 25 fps
MAX_OFFSET_FRAMES = 15
DEFAULT_BACKEND = "mesh"  # the visual feature backend when none is named (offline, no weights)
# files taken as videos where a folder is searched (the CLI, the app's batches)
VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".mpg", ".mpeg", ".flv",
                  ".wmv", ".ts"}
