"""How the app's event handlers report failure: as a message that stays on the page.

A handler that raises makes Gradio show a toast that closes by itself and a bare red "Error"
badge on every output panel. Handlers here catch instead and return their outputs with the
message in the tab's status line and the other panels emptied, so what went wrong, with which
file, stays readable and no stale result sits beside it. Messages never carry server paths.
"""
from __future__ import annotations

import functools
import logging
from typing import Callable

from ..errors import TalkfaceError
from .views import status_html

log = logging.getLogger("talkface.app")


def failure_text(err: BaseException, redact: Callable[[str], str], where: str = "") -> str:
    """A TalkfaceError's own message; anything else as a short message (logged in full)."""
    if isinstance(err, TalkfaceError):
        return redact(str(err))
    log.exception("unexpected error in %s", where or "a request")
    return redact(f"Unexpected {type(err).__name__}: {err}. The app is still running; details "
                  f"are in the server log.")


def guarded(redact: Callable[[str], str], on_error: Callable[[str], tuple]):
    """Decorate a handler: an error returns `on_error(status_html)` instead of raising."""
    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except Exception as err:  # the app must keep serving whatever one request does
                return on_error(status_html(failure_text(err, redact, fn.__name__), "error"))
        return wrapper
    return decorate


def blanks(n: int, status_at: int = 0) -> Callable[[str], tuple]:
    """on_error for a handler with `n` outputs: the message at `status_at`, the rest emptied."""
    def fill(message: str) -> tuple:
        out = [None] * n
        out[status_at] = message
        return tuple(out)
    return fill
