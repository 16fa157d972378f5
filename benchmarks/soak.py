"""The running app under load (issue 22): throughput and latency with one client and with many,
and memory over time. One command, loopback only, bounded in count and time.

    python benchmarks/soak.py [--minutes 5] [--clients 8] [--single 10] [--workers N]
                              [--with-training] [--training-clients 4] [--checkpoint DIR]
                              [--json OUT]

The full measurement (about 3 + 2 x minutes + 2 x minutes with --with-training, so ~25 min):

    python benchmarks/soak.py --minutes 5 --clients 8 --single 10 --with-training

Starts `app.py` on a free 127.0.0.1 port (its own temp cache, runs and checkpoint folders,
`--workers` feature worker processes, default the app's), then, through `gradio_client`:

1. warm-up: one request per worker, not counted (the workers build their Scorers);
2. single: one client, `--single` requests one after another: the single-request latency
   (median) and the single-stream throughput;
3. load: `--clients` clients for `--minutes`: throughput, latency p50 / p95, errors; the ratios
   to (2) are the issue's targets (throughput >= 1.8x, p95 <= 4.5x on 2 cores with 8 clients);
4. with `--with-training`: `--training-clients` clients for `--minutes` without, then with a
   training job on the bundled demo set running beside them (started through the app's Train
   tab, niced as the app runs it, cancelled after): the throughput with / without (target:
   within 20%).

Every request uploads a distinct clip: a bundled sample (faces and voices only) remuxed with a
unique metadata tag (`ffmpeg -c copy`, so the same decoding work, but new bytes), so neither the
result memo nor the feature cache ever answers; each clip is deleted after its request. RSS of
the app process and of its whole process tree (the worker processes included; shared pages are
counted once per process) is sampled every 5 s during (3) and (4); the growth over the second
half of the load phase (MB per minute; flat means close to 0) is printed. A request counts as an
error unless its status line says "Scored".
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "talkface" / "app" / "samples"
SAMPLE_EVERY = 5.0  # seconds between RSS samples


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def descendants(pid: int) -> list[int]:
    """`pid`'s child processes, theirs, and so on (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def wait_up(url: str, proc: subprocess.Popen, timeout: float = 180) -> None:
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


class DistinctClips:
    """A new file for every request: a bundled sample with a unique metadata tag."""

    def __init__(self, folder: Path) -> None:
        import pandas as pd
        manifest = pd.read_csv(SAMPLES / "manifest.csv")
        self.samples = [SAMPLES / f for f, c in zip(manifest["file"], manifest["condition"])
                        if c not in ("no_face", "no_audio")]
        self.folder, self.counter = folder, itertools.count()
        self.ffmpeg = shutil.which("ffmpeg")
        if self.ffmpeg is None:
            raise SystemExit("the benchmark needs ffmpeg on PATH (to make distinct clips)")

    def make(self) -> Path:
        n = next(self.counter)
        out = self.folder / f"soak-{n:05d}.mp4"
        subprocess.run([self.ffmpeg, "-v", "error", "-y", "-i",
                        str(self.samples[n % len(self.samples)]), "-map", "0", "-c", "copy",
                        "-metadata", f"comment=talkface-soak-{n}", str(out)], check=True)
        return out


class Load:
    """`clients` threads scoring distinct clips until `seconds` pass (or `requests` each)."""

    def __init__(self, url: str, clips: DistinctClips) -> None:
        self.url, self.clips = url, clips
        self.lock = threading.Lock()

    def run(self, clients: int, seconds: float = float("inf"), requests: int = 0,
            on_tick=None) -> dict:
        latencies, errors = [], []
        start = time.time()
        stop = start + seconds

        def client() -> None:
            from gradio_client import Client, handle_file
            c = Client(self.url, verbose=False, analytics_enabled=False, token=False,
                       download_files=False)
            done = 0
            while time.time() < stop and (not requests or done < requests):
                clip = self.clips.make()
                began = time.time()
                try:
                    out = c.predict(handle_file(str(clip)), None, "upload", "auto", None,
                                    api_name="/score")
                    problem = None if "Scored" in (out[0] or "") else (out[0] or "")[:200]
                except Exception as err:  # noqa: BLE001 - counted, the run goes on
                    problem = f"{type(err).__name__}: {err}"[:200]
                ended = time.time()
                clip.unlink(missing_ok=True)
                done += 1
                with self.lock:  # a clip finished after the stop is not in the rate
                    if problem is not None:
                        errors.append(problem)
                    elif ended <= stop:
                        latencies.append(ended - began)

        threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            if on_tick is not None:
                on_tick(time.time() - start, len(latencies), len(errors))
            for t in threads:
                t.join(SAMPLE_EVERY / len(threads))
        elapsed = min(time.time(), stop) - start
        return {"clients": clients, "seconds": elapsed, "scored": len(latencies),
                "errors": len(errors), "first_error": errors[0] if errors else None,
                "per_min": len(latencies) / elapsed * 60,
                "p50_s": percentile(latencies, 50), "p95_s": percentile(latencies, 95)}


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ranked = sorted(values)
    return ranked[min(len(ranked) - 1, int(round(q / 100 * (len(ranked) - 1))))]


class Memory:
    """RSS samples of the app process and of its process tree."""

    def __init__(self, pid: int) -> None:
        self.pid, self.curve = pid, []
        self.origin = time.time()

    def sample(self) -> bool:
        """Take a sample unless the last is under SAMPLE_EVERY old; whether it took one."""
        if self.curve and time.time() - self.origin - self.curve[-1][0] < SAMPLE_EVERY:
            return False
        app = rss_mb(self.pid)
        tree = app + sum(rss_mb(p) for p in descendants(self.pid))
        self.curve.append((time.time() - self.origin, app, tree))
        return True

    def growth(self, since: float, until: float) -> tuple[float, float]:
        """MB per minute of (app, tree) between two times (first and last sample in between)."""
        part = [s for s in self.curve if since <= s[0] <= until]
        if len(part) < 2:
            return float("nan"), float("nan")
        minutes = max((part[-1][0] - part[0][0]) / 60, 1e-9)
        return ((part[-1][1] - part[0][1]) / minutes, (part[-1][2] - part[0][2]) / minutes)


def start_app(work: Path, args) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "TALKFACE_CACHE": str(work / "c"),
           "TALKFACE_CHECKPOINTS": str(work / "k"), "TALKFACE_RUNS": str(work / "r")}
    port = free_port()
    cmd = [sys.executable, str(ROOT / "app.py"), "--port", str(port)]
    if not args.with_training:
        cmd.append("--no-training")
    if args.workers is not None:
        cmd += ["--workers", str(args.workers)]
    if args.checkpoint:
        cmd += ["--checkpoint", args.checkpoint]
    proc = subprocess.Popen(cmd, env=env, stdout=open(work / "app.log", "w"),
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_up(url, proc)
    return proc, url


def with_training(url: str, run) -> dict:
    """`run()` while a training job on the bundled demo set runs in the app (cancelled after)."""
    from gradio_client import Client
    c = Client(url, verbose=False, analytics_enabled=False, token=False, download_files=False)
    status = c.predict("optimized", "train", "bundled demo set", 0, 500, 8, 0, 8,
                       api_name="/train_start")[0]
    if "running" not in status:
        raise SystemExit(f"the training job did not start: {status}")
    try:
        return run()
    finally:
        c.predict(api_name="/train_cancel")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, default=5.0, help="length of each loaded phase")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--single", type=int, default=10, help="requests of the one-client phase")
    p.add_argument("--workers", type=int, default=None, help="the app's --workers")
    p.add_argument("--with-training", dest="with_training", action="store_true")
    p.add_argument("--training-clients", dest="training_clients", type=int, default=4)
    p.add_argument("--checkpoint", default=None, help="default: the shipped one")
    p.add_argument("--json", default=None, help="write the figures here")
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="talkface-soak-"))
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; app log in "
          f"{work / 'app.log'}", flush=True)
    proc, url = start_app(work, args)
    load, memory = Load(url, DistinctClips(work)), Memory(proc.pid)
    figures: dict = {"cpus": os.cpu_count(), "workers": args.workers}

    def tick(t: float, ok: int, failed: int) -> None:
        if memory.sample():
            _, app, tree = memory.curve[-1]
            print(f"  {t:6.0f} s  app {app:7.1f} MB  tree {tree:7.1f} MB  scored {ok}"
                  f" errors {failed}", flush=True)

    try:
        load.run(max(2, args.workers or 2), requests=1)  # warm-up: the workers start
        figures["single"] = single = load.run(1, requests=args.single)
        print(f"single: {single}", flush=True)
        began = time.time() - memory.origin
        figures["load"] = loaded = load.run(args.clients, 60 * args.minutes, on_tick=tick)
        ended = time.time() - memory.origin
        print(f"load: {loaded}", flush=True)
        figures["growth_mb_per_min"] = memory.growth((began + ended) / 2, ended)
        if args.with_training:
            seconds = 60 * args.minutes
            figures["beside_without"] = load.run(args.training_clients, seconds, on_tick=tick)
            figures["beside_with"] = with_training(
                url, lambda: load.run(args.training_clients, seconds, on_tick=tick))
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    figures["rss_curve"] = memory.curve
    report(figures, args)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))
    shutil.rmtree(work, ignore_errors=True)
    errors = sum(figures[k]["errors"] for k in ("single", "load", "beside_without",
                                                "beside_with") if k in figures)
    return 0 if errors == 0 else 1


def report(figures: dict, args) -> None:
    single, loaded = figures["single"], figures["load"]
    ratio = loaded["per_min"] / single["per_min"]
    p95 = loaded["p95_s"] / single["p50_s"]
    app_growth, tree_growth = figures["growth_mb_per_min"]
    curve = figures["rss_curve"]
    print(f"\none client: {single['per_min']:.1f} clips/min, a request {single['p50_s']:.2f} s "
          f"(median of {single['scored']})")
    print(f"{loaded['clients']} clients, {loaded['seconds'] / 60:.1f} min: "
          f"{loaded['per_min']:.1f} clips/min ({ratio:.2f}x one client; target >= 1.8), "
          f"p50 {loaded['p50_s']:.2f} s, p95 {loaded['p95_s']:.2f} s ({p95:.2f}x a single "
          f"request; target <= 4.5), {loaded['errors']} errors"
          + (f" (first: {loaded['first_error']})" if loaded["errors"] else ""))
    if curve:
        print(f"RSS app {curve[0][1]:.0f} -> {curve[-1][1]:.0f} MB (peak "
              f"{max(c[1] for c in curve):.0f}), tree {curve[0][2]:.0f} -> {curve[-1][2]:.0f} "
              f"MB (peak {max(c[2] for c in curve):.0f}); second half of the load: app "
              f"{app_growth:+.1f} MB/min, tree {tree_growth:+.1f} MB/min")
    if "beside_with" in figures:
        without, with_ = figures["beside_without"], figures["beside_with"]
        change = with_["per_min"] / without["per_min"] - 1
        print(f"{args.training_clients} clients: {without['per_min']:.1f} clips/min alone, "
              f"{with_['per_min']:.1f} beside a training job ({change:+.0%}; target within "
              f"20%), errors {without['errors']} / {with_['errors']}")
    print(f"load average now {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    sys.exit(main())
