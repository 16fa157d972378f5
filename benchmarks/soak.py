"""Memory of the running app under steady load: does it level off?

    python benchmarks/soak.py [--minutes 5] [--clients 4] [--checkpoint DIR]

Starts `app.py` on a free loopback port (its own temp cache, runs and checkpoint folders), then
`--clients` threads score the bundled samples in turn through `gradio_client` (a different clip
each request, so the result memo fills and must evict) for `--minutes`. The app process's RSS is
sampled every 10 s. Prints the curve, the growth over the second half of the run (MB per minute;
flat means close to 0) and the number of failed requests. Traffic stays on 127.0.0.1 and is
bounded in count and time.
"""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "talkface" / "app" / "samples"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def wait_up(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    import urllib.request
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the app exited with {proc.returncode}")
        try:
            urllib.request.urlopen(url + "/config", timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    raise SystemExit("the app did not start")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, default=5.0)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--checkpoint", default=None, help="default: the shipped one")
    args = p.parse_args(argv)
    from gradio_client import Client
    import pandas as pd
    samples = [f for f in pd.read_csv(SAMPLES / "manifest.csv")["file"]
               if "no_face" not in f]
    work = Path(tempfile.mkdtemp(prefix="talkface-soak-"))
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "TALKFACE_CACHE": str(work / "c"),
           "TALKFACE_CHECKPOINTS": str(work / "k"), "TALKFACE_RUNS": str(work / "r")}
    port = free_port()
    cmd = [sys.executable, str(ROOT / "app.py"), "--port", str(port), "--no-training"]
    if args.checkpoint:
        cmd += ["--checkpoint", args.checkpoint]
    proc = subprocess.Popen(cmd, env=env, stdout=open(work / "app.log", "w"),
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_up(url, proc)
        stop = time.time() + 60 * args.minutes
        counts = {"ok": 0, "failed": 0}
        lock = threading.Lock()

        def client(k: int) -> None:
            c = Client(url, verbose=False, analytics_enabled=False)
            i = k
            while time.time() < stop:
                try:
                    out = c.predict(None, samples[i % len(samples)], "sample", "auto", None,
                                    api_name="/score")
                    ok = "Scored" in (out[0] or "")
                except Exception:  # noqa: BLE001 - counted, the soak goes on
                    ok = False
                with lock:
                    counts["ok" if ok else "failed"] += 1
                i += args.clients

        threads = [threading.Thread(target=client, args=(k,), daemon=True)
                   for k in range(args.clients)]
        for t in threads:
            t.start()
        start, curve = time.time(), []
        while time.time() < stop:
            curve.append((time.time() - start, rss_mb(proc.pid)))
            print(f"{curve[-1][0]:6.0f} s  {curve[-1][1]:7.1f} MB  requests ok {counts['ok']}"
                  f" failed {counts['failed']}", flush=True)
            time.sleep(10)
        for t in threads:
            t.join(120)
        curve.append((time.time() - start, rss_mb(proc.pid)))
    finally:
        proc.terminate()
        proc.wait(20)
    half = [(t, m) for t, m in curve if t >= curve[-1][0] / 2]
    slope = (half[-1][1] - half[0][1]) / max((half[-1][0] - half[0][0]) / 60, 1e-9)
    print(f"\nRSS {curve[0][1]:.0f} MB at start, {max(m for _, m in curve):.0f} MB peak, "
          f"{curve[-1][1]:.0f} MB at the end; second half: {slope:+.1f} MB/min; "
          f"{counts['ok']} requests scored, {counts['failed']} failed")
    return 0 if counts["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
