"""Streaming operators end to end on the local transport: the pypz hello world (writer x3,
reader x2) through compile_flow + the executor, schema rejection, failure propagation,
SIGKILL + resume without losing acknowledged records, back-pressure."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from flowc.compiler.api import compile_flow
from flowc.runtime import channels as ch
from flowc.runtime.executor import run_plan
from flowc.runtime.operators import OperatorError, run_operators
from flowc.runtime.services import RunInfo

REPO = Path(__file__).resolve().parent.parent
HELLO = REPO / "examples" / "streaming_hello"
SCHEMA = {"type": "record", "name": "DemoRecord", "fields": [{"name": "text", "type": "string"}]}


@pytest.fixture(autouse=True)
def _hello_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    # operator replicas are processes: the example's module must be importable there too
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(HELLO), os.environ["PYTHONPATH"]]))
    monkeypatch.syspath_prepend(str(HELLO))


def read_sink(out: Path) -> list[str]:
    texts: list[str] = []
    for f in sorted(out.glob("*.jsonl")):
        texts.extend(json.loads(line)["text"] for line in f.read_text().splitlines())
    return texts


def flow(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "flow.yaml"
    p.write_text(textwrap.dedent(body))
    return p


def test_hello_world_every_record_consumed_exactly_once(tmp_path: Path) -> None:
    plan = compile_flow(HELLO / "flow.yaml").to_data()
    out = tmp_path / "out"
    result = run_plan(plan, {"record_count": 40, "out_dir": str(out)}, root=tmp_path / ".flowc")
    assert result.status == "success", result.error
    got = read_sink(out)
    expected = [f"HelloWorld_{r}_{i}" for r in range(3) for i in range(40)]
    assert len(got) == len(expected) == 120
    assert sorted(got) == sorted(expected)  # count and content: each exactly once
    # both reader replicas are separate processes sharing one consumer group
    assert sorted(p.name for p in out.glob("*.jsonl")) in (
        ["reader.0.jsonl", "reader.1.jsonl"],
        ["reader.0.jsonl"],
        ["reader.1.jsonl"],
    )
    stats = ch.local_stats(tmp_path / ".flowc" / "runs" / result.run_id / ch.DB_NAME)
    outs = {
        (p["step"], p["replica"]): p["count"] for p in stats["ports"] if p["direction"] == "out"
    }
    assert outs == {("writer", 0): 40, ("writer", 1): 40, ("writer", 2): 40}
    ins = [p["count"] for p in stats["ports"] if p["direction"] == "in"]
    assert sum(ins) == 120
    assert stats["groups"] == [
        {"channel": "records", "consumer": "reader", "acked": 120, "in_flight": 0, "lag": 0}
    ]
    assert {i["state"] for i in stats["instances"]} == {"finished"}
    assert len(stats["instances"]) == 5


def test_two_consuming_operators_each_get_every_record(tmp_path: Path) -> None:
    out = tmp_path / "out"
    f = flow(
        tmp_path,
        f"""
        flowc: 1
        name: fanout
        channels:
          records: {{schema: {json.dumps(SCHEMA)}}}
        steps:
          writer: {{run: "flowc_streaming.ops:DemoWriter", operator: true, produces: [records],
                   replicas: 2, with: {{record_count: 25, batch: 4}}}}
          audit: {{run: "flowc_streaming.ops:DemoReader", operator: true, consumes: [records],
                  with: {{out_dir: "{out}/audit", name: audit}}}}
          reader: {{run: "flowc_streaming.ops:DemoReader", operator: true, consumes: [records],
                   replicas: 3, with: {{out_dir: "{out}/reader"}}}}
        """,
    )
    result = run_plan(compile_flow(f).to_data(), root=tmp_path / ".flowc")
    assert result.status == "success", result.error
    expected = sorted(f"HelloWorld_{r}_{i}" for r in range(2) for i in range(25))
    assert sorted(read_sink(out / "audit")) == expected
    assert sorted(read_sink(out / "reader")) == expected


def test_schema_violation_names_channel_and_field(tmp_path: Path) -> None:
    out = tmp_path / "out"
    f = flow(
        tmp_path,
        f"""
        flowc: 1
        name: bad
        channels:
          records: {{schema: {json.dumps(SCHEMA)}}}
        steps:
          writer: {{run: "flowc_streaming.ops:BadWriter", operator: true, produces: [records]}}
          reader: {{run: "flowc_streaming.ops:DemoReader", operator: true, consumes: [records],
                   with: {{out_dir: "{out}"}}}}
        """,
    )
    result = run_plan(compile_flow(f).to_data(), root=tmp_path / ".flowc")
    assert result.status == "failed"
    text = result.error.render()
    assert "channel 'records'" in text and "field 'text'" in text, text
    assert "expected string" in text, text
    assert read_sink(out) == []  # nothing reached the reader


def test_validate_record_messages() -> None:
    parsed = ch.parse_schema("records", SCHEMA)
    ch.validate_record("records", parsed, {"text": "ok"})
    cases = [
        ({"text": 3}, "text", "expected string"),
        ({}, "text", "required field 'text'"),
        ({"text": "a", "txt": "b"}, "txt", "not in schema DemoRecord"),
    ]
    for record, field, words in cases:
        with pytest.raises(ch.SchemaViolation) as e:
            ch.validate_record("records", parsed, record, 7)
        assert e.value.channel == "records" and e.value.field == field
        assert "channel 'records': record #7" in str(e.value) and words in str(e.value)
    nested = ch.parse_schema(
        "n",
        {
            "type": "record",
            "name": "R",
            "fields": [
                {
                    "name": "sub",
                    "type": {
                        "type": "record",
                        "name": "S",
                        "fields": [{"name": "x", "type": "int"}],
                    },
                }
            ],
        },
    )
    with pytest.raises(
        ch.SchemaViolation, match=r"field 'sub\.S\.x' is 'no' \(str\), expected int"
    ):
        ch.validate_record("n", nested, {"sub": {"x": "no"}})


def test_failure_interrupts_the_others_and_fails_the_run(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    f = flow(
        tmp_path,
        f"""
        flowc: 1
        name: boom
        channels:
          records: {{schema: {json.dumps(SCHEMA)}}}
        steps:
          writer: {{run: "flowc_streaming.ops:DemoWriter", operator: true, produces: [records],
                   with: {{record_count: 5}}}}
          reader: {{run: "flowc_streaming.ops:FailingReader", operator: true,
                   consumes: [records], with: {{out_dir: "{out}", wait_started: 2}}}}
          forever: {{run: "flowc_streaming.ops:Forever", operator: true, replicas: 2,
                    with: {{out_dir: "{out}"}}}}
        """,
    )
    t0 = time.monotonic()
    result = run_plan(compile_flow(f).to_data(), root=tmp_path / ".flowc")
    assert result.status == "failed"
    assert "RuntimeError: reader exploded" in result.error.render()
    assert "reader exploded" in (out / "on_error.txt").read_text()  # on_error got the exception
    # the never-ending operator was interrupted (on_interrupt called with SIGTERM)
    assert {p.name for p in out.glob("interrupted.*")} == {"interrupted.0", "interrupted.1"}
    assert (out / "interrupted.0").read_text() == str(int(signal.SIGTERM))
    assert time.monotonic() - t0 < 60


def _plan(out: Path, count: int, delay: float) -> dict:
    def step(run: str, with_: dict, replicas: int, **ports: list[str]) -> dict:
        return {
            "kind": "run",
            "run": run,
            "with": with_,
            "replicas": replicas,
            "env": {},
            "operator": True,
            "produces": ports.get("produces", []),
            "consumes": ports.get("consumes", []),
        }

    return {
        "name": "crash",
        "params": {},
        "secrets": {},
        "steps": {
            "writer": step(
                "flowc_streaming.ops:DemoWriter",
                {"record_count": count, "batch": 5},
                2,
                produces=["records"],
            ),
            "reader": step(
                "flowc_streaming.ops:DemoReader",
                {"out_dir": str(out), "delay": delay, "max_batch": 5},
                2,
                consumes=["records"],
            ),
        },
        "channels": {
            "records": {
                "schema": SCHEMA,
                "transport": "local",
                "location": None,
                "producers": ["writer"],
                "consumers": ["reader"],
            }
        },
    }


def _acked_texts(db: Path) -> set[str]:
    con = ch.connect(db)
    try:
        parsed = ch.parse_schema("records", SCHEMA)
        rows = con.execute(
            "SELECT r.payload FROM claims c JOIN records r ON r.id = c.record_id WHERE c.acked = 1"
        ).fetchall()
        return {ch.decode(parsed, bytes(p))["text"] for (p,) in rows}
    finally:
        con.close()


def test_sigkill_mid_stream_then_rerun_loses_no_acknowledged_record(tmp_path: Path) -> None:
    out = tmp_path / "out"
    root = tmp_path / ".flowc"
    plan = _plan(out, count=200, delay=0.05)
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(plan))
    script = textwrap.dedent(f"""
        import json
        from flowc.runtime.operators import run_operators
        from flowc.runtime.services import RunInfo
        plan = json.load(open({str(plan_file)!r}))
        run_operators(plan, ["writer", "reader"],
                      RunInfo(run_id="r1", flow="crash", params={{}}, root={str(root)!r}),
                      capacity=40)
        """)
    sup = subprocess.Popen([sys.executable, "-c", script])
    db = root / "runs" / "r1" / ch.DB_NAME
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until the stream is well under way
        if db.exists() and len(_acked_texts(db)) >= 60:
            break
        time.sleep(0.05)
    sup.send_signal(signal.SIGKILL)  # the supervisor dies without any cleanup
    sup.wait()
    time.sleep(0.5)
    acked_before = _acked_texts(db)
    assert 60 <= len(acked_before) < 400, "the kill must land mid-stream"
    seen_before = set(read_sink(out))
    assert acked_before <= seen_before  # acked only after on_running returned
    # replicas died with their supervisor (no orphan keeps writing)
    stats = ch.local_stats(db)
    assert not all(i["state"] == "finished" for i in stats["instances"])
    time.sleep(0.5)
    assert ch.local_stats(db)["produced"] == stats["produced"]

    # run again (same run id, as `flowc run --resume` does): the stream completes
    run_operators(
        plan,
        ["writer", "reader"],
        RunInfo(run_id="r1", flow="crash", params={}, root=str(root)),
        capacity=40,
    )
    got = read_sink(out)
    expected = {f"HelloWorld_{r}_{i}" for r in range(2) for i in range(200)}
    assert acked_before <= set(got)  # nothing acknowledged was lost
    assert set(got) == expected  # at-least-once: everything arrives
    assert len(got) >= len(expected)
    sent = ch.read_local(db, "records", SCHEMA)
    final = ch.local_stats(db)
    assert final["groups"][0]["lag"] == 0 and final["groups"][0]["acked"] == len(sent)


def test_back_pressure_bounds_unacknowledged_records(tmp_path: Path) -> None:
    out = tmp_path / "out"
    plan = _plan(out, count=60, delay=0.01)
    db = tmp_path / ".flowc" / "runs" / "bp" / ch.DB_NAME
    peak = 0
    seen: list[int] = []

    def watch(_pids: dict) -> None:
        pass

    import threading

    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            if db.exists():
                try:
                    s = ch.local_stats(db)
                except Exception:  # the database is being created
                    time.sleep(0.01)
                    continue
                lag = max((g["lag"] for g in s["groups"]), default=0)
                seen.append(lag)
                peak = max(peak, lag)
            time.sleep(0.005)

    t = threading.Thread(target=sample)
    t.start()
    try:
        run_operators(
            plan,
            ["writer", "reader"],
            RunInfo(run_id="bp", flow="crash", params={}, root=str(tmp_path / ".flowc")),
            capacity=10,
            on_start=watch,
        )
    finally:
        stop.set()
        t.join()
    assert sorted(read_sink(out)) == sorted(
        f"HelloWorld_{r}_{i}" for r in range(2) for i in range(60)
    )
    assert peak <= 10, peak  # producers waited for the slow readers
    assert max(seen) >= 5  # and the bound was actually reached


def test_a_fast_writer_shares_records_among_every_reader_replica(tmp_path: Path) -> None:
    # one send of 600 records while three slow readers wait: each retrieve() claims an even
    # share of what is waiting, not up to 500, so every replica gets close to a third
    out, gate = tmp_path / "out", tmp_path / "gate"
    f = flow(
        tmp_path,
        f"""
        flowc: 1
        name: sharing
        channels:
          records: {{schema: {json.dumps(SCHEMA)}}}
        steps:
          writer: {{run: "flowc_streaming.ops:GatedWriter", operator: true, produces: [records],
                   with: {{record_count: 600, gate_dir: "{gate}", readers: 3}}}}
          reader: {{run: "flowc_streaming.ops:SharingReader", operator: true,
                   consumes: [records], replicas: 3,
                   with: {{out_dir: "{out}", gate_dir: "{gate}"}}}}
        """,
    )
    result = run_plan(compile_flow(f).to_data(), root=tmp_path / ".flowc")
    assert result.status == "success", result.error
    shares = [int((out / f"{r}.count").read_text()) for r in range(3)]
    assert sum(shares) == 600
    assert all(100 <= n <= 400 for n in shares), shares  # within 2x of an even 200


def test_run_operators_raises_operator_error(tmp_path: Path) -> None:
    plan = _plan(tmp_path / "out", count=3, delay=0)
    plan["steps"]["writer"]["run"] = "flowc_streaming.ops:BadWriter"
    plan["steps"]["writer"]["with"] = {}
    with pytest.raises(OperatorError) as e:
        run_operators(
            plan,
            ["writer", "reader"],
            RunInfo(run_id="x", flow="crash", params={}, root=str(tmp_path)),
        )
    assert e.value.step == "writer"
    assert "channel 'records'" in e.value.message and "field 'text'" in e.value.message


def test_step_timeout_bounds_an_operator(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    f = flow(
        tmp_path,
        f"""
        flowc: 1
        name: slow
        steps:
          spin: {{run: "flowc_streaming.ops:Forever", operator: true, timeout: 2s,
                 with: {{out_dir: "{out}"}}}}
        """,
    )
    t0 = time.monotonic()
    result = run_plan(compile_flow(f).to_data(), root=tmp_path / ".flowc")
    assert result.status == "failed"
    assert "timed out after 2s" in result.error.render()
    assert (out / "interrupted.0").exists()
    assert time.monotonic() - t0 < 30


def test_operator_with_refers_to_an_upstream_step_output(tmp_path: Path) -> None:
    out = tmp_path / "out"
    f = flow(
        tmp_path,
        f"""
        flowc: 1
        name: mixed
        channels:
          records: {{schema: {json.dumps(SCHEMA)}}}
        steps:
          size: {{run: "flowc_demo.steps:add", with: {{a: 4, b: 3}}, outputs: [n]}}
          writer: {{run: "flowc_streaming.ops:DemoWriter", operator: true, produces: [records],
                   with: {{record_count: "${{steps.size.outputs.n}}"}}}}
          reader: {{run: "flowc_streaming.ops:DemoReader", operator: true, consumes: [records],
                   with: {{out_dir: "{out}"}}}}
        """,
    )
    result = run_plan(compile_flow(f).to_data(), root=tmp_path / ".flowc")
    assert result.status == "success", result.error
    assert sorted(read_sink(out)) == sorted(f"HelloWorld_0_{i}" for i in range(7))
