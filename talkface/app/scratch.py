"""The app's scratch folder: one per server process, removed on exit and, if a process was
killed before it could clean up, by the next start.

The folder is `<tmp>/talkface-app-<pid>-<random>`; it holds the app's downloads and previews and,
unless GRADIO_TEMP_DIR was set by the user, Gradio's own upload and cache folder, so removing it
removes everything the app wrote. At start, folders of processes that no longer run (and that
belong to this user) are removed.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Optional

log = logging.getLogger(__name__)
PREFIX = "talkface-app-"
_NAME = re.compile(rf"^{PREFIX}(\d+)-")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def clear_stale(base: Optional[Path] = None) -> list[Path]:
    """Remove scratch folders left by app processes that are gone; returns what was removed."""
    base = Path(base or tempfile.gettempdir())
    removed = []
    for item in base.glob(f"{PREFIX}*"):
        match = _NAME.match(item.name)
        if not match or not item.is_dir() or item.is_symlink():
            continue
        try:
            if item.stat().st_uid != os.getuid() or _alive(int(match.group(1))):
                continue
        except OSError:
            continue
        shutil.rmtree(item, ignore_errors=True)
        removed.append(item)
    if removed:
        log.info("removed %d scratch folder(s) of earlier app processes", len(removed))
    return removed


def make_scratch(base: Optional[Path] = None) -> Path:
    """Clear stale folders, then make this process's scratch folder."""
    clear_stale(base)
    return Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-",
                                 dir=str(base) if base else None))


def use_for_gradio(scratch: Path) -> Optional[Path]:
    """Point Gradio's temp folder into `scratch` (before any Blocks is built), unless the user
    chose one; returns the folder Gradio will use when it is ours to remove."""
    if os.environ.get("GRADIO_TEMP_DIR"):
        return None
    folder = scratch / "gradio"
    folder.mkdir(exist_ok=True)
    os.environ["GRADIO_TEMP_DIR"] = str(folder)
    return folder
