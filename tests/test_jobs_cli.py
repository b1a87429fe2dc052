"""``flowc jobs`` and the worker's wake-ups end to end, through the CLI in separate processes:
a job's result fetched later from another process, a schedule registered while a worker sleeps
fires at once, pause/resume, the scheduler-only ``--cron`` with a seconds field."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tests.test_scheduler_cli import FLOW, flowc

FLOWC = [sys.executable, "-m", "flowc"]


def write_flow(tmp_path: Path, text: str = FLOW) -> None:
    (tmp_path / "flow.yaml").write_text(text, encoding="utf-8")


def wait_for(check, what: str, timeout: float = 60.0):  # noqa: ANN001, ANN201
    """Poll the store (a file) until ``check()`` is truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"{what} within {timeout:.0f} s")


def rows(db: Path, sql: str) -> list[tuple]:
    con = sqlite3.connect(db, timeout=30)
    try:
        return con.execute(sql).fetchall()
    except sqlite3.OperationalError:  # the table is not there yet
        return []
    finally:
        con.close()


def test_jobs_add_worker_result_and_run(tmp_path: Path) -> None:
    write_flow(tmp_path, FLOW.replace("schedule: {every: 1s}\n", ""))  # jobs need no schedule
    added = flowc(tmp_path, "jobs", "add", "flow.yaml", "--param", "n=2")
    assert added.returncode == 0, added.stderr
    job_id = added.stdout.strip()
    assert "flowc jobs result " + job_id in added.stderr
    pending = flowc(tmp_path, "jobs", "result", job_id)
    assert pending.returncode == 1
    assert f"error: job {job_id} is queued" in pending.stderr and "Traceback" not in pending.stderr
    ran = flowc(tmp_path, "worker", "--once")
    assert ran.returncode == 0, ran.stderr
    assert "worker stopped after 1 run(s)" in ran.stdout
    got = flowc(tmp_path, "jobs", "result", job_id)
    assert got.returncode == 0, got.stderr
    result = json.loads(got.stdout)
    assert result["status"] == "success"
    assert result["outputs"] == {"add": {"sum": 42}}
    assert result["run_id"] == f"ticker-job-{job_id}"
    assert result["run_id"] in flowc(tmp_path, "runs", "list").stdout  # recorded like a run
    # run-job: runs here, prints the result, and keeps it for later
    now = flowc(tmp_path, "jobs", "run", "flow.yaml", "--param", "n=8")
    assert now.returncode == 0, now.stderr
    assert json.loads(now.stdout)["outputs"] == {"add": {"sum": 48}}
    listed = flowc(tmp_path, "jobs", "list").stdout
    assert listed.count("success") == 2
    unknown = flowc(tmp_path, "jobs", "result", job_id[:-1] + "x")
    assert unknown.returncode == 1
    assert unknown.stderr.startswith("flowc: error: no job ")
    assert f"did you mean '{job_id}'" in unknown.stderr


def test_a_failed_job_reports_its_error(tmp_path: Path) -> None:
    flow = (
        "flowc: 1\nname: broken\nsteps:\n"
        "  boom: {run: 'flowc_sched:fail', with: {message: kaputt}}\n"
    )
    write_flow(tmp_path, flow)
    done = flowc(tmp_path, "jobs", "run", "flow.yaml")
    assert done.returncode == 1
    assert json.loads(done.stdout)["status"] == "failed"
    assert "error: job " in done.stderr and "kaputt" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_running_worker_wakes_for_new_schedules_and_jobs(tmp_path: Path) -> None:
    # an hourly schedule fires at registration; the worker sleeps up to 10 min between looks,
    # so only the wake-up can make it fire (or run the job) within the test's minute
    write_flow(tmp_path, FLOW.replace("every: 1s", "every: 1h"))
    proc = subprocess.Popen(
        [*FLOWC, "worker", "--poll", "600"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    db = tmp_path / ".flowc" / "metadata.db"
    try:
        wait_for(lambda: list((tmp_path / ".flowc" / "wake").glob("*.fifo")), "worker started")
        assert flowc(tmp_path, "schedule", "flow.yaml", "--param", "n=1").returncode == 0
        wait_for(
            lambda: rows(db, "SELECT 1 FROM schedule_fires WHERE status = 'success'"),
            "the new schedule fired",
        )
        job_id = flowc(tmp_path, "jobs", "add", "flow.yaml", "--param", "n=3").stdout.strip()
        wait_for(
            lambda: rows(db, f"SELECT 1 FROM jobs WHERE id = '{job_id}' AND status = 'success'"),
            "the job ran",
        )
        got = flowc(tmp_path, "jobs", "result", job_id)
        assert json.loads(got.stdout)["outputs"] == {"add": {"sum": 43}}
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "worker stopped after 2 run(s)" in out
    assert not list((tmp_path / ".flowc" / "wake").glob("*.fifo"))  # its FIFO is gone


def test_pause_resume_and_cli_cron_with_seconds(tmp_path: Path) -> None:
    write_flow(tmp_path)
    done = flowc(
        tmp_path,
        "schedule",
        "flow.yaml",
        "--cron",
        "*/10 * * * * *",
        "--max-instances",
        "2",
        "--misfire-grace-time",
        "5s",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(
        "scheduled 'ticker': cron '*/10 * * * * *' UTC (max 2 at once, grace 5s)\n"
    )
    assert flowc(tmp_path, "schedules", "pause", "ticker").returncode == 0
    listed = flowc(tmp_path, "schedules", "list").stdout
    assert "paused" in listed
    ran = flowc(tmp_path, "worker", "--once")
    assert "worker stopped after 0 run(s)" in ran.stdout
    resumed = flowc(tmp_path, "schedules", "resume", "ticker")
    assert resumed.returncode == 0 and resumed.stdout.startswith("resumed schedule 'ticker'")
    assert "paused" not in flowc(tmp_path, "schedules", "list").stdout
    bad = flowc(tmp_path, "schedules", "pause", "tikcer")
    assert bad.returncode == 1 and "did you mean 'ticker'?" in bad.stderr
    wrong = flowc(tmp_path, "schedule", "flow.yaml", "--cron", "0 0 * * funday")
    assert wrong.returncode == 1
    assert "error: invalid cron expression '0 0 * * funday'" in wrong.stderr
    assert "Traceback" not in wrong.stderr
