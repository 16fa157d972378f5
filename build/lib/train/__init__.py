"""Training subpackage: `python -m train --config optimized --data DIR --output_dir
runs/NAME`. Imports `talkface`; nothing in `talkface` imports `train`."""
from .config import Config, load_config
from .loop import train

__all__ = ["Config", "load_config", "train"]
