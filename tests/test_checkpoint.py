"""Checkpoint storage: every save and promote is one atomic step (a kill at any point leaves the
old or the new checkpoint, never neither), leftovers of interrupted saves are ignored, promote
names are checked, the shipped checkpoint is never written, and rollback restores the previous
active version."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from talkface import checkpoint as ckpt
from talkface.errors import CheckpointError
from talkface.models import create_model
from talkface.spec import tasks_from_names

from helpers import make_random_checkpoint, make_spec

TASKS = tasks_from_names(["overall"])
OPTIONS = {"encoder_dim": 8, "num_layers": 1, "num_heads": 2}


def _model(seed: int):
    torch.manual_seed(seed)
    return create_model("original", make_spec(), TASKS, **OPTIONS)


def _first_weight(folder: Path) -> float:
    return float(ckpt.load_checkpoint(folder).model.state_dict()["visual_proj.weight"].sum())


KILLER = textwrap.dedent("""
    import os, shutil, sys, pathlib
    import safetensors.torch as st
    sys.path.insert(0, {tests!r})
    kill_at, calls = int(os.environ["KILL_AT"]), [0]
    def step(fn):
        def wrapped(*a, **k):
            calls[0] += 1
            if calls[0] == kill_at:
                os._exit(137)  # as if killed with SIGKILL at this point
            return fn(*a, **k)
        return wrapped
    os.replace, os.symlink, shutil.rmtree = step(os.replace), step(os.symlink), step(shutil.rmtree)
    shutil.copy2 = step(shutil.copy2)
    pathlib.Path.write_text = step(pathlib.Path.write_text)
    import talkface.checkpoint as ckpt
    ckpt.save_file = step(st.save_file)
    import torch
    from talkface.models import create_model
    from talkface.spec import tasks_from_names
    from helpers import make_spec
    torch.manual_seed(2)
    model = create_model("original", make_spec(), tasks_from_names(["overall"]), encoder_dim=8,
                         num_layers=1, num_heads=2)
    {action}
    print("done", calls[0])
""")


def _run_killed(action: str, kill_at: int) -> subprocess.CompletedProcess:
    code = KILLER.format(tests=str(Path(__file__).parent), action=action)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "KILL_AT": str(kill_at)})


@pytest.mark.slow
def test_a_kill_at_any_step_of_a_save_leaves_a_loadable_checkpoint(tmp_path):
    folder = tmp_path / "best"
    ckpt.save_checkpoint(folder, _model(1), OPTIONS)
    old = _first_weight(folder)
    action = f"ckpt.save_checkpoint({str(folder)!r}, model, {OPTIONS!r})"
    full = _run_killed(action, 10 ** 6)
    assert full.returncode == 0, full.stderr
    steps = int(full.stdout.split()[-1])
    new = _first_weight(folder)
    assert new != old
    for k in range(1, steps + 1):
        ckpt.save_checkpoint(folder, _model(1), OPTIONS)  # back to the old weights
        result = _run_killed(action, k)
        assert result.returncode in (0, 137), result.stderr
        assert _first_weight(folder) in (old, new), f"killed at step {k} of {steps}"
    # leftovers of the interrupted saves are hidden and cleared by the next save
    ckpt.save_checkpoint(folder, _model(1), OPTIONS)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == \
        [os.path.basename(os.readlink(folder))]


@pytest.mark.slow
def test_a_kill_at_any_step_of_a_promote_keeps_an_active_checkpoint(tmp_path):
    root, source = tmp_path / "root", tmp_path / "run"
    ckpt.save_checkpoint(source, _model(3), OPTIONS)
    first = ckpt.promote(source, "first", root)
    action = (f"ckpt.save_checkpoint({str(tmp_path / 'run2')!r}, model, {OPTIONS!r}); "
              f"calls[0] = 0; ckpt.promote({str(tmp_path / 'run2')!r}, 'second', "
              f"pathlib.Path({str(root)!r}))")
    full = _run_killed(action, 10 ** 6)
    assert full.returncode == 0, full.stderr
    steps = int(full.stdout.split()[-1])
    for k in range(1, steps + 1):
        (root / ckpt.ACTIVE_FILE).write_text(first.name + "\n")
        result = _run_killed(action, k)  # the counter restarts at the promote
        assert result.returncode in (0, 137)
        active = ckpt.active_checkpoint(root)
        ckpt.load_checkpoint(active)  # whatever step the kill hit, the active one loads
        assert active.name == first.name or active.name.startswith("second-")


def test_promote_names_are_checked_and_the_shipped_checkpoint_is_never_written(tmp_path):
    source = make_random_checkpoint(tmp_path / "run")
    for bad in ("ACTIVE", "default", "../escape", ".hidden", "", "a" * 65, "with space"):
        with pytest.raises(CheckpointError, match="checkpoint name"):
            ckpt.promote(source, bad, tmp_path / "root")
    with pytest.raises(CheckpointError, match="shipped"):
        ckpt.save_checkpoint(ckpt.SHIPPED / "default", _model(0), OPTIONS)
    assert not (tmp_path / "root" / ckpt.ACTIVE_FILE).exists()


def test_promote_then_rollback(tmp_path):
    root = tmp_path / "root"
    ckpt.save_checkpoint(tmp_path / "a", _model(1), OPTIONS)
    ckpt.save_checkpoint(tmp_path / "b", _model(2), OPTIONS)
    assert ckpt.active_checkpoint(root) == ckpt.shipped_checkpoint("default")
    a = ckpt.promote(tmp_path / "a", "run-a", root)
    b = ckpt.promote(tmp_path / "b", "run-b", root)
    assert ckpt.active_checkpoint(root) == b and a.exists()  # the previous one is kept
    assert ckpt.rollback(root) == a
    assert ckpt.rollback(root) == ckpt.shipped_checkpoint("default")


def test_a_directory_where_active_should_be_is_a_clear_error(tmp_path):
    (tmp_path / ckpt.ACTIVE_FILE).mkdir(parents=True)
    with pytest.raises(CheckpointError, match="one-line file"):
        ckpt.active_checkpoint(tmp_path)


def test_a_run_folder_with_leftovers_only_has_no_checkpoint(tmp_path):
    from talkface.app.jobs import TrainingJob
    job = TrainingJob([], tmp_path / "run")
    (tmp_path / "run" / ".best.abc123").mkdir()
    ckpt.save_checkpoint(tmp_path / "run" / ".best.abc123" / "x", _model(0), OPTIONS)
    assert job.checkpoint() is None
    ckpt.save_checkpoint(tmp_path / "run" / "best", _model(0), OPTIONS)
    assert job.checkpoint() == tmp_path / "run" / "best"
