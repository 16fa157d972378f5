"""DDP on torchrun: ranks split each global batch the way one process would take it, crops do not
depend on which rank reads a clip, and two CPU processes (gloo) killed and resumed end where one
process does."""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from talkface.errors import ConfigError
from test_data import write_random_dataset
from train.config import load_config
from train.loop import Runtime, epoch_batches, train

ROOT = Path(__file__).resolve().parent.parent


def test_ranks_share_out_each_global_batch():
    """Step k over all ranks takes exactly the clips one process takes in step k."""
    one = epoch_batches(24, 8, epoch=3, seed=1, rt=Runtime(0, 1))
    ranks = [epoch_batches(24, 8, epoch=3, seed=1, rt=Runtime(r, 2)) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == len(one) == 3
    for k, batch in enumerate(one):
        assert sorted(ranks[0][k] + ranks[1][k]) == sorted(batch)
        assert len(ranks[0][k]) == 4
    # an odd clip count: every rank still takes the same number of steps
    odd = [epoch_batches(25, 8, 0, 0, Runtime(r, 2)) for r in range(2)]
    assert len(odd[0]) == len(odd[1])
    with pytest.raises(ConfigError, match="multiple of the 3 processes"):
        epoch_batches(24, 8, 0, 0, Runtime(0, 3))


def test_crops_do_not_depend_on_read_order(tmp_path):
    from talkface.data import load_dataset
    write_random_dataset(tmp_path, n=10, frames=(40, 41))
    data = load_dataset(tmp_path)
    a, b = (data.dataset("train", crop_frames=16, seed=2) for _ in range(2))
    a.set_epoch(5)
    b.set_epoch(5)
    forward = [a[i]["clip"].visual for i in range(len(a))]
    backward = [b[i]["clip"].visual for i in reversed(range(len(b)))][::-1]
    for x, y in zip(forward, backward):
        assert np.array_equal(x, y)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(args: list[str]) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "--nnodes", "1", "--rdzv-backend", "c10d",
               "--rdzv-endpoint", f"127.0.0.1:{free_port()}", "-m", "train", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.slow
def test_two_processes_killed_and_resumed_match_one_process(tmp_path):
    data = write_random_dataset(tmp_path / "data", n=40, seed=0)  # 24 training clips
    common = ["--set", "train.threads=1", "--set", "train.epochs=4", "--batch_size", "8"]
    single = train(load_config("tiny", ["train.threads=1", "train.epochs=4"], data=str(data),
                               output_dir=str(tmp_path / "one"), batch_size=8))
    out = tmp_path / "two"
    args = ["--config", "tiny", "--data", str(data), "--output_dir", str(out), *common]
    torchrun(args + ["--set", "train.stop_after_epochs=2"])
    assert [json.loads(x)["epoch"] for x in (out / "metrics.jsonl").open()] == [0, 1]
    resumed = torchrun(args + ["--resume"])

    # validation metrics are all-reduced: both ranks log the same value every epoch
    logged = re.findall(r"rank (\d)/2 epoch (\d) train \S+ val mse (\S+)", resumed.stderr)
    by_rank = {r: {e: v for rr, e, v in logged if rr == r} for r in "01"}
    assert set(by_rank["0"]) == {"2", "3"} and by_rank["0"] == by_rank["1"]

    result = json.loads((out / "metrics.json").read_text())
    assert [json.loads(x)["epoch"] for x in (out / "metrics.jsonl").open()] == [0, 1, 2, 3]
    for split in ("val", "test"):
        assert result[split]["mean"]["mse"] == pytest.approx(single[split]["mean"]["mse"],
                                                             rel=1e-3)
    a = torch.load(tmp_path / "one" / "last.pt", weights_only=True)["model"]
    b = torch.load(out / "last.pt", weights_only=True)["model"]
    for key, value in a.items():
        torch.testing.assert_close(b[key], value, rtol=0, atol=2e-3)
    # rank 0 alone wrote: one summary on stdout
    assert resumed.stdout.count('"best_epoch"') == 1
