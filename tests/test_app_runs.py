"""Training runs across app restarts (`talkface.app.runs`, `talkface.app.jobs`): a job records its
trainer's process; an app started after a `kill -9` follows a trainer still running (and can
cancel it, and refuses a second job), marks a gone one ended (finished when its closing file is
there), never takes a reused process id for it; the trainer runs below the app's priority; old
run folders are pruned, sparing the running and the promoted run. Trainers here are stand-in
Python processes that sleep."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from talkface.app import runs
from talkface.app.jobs import AdoptedJob, JobError, JobManager, JobSpec, TrainingJob

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
SLEEP = "import time; time.sleep(60)"


def fake_trainer(run: Path) -> subprocess.Popen:
    """A process like a job's step: its own session, the run folder on its command line."""
    run.mkdir(parents=True, exist_ok=True)
    return started(subprocess.Popen([sys.executable, "-c", SLEEP, "--output_dir", str(run)],
                                    start_new_session=True), run)


def started(proc: subprocess.Popen, run: Path) -> subprocess.Popen:
    """`proc` once it runs its own command (between fork and exec it shows pytest's)."""
    wait_for(lambda: str(run).encode() in Path(f"/proc/{proc.pid}/cmdline").read_bytes())
    return proc


def left_running(run: Path, pid: int, start=None, mode: str = "train") -> dict:
    """The record an app killed mid-step leaves behind."""
    record = {"run": run.name, "mode": mode, "status": "running", "message": "",
              "started": time.time(), "ended": None, "step": "train", "last_step": "train",
              "pid": pid, "pid_start": runs.process_start(pid) if start is None else start,
              "app_pid": 1}
    runs.write_record(run, record)
    return record


def wait_for(condition, timeout: float = 20.0) -> None:
    end = time.time() + timeout
    while not condition():
        assert time.time() < end, "timed out"
        time.sleep(0.05)


def test_a_restarted_app_follows_a_trainer_still_running_and_can_cancel_it(tmp_path):
    run = tmp_path / "app-20260101-000000"
    proc = fake_trainer(run)
    try:
        left_running(run, proc.pid)
        jobs = JobManager(tmp_path, registry=None)
        job = jobs.current
        assert isinstance(job, AdoptedJob) and job.running and job.name == run.name
        time.sleep(0.3)
        assert job.running  # followed, not mistaken for ended
        with pytest.raises(JobError, match="already running"):
            jobs.start(JobSpec(config="tiny"))  # one job at a time across restarts
        jobs.cancel()
        assert proc.wait(10) is not None
        assert job.wait(10) == "cancelled"
        assert runs.read_record(run)["status"] == "cancelled"
    finally:
        proc.kill()
        proc.wait()


def test_a_followed_trainer_that_finishes_makes_its_run_promotable(tmp_path):
    run = tmp_path / "app-20260101-000000"
    proc = subprocess.Popen([sys.executable, "-c", "import sys, time, pathlib; time.sleep(2);"
                             " (pathlib.Path(sys.argv[1]) / 'metrics.json').write_text('{}')",
                             str(run)], start_new_session=True)
    run.mkdir()
    started(proc, run)
    left_running(run, proc.pid)
    job = JobManager(tmp_path, registry=None).current
    assert job.running
    proc.wait(10)
    assert job.wait(10) == "finished"
    assert runs.read_record(run)["status"] == "finished"


@pytest.mark.parametrize("closing,status", [(False, "ended"), (True, "finished")])
def test_a_trainer_gone_while_the_app_was_down_is_marked(tmp_path, closing, status):
    run = tmp_path / "app-20260101-000000"
    proc = fake_trainer(run)
    record = left_running(run, proc.pid)
    proc.kill()
    proc.wait()
    if closing:
        (run / "metrics.json").write_text("{}")
    job = JobManager(tmp_path, registry=None).current
    assert job is not None and job.name == run.name and not job.running
    assert job.status == status
    assert runs.read_record(run)["status"] == status
    if not closing:
        assert "the app stopped during step 'train'" in job.summary()
    assert not runs.is_our_trainer(record, run)


def test_a_reused_process_id_is_not_taken_for_the_trainer(tmp_path):
    run = tmp_path / "app-20260101-000000"
    run.mkdir()
    mine = left_running(run, os.getpid())  # alive, but its command line names no run folder
    assert not runs.is_our_trainer(mine, run)
    proc = fake_trainer(run)
    try:
        other_start = left_running(run, proc.pid, start=runs.process_start(proc.pid) + 1)
        assert not runs.is_our_trainer(other_start, run)  # same id, another process
        assert runs.is_our_trainer(left_running(run, proc.pid), run)
        left_running(run, os.getpid())
        job = JobManager(tmp_path, registry=None).current
        assert job.status == "ended" and not isinstance(job, AdoptedJob)
    finally:
        proc.kill()
        proc.wait()


def test_a_job_records_its_step_and_runs_it_below_the_app(tmp_path):
    run = tmp_path / "app-20260101-000000"
    job = TrainingJob([("train", [sys.executable, "-c", SLEEP, str(run)])], run, nice=5).start()
    try:
        wait_for(lambda: (runs.read_record(run) or {}).get("pid") is not None)
        record = runs.read_record(run)
        assert record["status"] == "running" and record["step"] == "train"
        assert runs.is_our_trainer(record, run)

        def niceness() -> int:  # /proc/PID/stat field 19
            return int(Path(f"/proc/{record['pid']}/stat").read_text().rsplit(")", 1)[1]
                       .split()[16])
        wait_for(lambda: niceness() >= os.nice(0) + 5)  # os.nice in the child, before exec
        wait_for(lambda: b"execvp" not in Path(f"/proc/{record['pid']}/cmdline").read_bytes())
        assert runs.is_our_trainer(record, run)  # the step itself now: the same process
    finally:
        job.cancel()
    assert job.wait(10) == "cancelled"
    assert runs.read_record(run)["status"] == "cancelled" and runs.read_record(run)["pid"] is None


def _runs(root: Path, n: int) -> list[Path]:
    made = []
    for i in range(n):
        run = root / f"app-2026010{i}-000000"
        run.mkdir(parents=True)
        runs.write_record(run, {"status": "finished", "started": 1000.0 + i})
        made.append(run)
    return made


def test_run_folders_are_pruned_to_the_newest_sparing_running_and_promoted(tmp_path):
    made = _runs(tmp_path, 9)
    (tmp_path / "uploads").mkdir()  # datasets, not a run
    (made[0] / "best").mkdir()
    assert runs.mark_promoted(made[0] / "best", tmp_path) == made[0]
    removed = runs.prune_runs(tmp_path, keep=5, protect=[made[1]])
    assert sorted(removed) == made[2:4]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [p.name for p in made[:2] + made[4:]] + ["uploads"])
    runs.mark_promoted(made[8] / "best", tmp_path)  # a newer promotion moves the mark
    assert not (made[0] / runs.PROMOTED).exists()
    assert runs.prune_runs(tmp_path, keep=5) == made[:2]


def test_the_app_prunes_on_start_to_keep_runs(tmp_path):
    made = _runs(tmp_path, 4)
    JobManager(tmp_path, registry=None, keep_runs=2)
    assert sorted(p for p in tmp_path.iterdir()) == made[2:]
    assert json.loads((made[3] / runs.RECORD).read_text())["status"] == "finished"


def test_a_second_app_leaves_the_trainer_of_a_living_app_alone_on_exit(tmp_path):
    """An app that watches a job whose own app still runs (a second app on the same runs
    folder, one that could not bind its port) must not stop that job when it exits."""
    run = tmp_path / "app-20260101-000000"
    proc = fake_trainer(run)
    try:
        record = left_running(run, proc.pid)
        runs.write_record(run, {**record, "app_pid": os.getpid(),
                                "app_start": runs.process_start(os.getpid())})
        jobs = JobManager(tmp_path, registry=None)
        assert isinstance(jobs.current, AdoptedJob) and not jobs.current.orphaned()
        jobs.shutdown()
        time.sleep(0.3)
        assert proc.poll() is None  # still training
        runs.write_record(run, {**record, "app_pid": os.getpid(), "app_start": 1})
        orphan = JobManager(tmp_path, registry=None)  # its app is gone: this one owns it
        assert orphan.current.orphaned()
        orphan.shutdown()
        assert proc.wait(10) is not None
    finally:
        proc.kill()
        proc.wait()


def test_a_page_opened_during_a_job_shows_the_job_s_config_and_dataset(tmp_path):
    """The Train tab's controls show what the running job was started with, not their defaults
    (a page opened during a "tiny" run used to read "optimized")."""
    from types import SimpleNamespace

    from talkface.app import train_tab

    job = TrainingJob([], tmp_path / "app-20260101-000000",
                      settings={"config": "tiny", "dataset": "folder: mine"})
    job.status = "running"
    registry = SimpleNamespace(choices=lambda: ["bundled demo set", "folder: mine"])
    state = SimpleNamespace(jobs=SimpleNamespace(current=job), registry=registry)
    *_, dataset, config = train_tab._on_load(state)
    assert config["value"] == "tiny" and dataset["value"] == "folder: mine"
    assert "config tiny" in job.summary() and "dataset folder: mine" in job.summary()
    job.status = "finished"  # once it ended, the page keeps the user's own choices
    *_, dataset, config = train_tab._on_load(state)
    assert "value" not in config and "value" not in dataset
