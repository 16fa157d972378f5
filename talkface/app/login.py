"""Failed logins limited per client address, in front of Gradio's `/login` (with `--auth`).

Gradio checks a password as often as it is asked. `LoginLimiter` is an ASGI middleware that
counts the failed attempts (Gradio's 400 answer) of each client address over a sliding window:
after `max_failures` of them within `window` seconds, that address's logins are answered 429
until the oldest failure leaves the window, the right password included, so guessing runs at
`max_failures` a minute at most. The address is the TCP peer's (behind a reverse proxy, every
client shares the proxy's address, and the limit applies to all of them together).
"""
from __future__ import annotations

import json
import math
import time
from collections import deque
from typing import Callable

MAX_FAILURES = 5  # failed logins per client address ...
WINDOW = 60.0  # ... per this many seconds
MAX_CLIENTS = 4096  # addresses remembered at once (the oldest are forgotten first)


class LoginLimiter:
    def __init__(self, app, max_failures: int = MAX_FAILURES, window: float = WINDOW,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.app, self.max_failures, self.window, self.clock = app, max_failures, window, clock
        self.failures: dict[str, deque] = {}

    async def __call__(self, scope, receive, send) -> None:
        if not (scope["type"] == "http" and scope.get("method") == "POST"
                and scope.get("path", "").rstrip("/").endswith("/login")):
            await self.app(scope, receive, send)
            return
        client = (scope.get("client") or ("unknown",))[0]
        wait = self.wait(client)
        if wait > 0:
            await _refuse(send, wait)
            return
        status = {}

        async def watched(message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        await self.app(scope, receive, watched)
        if status.get("code") in (400, 401, 403):
            self.record(client)

    def _recent(self, client: str) -> deque:
        times = self.failures.get(client, deque())
        while times and times[0] <= self.clock() - self.window:
            times.popleft()
        if not times:
            self.failures.pop(client, None)
        return times

    def wait(self, client: str) -> float:
        """Seconds until `client` may try again (0: now)."""
        times = self._recent(client)
        if len(times) < self.max_failures:
            return 0.0
        return times[-self.max_failures] + self.window - self.clock()

    def record(self, client: str) -> None:
        times = self._recent(client)
        self.failures.pop(client, None)  # re-insert: the dict's order is most recent last
        times.append(self.clock())
        self.failures[client] = times
        while len(self.failures) > MAX_CLIENTS:
            self.failures.pop(next(iter(self.failures)))


async def _refuse(send, wait: float) -> None:
    seconds = max(1, math.ceil(wait))
    body = json.dumps({"detail": f"Too many failed logins from this address; try again in "
                                 f"{seconds} s."}).encode()
    await send({"type": "http.response.start", "status": 429,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"retry-after", str(seconds).encode())]})
    await send({"type": "http.response.body", "body": body})
