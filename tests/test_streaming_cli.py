"""``flowc run`` on the pypz hello world (example folder, its module next to the flow) and
``flowc sniff`` on the finished run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HELLO = REPO / "examples" / "streaming_hello" / "flow.yaml"


def checkout_env(*paths: Path) -> dict[str, str]:
    """The environment of a `flowc` child process importing ``paths`` and this checkout's code
    (not whichever copy of flowc is installed)."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([*map(str, paths), str(REPO)])}


def flowc(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # only what flowc adds
    return subprocess.run(
        [sys.executable, "-m", "flowc", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_flowc_run_hello_world_then_sniff(tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = flowc(
        "run",
        str(HELLO),
        "--param",
        f"out_dir={out}",
        "--param",
        "record_count=25",
        "--root",
        str(tmp_path / ".flowc"),
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    texts = []
    for f in sorted(out.glob("reader.*.jsonl")):
        texts.extend(json.loads(line)["text"] for line in f.read_text().splitlines())
    assert sorted(texts) == sorted(f"HelloWorld_{w}_{i}" for w in range(3) for i in range(25))

    s = flowc("sniff", "--root", str(tmp_path / ".flowc"), cwd=tmp_path)
    assert s.returncode == 0, s.stderr
    text = s.stdout
    assert "channel records: 75 record(s) in the channel" in text, text
    for w in range(3):
        assert f"writer[{w}]" in text
    assert "group reader: acknowledged 75, in flight 0, lag 0" in text
    assert "reader[0] finished" in text and "reader[1] finished" in text

    j = flowc("sniff", "--root", str(tmp_path / ".flowc"), "--json", cwd=tmp_path)
    data = json.loads(j.stdout)
    produced = {p["replica"]: p["count"] for p in data["ports"] if p["direction"] == "out"}
    consumed = [p["count"] for p in data["ports"] if p["direction"] == "in"]
    assert produced == {0: 25, 1: 25, 2: 25} and sum(consumed) == 75


def test_flowc_run_schema_violation_exits_1_with_channel_and_field(tmp_path: Path) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        "flowc: 1\nname: bad\nchannels:\n"
        "  records: {schema: {type: record, name: DemoRecord, fields: [{name: text, type: string}]}}\n"
        "steps:\n"
        "  writer: {run: 'flowc_streaming.ops:BadWriter', operator: true, produces: [records]}\n"
        f"  reader: {{run: 'flowc_streaming.ops:DemoReader', operator: true, consumes: [records],"
        f" with: {{out_dir: '{tmp_path}/out'}}}}\n"
    )
    env_pp = str(REPO / "tests" / "fixtures" / "pkgs")
    r = subprocess.run(
        [sys.executable, "-m", "flowc", "run", str(flow), "--root", str(tmp_path / ".f")],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": env_pp},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 1
    assert "channel 'records'" in r.stderr and "field 'text'" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr, r.stderr


def test_sniff_unknown_run_is_a_user_error(tmp_path: Path) -> None:
    r = flowc("sniff", "nope", "--root", str(tmp_path), cwd=tmp_path)
    assert r.returncode == 1 and "has no channels" in r.stderr


def test_ctrl_c_on_flowc_run_interrupts_every_replica(tmp_path: Path) -> None:
    import signal
    import time

    out = tmp_path / "out"
    out.mkdir()
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        "flowc: 1\nname: forever\nsteps:\n"
        f"  spin: {{run: 'flowc_streaming.ops:Forever', operator: true, replicas: 2,"
        f" with: {{out_dir: '{out}'}}}}\n"
    )
    env = checkout_env(REPO / "tests" / "fixtures" / "pkgs")
    p = subprocess.Popen(
        [sys.executable, "-m", "flowc", "run", str(flow), "--root", str(tmp_path / ".f")],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while len(list(out.glob("started.*"))) < 2:  # both replicas are in their on_running loop
        assert time.monotonic() < deadline and p.poll() is None, "the replicas did not start"
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    try:
        stdout, stderr = p.communicate(timeout=60)  # returns: nothing keeps the interpreter alive
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    print(stdout, stderr)
    assert p.returncode == 130
    assert sorted(f.name for f in out.glob("interrupted.*")) == ["interrupted.0", "interrupted.1"]
    from flowc.runtime import channels as ch

    dbs = list((tmp_path / ".f" / "runs").glob("*/channels.sqlite"))
    states = {i["state"] for i in ch.local_stats(dbs[0])["instances"]}
    assert states == {"interrupted"}


def test_sigkill_flowc_run_then_resume_loses_no_acknowledged_record(tmp_path: Path) -> None:
    import signal
    import time

    from flowc.runtime import channels as ch

    out = tmp_path / "out"
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        "flowc: 1\nname: crashy\nchannels:\n"
        "  records: {schema: {type: record, name: DemoRecord, fields: [{name: text, type: string}]}}\n"
        "steps:\n"
        "  writer: {run: 'flowc_streaming.ops:DemoWriter', operator: true, produces: [records],"
        " replicas: 2, with: {record_count: 150, batch: 5, delay: 0.05}}\n"
        "  reader: {run: 'flowc_streaming.ops:DemoReader', operator: true, consumes: [records],"
        f" replicas: 2, with: {{out_dir: '{out}', delay: 0.02}}}}\n"
    )
    env = checkout_env(REPO / "tests" / "fixtures" / "pkgs")
    cmd = [sys.executable, "-m", "flowc", "run", str(flow), "--root", str(tmp_path / ".f")]
    p = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True)
    try:
        first = p.stdout.readline()  # "run <id> started"
        run_id = first.split()[1]
        db = tmp_path / ".f" / "runs" / run_id / ch.DB_NAME
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            groups = ch.local_stats(db)["groups"] if db.exists() else []
            if groups and groups[0]["acked"] >= 60:
                break
            time.sleep(0.05)
        p.send_signal(signal.SIGKILL)  # no cleanup at all
        p.wait(30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    # the replicas got SIGTERM from the kernel when their parent died: wait until they noted it
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if "running" not in {i["state"] for i in ch.local_stats(db)["instances"]}:
            break
        time.sleep(0.05)
    stats = ch.local_stats(db)
    acked = stats["groups"][0]["acked"]
    assert 60 <= acked < 300, "the kill must land mid-stream"
    assert {i["state"] for i in stats["instances"]} & {"interrupted", "crashed", "running"}
    con = ch.connect(db)
    parsed = ch.parse_schema(
        "records",
        {"type": "record", "name": "DemoRecord", "fields": [{"name": "text", "type": "string"}]},
    )
    acked_texts = {
        ch.decode(parsed, bytes(pl))["text"]
        for (pl,) in con.execute(
            "SELECT r.payload FROM claims c JOIN records r ON r.id = c.record_id WHERE c.acked = 1"
        )
    }
    con.close()
    assert len(acked_texts) == acked

    r = subprocess.run(
        [*cmd, "--resume", run_id],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    got = []
    for f in sorted(out.glob("*.jsonl")):
        got.extend(json.loads(line)["text"] for line in f.read_text().splitlines())
    assert acked_texts <= set(got)  # nothing acknowledged was lost
    assert set(got) == {f"HelloWorld_{w}_{i}" for w in range(2) for i in range(150)}
    final = ch.local_stats(db)
    assert final["groups"][0]["lag"] == 0
    assert {i["state"] for i in final["instances"]} == {"finished"}


def test_sniff_follow_watches_a_running_stream(tmp_path: Path) -> None:
    import time

    out = tmp_path / "out"
    gate = tmp_path / "gate"
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        "flowc: 1\nname: watched\nchannels:\n"
        "  records: {schema: {type: record, name: DemoRecord, fields: [{name: text, type: string}]}}\n"
        "steps:\n"
        "  writer: {run: 'flowc_streaming.ops:DemoWriter', operator: true, produces: [records],"
        f" with: {{record_count: 40, batch: 2, gate: '{gate}', gate_at: 20}}}}\n"
        "  reader: {run: 'flowc_streaming.ops:DemoReader', operator: true, consumes: [records],"
        f" with: {{out_dir: '{out}'}}}}\n"
    )
    env = checkout_env(REPO / "tests" / "fixtures" / "pkgs")
    root = tmp_path / ".f"
    run = subprocess.Popen(
        [sys.executable, "-m", "flowc", "run", str(flow), "--root", str(root)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    sniff = None
    try:
        deadline = time.monotonic() + 120
        while not list(root.glob("runs/*/channels.sqlite")):
            assert time.monotonic() < deadline and run.poll() is None, "no channels database"
            time.sleep(0.05)
        sniff = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "flowc",
                "sniff",
                "--root",
                str(root),
                "--follow",
                "--interval",
                "0.2",
                "--json",
            ],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert sniff.stdout is not None
        snaps = []
        # the writer holds at 20 records until the gate opens: open it once sniff showed the
        # stream half way twice (so it refreshed while the run was going), whatever the load
        while sum(s["produced"].get("records", 0) == 20 for s in snaps) < 2:
            line = sniff.stdout.readline()
            assert line, f"sniff ended early: {snaps}"
            snaps.append(json.loads(line))
        gate.write_text("")
        snaps.extend(json.loads(line) for line in sniff.stdout)
        assert sniff.wait(120) == 0
        assert run.wait(120) == 0
    finally:
        for p in (run, sniff):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
    assert len(snaps) >= 3  # it refreshed while records were flowing
    produced = [snap["produced"].get("records", 0) for snap in snaps]
    assert produced == sorted(produced) and produced[-1] == 40
    assert any(0 < p < 40 for p in produced)  # seen mid-stream
    assert {i["state"] for i in snaps[-1]["instances"]} == {"finished"}


def test_flowc_run_sniff_shows_counters_while_it_runs(tmp_path: Path) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        "flowc: 1\nname: sniffed\nchannels:\n"
        "  records: {schema: {type: record, name: DemoRecord, fields: [{name: text, type: string}]}}\n"
        "steps:\n"
        "  writer: {run: 'flowc_streaming.ops:DemoWriter', operator: true, produces: [records],"
        " with: {record_count: 60, batch: 2, delay: 0.1}}\n"
        "  reader: {run: 'flowc_streaming.ops:DemoReader', operator: true, consumes: [records],"
        f" with: {{out_dir: '{tmp_path}/out'}}}}\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "tests" / "fixtures" / "pkgs")}
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "flowc",
            "run",
            str(flow),
            "--root",
            str(tmp_path / ".f"),
            "--sniff",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    snaps = r.stderr.split("sniff ")[1:]
    assert len(snaps) >= 2, r.stderr
    counts = []
    for snap in snaps:
        for line in snap.splitlines():
            if line.startswith("channel records: "):
                counts.append(int(line.split()[2]))
    assert counts[-1] == 60 and any(0 < c < 60 for c in counts), r.stderr  # seen mid-stream
    assert "group reader: acknowledged 60, in flight 0, lag 0" in snaps[-1]
