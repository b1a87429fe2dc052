"""``flowc schedule`` / ``flowc worker`` / ``flowc schedules`` end to end: real flows run by the
local executor and recorded in the metadata store like ``flowc run``; SIGTERM stops a worker."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

FLOWC = [sys.executable, "-m", "flowc"]

FLOW = """\
flowc: 1
name: ticker
params:
  n: {type: int, default: 2}
schedule: {every: 1s}
steps:
  add: {run: flowc_demo.steps:add, with: {a: "${params.n}", b: 40}, outputs: [sum]}
"""


def flowc(cwd: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FLOWC, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def test_schedule_list_worker_once_and_remove(tmp_path: Path) -> None:
    # hourly: the first slot is due at once (registration), the next one an hour later
    (tmp_path / "flow.yaml").write_text(FLOW.replace("every: 1s", "every: 1h"), encoding="utf-8")
    done = flowc(tmp_path, "schedule", "flow.yaml", "--param", "n=5")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("scheduled 'ticker': every 1h UTC\n  next run ")
    listed = flowc(tmp_path, "schedules", "list")
    assert listed.returncode == 0 and "ticker" in listed.stdout and "every 1h UTC" in listed.stdout
    ran = flowc(tmp_path, "worker", "--once")
    assert ran.returncode == 0, ran.stderr
    assert "worker stopped after 1 run(s)" in ran.stdout
    # recorded like `flowc run`: the run is in the metadata store with its outputs
    db = sqlite3.connect(tmp_path / ".flowc" / "metadata.db")
    ((run_id, status),) = db.execute("SELECT run_id, status FROM runs").fetchall()
    assert run_id.startswith("ticker-sched-") and status == "success"
    fire = db.execute("SELECT run_id, status FROM schedule_fires").fetchall()
    assert fire == [(run_id, "success")]
    assert (tmp_path / ".flowc" / "runs" / run_id / "add" / "sum.json").read_text() == "45"
    runs = flowc(tmp_path, "runs", "list")
    assert run_id in runs.stdout
    # unknown name: a user error with a suggestion; then a real removal
    bad = flowc(tmp_path, "schedules", "remove", "tickr")
    assert bad.returncode == 1
    assert (
        bad.stderr.strip()
        == "flowc: error: no schedule named 'tickr'\n  hint: did you mean 'ticker'?"
    )
    assert flowc(tmp_path, "schedules", "remove", "ticker").returncode == 0
    assert flowc(tmp_path, "schedules", "list").stdout.strip() == "no schedules"


def test_schedule_without_schedule_is_a_located_error(tmp_path: Path) -> None:
    (tmp_path / "flow.yaml").write_text(FLOW.replace("schedule: {every: 1s}\n", ""), "utf-8")
    done = flowc(tmp_path, "schedule", "flow.yaml")
    assert done.returncode == 1
    assert done.stderr.startswith("flow.yaml:1:1: error: flow 'ticker' has no schedule")
    assert "Traceback" not in done.stderr


def test_worker_runs_until_sigterm_and_stops_cleanly(tmp_path: Path) -> None:
    (tmp_path / "flow.yaml").write_text(FLOW, encoding="utf-8")
    assert flowc(tmp_path, "schedule", "flow.yaml").returncode == 0
    proc = subprocess.Popen(
        [*FLOWC, "worker", "--poll", "0.2"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        db = tmp_path / ".flowc" / "metadata.db"
        deadline = time.monotonic() + 60
        done = 0
        while time.monotonic() < deadline and done < 2:
            time.sleep(0.1)
            con = sqlite3.connect(db, timeout=30)
            done = con.execute(
                "SELECT count(*) FROM schedule_fires WHERE status = 'success'"
            ).fetchone()[0]
            con.close()
        assert done >= 2, "the worker did not fire two slots within 60 s"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "worker stopped after" in out
    con = sqlite3.connect(db)
    slots = [r[0] for r in con.execute("SELECT slot FROM schedule_fires ORDER BY slot")]
    rows = con.execute("SELECT status, error FROM schedule_fires").fetchall()
    # nothing left running or interrupted; a slot due while the previous run was still going
    # (a slow machine) is skipped, as APScheduler does with max_instances=1
    assert {status for status, _ in rows} <= {"success", "skipped"}
    assert "success" in {status for status, _ in rows}
    assert all("max_instances" in error for status, error in rows if status == "skipped")
    assert len(slots) == len(set(slots))


def test_worker_killed_mid_run_is_not_rerun_after_restart(tmp_path: Path) -> None:
    marker = tmp_path / "starts.txt"
    flow = (
        "flowc: 1\nname: slowpoke\nschedule: {every: 1h}\nsteps:\n"
        f"  nap: {{run: 'flowc_sched:slow', with: {{marker: '{marker}', seconds: 60}}}}\n"
    )
    (tmp_path / "flow.yaml").write_text(flow, encoding="utf-8")
    assert flowc(tmp_path, "schedule", "flow.yaml").returncode == 0
    proc = subprocess.Popen(
        [*FLOWC, "worker", "--poll", "0.2"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not marker.exists():
            time.sleep(0.1)
        assert marker.exists(), "the worker did not start the run within 60 s"
    finally:
        proc.kill()  # SIGKILL: no chance to clean up
        proc.wait(timeout=30)
    db = tmp_path / ".flowc" / "metadata.db"
    con = sqlite3.connect(db, timeout=30)
    assert con.execute("SELECT status FROM schedule_fires").fetchall() == [("running",)]
    con.close()
    # a new worker: the slot was taken by a dead worker -> interrupted, never run twice
    again = flowc(tmp_path, "worker", "--once")
    assert again.returncode == 0, again.stderr
    assert "worker stopped after 0 run(s)" in again.stdout
    assert marker.read_text() == "started\n"
    con = sqlite3.connect(db, timeout=30)
    assert con.execute("SELECT status FROM schedule_fires").fetchall() == [("interrupted",)]
